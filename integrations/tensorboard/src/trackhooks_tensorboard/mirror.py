"""The TensorBoard mirror: replays trackhooks runs into event files, one subdirectory per run.

Written with tensorboard's own EventFileWriter and protos (no TensorFlow). Like every replay mirror
(trackhooks.sync) it writes what the run's cursor says is missing, so a replay after a crash or a
second ``trackhooks sync`` adds no point twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from typing import Any

from trackhooks.plugin import TERMINAL, Cursor, ReplaySink, RunView

RUN_TAG = "trackhooks/run"
PARAMS_TAG = "trackhooks/params"
TAGS_TAG = "trackhooks/tags"
STATUS_TAG = "trackhooks/status"
LOCK_NAME = ".trackhooks-mirror.lock"

_UNSAFE = re.compile(r"[^\w.\- ]")


def parse_uri(uri: str) -> str:
    """``tensorboard:<log dir>`` (also ``tensorboard://<dir>``) -> the absolute log directory."""
    if not uri.startswith("tensorboard:"):
        raise ValueError(f"not a TensorBoard mirror URI: {uri!r}")
    path = uri[len("tensorboard:"):]
    if path.startswith("//"):
        path = path[2:]
    if not path:
        raise ValueError(f"TensorBoard mirror URI {uri!r} names no log directory (tensorboard:<dir>)")
    return os.path.abspath(os.path.expanduser(path))


def run_dir_name(name: str, run_id: str) -> str:
    """The subdirectory of a run: its name made file-safe, then ``-`` and the first 8 id characters."""
    safe = _UNSAFE.sub("_", name).strip(" .") or "run"
    return f"{safe[:100]}-{run_id[:8]}"


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str, allow_nan=True).encode()).hexdigest()[:16]


def _md_cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, allow_nan=True)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: dict[str, Any], head: tuple[str, str]) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in sorted(rows.items())]
    return "\n".join(lines)


def hparam_value(value: Any) -> bool | int | float | str:
    """A param as an hparams value: booleans, numbers and strings as they are, anything else as JSON."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str, allow_nan=True)


class _RunLock:
    """An exclusive lock on a run's directory, so that a live mirror and ``trackhooks sync`` never
    append the same points to two event files."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, LOCK_NAME)
        self.fd: int | None = None

    def __enter__(self) -> "_RunLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory locks; overlapping syncs are the user's to avoid
            pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock
            self.fd = None


class TensorBoardMirror(ReplaySink):
    """A sink for ``tensorboard:<log dir>``. No options."""

    def __init__(self, uri: str, options: dict[str, Any] | None = None):
        if options:
            raise ValueError(f"the TensorBoard mirror takes no options, got {', '.join(sorted(options))}")
        self.logdir = parse_uri(uri)
        super().__init__(cursor_key=f"tensorboard:{self.logdir}", name=f"tensorboard:{self.logdir}")
        self._writers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def run_dir(self, view: RunView, cursor: Cursor) -> str:
        rel = cursor.state.get("dir") or run_dir_name(view.rec.name, view.rec.id)
        return os.path.join(self.logdir, rel)

    def _writer(self, run_id: str, directory: str):
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        w = self._writers.get(run_id)
        if w is None:
            w = self._writers[run_id] = EventFileWriter(directory, max_queue_size=1000, flush_secs=3600)
        return w

    def close_run(self, run_id: str) -> None:
        with self._lock:
            w = self._writers.pop(run_id, None)
        if w is not None:
            w.close()

    def close_all(self) -> None:
        for run_id in list(self._writers):
            self.close_run(run_id)

    def close(self) -> None:
        super().close()
        self.close_all()

    # ---- replay ---------------------------------------------------------------------------
    def replay(self, view: RunView, cursor: Cursor) -> dict[str, Any]:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        rec = view.rec
        st = cursor.state
        stats: dict[str, Any] = {"points": 0, "params": 0, "tags": 0, "status": None, "complete": False}
        directory = self.run_dir(view, cursor)
        os.makedirs(directory, exist_ok=True)
        with _RunLock(directory):
            # the cursor may have moved while we waited for the lock
            fresh = Cursor.load(view.store, cursor.mirror, cursor.run_id)
            cursor.state, cursor.version = fresh.state, fresh.version
            st = cursor.state
            st.setdefault("dir", os.path.basename(directory))
            w = self._writer(rec.id, directory)
            now = time.time()
            metric_state: dict[str, int] = st.setdefault("metrics", {})
            hints: dict[str, list[int]] = st.setdefault("hints", {})
            counts = view.metric_counts()
            while True:
                wrote = 0
                for key, (key_id, n) in counts.items():
                    done = metric_state.get(key, 0)
                    if done >= n:
                        continue
                    pts = view.points(key_id, done, hints.get(key))
                    for step, value, ts in zip(pts.steps, pts.values, pts.timestamps):
                        w.add_event(Event(wall_time=ts, step=step,
                                          summary=Summary(value=[Summary.Value(tag=key, simple_value=value)])))
                    metric_state[key] = done + len(pts)
                    hints[key] = pts.hint_at(done + len(pts))
                    wrote += len(pts)
                stats["points"] += wrote
                if wrote:
                    w.flush()  # the points are on disk before the cursor says so
                    cursor.commit()
                if not wrote or all(metric_state.get(k, 0) >= n for k, (_, n) in counts.items()):
                    break

            if not st.get("run"):
                info = {"id": rec.id, "name": rec.name, "experiment": rec.experiment, "parent": rec.parent_id,
                        "store": view.store.uri}
                self._text(w, Event, Summary, RUN_TAG, _table(info, ("field", "value")), 0, now)
                st["run"] = True
            params_digest = _digest(rec.params)
            if rec.params and st.get("params") != params_digest:
                step = st.get("params_writes", 0)
                self._text(w, Event, Summary, PARAMS_TAG, _table(rec.params, ("param", "value")), step, now)
                st["params"], st["params_writes"] = params_digest, step + 1
                stats["params"] = len(rec.params)
            if rec.params and not st.get("hparams") and (counts or rec.status in TERMINAL):
                # the hparams dashboard reads only the first session record of a run: write it once the
                # params are known (training has begun or ended), not at the first param
                from tensorboard.plugins.hparams import summary_v2

                hp = {k: hparam_value(v) for k, v in rec.params.items()}
                w.add_event(Event(wall_time=now, step=0,
                                  summary=summary_v2.hparams_pb(hp, trial_id=rec.id, start_time_secs=rec.start_time)))
                st["hparams"] = True
            tags_digest = _digest(rec.tags)
            if rec.tags and st.get("tags") != tags_digest:
                step = st.get("tags_writes", 0)
                self._text(w, Event, Summary, TAGS_TAG, _table(rec.tags, ("tag", "value")), step, now)
                st["tags"], st["tags_writes"] = tags_digest, step + 1
                stats["tags"] = len(rec.tags)
            caught_up = all(metric_state.get(k, 0) >= n for k, (_, n) in counts.items())
            if caught_up and rec.status in TERMINAL and st.get("status") != rec.status:
                self._text(w, Event, Summary, STATUS_TAG, rec.status, 0, view.end_time or now)
                w.add_event(Event(wall_time=view.end_time or now, step=0,
                                  summary=self._session_end(rec.status, view.end_time or now)))
                st["status"] = rec.status
                stats["status"] = rec.status
            w.flush()
            cursor.commit()
        stats["complete"] = caught_up and rec.status in TERMINAL
        return stats

    @staticmethod
    def _text(w: Any, Event: Any, Summary: Any, tag: str, text: str, step: int, wall_time: float) -> None:
        from tensorboard.compat.proto.summary_pb2 import SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
        from tensorboard.compat.proto.types_pb2 import DT_STRING

        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        tensor = TensorProto(dtype=DT_STRING, string_val=[text.encode("utf-8", "surrogatepass")],
                             tensor_shape=TensorShapeProto())
        w.add_event(Event(wall_time=wall_time, step=step,
                          summary=Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)])))

    @staticmethod
    def _session_end(status: str, end_time: float):
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        # the hparams dashboard has no "killed": a killed run did not succeed
        code = api_pb2.STATUS_SUCCESS if status == "finished" else api_pb2.STATUS_FAILURE
        data = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(status=code, end_time_secs=end_time))
        summary = Summary()
        summary.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
                          tensor=metadata.NULL_TENSOR)
        return summary


__all__ = ["TensorBoardMirror", "hparam_value", "parse_uri", "run_dir_name"]
