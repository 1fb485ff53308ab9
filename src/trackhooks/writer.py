"""The write path: a bounded in-memory buffer filled by callers, drained by one writer thread.

Callers (the training thread) only append a tuple to a deque: no I/O, no lock, no formatting, no
value conversion (a 0-d tensor is kept as it is and turned into a float here, off the caller's
thread). The writer thread wakes every ``interval`` seconds (or sooner when the buffer fills or
someone flushes), resolves automatic steps, converts values, hashes checkpoint files, groups
everything into one Batch per store, and hands each batch to every sink of that store. A sink that
raises keeps its batches in a retry queue with backoff and is reported once; other sinks and the
caller carry on.
"""

from __future__ import annotations

import atexit
import math
import os
import sqlite3
import sys
import threading
import time
import warnings
from collections import deque
from itertools import repeat, starmap  # loaded by collections already
TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from typing import Any

from .sink import (
    ArtifactEvent,
    Batch,
    CheckpointEvent,
    ConsoleChunk,
    MediaEvent,
    MetricColumns,
    Sink,
    StatusEvent,
)
from .values import INT64_MAX, convert_metric_value

try:
    # the C half of ``signal``: the Python module wraps it in enums (importing enum), a few ms of
    # the first start_run of a process; handlers and numbers are the same
    import _signal as signal
except ImportError:  # pragma: no cover - interpreters without it
    import signal  # type: ignore[no-redef]

# operation codes of buffer entries (tuples; first field is the op, second the RunState)
OP_METRICS = 0  # (op, state, {key: value}, step, epoch, ts)
OP_METRIC = 1  # (op, state, key, value, step, epoch, ts)
OP_START = 2  # (op, state, RunStart)
OP_PARAMS = 3  # (op, state, {key: value})
OP_TAGS = 4
OP_SYSTEM = 5
OP_CHECKPOINT = 6  # (op, state, CheckpointRecord, metrics)
OP_CHECKPOINT_UPDATE = 7  # (op, state, CheckpointUpdate)
OP_ARTIFACT = 8  # (op, state, name, source, data, ts)
OP_DATASET = 9  # (op, state, callable -> DatasetEvent)
OP_STATUS = 10  # (op, state, status, end_time)
OP_FLUSH = 11  # (op, None, threading.Event)
OP_NOTE = 12  # (op, state, markdown)
OP_SYSINFO = 13  # (op, state, callable -> dict merged into the run's system record)
OP_CONSOLE = 14  # (op, None, str): output of the process through a non-binary stream, for every capturing run
# Output as bytes (the stand-in streams, the fd pipes) is appended as the bytes object alone, no tuple:
# an unbuffered or line-buffered stream appends one entry per line, and a tuple per line (tracked by
# the cyclic GC) cost ~780 instructions per write, most of it in gen-0 collections (callgrind)
OP_CONSOLE_ATTACH = 15  # (op, state, prefix bytes, limit, first seq): the run captures from here on
OP_SYSMETRICS = 16  # (op, state, interval seconds): the run gets system samples from here on
OP_MEDIA = 17  # (op, state, key, media.Job, step, epoch, ts, approximate bytes held)

DEFAULT_INTERVAL = float(os.environ.get("TRACKHOOKS_FLUSH_INTERVAL", "1.0"))
MAX_BUFFERED = 200_000  # entries; beyond this the caller waits for the writer (never dropped)
WAKE_AT = 20_000  # entries; the writer is woken early when the buffer holds this many
HEARTBEAT_INTERVAL = 10.0
INLINE_ARTIFACT_BYTES = 16 << 20
POISON_RETRIES = 3  # a batch a sink rejects this often with a non-I/O error is dropped, loudly
MAX_MEDIA_BYTES = 512 << 20  # copied media waiting for the writer; beyond this the caller waits
MIRROR_FLUSH_TIMEOUT = float(os.environ.get("TRACKHOOKS_MIRROR_TIMEOUT", "10"))


def warn_once(key: object, message: str, _seen: set = set()) -> None:  # noqa: B006 - a process-wide memo
    if key in _seen:
        return
    _seen.add(key)
    warnings.warn(f"trackhooks: {message}", RuntimeWarning, stacklevel=outside_stacklevel())


def _ours(module: object) -> bool:
    return isinstance(module, str) and (module == "trackhooks" or module.startswith(("trackhooks.", "trackhooks_")))


def outside_stacklevel() -> int:
    """The ``stacklevel`` (for a ``warnings.warn`` made by the caller) of the first frame that is not
    trackhooks code: the user's line, or the framework's when a framework calls our callback. Only
    our own frames are looked at, by module name (a user's directory may well be called trackhooks)."""
    level, f = 2, sys._getframe(2)  # 1: the warns caller, 2: its caller
    while f is not None and _ours(f.f_globals.get("__name__")):
        f = f.f_back
        level += 1
    return level


class Channel:
    """The sinks of one store: the local store first, then its mirrors."""

    def __init__(self, sinks: list[Sink]):
        self.sinks = sinks
        self.pending: dict[int, deque[Batch]] = {i: deque() for i in range(len(sinks))}
        self.retry_at: dict[int, float] = {i: 0.0 for i in range(len(sinks))}
        self.backoff: dict[int, float] = {i: 0.5 for i in range(len(sinks))}
        self.failed_once: set[int] = set()
        self.poison: dict[int, int] = {}


class RunState:
    """Writer-side state of one run: where it goes and the last step per key (for step=None)."""

    __slots__ = ("run_id", "channel", "last_step", "media_step", "finished", "owner_pid")

    def __init__(self, run_id: str, channel: Channel, last_step: dict[str, int] | None = None,
                 media_step: dict[str, int] | None = None):
        self.run_id = run_id
        self.channel = channel
        self.last_step: dict[str, int] = dict(last_step or {})
        # media keys count their own steps (a metric and an image may share a key name)
        self.media_step: dict[str, int] = dict(media_step or {})
        self.finished = False
        self.owner_pid = os.getpid()


def file_digest(path: str) -> tuple[str, int]:
    """sha256 and size of a file, or of a directory (its sorted relative paths and contents)."""
    import hashlib  # not at module level: OpenSSL's loading is a few ms of the first start_run

    h = hashlib.sha256()
    size = 0
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode("utf-8", "surrogateescape") + b"\0")
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                        size += len(chunk)
        return h.hexdigest(), size
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _take(buf: deque, n: int) -> list:
    """The first ``n`` entries of the buffer, removed: n pops in C (a comprehension calling
    ``popleft`` cost ~200 instructions more per entry; callers append on the right meanwhile)."""
    return list(starmap(buf.popleft, repeat((), n)))


def _to_floats(st: RunState, key: str, values: list) -> list[float]:
    """One key's values of one batch as floats, converting tensors in bulk.

    ``float()`` of a 0-d tensor costs ~1.5 us in torch's dispatcher (and a device sync each on a
    GPU), all of it holding the GIL the training thread wants: 0-d tensors of one device go through
    one ``stack(...).tolist()`` instead (one sync per key and batch; torch releases the GIL inside
    it). torch is only used if the values are its tensors (the core never imports it); anything
    that does not stack is converted one by one.
    """
    out = list(values)
    torch = sys.modules.get("torch")
    if torch is not None:
        tensor = torch.Tensor
        idx = [i for i, v in enumerate(out) if isinstance(v, tensor)]
        if len(idx) > 1:
            try:
                with torch.no_grad():
                    flat = torch.stack([out[i] for i in idx]).reshape(-1).double().tolist()
                if len(flat) == len(idx):  # one element each (checked by the caller; shape (1,) too)
                    for i, x in zip(idx, flat):
                        out[i] = x
            except Exception:  # mixed devices, an odd subclass: the slow path below says what failed
                pass
    for i, v in enumerate(out):
        if type(v) is not float:
            out[i] = Writer._convert(st, key, v)
    return out


class Writer:
    def __init__(self, interval: float = DEFAULT_INTERVAL):
        self.buffer: deque = deque()
        self.interval = interval
        self._event = threading.Event()
        self._woken = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one drain at a time (writer thread or exit path)
        # set on a thread from just before it takes the write lock until just after it lets it go: a
        # finalizer or signal handler that runs on that thread meanwhile (gc frees an estimator inside
        # a sink's write) and finishes a run must not wait for the drain it interrupted
        self._draining = threading.local()
        self._warm = False  # a drain has handled records: the start-up imports are done
        self._states: dict[str, RunState] = {}  # running runs, for heartbeats
        self._channels: list[Channel] = []
        self._last_heartbeat = time.time()
        self.pid = os.getpid()
        self.sampler = None  # sysmetrics.SystemSampler, made when a run asks for system metrics
        self.console_poll = None  # console capture that reads a followed output file back, each cycle
        self._samples: list = []  # samples taken this cycle, recorded by the next _process
        self._consoles: dict[str, Any] = {}  # run_id -> console.ConsoleLog of the capturing runs
        self.media_bytes = 0  # approximate bytes of media copies in the buffer (bounded memory)
        self._media_lock = threading.Lock()  # callers on several threads add, the writer subtracts

    # ---- caller side ------------------------------------------------------------------------
    def ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="trackhooks-writer", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._event.set()

    def wait_for_space(self) -> None:
        """Called by the caller when the buffer is full: wait for the writer rather than drop."""
        self.wake()
        if self._in_drain():
            return  # the drain this thread interrupted takes the entries: waiting would wait for ourselves
        self.ensure_started()
        while len(self.buffer) >= MAX_BUFFERED // 2:
            if threading.current_thread() is self._thread or self._in_drain():
                return
            time.sleep(0.001)
            self.wake()

    def add_media_bytes(self, n: int) -> bool:
        """Count ``n`` bytes of a media copy into the buffer; True when the caller should wait."""
        with self._media_lock:
            self.media_bytes += n
            return self.media_bytes > MAX_MEDIA_BYTES

    def wait_for_media_space(self) -> None:
        """The caller waits while the copied media in the buffer exceed MAX_MEDIA_BYTES."""
        self.wake()
        self.ensure_started()
        while self.media_bytes > MAX_MEDIA_BYTES // 2:
            if threading.current_thread() is self._thread:
                return
            time.sleep(0.001)
            self.wake()

    def register(self, state: RunState) -> None:
        self._states[state.run_id] = state
        if state.channel not in self._channels:
            self._channels.append(state.channel)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything appended before this call is in every reachable sink.

        Safe from any thread, finalizers and signal handlers included. Called from inside a drain on
        the same thread (a finalizer run by the cyclic collector during a store write, on the writer
        thread or on the exiting thread), it does not wait: the running drain loops until the buffer
        is empty, so the entries are written right after the interrupted batch; it returns False
        because nothing is durable yet when it returns.
        """
        if self._in_drain():
            self.wake()
            return False
        if threading.current_thread() is self._thread:
            self._drain()
            return True
        if self._stop and not (self._thread is not None and self._thread.is_alive()):
            # after shutdown (a finalizer during interpreter exit): no writer to wait for, drain here
            if self._write_lock.acquire(timeout=-1 if timeout is None else timeout):
                self._write_lock.release()
                self._drain()
                return True
            return False
        done = threading.Event()
        self.buffer.append((OP_FLUSH, None, done))
        self.ensure_started()
        self._woken = True
        self._event.set()
        return done.wait(timeout) and getattr(done, "durable", True)

    # ---- writer side ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop:
            timeout = self.interval
            sampler = self.sampler
            if sampler is not None:
                due = sampler.next_due()
                if due is not None:
                    timeout = max(0.0, min(timeout, due - time.time()))
            self._event.wait(timeout)
            self._event.clear()
            self._woken = False
            try:
                if sampler is not None:
                    self._sample(sampler)
                poll = self.console_poll
                if poll is not None:
                    poll()
                self._drain(until_empty=False)
            except Exception as exc:  # the writer must never die: report and keep going
                warn_once(("writer", type(exc)), f"writer thread error: {type(exc).__name__}: {exc}")

    def _in_drain(self) -> bool:
        return getattr(self._draining, "depth", 0) > 0

    def _drain(self, until_empty: bool = True) -> None:
        d = self._draining
        d.depth = getattr(d, "depth", 0) + 1  # before the lock: see __init__
        try:
            with self._write_lock:
                if self._warm:
                    self._drain_locked(until_empty)
                else:
                    # the process's first drain imports the plugins, the system-info and sampler
                    # modules and opens the store: ~2 000 objects that all stay, allocated beside the
                    # training. With the collector held off they cost one young collection, not
                    # several that push the process toward a full one (see trackhooks/collector.py)
                    from .collector import paused

                    busy = bool(self.buffer)
                    with paused():
                        self._drain_locked(until_empty)
                    self._warm = busy
        finally:
            d.depth -= 1

    def _drain_locked(self, until_empty: bool) -> None:
        """Write what the buffer holds, in passes.

        The writer's own cycle stops after a pass that leaves fewer than WAKE_AT entries (what
        arrived meanwhile waits for the next cycle, or for the wake of a caller that fills the
        buffer or flushes): a caller printing or logging in a tight loop would otherwise keep it
        draining a few entries per pass, each pass a store transaction and several handovers of
        the GIL (a 100 000-print loop: 15 ms more writer CPU, all of it taken from the loop).
        Every other drain — flush() on the writer thread, shutdown, exit — empties the buffer.
        """
        buf = self.buffer
        while True:
            n = len(buf)
            if n == 0 and not self._samples and not self._retry_due():
                break
            entries = _take(buf, n)
            flushes = self._process(entries)
            for channel in self._channels:
                self._deliver_pending(channel, force=False)
            if flushes:
                for channel in self._channels:
                    self._deliver_pending(channel, force=True)
                    for sink in channel.sinks:
                        try:
                            sink.flush()
                        except Exception as exc:
                            warn_once(("flush", id(sink)), f"{sink.name}: flush failed: {exc}")
                # a local store that is failing (disk full, read-only) still holds the records in
                # memory for a retry: flush() then returns False instead of claiming durability
                durable = not any(ch.pending[0] for ch in self._channels if ch.sinks)
                for ev in flushes:
                    ev.durable = durable  # type: ignore[attr-defined]
                    ev.set()
            if not buf or (not until_empty and len(buf) < WAKE_AT):
                break
        now = time.time()
        if now - self._last_heartbeat > HEARTBEAT_INTERVAL:
            self._last_heartbeat = now
            self._heartbeat(now)

    def _sample(self, sampler) -> None:
        # kept apart and recorded first by the next _process: appended to the buffer they would
        # land after a finish already waiting there, behind the finish's own last sample
        for st, values, step, ts in sampler.due(time.time()):
            if values and not st.finished:
                self._samples.append((st, values, step, ts))

    @staticmethod
    def _add_sample(batch: Batch, st: RunState, values: dict, step: int, ts: float) -> None:
        per_run = batch.metrics.setdefault(st.run_id, {})
        for key, value in values.items():
            cols = per_run.get(key)
            if cols is None:
                cols = per_run[key] = MetricColumns()
            cols.steps.append(step)
            cols.epochs.append(None)
            cols.values.append(float(value))
            cols.timestamps.append(ts)
            st.last_step[key] = step

    def _console_feed(self, parts: list) -> None:
        """Hand what was printed since the last feed to every capturing run, in one piece."""
        try:
            data = b"".join(parts)  # the usual case: bytes from the stand-in streams or the fd pipes
        except TypeError:
            from .console import _encode

            data = b"".join(_encode(p) for p in parts)
        parts.clear()
        for log in self._consoles.values():
            if not log.closing:
                log.feed(data)

    def _console_feed_safely(self, parts: list) -> None:
        if not self._consoles:
            parts.clear()
            return
        try:
            self._console_feed(parts)
        except Exception as exc:
            parts.clear()
            warn_once(("console", type(exc)), f"console capture: {type(exc).__name__}: {exc}")

    def _console_emit(self, batches: dict) -> None:
        for run_id, log in list(self._consoles.items()):
            st = log.state
            chunks = log.emit()
            if chunks or log.closing:
                batch = batches.get(st.channel)
                if batch is None:
                    batch = batches[st.channel] = Batch(store=getattr(st.channel.sinks[0], "path", None))
                for seq, data in chunks:
                    batch.console.append(ConsoleChunk(run_id, seq, data))
            if log.closing:
                del self._consoles[run_id]
                if log.full:
                    data = log.text()
                    batch.artifacts.append(ArtifactEvent(run_id, "console.log", None, log.sha.hexdigest(), len(data),
                                                         time.time(), data))

    def _retry_due(self) -> bool:
        now = time.monotonic()
        for ch in self._channels:
            for i, q in ch.pending.items():
                if q and ch.retry_at[i] <= now:
                    return True
        return False

    def _heartbeat(self, now: float) -> None:
        batches: dict[Channel, Batch] = {}
        for st in list(self._states.values()):
            if not st.finished and st.owner_pid == os.getpid():
                batches.setdefault(st.channel, Batch()).heartbeats[st.run_id] = now
        for ch, b in batches.items():
            self._deliver(ch, b, local_only=True)

    def _process(self, entries: list) -> list[threading.Event]:
        batches: dict[Channel, Batch] = {}
        flushes: list[threading.Event] = []
        # console output is collected and handed to the capturing runs in one piece per stretch of
        # entries (200 000 prints are 200 000 entries): before a run starts or stops capturing, and
        # at the end
        printed: list = []
        if self._samples:
            samples, self._samples = self._samples, []
            for st, values, step, ts in samples:
                batch = batches.get(st.channel)
                if batch is None:
                    batch = batches[st.channel] = Batch(store=getattr(st.channel.sinks[0], "path", None))
                self._add_sample(batch, st, values, step, ts)
        unconverted: dict[int, tuple] = {}  # id(columns) -> (state, key, columns) holding non-floats
        if entries and type(entries[0]) is bytes:
            # nothing but output (a print loop, unbuffered or on a terminal: an entry per line) is joined
            # in one C pass instead of ~360 instructions of this loop per entry; a join that meets
            # another entry fails on it and the loop below sorts them
            try:
                printed.append(b"".join(entries))
                entries = ()
            except TypeError:
                pass
        for entry in entries:
            if type(entry) is bytes:
                printed.append(entry)
                continue
            op = entry[0]
            if op == OP_CONSOLE:
                printed.append(entry[2])
                continue
            if printed and (op == OP_STATUS or op == OP_CONSOLE_ATTACH):
                self._console_feed_safely(printed)
            if op == OP_FLUSH:
                flushes.append(entry[2])
                continue
            st: RunState = entry[1]
            batch = batches.get(st.channel)
            if batch is None:
                batch = batches[st.channel] = Batch(store=getattr(st.channel.sinks[0], "path", None))
            try:
                if op == OP_METRICS:
                    _, _, mapping, step, epoch, ts = entry
                    last = st.last_step
                    per_run = batch.metrics.get(st.run_id)
                    if per_run is None:
                        per_run = batch.metrics[st.run_id] = {}
                    for key, value in mapping.items():
                        s = (last.get(key, -1) + 1) if step is None else step
                        if s > INT64_MAX:  # the step after 2**63 - 1 saturates (documented)
                            s = INT64_MAX
                        last[key] = s
                        cols = per_run.get(key)
                        if cols is None:
                            cols = per_run[key] = MetricColumns()
                        cols.steps.append(s)
                        cols.epochs.append(epoch)
                        cols.values.append(value)
                        cols.timestamps.append(ts)
                        if type(value) is not float:
                            unconverted[id(cols)] = (st, key, cols)
                elif op == OP_METRIC:
                    _, _, key, value, step, epoch, ts = entry
                    s = (st.last_step.get(key, -1) + 1) if step is None else step
                    if s > INT64_MAX:
                        s = INT64_MAX
                    st.last_step[key] = s
                    per_run = batch.metrics.setdefault(st.run_id, {})
                    cols = per_run.get(key)
                    if cols is None:
                        cols = per_run[key] = MetricColumns()
                    cols.steps.append(s)
                    cols.epochs.append(epoch)
                    cols.values.append(value)
                    cols.timestamps.append(ts)
                    if type(value) is not float:
                        unconverted[id(cols)] = (st, key, cols)
                elif op == OP_START:
                    batch.runs.append(entry[2])
                elif op == OP_PARAMS:
                    batch.params.setdefault(st.run_id, {}).update(entry[2])
                elif op == OP_TAGS:
                    batch.tags.setdefault(st.run_id, {}).update(entry[2])
                elif op == OP_SYSTEM:
                    batch.system.setdefault(st.run_id, {}).update(entry[2])
                elif op == OP_CHECKPOINT:
                    batch.checkpoints.append(self._checkpoint_event(st, entry[2], entry[3]))
                elif op == OP_CHECKPOINT_UPDATE:
                    batch.checkpoint_updates.append(entry[2])
                elif op == OP_ARTIFACT:
                    _, _, name, source, data, ts = entry
                    if data is None and os.path.getsize(source) <= INLINE_ARTIFACT_BYTES:
                        # read small files once: every sink gets the same bytes even if the file changes
                        with open(source, "rb") as f:
                            data = f.read()
                    if data is not None:
                        import hashlib

                        sha, size = hashlib.sha256(data).hexdigest(), len(data)
                    else:
                        sha, size = file_digest(source)
                    batch.artifacts.append(ArtifactEvent(st.run_id, name, source, sha, size, ts, data))
                elif op == OP_DATASET:
                    ev = entry[2]()
                    if ev is not None:
                        batch.datasets.append(ev)
                elif op == OP_MEDIA:
                    with self._media_lock:
                        self.media_bytes -= entry[7]
                    ev = self._media_event(st, entry)
                    if ev is not None:
                        batch.media.append(ev)
                elif op == OP_SYSINFO:
                    info = entry[2]()
                    if info:
                        batch.system.setdefault(st.run_id, {}).update(info)
                elif op == OP_NOTE:
                    batch.notes[st.run_id] = entry[2]
                elif op == OP_CONSOLE_ATTACH:
                    from .console import ConsoleLog

                    log = ConsoleLog(st.run_id, entry[2], entry[3], entry[4])
                    log.state = st
                    self._consoles[st.run_id] = log
                elif op == OP_SYSMETRICS:
                    if self.sampler is None:
                        from .sysmetrics import SystemSampler

                        self.sampler = SystemSampler()
                    self.sampler.add(st, entry[2])
                    batch.system.setdefault(st.run_id, {})["system_metrics"] = {
                        "interval_s": entry[2], **self.sampler.facts()}
                elif op == OP_STATUS:
                    if self.sampler is not None:
                        for _, values, step, ts in self.sampler.finish(st):
                            if values:
                                self._add_sample(batch, st, values, step, ts)
                    log = self._consoles.get(st.run_id)
                    if log is not None:
                        log.closing = True
                        log.dirty = log.dirty or bool(log.tail)
                    st.finished = True
                    self._states.pop(st.run_id, None)
                    batch.status.append(StatusEvent(st.run_id, entry[2], entry[3]))
            except Exception as exc:
                warn_once(("process", st.run_id, op, type(exc)),
                          f"could not record an entry of run {st.run_id[:8]} ({type(exc).__name__}: {exc})")
        for st, key, cols in unconverted.values():
            cols.values = _to_floats(st, key, cols.values)
        if printed:
            self._console_feed_safely(printed)
        if self._consoles:
            try:
                self._console_emit(batches)
            except Exception as exc:
                warn_once(("console", "emit", type(exc)), f"console capture: {type(exc).__name__}: {exc}")
        for ch, b in batches.items():
            self._deliver(ch, b)
        return flushes

    @staticmethod
    def _convert(st: RunState, key: str, value: Any) -> float:
        try:
            return convert_metric_value(value)
        except Exception as exc:
            warn_once(("convert", st.run_id, key),
                      f"metric {key!r} of run {st.run_id[:8]}: could not convert {type(value).__name__} "
                      f"({exc}); recorded as NaN")
            return math.nan

    @staticmethod
    def _checkpoint_event(st: RunState, rec, metrics: dict) -> CheckpointEvent:
        values = {}
        for k, v in (metrics or {}).items():
            try:
                values[k] = convert_metric_value(v)
            except Exception:
                values[k] = math.nan
        rec.metrics = values
        try:
            rec.sha256, rec.size = file_digest(rec.path)
        except OSError as exc:
            warn_once(("ckpt", rec.path), f"checkpoint {rec.path} could not be hashed: {exc}")
        return CheckpointEvent(st.run_id, rec.path, rec.step, rec.epoch, values, rec.monitor, rec.mode,
                               rec.best, rec.size, rec.sha256, rec.time)

    @staticmethod
    def _media_event(st: RunState, entry: tuple) -> MediaEvent | None:
        from .media import build

        _, _, key, job, step, epoch, ts, nbytes = entry
        try:
            built = build(job)
        except Exception as exc:
            # validated at the call; what fails here is the content itself (an unreadable image file,
            # a device tensor with labels outside ``labels``): drop this one record, loudly
            warn_once(("media", st.run_id, key, type(exc)),
                      f"{job.kind} {key!r} of run {st.run_id[:8]} could not be recorded "
                      f"({type(exc).__name__}: {exc}); it was skipped")
            return None
        s = (st.media_step.get(key, -1) + 1) if step is None else step
        if s > INT64_MAX:
            s = INT64_MAX
        st.media_step[key] = s
        return MediaEvent(st.run_id, key, job.kind, s, epoch, ts, built.data, built.file, built.sha256, built.ext,
                          built.width, built.height)

    def _deliver(self, ch: Channel, batch: Batch, local_only: bool = False) -> None:
        for i, sink in enumerate(ch.sinks):
            if local_only and i > 0:
                break
            q = ch.pending[i]
            q.append(batch)
            self._try_pending(ch, i, force=False)

    def _deliver_pending(self, ch: Channel, force: bool) -> None:
        for i in range(len(ch.sinks)):
            if ch.pending[i]:
                self._try_pending(ch, i, force=force)

    def _try_pending(self, ch: Channel, i: int, force: bool) -> None:
        q = ch.pending[i]
        if not force and ch.retry_at[i] > time.monotonic():
            return
        sink = ch.sinks[i]
        deadline = time.monotonic() + (MIRROR_FLUSH_TIMEOUT if i else 60.0)
        while q:
            try:
                sink.write(q[0])
            except Exception as exc:
                if not isinstance(exc, (OSError, sqlite3.OperationalError, TimeoutError, ConnectionError)):
                    # not an outage but a batch this sink cannot take: retrying forever would block
                    # everything behind it
                    n = ch.poison.get(id(q[0]), 0) + 1
                    ch.poison[id(q[0])] = n
                    if n >= POISON_RETRIES:
                        bad = q.popleft()
                        ch.poison.pop(id(bad), None)
                        warnings.warn(f"trackhooks: {sink.name} rejected a batch ({bad.n_points()} points) "
                                      f"{n} times ({type(exc).__name__}: {exc}); it was dropped for this sink",
                                      RuntimeWarning, stacklevel=2)
                        continue
                if i not in ch.failed_once:
                    ch.failed_once.add(i)
                    warn_once(("sink", id(sink)),
                              f"{sink.name} failed ({type(exc).__name__}: {exc}); keeping its records and "
                              "retrying in the background, training goes on")
                ch.retry_at[i] = time.monotonic() + ch.backoff[i]
                ch.backoff[i] = min(ch.backoff[i] * 2, 30.0)
                return
            q.popleft()
            ch.backoff[i] = 0.5
            if time.monotonic() > deadline:
                return

    # ---- exit -------------------------------------------------------------------------------
    def shutdown(self, timeout: float = 30.0) -> None:
        """Drain everything (interpreter exit). Runs on the exiting thread."""
        self._stop = True
        self._event.set()
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread():
            t.join(timeout)
        deadline = time.monotonic() + timeout
        d = self._draining
        d.depth = getattr(d, "depth", 0) + 1
        try:
            if not self._write_lock.acquire(timeout=max(0.1, deadline - time.monotonic())):
                return
            try:
                buf = self.buffer
                # until nothing new arrives: a finalizer or signal handler that runs during a write or
                # a flush below (on this thread) may still finish a run, and it does not wait for us
                while True:
                    while buf:
                        entries = _take(buf, len(buf))
                        for ev in self._process(entries):
                            ev.set()
                    for ch in self._channels:
                        self._deliver_pending(ch, force=True)
                        for sink in ch.sinks:
                            try:
                                sink.flush()
                            except Exception:
                                pass
                    if not buf:
                        break
                for ch in self._channels:
                    for i, sink in enumerate(ch.sinks):
                        if ch.pending[i]:
                            try:
                                sink.give_up(list(ch.pending[i]))
                            except Exception:
                                pass
                        try:
                            sink.close()
                        except Exception:
                            pass
            finally:
                self._write_lock.release()
        except Exception as exc:
            print(f"trackhooks: error while draining at exit: {exc}", file=sys.stderr)
        finally:
            d.depth -= 1


_writer: Writer | None = None
_writer_lock = threading.Lock()


def get_writer() -> Writer:
    global _writer
    w = _writer
    if w is not None and w.pid == os.getpid():
        return w
    with _writer_lock:
        if _writer is None or _writer.pid != os.getpid():
            _writer = Writer()
            _install_exit_handlers()
        return _writer


def wake_writer() -> None:
    """Run the writer's next cycle now instead of at its interval (the plugin surface's name).

    For an integration whose framework trains in native code that releases the GIL for long
    stretches (XGBoost's rounds): the writer's start-up and first statements then run beside the
    training at no cost to it. Beside a loop that holds the GIL between short C calls every
    GIL-releasing call of the writer is a hand-over the loop pays for, so the core does not wake it.
    """
    w = _writer
    if w is not None and w.pid == os.getpid():
        w.wake()


def _after_fork_in_child() -> None:
    # the parent's writer thread does not exist in a forked child; its buffer belongs to the parent
    global _writer
    _writer = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_exit_installed = False
_uncaught: list[BaseException] = []


def _install_exit_handlers() -> None:
    global _exit_installed
    if _exit_installed:
        return
    _exit_installed = True
    atexit.register(_at_exit)
    previous_hook = sys.excepthook

    def excepthook(exc_type, exc, tb):
        _uncaught.append(exc)
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass


def _on_sigterm(signum, frame) -> None:
    from . import run as run_mod

    try:
        run_mod._finish_all("killed", timeout=10.0)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _at_exit() -> None:
    from . import run as run_mod

    w = _writer
    if w is None or w.pid != os.getpid():
        return
    status = "finished"
    if _uncaught:
        status = "killed" if isinstance(_uncaught[-1], KeyboardInterrupt) else "failed"
    run_mod._finish_all(status, timeout=None, at_exit=True)
    try:
        run_mod._await_system_info()  # runs not described yet, and git probes still running (bounded)
    except Exception:
        pass
    w.shutdown()
