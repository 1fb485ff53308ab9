"""Runs: the logging protocol users call from the training loop."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from typing import Any, Iterable

from . import writer as _w
from .errors import (
    InvalidMediaError,
    InvalidValueError,
    OutOfRangeError,
    ParamConflictError,
    RunFinishedError,
    RunNotFoundError,
    StoreError,
    UnknownPluginError,
    UnsafePathError,
    short_repr,
)
from .store.status import HOST
from .store import is_local_uri, process_start_time, redact_uri, resolve_uri, spool_path, uri_text
from .store.records import CheckpointRecord
from .store.sqlite import LocalStoreSink, SQLiteStore
from .sink import CheckpointUpdate, RunStart, Sink
from .values import (
    check_source as _check_source,
    check_index,
    check_key,
    check_metric_value,
    flatten_params,
    same_param,
    tag_value,
)

_IMIN, _IMAX = -(2**63) + 1, 2**63 - 1
# bound once: module attribute lookups were a tenth of the hot path
_OP_METRICS, _OP_METRIC, _WAKE_AT, _now = _w.OP_METRICS, _w.OP_METRIC, _w.WAKE_AT, time.time
NOTE_MAX_CHARS = 100_000
STATUSES = ("running", "finished", "failed", "killed")

_active: list["Run"] = []  # runs started in this process and not finished, innermost last
_active_lock = threading.Lock()
# the environment's slow facts come from background threads (the git probe) that outlive finish():
# the runs whose environment the writer has not described yet, and the threads still running
_undescribed: set["Run"] = set()
_info_threads: list[threading.Thread] = []
INFO_WAIT_S = 5.0  # how long interpreter exit waits for them (git itself is time-boxed: GIT_TIMEOUT_S each)
# This thread's stack of runs and nesting frames, innermost last (see nesting.py). A run's own entry
# is removed when it finishes, on whatever thread that happens. No lock: list.append/remove are
# atomic under the GIL, and a finish from a finalizer or signal handler must never wait on a lock.
_thread = threading.local()


class StackEntry:
    """One entry of a thread's run stack: ``kind`` is "run" (a started run), "fit" (an integration's
    fit in progress), "suppress" (inner fits record nothing) or "container" (they record into ``run``)."""

    __slots__ = ("kind", "run", "integration")

    def __init__(self, kind: str, run: "Run | None", integration: str | None = None):
        self.kind, self.run, self.integration = kind, run, integration


def thread_stack() -> list[StackEntry]:
    """This thread's run stack (runs started here and nesting frames pushed here), innermost last."""
    stack = getattr(_thread, "stack", None)
    if stack is None:
        stack = _thread.stack = []
    return stack


def _unstack(stack: list, entry: StackEntry) -> None:
    try:
        stack.remove(entry)  # identity: StackEntry has no __eq__
    except ValueError:
        pass
_stores: dict[str, LocalStoreSink] = {}
_mirrors: dict[str, Sink] = {}
_channels: dict[tuple, _w.Channel] = {}
_setup_lock = threading.Lock()

_ADJECTIVES = ("amber", "brisk", "calm", "dapper", "eager", "fuzzy", "gentle", "hazy", "icy", "jolly", "keen",
               "lucid", "mellow", "nimble", "olive", "proud", "quiet", "rapid", "sunny", "tidy", "vivid", "witty")
_NOUNS = ("otter", "falcon", "maple", "comet", "badger", "cedar", "delta", "ember", "fjord", "grove", "heron",
          "iris", "jade", "koala", "lynx", "mesa", "nova", "orca", "pine", "quartz", "raven", "sparrow")


def _default_name() -> str:
    # os.urandom instead of the random/uuid modules: they add tens of ms to the first start_run
    a, b, c = os.urandom(3)
    return f"{_ADJECTIVES[a % len(_ADJECTIVES)]}-{_NOUNS[b % len(_NOUNS)]}-{c * 4 % 999 + 1}"


class Run:
    """One training run. Every ``log_*`` call only validates and appends to an in-memory buffer;
    the writer thread does the rest. Use as a context manager to finish it (failed on exception)."""

    def __init__(self, run_id: str, name: str, experiment: str, store_path: str, parent_id: str | None,
                 channel: _w.Channel, params: dict[str, Any], last_step: dict[str, int], store_uri: str | None = None):
        self.id = run_id
        self.name = name
        self.experiment = experiment
        #: the local store directory written first (for a team store: the spool)
        self.store = store_path
        #: where the run is kept, as shown to people (a path, or a team store URI without its password)
        self.store_uri = store_uri or store_path
        self.parent_id = parent_id
        self.status = "running"
        self._params = dict(params)
        self._known: set[str] = set(last_step)
        self._writer = _w.get_writer()
        self._buffer = self._writer.buffer
        self._state = _w.RunState(run_id, channel, last_step)
        self._params_lock = threading.Lock()
        self._finish_lock = threading.Lock()
        # nesting (nesting.py): None = the user's run; "fit" = an integration's own run of one fit;
        # "container" = a run whose inner fits record into it (an Optuna trial)
        self._role: str | None = None
        self._opened_by: str | None = None
        self._stacked: tuple[list, StackEntry] | None = None  # (thread stack, its entry) while running
        self._system: dict[str, Any] | None = None  # what the system-info plugins said (children reuse it)
        self._capturing = False  # this run holds a share of the process's console capture
        self._pending_info: list[threading.Thread] = []  # system-info work still running (git diff)
        self._sysinfo_pending = False  # the writer has not described the environment yet
        self._sysinfo_done: threading.Event | None = None  # set once it has (trackhooks.plugin.settle_run)
        self._media_kinds: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Run(id={self.id[:8]}, name={self.name!r}, experiment={self.experiment!r}, status={self.status!r})"

    # ---- metrics: the hot path ---------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], *, step: int | None = None, epoch: int | None = None) -> None:
        """Record several metrics at one step. ``step=None``: one more than this key's last step."""
        if self.status != "running":
            raise RunFinishedError(f"run {self.id[:8]} is {self.status}; start or resume a run to log into it")
        if type(metrics) is not dict:
            metrics = _as_dict(metrics)
        m = dict(metrics)
        # the usual call (keys seen before, plain numbers) costs one set check in C and one pass
        # over the values; anything else takes the full checks, which raise naming key and value
        if self._known.issuperset(m):
            for v in m.values():
                if type(v) is not float and type(v) is not int:
                    self._check_values(m)
                    break
        else:
            for k, v in m.items():
                self._check_metric(k, v)
        self._enqueue_metrics(m, step, epoch)

    def _log_checked(self, m: dict, step: int, epoch: int | None = None) -> None:
        """``trackhooks.plugin.log_step_metrics(run, metrics, step, epoch)``: ``log_metrics`` for values a
        framework has checked already; the dict is taken over, keys are checked once each, values not
        at all (see docs/plugins.md)."""
        if self.status != "running":
            raise RunFinishedError(f"run {self.id[:8]} is {self.status}; start or resume a run to log into it")
        if not self._known.issuperset(m):
            for k, v in m.items():
                self._check_metric(k, v)
        self._enqueue_metrics(m, step, epoch)

    def _enqueue_metrics(self, m: dict, step: int | None, epoch: int | None) -> None:
        if step is not None and (type(step) is not int or not _IMIN <= step <= _IMAX):
            step = check_index(step, "step")
        if epoch is not None and (type(epoch) is not int or not _IMIN <= epoch <= _IMAX):
            epoch = check_index(epoch, "epoch")
        buf = self._buffer
        buf.append((_OP_METRICS, self._state, m, step, epoch, _now()))
        if len(buf) >= _WAKE_AT:
            self._backpressure(buf)

    def log_metric(self, key: str, value: Any, *, step: int | None = None, epoch: int | None = None) -> None:
        """Record one metric point."""
        if self.status != "running":
            raise RunFinishedError(f"run {self.id[:8]} is {self.status}; start or resume a run to log into it")
        t = type(value)
        if (t is not float and t is not int) or key not in self._known:
            self._check_metric(key, value)
        if step is not None and (type(step) is not int or not _IMIN <= step <= _IMAX):
            step = check_index(step, "step")
        if epoch is not None and (type(epoch) is not int or not _IMIN <= epoch <= _IMAX):
            epoch = check_index(epoch, "epoch")
        buf = self._buffer
        buf.append((_OP_METRIC, self._state, key, value, step, epoch, _now()))
        if len(buf) >= _WAKE_AT:
            self._backpressure(buf)

    def _check_values(self, m: dict) -> None:
        for k, v in m.items():
            t = type(v)
            if t is not float and t is not int:
                check_metric_value(k, v)

    def _check_metric(self, key: Any, value: Any) -> None:
        if key not in self._known:
            check_key(key, "metric key")
        check_metric_value(key, value)
        if type(key) is str:
            self._known.add(key)

    def _backpressure(self, buf) -> None:
        self._writer.wake()
        if len(buf) >= _w.MAX_BUFFERED:
            self._writer.wait_for_space()

    # ---- params, tags ------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; nested mappings are flattened with "." ("optimizer.lr").

        Re-logging a key with the same value is fine; a different value raises ParamConflictError.
        """
        self._check_open()
        flat = flatten_params(params)
        with self._params_lock:
            for k, v in flat.items():
                if k in self._params and not same_param(self._params[k], v):
                    raise ParamConflictError(
                        f"param {k!r} is already {short_repr(self._params[k])} in run {self.id[:8]}; "
                        f"cannot change it to {short_repr(v)} (log it as a metric or tag if it changes)")
            new = {k: v for k, v in flat.items() if k not in self._params}
            self._params.update(new)
        if new:
            self._buffer.append((_w.OP_PARAMS, self._state, new))

    def log_param(self, key: str, value: Any) -> None:
        """Record one hyperparameter."""
        self.log_params({key: value})

    @property
    def params(self) -> dict[str, Any]:
        """The params logged so far (flattened)."""
        return dict(self._params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set string tags; a tag set again replaces the old value."""
        self._check_open()
        if not isinstance(tags, Mapping):
            raise InvalidValueError(f"tags must be a mapping, got {short_repr(tags)}")
        out = {}
        for k, v in tags.items():
            out[check_key(k, "tag key")] = tag_value(k, v)
        if out:
            self._buffer.append((_w.OP_TAGS, self._state, out))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def _update_system(self, info: Mapping[str, Any]) -> None:
        """Add facts to the run's system record (used by system-info plugins; works after finish)."""
        self._buffer.append((_w.OP_SYSTEM, self._state, dict(info)))
        self._writer.ensure_started()

    def _add_artifact_bytes(self, name: str, data: bytes) -> None:
        """Store bytes as an artifact from a system-info plugin's thread (works after finish)."""
        self._buffer.append((_w.OP_ARTIFACT, self._state, _check_artifact_name(name), None, bytes(data), time.time()))
        self._writer.ensure_started()

    # ---- files ----------------------------------------------------------------------------------
    def log_checkpoint(self, path: str | os.PathLike, *, step: int | None = None, epoch: int | None = None,
                       metrics: Mapping[str, Any] | None = None, best: bool = False, monitor: str | None = None,
                       mode: str | None = None) -> CheckpointRecord:
        """Record a checkpoint file (or directory) where the framework wrote it.

        The file is hashed off the caller's thread: the returned record's ``sha256`` and ``size``
        are filled in once the writer has handled it (after ``flush()``). ``best=True`` clears the
        best flag of earlier checkpoints with the same ``monitor``.
        """
        self._check_open()
        path = _check_source(path, "checkpoint", allow_dir=True)
        step = check_index(step, "step")
        epoch = check_index(epoch, "epoch")
        values = {}
        for k, v in (metrics or {}).items():
            check_key(k, "checkpoint metric key")
            check_metric_value(k, v)
            values[k] = v
        rec = CheckpointRecord(path, step, epoch, {}, bool(best), None, None,
                               None if monitor is None else str(monitor), None if mode is None else str(mode),
                               False, time.time())
        self._buffer.append((_w.OP_CHECKPOINT, self._state, rec, values))
        return rec

    def update_checkpoint(self, path: str | os.PathLike, *, deleted: bool | None = None,
                          best: bool | None = None) -> None:
        """Record a later fact about a logged checkpoint: deleted (e.g. top-k pruning) or best."""
        self._check_open()
        self._buffer.append((_w.OP_CHECKPOINT_UPDATE, self._state,
                             CheckpointUpdate(self.id, os.path.abspath(os.fspath(path)), deleted, best, time.time())))

    def log_artifact(self, path: str | os.PathLike, *, name: str | None = None) -> None:
        """Copy a file into the store under ``name`` (default: its file name).

        The copy happens on the writer thread: keep the file until ``flush()`` returns.
        """
        self._check_open()
        path = _check_source(path, "artifact", allow_dir=False)
        name = _check_artifact_name(os.path.basename(path) if name is None else name)
        self._buffer.append((_w.OP_ARTIFACT, self._state, name, path, None, time.time()))

    def log_text(self, name: str, text: str | bytes) -> None:
        """Store a string (UTF-8) or bytes as an artifact called ``name``."""
        self._check_open()
        name = _check_artifact_name(name)
        if isinstance(text, str):
            data = text.encode("utf-8")
        elif isinstance(text, (bytes, bytearray, memoryview)):
            data = bytes(text)
        else:
            raise InvalidValueError(f"artifact {name!r}: text must be str or bytes, got {type(text).__name__}")
        self._buffer.append((_w.OP_ARTIFACT, self._state, name, None, data, time.time()))

    def set_note(self, markdown: str) -> None:
        """Describe the run in free text (Markdown); replaces the note set before. Works after finish."""
        if not isinstance(markdown, str):
            raise InvalidValueError(f"run {self.id[:8]}: a note must be a str (Markdown), got {type(markdown).__name__}")
        if len(markdown) > NOTE_MAX_CHARS:
            raise OutOfRangeError(f"run {self.id[:8]}: a note is at most {NOTE_MAX_CHARS} characters, "
                                    f"got {len(markdown)}; log long text with log_text() as an artifact")
        self._buffer.append((_w.OP_NOTE, self._state, markdown))
        self._writer.ensure_started()

    def log_dataset(self, data: Any, *, name: str | None = None, context: str = "train"):
        """Record which data the run saw: a content digest, schema and row count (see datasets.py)."""
        self._check_open()
        from .datasets import prepare_dataset

        job, record = prepare_dataset(self.id, data, name=name, context=context)
        self._buffer.append((_w.OP_DATASET, self._state, job))
        return record

    # ---- rich records (see media.py: validate and copy here, encode on the writer thread) -----
    def log_image(self, key: str, image: Any, *, step: int | None = None, epoch: int | None = None,
                  caption: str | None = None) -> None:
        """An image: numpy HxW/HxWxC/CxHxW (uint8, bool, or float in [0, 1]), torch tensor (CxHxW or
        HxWxC, copied on its device), PIL image, or a path to an image file. Stored as PNG (JPEG
        files kept as they are)."""
        from .media import prepare_image

        self._log_media(key, "image", step, epoch, prepare_image, image, caption)

    def log_figure(self, key: str, figure: Any, *, step: int | None = None, epoch: int | None = None) -> None:
        """A matplotlib Figure, drawn here (matplotlib is not thread-safe) and stored as PNG; the
        figure is left open."""
        from .media import prepare_figure

        self._log_media(key, "figure", step, epoch, prepare_figure, figure)

    def log_histogram(self, key: str, values: Any, *, step: int | None = None, epoch: int | None = None,
                      bins: Any = 64) -> None:
        """A histogram of any array/tensor of numbers (binned on the writer thread; NaN and +-inf
        counted apart). ``bins``: a number of equal-width bins over [min, max], or the edges."""
        from .media import prepare_histogram

        self._log_media(key, "histogram", step, epoch, prepare_histogram, values, bins)

    def log_table(self, key: str, data: Any, *, step: int | None = None) -> None:
        """A table: a list of dicts, a dict of columns, a list of equal-length rows, or a
        pandas/polars DataFrame."""
        from .media import prepare_table

        self._log_media(key, "table", step, None, prepare_table, data)

    def log_confusion_matrix(self, key: str, y_true: Any, y_pred: Any, *, labels: Any = None,
                             step: int | None = None, epoch: int | None = None) -> None:
        """A confusion matrix (rows: true label, columns: predicted) counted on the writer thread.
        ``labels``: the classes in display order (default: every label seen, sorted)."""
        from .media import prepare_confusion

        self._log_media(key, "confusion_matrix", step, epoch, prepare_confusion, y_true, y_pred, labels)

    def log_curve(self, key: str, x: Any, y: Any, *, step: int | None = None, x_label: str = "x",
                  y_label: str = "y") -> None:
        """A curve as paired x and y values (a ROC or precision-recall curve, say)."""
        from .media import prepare_curve

        self._log_media(key, "curve", step, None, prepare_curve, x, y, x_label, y_label)

    def _log_media(self, key: Any, kind: str, step: Any, epoch: Any, prepare: Any, *args: Any) -> None:
        self._check_open()
        key = check_key(key, f"{kind.replace('_', ' ')} key")
        if step is not None and (type(step) is not int or not _IMIN <= step <= _IMAX):
            step = check_index(step, "step")
        if epoch is not None and (type(epoch) is not int or not _IMIN <= epoch <= _IMAX):
            epoch = check_index(epoch, "epoch")
        known = self._media_kinds.get(key)
        if known is not None and known != kind:
            raise InvalidMediaError(f"media key {key!r} of run {self.id[:8]} already holds {known} records; "
                                    f"log the {kind.replace('_', ' ')} under another key")
        job = prepare(key, *args)
        self._media_kinds[key] = kind
        nbytes = _media_nbytes(job.payload)
        w = self._writer
        full = w.add_media_bytes(nbytes)
        self._buffer.append((_w.OP_MEDIA, self._state, key, job, step, epoch, time.time(), nbytes))
        if full:
            w.wait_for_media_space()
        elif len(self._buffer) >= _w.WAKE_AT:
            self._backpressure(self._buffer)

    # ---- lifecycle -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.status != "running":
            raise RunFinishedError(f"run {self.id[:8]} is {self.status}; start or resume a run to log into it")

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything logged so far is in the local store (and offered to mirrors).

        Returns False if ``timeout`` seconds passed first, or if the local store could not be written
        (disk full, not writable): the records are then kept in memory and retried in the background.
        """
        from . import console

        console.sync()
        return self._writer.flush(timeout)

    def finish(self, status: str = "finished", *, timeout: float | None = None) -> None:
        """End the run with a status (finished, failed, killed) and drain everything it logged.

        ``timeout``: wait at most that long for the drain; ``timeout=0`` does not wait (nor wake the
        writer): the end is recorded with the writer's next batch, and at the latest at exit.
        """
        if status not in STATUSES or status == "running":
            raise InvalidValueError(f"status must be one of finished, failed, killed; got {status!r}")
        # No wait for the environment's slow facts (the git probe): a run shorter than the writer's
        # first cycle is described in the same drain as its end, and the probe's answer is added to
        # the run when git gives it (interpreter exit waits for it, bounded: _await_system_info). A
        # short fit in a work tree waited for `git status` (and `git diff`) here: 8-33 ms in a tiny
        # repository, up to the probe's time limit in a large one (benchmarks/README.md, "Tenth pass")
        with self._finish_lock:
            if self.status != "running":
                return
            if self._capturing:
                from . import console

                console.sync()
            self.status = status
            self._buffer.append((_w.OP_STATUS, self._state, status, time.time()))
        _release_capture(self)
        with _active_lock:
            if self in _active:
                _active.remove(self)
        self._unstack()
        if timeout == 0:
            # no wait asked for: the writer records the end with its next batch (within its flush
            # interval, or at exit) instead of being woken for it (an Optuna trial, many per second)
            return
        self._writer.flush(timeout)

    def _unstack(self) -> None:
        stacked, self._stacked = self._stacked, None
        if stacked is not None:
            _unstack(*stacked)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("killed")
        else:
            self.finish("failed")


# ---- helpers ---------------------------------------------------------------------------------


def _as_dict(metrics: Any) -> dict:
    """A mapping that is not a dict, as a dict; anything else raises InvalidValueError."""
    if not isinstance(metrics, Mapping):
        raise InvalidValueError(f"metrics must be a mapping of key -> number, got {short_repr(metrics)}")
    return dict(metrics.items())


def _check_artifact_name(name: Any) -> str:
    name = check_key(name, "artifact name")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafePathError(f"artifact name {name!r} is absolute; use a relative name such as 'model.pt'")
    parts = norm.split("/")
    if any(p in ("..", ".") for p in parts) or any(not p for p in parts):
        raise UnsafePathError(f"artifact name {name!r} has empty, '.' or '..' parts and could escape the store")
    return norm


def _media_last(rec: Any) -> dict[str, tuple[str, int]]:
    """key -> (kind, step of its last record) of a stored run."""
    out: dict[str, tuple[str, int]] = {}
    for key in rec.media_keys():
        records = rec.media(key)
        if records:
            out[key] = (records[-1].kind, records[-1].step)
    return out


def _media_nbytes(payload: Any) -> int:
    """Rough size of a media copy, for the buffer's memory bound (GPU tensors count too: their
    copies hold device memory until the writer takes them)."""
    n = getattr(payload, "nbytes", None)
    if isinstance(n, int):
        return n
    if isinstance(payload, (bytes, bytearray)):
        return len(payload)
    numel = getattr(payload, "numel", None)
    if callable(numel):
        try:
            return int(numel()) * int(payload.element_size())
        except Exception:
            return 1 << 10
    if isinstance(payload, tuple):
        return sum(_media_nbytes(p) for p in payload)
    size = getattr(payload, "size", None)  # PIL images: (width, height)
    if isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return size[0] * size[1] * 4
    return 1 << 10


def _local_sink(path: str) -> LocalStoreSink:
    sink = _stores.get(path)
    if sink is None:
        sink = _stores[path] = LocalStoreSink(path)
    return sink


def _mirror_sink(uri: Any) -> Sink:
    if isinstance(uri, Sink):
        return uri
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidValueError(f"mirror must be a URI string or a Sink, got {short_repr(uri)}")
    uri = uri.strip()
    sink = _mirrors.get(uri)
    if sink is None:
        from .plugins import plugin_manager

        pm = plugin_manager()
        if is_local_uri(uri):
            sink = LocalStoreSink(resolve_uri(uri))
        else:
            sink = pm.hook.trackhooks_make_sink(uri=uri, options={})
        if sink is None:
            raise UnknownPluginError(
                f"no installed plugin handles mirror {redact_uri(uri)!r} (installed plugins: "
                f"{', '.join(sorted(n for n, _ in pm.list_name_plugin()))}); "
                "install trackhooks-mlflow or trackhooks-tensorboard, or fix the URI")
        _mirrors[uri] = sink
    return sink


def _channel(store_path: str, mirrors: Iterable[Any]) -> _w.Channel:
    mirror_sinks = [_mirror_sink(m) for m in mirrors]
    key = (store_path, tuple(id(s) for s in mirror_sinks))
    ch = _channels.get(key)
    if ch is None:
        ch = _channels[key] = _w.Channel([_local_sink(store_path), *mirror_sinks])
    return ch


def _mirror_list(mirrors: Any) -> list[Any]:
    if mirrors is None:
        raw = os.environ.get("TRACKHOOKS_MIRRORS", "")
        return [m.strip() for m in raw.split(",") if m.strip()]
    if isinstance(mirrors, (str, Sink)):
        return [mirrors]
    return list(mirrors)


def _release_capture(run: Run) -> None:
    if run._capturing:
        run._capturing = False
        from . import console

        console.detach()


def start_run(experiment: str = "default", name: str | None = None, *, params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None, store: str | os.PathLike | None = None,
              mirrors: Iterable[Any] | None = None, parent: "Run | str | None" = None,
              system_metrics: bool | float | None = None, capture_output: bool | str | None = None,
              resume: str | None = None) -> Run:
    """Start (or with ``resume=<run id>`` continue) a run and make it the active run.

    ``store``: a local store directory (default ``$TRACKHOOKS_URI`` or ``./.trackhooks``).
    ``mirrors``: extra sinks (``"mlflow+http://..."``, ``"tensorboard:<dir>"`` or Sink objects;
    default ``$TRACKHOOKS_MIRRORS``). ``system_metrics``: seconds between samples of CPU, memory,
    I/O and GPU figures (``system/...`` metrics), True for every 10 s, False/0 for none (default
    ``$TRACKHOOKS_SYSTEM_METRICS``, else 10 s). ``capture_output``: also store what the process
    prints as the artifact ``console.log``: True (``"python"``: sys.stdout/sys.stderr), ``"fd"``
    (file descriptors 1 and 2, for C extensions and subprocesses) or False (default
    ``$TRACKHOOKS_CAPTURE_OUTPUT``, else True). Raises StoreError (an OSError) naming the path
    when the store cannot be created or opened.
    """
    if "trackhooks.sysmetrics" not in sys.modules:  # the first run of the process: see collector.py
        prepare_runs(data=False, media=False)
    from .console import parse_mode
    from .sysmetrics import parse_interval, probe

    interval = parse_interval(system_metrics)
    if interval is not None:
        probe()  # here, not on the writer: see sysmetrics._PROBED
    return _start(experiment, name, params=params, tags=tags, store=store, mirrors=mirrors, parent=parent,
                  resume=resume, durable_now=True, interval=interval, capture=parse_mode(capture_output))


def start_child_run(parent: Run, name: str | None = None, *, params: Mapping[str, Any] | None = None,
                    tags: Mapping[str, Any] | None = None, container: str | None = None) -> Run:
    """A child of ``parent`` in its experiment, store and sinks, for integrations that open many
    short child runs (an Optuna trial, a search candidate).

    Unlike ``start_run`` it does not write the run's row on the caller's thread before returning:
    the writer records it with its next batch, so a child costs no store transaction (and no wait for
    the writer's) on the caller's thread. The parent is durable already; a process killed within the
    writer's interval after the child started loses that child's row, not the parent's. The child's
    system record is its parent's (same process, same environment) instead of asking the
    system-info plugins again. A child takes no system-metric samples and no console capture of
    its own: the parent, open in the same process, has them.
    ``container``: the integration's name, to mark the child as a nesting container
    (``nesting.mark_container``) before any other thread can see it.
    """
    if not isinstance(parent, Run):
        raise InvalidValueError(f"start_child_run: parent must be a Run, got {short_repr(parent)}")
    return _start(parent.experiment, name, params=params, tags=tags, store=parent.store,
                  mirrors=list(parent._state.channel.sinks[1:]), parent=parent, resume=None, durable_now=False,
                  system_from=parent, interval=None, capture=None, container=container)


_proc_start: dict[int, int | None] = {}


def _process_start(pid: int) -> int | None:
    # a process' start time never changes: read /proc once per process, not once per run
    if pid not in _proc_start:
        _proc_start[pid] = process_start_time(pid)
    return _proc_start[pid]


def _start(experiment: str, name: str | None, *, params: Mapping[str, Any] | None, tags: Mapping[str, Any] | None,
           store: str | os.PathLike | None, mirrors: Iterable[Any] | None, parent: "Run | str | None",
           resume: str | None, durable_now: bool, system_from: Run | None = None,
           interval: float | None = None, capture: str | None = None, container: str | None = None) -> Run:
    experiment = check_key(experiment, "experiment")
    if name is not None:
        name = check_key(name, "run name")
    mirror_list = _mirror_list(mirrors)
    store_text = uri_text(store)
    if is_local_uri(store_text):
        store_path, store_uri = resolve_uri(store_text), None
    else:
        # a team store: write to the local spool first; the store's plugin replicates the spool into
        # it through the mirror machinery (exact, idempotent, outage-safe)
        store_path, store_uri = spool_path(), redact_uri(store_text)
        mirror_list = [store_text, *[m for m in mirror_list if m != store_text]]
    with _setup_lock:
        channel = _channel(store_path, mirror_list)
    parent_id = None
    if parent is not None:
        parent_id = parent.id if isinstance(parent, Run) else check_key(parent, "parent run id")
    saved_params: dict[str, Any] = {}
    last_step: dict[str, int] = {}
    media_last: dict[str, tuple[str, int]] = {}
    resumed = False
    if resume is not None:
        if isinstance(resume, Run):
            resume = resume.id
        reader = SQLiteStore(store_path)
        try:
            rec = reader.run(check_key(resume, "resume run id"))
        except RunNotFoundError:
            raise RunNotFoundError(f"cannot resume run {resume!r}: it is not in the store {store_path}") from None
        run_id, experiment, parent_id = rec.id, rec.experiment, rec.parent_id
        name = name or rec.name
        saved_params = dict(rec.params)
        last_step = {k: s["last_step"] for k, s in rec.metric_summaries().items() if s["last_step"] is not None}
        console_before = rec.console() if capture else b""
        console_seq = reader._console_next_seq(rec.id) if capture else 0
        media_last = _media_last(rec)
        reader.close()
        resumed = True
        if rec.status == "running":
            # another live process holds it; continuing would interleave two writers
            existing = [r for r in _active if r.id == rec.id]
            if existing:
                return existing[0]
    else:
        run_id = os.urandom(16).hex()
        console_before, console_seq = b"", 0
    name = name or _default_name()
    run = Run(run_id, name, experiment, store_path, parent_id, channel, saved_params, last_step, store_uri)
    if container is not None:
        run._role, run._opened_by = "container", container
    if media_last:  # a resumed run continues each media key's steps and keeps its kind
        run._media_kinds.update({k: kind for k, (kind, _) in media_last.items()})
        run._state.media_step.update({k: step for k, (_, step) in media_last.items()})
    w = run._writer
    w.register(run._state)
    pid = os.getpid()
    start = RunStart(run_id, experiment, name, parent_id, time.time(), pid, HOST,
                     _process_start(pid), resumed)
    # bad params or tags raise here, before anything is recorded
    first = _first_records(run, params, tags)
    # the run row, with the params and tags given here, is durable before training starts: a
    # process killed in its first second still leaves a run that reads as killed, not nothing
    # (start_child_run leaves the row to the writer's next batch)
    durable = channel.sinks[0].write_run_start_now(start, *first) if durable_now else True
    run._buffer.append((_w.OP_START, run._state, start))
    if interval is not None:
        run._buffer.append((_w.OP_SYSMETRICS, run._state, interval))
    if capture is not None:
        from . import console

        try:
            console.attach(run, capture, console_before, console_seq)
            run._capturing = True
        except Exception as exc:  # capture is a convenience: never a reason not to train
            _w.warn_once(("console", "attach", type(exc)), f"console capture failed to start: {exc}")
    w.ensure_started()
    with _active_lock:
        _active.append(run)
    stack = thread_stack()
    entry = StackEntry("run", run)
    stack.append(entry)
    run._stacked = (stack, entry)
    # the environment is described on the writer thread: building the plugin manager (entry-point
    # scan, importlib.metadata) and asking every plugin took ~60 ms of the first start_run; a child
    # of a run of this process has the same environment: its parent's record, no plugin calls
    if system_from is not None:
        run._buffer.append((_w.OP_SYSINFO, run._state, lambda: _inherited_system_info(run, system_from)))
    else:
        run._sysinfo_pending = True
        _undescribed.add(run)
        run._sysinfo_done = threading.Event()
        run._buffer.append((_w.OP_SYSINFO, run._state, lambda: _system_info_of(run)))
        # the writer is not woken for it: its start-up (system info, sampler, first statements) then
        # runs at its first interval, or in the finish() of a shorter run. Beside a training loop that
        # holds the GIL between short C calls (scikit-learn, Lightning, Keras) each of its ~300
        # GIL-releasing calls is a hand-over that cost the loop ~55 us, three times the work itself
        # (benchmarks/README.md, "Fourth pass"); a framework whose training lets the GIL go for long
        # stretches asks for it beside the training with trackhooks.plugin.wake_writer() (XGBoost)
    if params:
        run.log_params(params)
    if tags:
        run.set_tags(tags)
    if not durable:  # the store was busy: wait (bounded) for the writer to record the run instead
        w.flush(timeout=5.0)
    return run


def _first_records(run: Run, params: Mapping[str, Any] | None, tags: Mapping[str, Any] | None
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """The params and tags given to start_run, validated (raising before anything is recorded)."""
    new_params: dict[str, Any] = {}
    if params:
        flat = flatten_params(params)
        for k, v in flat.items():
            if k in run._params and not same_param(run._params[k], v):
                raise ParamConflictError(
                    f"param {k!r} is already {short_repr(run._params[k])} in run {run.id[:8]}; "
                    f"cannot change it to {short_repr(v)} (log it as a metric or tag if it changes)")
        new_params = {k: v for k, v in flat.items() if k not in run._params}
    new_tags: dict[str, str] = {}
    if tags:
        if not isinstance(tags, Mapping):
            raise InvalidValueError(f"tags must be a mapping, got {short_repr(tags)}")
        new_tags = {check_key(k, "tag key"): tag_value(k, v) for k, v in tags.items()}
    return new_params, new_tags


def _collect_system_info(run: Run) -> dict[str, Any]:
    """What every ``trackhooks_collect_system_info`` implementation says (writer thread)."""
    from .plugins import hook_functions

    info: dict[str, Any] = {}
    for plugin_name, function in hook_functions("trackhooks_collect_system_info"):
        try:
            result = function(run=run)
        except Exception as exc:
            _w.warn_once(("sysinfo", plugin_name),
                         f"system-info plugin {plugin_name!r} failed: {type(exc).__name__}: {exc}")
            continue
        if isinstance(result, Mapping):
            info.update(result)
    if run._pending_info:
        with _active_lock:
            _info_threads[:] = [t for t in _info_threads if t.is_alive()] + run._pending_info
    run._sysinfo_pending = False
    _undescribed.discard(run)
    return info


def _system_info_of(run: Run) -> dict[str, Any]:
    try:
        info = _collect_system_info(run)
        run._system = info  # kept for its children (start_child_run)
        return info
    finally:
        if run._sysinfo_done is not None:
            run._sysinfo_done.set()


def prepare_runs(*, data: bool = True, media: bool = True) -> None:
    """Import, with the collector paused, the modules the first run of this process loads (console
    capture and the system sampler; with ``data`` data versions, with ``media`` rich records): the
    plugin surface's ``prepare_runs``, for an integration's set-up call (``autolog()``, ``track()``)
    to pay for instead of the first fit it records. Cheap when they are loaded already."""
    wanted = ["trackhooks.console", "trackhooks.sysmetrics"]
    if data:
        wanted.append("trackhooks.datasets")
    if media:
        wanted.append("trackhooks.media")
    missing = [m for m in wanted if m not in sys.modules]
    if missing:
        import importlib

        from .collector import paused

        with paused():  # ~1 300 lasting objects: one young collection, not two or three
            for m in missing:
                importlib.import_module(m)


def settle_run(run: Run, timeout: float = 5.0) -> None:
    """The writer's start-up for ``run`` (describing its environment) now, the caller waiting for it:
    the plugin surface's ``settle_run``. Returns at once if it is done (or was never due)."""
    done = run._sysinfo_done
    if done is None or done.is_set() or run._state.owner_pid != os.getpid():
        return
    run._writer.wake()
    done.wait(timeout)


def _inherited_system_info(run: Run, parent: Run) -> dict[str, Any]:
    # the writer handles entries in order: the parent's record (of this process) is known by now
    if parent._system is None:
        return _system_info_of(run)
    run._system = parent._system
    return dict(parent._system)


def active_run() -> Run | None:
    """The innermost run started in this process and not finished yet, or None."""
    with _active_lock:
        for run in reversed(_active):
            if run._state.owner_pid == os.getpid():
                return run
    return None


def _await_system_info(timeout: float = INFO_WAIT_S) -> None:
    """Interpreter exit, before the writer's last drain: describe the runs of this process that are
    not described yet (which starts their git probes) and wait, bounded, for the probes still
    running, so that their facts are in the buffer that drain stores."""
    deadline = time.monotonic() + timeout
    pid = os.getpid()
    if any(r._state.owner_pid == pid for r in list(_undescribed)):
        _w.get_writer().flush(timeout)
    with _active_lock:
        threads = [t for t in _info_threads if t.is_alive()]
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def _finish_all(status: str, timeout: float | None = None, at_exit: bool = False) -> None:
    """Finish every run this process owns (interpreter exit, SIGTERM)."""
    with _active_lock:
        runs = [r for r in _active if r._state.owner_pid == os.getpid()]
    if runs:
        from . import console

        console.sync()
    for run in reversed(runs):
        with run._finish_lock:
            if run.status != "running":
                continue
            run.status = status
            run._buffer.append((_w.OP_STATUS, run._state, status, time.time()))
        _release_capture(run)
        with _active_lock:
            if run in _active:
                _active.remove(run)
        run._unstack()
    if not at_exit:
        _w.get_writer().flush(timeout)


from .autologging import autolog  # noqa: E402 - the public name lives here too

__all__ = ["Run", "start_run", "start_child_run", "active_run", "autolog", "StoreError"]


def _after_fork_in_child() -> None:
    # SQLite connections and sinks must not be shared across fork: a forked child opens its own
    _proc_start.clear()
    _undescribed.clear()
    _info_threads.clear()
    _stores.clear()
    _mirrors.clear()
    _channels.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
