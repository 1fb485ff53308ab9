"""The MLflow mirror: replays trackhooks runs into an MLflow tracking server (docs/mirrors.md).

What MLflow holds of a run is decided by the local store and the run's cursor (trackhooks.sync), never
by which batches happened to reach the server, so an outage, a restart of the server or a second
``trackhooks sync`` end in the same MLflow run, with every point once.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from trackhooks.plugin import TERMINAL, Cursor, ReplaySink, RunView, replay_run

from .backends import ClientBackend, MlflowRejected, RemoteRun, RestBackend, json_number

# MLflow's limits (mlflow.utils.validation, 3.x)
MAX_METRICS_PER_REQUEST = 1000
MAX_PARAMS_TAGS_PER_REQUEST = 100
MAX_ENTITIES_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 900_000  # MLflow refuses log-batch bodies over 1 MB
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250

STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
OPTIONS = ("upload_checkpoints", "timeout", "backend")
RUN_ID_TAG = "trackhooks.run_id"

_ALLOWED = re.compile(r"[/\w.\- ]")  # what MLflow accepts in names (colon too, used here as escape)


# ---- names ---------------------------------------------------------------------------------


def _path_not_unique(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def _tokens(key: str, slash: bool, dot: bool) -> list[str]:
    out = []
    for ch in key:
        if ch == ":":
            out.append("::")
        elif (slash and ch == "/") or (dot and ch == ".") or not _ALLOWED.fullmatch(ch):
            out.append(f":{ord(ch):x}:")
        else:
            out.append(ch)
    return out


def encode_key(key: str) -> str:
    """An MLflow-safe name for a trackhooks key; ``decode_key`` inverts it.

    Characters MLflow accepts are kept, except ``:`` which becomes ``::``; any other character becomes
    ``:<hex code point>:``. If the name would still be refused as a path (``a//b``, ``/a``, ``a/``,
    ``..``), slashes (then dots) are escaped too. Names longer than 250 characters are cut and end in
    ``-<9 hex digits of the key's sha1>``; the run then has a tag ``trackhooks.long_key.<those digits>``
    holding the whole key.
    """
    tokens = _tokens(key, False, False)
    if _path_not_unique("".join(tokens)):
        tokens = _tokens(key, True, False)
        if _path_not_unique("".join(tokens)):
            tokens = _tokens(key, True, True)
    name = "".join(tokens)
    if len(name) <= MAX_KEY:
        return name
    cut, size = [], 0
    for t in tokens:
        if size + len(t) > MAX_KEY - 10:
            break
        cut.append(t)
        size += len(t)
    return "".join(cut) + "-" + long_key_digest(key)


def long_key_digest(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:9]


def decode_key(name: str) -> str:
    """The trackhooks key of an MLflow name made by ``encode_key`` (not of a cut long name)."""
    out, i = [], 0
    while i < len(name):
        ch = name[i]
        if ch != ":":
            out.append(ch)
            i += 1
        elif name.startswith("::", i):
            out.append(":")
            i += 2
        else:
            j = name.index(":", i + 1)
            out.append(chr(int(name[i + 1:j], 16)))
            i = j + 1
    return "".join(out)


def param_value(value: Any) -> str:
    """A param as the MLflow string: str() for strings, numbers, booleans and None (as
    ``mlflow.log_param`` does), JSON for lists and dicts."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=True, default=str)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _ms(t: float) -> int:
    return max(0, int(t * 1000))


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_uri(uri: str) -> tuple[str, dict[str, str]]:
    """``mlflow+<tracking uri>[?option=value...]`` -> (tracking uri, trackhooks options).

    Query parameters named like an option (upload_checkpoints, timeout, backend) are taken out; any
    other query parameter stays part of the tracking URI.
    """
    if not uri.startswith("mlflow+"):
        raise ValueError(f"not an MLflow mirror URI: {uri!r}")
    # split by hand: urlunsplit would rewrite "sqlite:////abs/path.db"
    base, _, query_text = uri[len("mlflow+"):].partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    options = {k: v for k, v in query if k in OPTIONS}
    rest = [(k, v) for k, v in query if k not in OPTIONS]
    if urlsplit(base).scheme in ("http", "https"):
        base = base.rstrip("/")
    return (base + "?" + urlencode(rest)) if rest else base, options


# ---- the mirror ----------------------------------------------------------------------------


class MlflowMirror(ReplaySink):
    """A sink for ``mlflow+<tracking uri>``. Options (keyword or URI query): ``upload_checkpoints``
    (default False: checkpoints are recorded as tags with their paths), ``timeout`` (seconds per HTTP
    request, default 5), ``backend`` (``rest`` for http(s) URIs, ``client`` = mlflow.MlflowClient)."""

    def __init__(self, uri: str, options: dict[str, Any] | None = None):
        tracking, opts = parse_uri(uri)
        opts = {**opts, **(options or {})}
        unknown = set(opts) - set(OPTIONS)
        if unknown:
            raise ValueError(f"unknown MLflow mirror option(s) {', '.join(sorted(unknown))} in {uri!r}; "
                             f"known: {', '.join(OPTIONS)}")
        self.tracking_uri = tracking
        self.upload_checkpoints = _flag(opts.get("upload_checkpoints", False))
        self.timeout = float(opts.get("timeout", 5.0))
        scheme = urlsplit(tracking).scheme
        self.backend_kind = str(opts.get("backend") or ("rest" if scheme in ("http", "https") else "client"))
        if self.backend_kind not in ("rest", "client"):
            raise ValueError(f"MLflow mirror backend must be 'rest' or 'client', got {self.backend_kind!r}")
        super().__init__(cursor_key=f"mlflow+{tracking}", name=f"mlflow+{tracking}")
        self._backend_obj: RestBackend | ClientBackend | None = None
        self._experiments: dict[str, str] = {}
        self._verified: set[str] = set()  # MLflow run ids known to exist (checked once per process)
        self._depth = threading.local()

    def _backend(self) -> RestBackend | ClientBackend:
        if self._backend_obj is None:
            cls = RestBackend if self.backend_kind == "rest" else ClientBackend
            self._backend_obj = cls(self.tracking_uri, self.timeout)
        return self._backend_obj

    # ---- replay ---------------------------------------------------------------------------
    def replay(self, view: RunView, cursor: Cursor) -> dict[str, Any]:
        stats: dict[str, Any] = {"points": 0, "params": 0, "tags": 0, "artifacts": 0, "checkpoints": 0,
                                 "status": None, "complete": False}
        while self._round(view, cursor, stats):
            pass  # a backlog bigger than one read of the store: go on until it is all sent
        return stats

    def _round(self, view: RunView, cursor: Cursor, stats: dict[str, Any]) -> bool:
        """Send what is missing, up to one store read per key; True if points are still missing."""
        be = self._backend()
        rec = view.rec
        st = cursor.state
        remote = self._remote(view, cursor, be)
        params_done: list[str] = st.setdefault("params", [])
        tag_digests: dict[str, str] = st.setdefault("tags", {})
        metric_state: dict[str, dict[str, Any]] = st.setdefault("metrics", {})
        extra: dict[str, str] = {}

        done = set(params_done)
        params_out: list[tuple[str, dict[str, str]]] = []
        for k in sorted(rec.params):
            name = self._key(k, extra)
            value = param_value(rec.params[k])
            if len(value) > MAX_PARAM_VALUE:
                extra[self._note_key("param", name)] = (
                    f"param {k!r} has {len(value)} characters; MLflow keeps the first {MAX_PARAM_VALUE}, "
                    f"the whole value is in the trackhooks store (run {rec.id})")
                value = value[:MAX_PARAM_VALUE]
            if k not in done:
                params_out.append((k, {"key": name, "value": value}))

        wanted: dict[str, str] = {}
        for k, v in rec.tags.items():
            name = self._key(k, extra)
            if len(v) > MAX_TAG_VALUE:
                extra[self._note_key("tag", name)] = (
                    f"tag {k!r} has {len(v)} characters; MLflow keeps the first {MAX_TAG_VALUE}, "
                    f"the whole value is in the trackhooks store (run {rec.id})")
                v = v[:MAX_TAG_VALUE]
            wanted[name] = v
        wanted.update(self._system_tags(rec.system))
        for d in rec.datasets():
            wanted[self._key(f"trackhooks.dataset.{d.context}.{d.name}", extra)] = d.digest
        wanted.update(self._checkpoint_tags(view))
        wanted[RUN_ID_TAG] = rec.id

        # metric points after the cursor, with the timestamp MLflow gets (see _stamp)
        entries: list[tuple[str, int, dict[str, Any]]] = []
        per_key: dict[str, dict[str, Any]] = {}
        for key, (key_id, n) in view.metric_counts().items():
            ms = metric_state.get(key) or {"n": 0}
            if ms["n"] >= n:
                continue
            pts = view.points(key_id, ms["n"], ms.get("h"))
            name = self._key(key, extra)
            last_t, same = ms.get("t", -1), {tuple(x) for x in ms.get("s", [])}
            stamps = []
            for i in range(len(pts)):
                value = pts.values[i]
                ident = (pts.steps[i], repr(value))
                t = max(_ms(pts.timestamps[i]), last_t)
                if t == last_t:
                    if ident in same:
                        t = last_t + 1
                        same = set()
                else:
                    same = set()
                same.add(ident)
                last_t = t
                stamps.append((t, ident))
                entries.append((key, pts.start + i + 1, {"key": name, "value": json_number(value), "timestamp": t,
                                                          "step": pts.steps[i]}))
            per_key[key] = {"pts": pts, "stamps": stamps, "start": ms}

        wanted.update(extra)
        tags_out = [(k, {"key": k, "value": v}) for k, v in sorted(wanted.items()) if tag_digests.get(k) != _digest(v)]

        # log-batch requests within MLflow's limits; the cursor moves after each acknowledged one
        ti = pi = mi = 0
        while ti < len(tags_out) or pi < len(params_out) or mi < len(entries):
            size = 200
            tags_req, params_req = [], []
            while ti < len(tags_out) and len(tags_req) < MAX_PARAMS_TAGS_PER_REQUEST:
                e = tags_out[ti][1]
                s = len(e["key"]) + len(e["value"].encode("utf-8", "surrogatepass")) + 40
                if tags_req and size + s > MAX_REQUEST_BYTES:
                    break
                tags_req.append(tags_out[ti])
                size += s
                ti += 1
            while pi < len(params_out) and len(params_req) < MAX_PARAMS_TAGS_PER_REQUEST:
                e = params_out[pi][1]
                s = len(e["key"]) + len(e["value"].encode("utf-8", "surrogatepass")) + 40
                if (params_req or tags_req) and size + s > MAX_REQUEST_BYTES:
                    break
                params_req.append(params_out[pi])
                size += s
                pi += 1
            room = min(MAX_METRICS_PER_REQUEST, MAX_ENTITIES_PER_REQUEST - len(tags_req) - len(params_req))
            m0 = mi
            while mi < len(entries) and mi - m0 < room:
                s = len(entries[mi][2]["key"]) + 100
                if size + s > MAX_REQUEST_BYTES:
                    break
                size += s
                mi += 1
            metrics_req = entries[m0:mi]
            be.log_batch(remote.run_id, [e for _, _, e in metrics_req], [e for _, e in params_req],
                         [e for _, e in tags_req])
            for k, _ in params_req:
                params_done.append(k)
            for k, e in tags_req:
                tag_digests[k] = _digest(e["value"])
            acked: dict[str, int] = {}
            for key, n_after, _ in metrics_req:
                acked[key] = n_after
            for key, n_after in acked.items():
                metric_state[key] = self._metric_cursor(per_key[key], n_after)
            cursor.commit()
            stats["params"] += len(params_req)
            stats["tags"] += len(tags_req)
            stats["points"] += len(metrics_req)

        stats["artifacts"] += self._artifacts(view, cursor, remote, be)
        if self.upload_checkpoints:
            stats["checkpoints"] += self._upload_checkpoints(view, cursor, remote, be)

        caught_up = all((metric_state.get(k) or {"n": 0})["n"] >= n for k, (_, n) in view.metric_counts().items())
        if not caught_up and entries:
            return True
        status = STATUS.get(view.status, "RUNNING")
        if caught_up and st.get("status") != status:
            end = view.end_time
            be.set_status(remote.run_id, status, _ms(end) if status != "RUNNING" and end is not None else None)
            st["status"] = status
            cursor.commit()
            stats["status"] = status
        stats["complete"] = caught_up and view.status in TERMINAL
        return False

    @staticmethod
    def _metric_cursor(info: dict[str, Any], n_after: int) -> dict[str, Any]:
        """Cursor of one key once its first ``n_after`` points are acknowledged."""
        pts, stamps, start = info["pts"], info["stamps"], info["start"]
        j = n_after - pts.start - 1  # index of the last acknowledged point in this round
        t = stamps[j][0]
        same = []
        k = j
        while k >= 0 and stamps[k][0] == t:
            same.append(list(stamps[k][1]))
            k -= 1
        if k < 0 and start.get("t") == t:  # the run of equal stamps began in an earlier round
            same.extend(start.get("s", []))
        return {"n": n_after, "t": t, "s": same, "h": pts.hint_at(n_after)}

    def _key(self, key: str, extra: dict[str, str]) -> str:
        name = encode_key(key)
        if len(name) >= MAX_KEY - 10 and name.endswith("-" + long_key_digest(key)):
            extra[f"trackhooks.long_key.{long_key_digest(key)}"] = key
        return name

    @staticmethod
    def _note_key(kind: str, name: str) -> str:
        key = f"trackhooks.truncated.{kind}.{name}"
        return key if len(key) <= MAX_KEY else f"trackhooks.truncated.{kind}.{_digest(name)}"

    @staticmethod
    def _system_tags(system: dict[str, Any]) -> dict[str, str]:
        out = {}
        for ours, theirs in (("git.commit", "mlflow.source.git.commit"), ("git.branch", "mlflow.source.git.branch")):
            if isinstance(system.get(ours), str) and system[ours]:
                out[theirs] = system[ours][:MAX_TAG_VALUE]
        return out

    @staticmethod
    def _checkpoint_tags(view: RunView) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, c in enumerate(view.checkpoint_rows()):
            out[f"trackhooks.checkpoint.{i}"] = c["path"][:MAX_TAG_VALUE]
            meta = {k: c[k] for k in ("step", "epoch", "best", "deleted", "sha256", "size", "monitor")}
            meta["metrics"] = {k: json_number(v) for k, v in c["metrics"].items()}
            out[f"trackhooks.checkpoint.{i}.info"] = json.dumps(meta, allow_nan=False)[:MAX_TAG_VALUE]
            if c["best"]:
                out["trackhooks.best_checkpoint"] = c["path"][:MAX_TAG_VALUE]
        return out

    def _remote(self, view: RunView, cursor: Cursor, be: RestBackend | ClientBackend) -> RemoteRun:
        st = cursor.state
        rec = view.rec
        if st.get("remote"):
            remote = RemoteRun(**st["remote"])
            if remote.run_id in self._verified:
                return remote
            # once per run and process: a cursor is only as good as the server's memory (a replaced
            # database, a deleted run): if the run is gone, start over and send everything
            if be.run_exists(remote.run_id):
                self._verified.add(remote.run_id)
                return remote
            st.clear()
            self._experiments.pop(rec.experiment, None)
        exp_id = self._experiments.get(rec.experiment)
        if exp_id is None:
            exp_id = self._experiments[rec.experiment] = be.experiment_id(rec.experiment)
        # a run created by an earlier attempt whose answer was lost, or a store without cursors:
        # adopt it and send everything again (the server keeps identical points once)
        remote = be.find_run(exp_id, RUN_ID_TAG, rec.id)
        created_tags = {RUN_ID_TAG: rec.id}
        if remote is None:
            if rec.parent_id:
                created_tags["trackhooks.parent_id"] = rec.parent_id
                parent = self._parent_remote(view, rec.parent_id)
                if parent is not None:
                    created_tags["mlflow.parentRunId"] = parent
            remote = be.create_run(exp_id, rec.name, _ms(rec.start_time), created_tags)
            st["status"] = "RUNNING"
            st["tags"] = {k: _digest(v) for k, v in created_tags.items()}
        st["remote"] = remote.as_dict()
        cursor.commit()
        self._verified.add(remote.run_id)
        return remote

    def _parent_remote(self, view: RunView, parent_id: str) -> str | None:
        depth = getattr(self._depth, "n", 0)
        if depth > 16:
            return None
        self._depth.n = depth + 1
        try:
            state = Cursor.load(view.store, self.cursor_key, parent_id).state
            if not state.get("remote"):
                try:
                    view.store.run(parent_id)
                except Exception:  # the parent is in another store: nothing to link
                    return None
                replay_run(view.store, parent_id, self)
                state = Cursor.load(view.store, self.cursor_key, parent_id).state
            return (state.get("remote") or {}).get("run_id")
        finally:
            self._depth.n = depth

    def _artifacts(self, view: RunView, cursor: Cursor, remote: RemoteRun, be: RestBackend | ClientBackend) -> int:
        sent: dict[str, str] = cursor.state.setdefault("artifacts", {})
        n = 0
        for a in view.rec.artifacts():
            if sent.get(a.name) == a.sha256:
                continue
            be.upload(remote, a.path, a.name)
            sent[a.name] = a.sha256
            cursor.commit()
            n += 1
        return n

    def _upload_checkpoints(self, view: RunView, cursor: Cursor, remote: RemoteRun,
                            be: RestBackend | ClientBackend) -> int:
        rows = view.checkpoint_rows()
        start = cursor.state.get("checkpoints_uploaded", 0)
        n = 0
        for i in range(start, len(rows)):
            c = rows[i]
            path = c["path"]
            if not c["deleted"] and os.path.exists(path):
                base = os.path.basename(path.rstrip(os.sep)) or "checkpoint"
                if os.path.isdir(path):
                    for root, dirs, files in os.walk(path):
                        dirs.sort()
                        for f in sorted(files):
                            full = os.path.join(root, f)
                            rel = os.path.relpath(full, path).replace(os.sep, "/")
                            be.upload(remote, full, f"checkpoints/{base}/{rel}")
                else:
                    be.upload(remote, path, f"checkpoints/{base}")
                n += 1
            cursor.state["checkpoints_uploaded"] = i + 1
            cursor.commit()
        return n


__all__ = ["MlflowMirror", "MlflowRejected", "decode_key", "encode_key", "param_value", "parse_uri"]
