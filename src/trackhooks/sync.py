"""Mirror catch-up: replay into a mirror exactly what it has not received yet, from the local store.

The store is the truth (a local store, or any engine's store for ``trackhooks sync --store``). For
every (mirror, run) the store keeps a cursor (its ``mirror_cursors`` table, through the read API's
cursor primitives): how many points of each metric key, which params, tags, artifacts and
checkpoints, and which status the mirror has acknowledged. A mirror sink (:class:`ReplaySink`) does
not forward the writer's batches: it only notes which runs changed and replays each of them from its
cursor on its own thread. Live mirroring, catch-up after an outage and ``trackhooks sync`` are one
code path, so what a mirror ends up holding does not depend on when it was reachable, and replaying
twice sends nothing twice.

A cursor is advanced only after the mirror acknowledged the records (one request at a time), and is
written with compare-and-swap on a version number, so a live process and a ``trackhooks sync`` on the
same run can overlap: the loser re-reads the cursor and sends what is still missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from typing import Any, Iterable

from .sink import Batch, Sink
from .store import NO_EPOCH, RunRecord, Store, redact_uri
from .store.records import unpack as _unpack

READ_CHUNK = 100_000  # points read from the store per key per round, to bound memory on a big backlog
TERMINAL = ("finished", "failed", "killed")


class CursorConflict(Exception):
    """Another process advanced the same cursor meanwhile; re-read it and continue."""


class Cursor:
    """What one mirror holds of one run. ``state`` is a JSON object owned by the mirror."""

    def __init__(self, store: Store, mirror: str, run_id: str, state: dict[str, Any], version: int):
        self._store = store
        self.mirror = mirror
        self.run_id = run_id
        self.state = state
        self.version = version

    @classmethod
    def load(cls, store: Store, mirror: str, run_id: str) -> "Cursor":
        row = store._cursor_load(mirror, run_id)
        if row is None:
            return cls(store, mirror, run_id, {}, -1)
        return cls(store, mirror, run_id, json.loads(row[0]), row[1])

    def commit(self) -> None:
        """Persist ``state``; raise CursorConflict if someone else committed since it was loaded."""
        text = json.dumps(self.state, separators=(",", ":"), allow_nan=True)
        if not self._store._cursor_commit(self.mirror, self.run_id, text, self.version, time.time()):
            raise CursorConflict(f"cursor of run {self.run_id[:8]} for {self.mirror} moved meanwhile")
        self.version += 1


class Points:
    """Points of one key from index ``start`` on, in logging order (as stored)."""

    __slots__ = ("start", "steps", "epochs", "values", "timestamps", "_blocks")

    def __init__(self, start: int, steps: list[int], epochs: list[int | None], values: list[float],
                 timestamps: list[float], blocks: list[tuple[int, int]]):
        self.start = start
        self.steps, self.epochs, self.values, self.timestamps = steps, epochs, values, timestamps
        self._blocks = blocks  # (seq, index of the block's first point), ascending

    def __len__(self) -> int:
        return len(self.values)

    def hint_at(self, n: int) -> list[int]:
        """Where to start reading next time once ``n`` points are delivered: [block seq, its first index]."""
        best = self._blocks[0] if self._blocks else (0, 0)
        for seq, base in self._blocks:
            if base <= n:
                best = (seq, base)
            else:
                break
        return [best[0], best[1]]


class RunView:
    """Read access to one run of a store for a replay (its own connection, any thread)."""

    def __init__(self, store: Store, rec: RunRecord):
        self.store = store
        self.rec = rec

    @property
    def status(self) -> str:
        return self.rec.status

    @property
    def end_time(self) -> float | None:
        if self.rec.status == "running":
            return None
        return self.rec.end_time or self.rec.heartbeat or self.rec.start_time

    def metric_counts(self) -> dict[str, tuple[str, int]]:
        """key -> (key, number of points stored); the first item is what ``points`` takes."""
        return {k: (k, n) for k, n in self.store._metric_counts(self.rec.id).items()}

    def points(self, key: str, start: int, hint: list[int] | None = None, limit: int = READ_CHUNK) -> Points:
        """Up to ``limit`` points of a key from index ``start``; ``hint`` (from Points.hint_at) skips
        the blocks before it without reading them."""
        seq0, base = (hint[0], hint[1]) if hint and hint[1] <= start else (-1, 0)
        rows = self.store._metric_blocks(self.rec.id, key, seq0)
        steps: list[int] = []
        epochs: list[int] = []
        values: list[float] = []
        times: list[float] = []
        blocks: list[tuple[int, int]] = []
        for seq, n, s, e, v, t in rows:
            if base + n <= start:
                base += n
                continue
            blocks.append((seq, base))
            lo = max(0, start - base)
            hi = min(n, lo + limit - len(values))
            steps.extend(_unpack("q", [bytes(s)])[lo:hi])
            epochs.extend(_unpack("q", [bytes(e)])[lo:hi])
            values.extend(_unpack("d", [bytes(v)])[lo:hi])
            times.extend(_unpack("d", [bytes(t)])[lo:hi])
            base += n
            if len(values) >= limit:
                break
        eps: list[int | None] = [None if x == NO_EPOCH else x for x in epochs]
        return Points(start, steps, eps, values, times, blocks)

    def media_counts(self) -> dict[str, int]:
        """key -> number of rich records stored, read without loading them (a replay then reads
        ``rec.media(key)`` only for the keys that grew)."""
        return self.store._media_counts(self.rec.id)

    def checkpoint_rows(self) -> list[dict[str, Any]]:
        """Every checkpoint record of the run, oldest first."""
        return [{"path": c.path, "step": c.step, "epoch": c.epoch, "best": c.best, "deleted": c.deleted,
                 "sha256": c.sha256, "size": c.size, "monitor": c.monitor, "metrics": c.metrics}
                for c in self.rec.checkpoints()]


class ReplayTarget:
    """What a mirror implements to be replayed into (see ReplaySink)."""

    #: identity of the mirror in cursors (a normalised URI without options)
    cursor_key: str = ""

    def replay(self, view: RunView, cursor: Cursor) -> dict[str, Any]:
        """Send what ``cursor`` says is missing, committing the cursor as the mirror acknowledges.

        Runs on the sink's thread (live) or the ``trackhooks sync`` caller. Raise on failure; what was
        acknowledged before stays committed. Returns counts of what was sent (for the report).
        """
        raise NotImplementedError

    def close_run(self, run_id: str) -> None:
        """The run is complete in the mirror (terminal status delivered): release per-run resources."""


def replay_run(store: Store, run_id: str, target: ReplayTarget, *, attempts: int = 5) -> dict[str, Any]:
    """Bring ``target`` up to date with one run of ``store``; idempotent. Returns what was sent."""
    for _ in range(attempts):
        rec = store.run(run_id)
        cursor = Cursor.load(store, target.cursor_key, rec.id)
        try:
            return target.replay(RunView(store, rec), cursor)
        except CursorConflict:
            continue
    raise CursorConflict(f"run {run_id[:8]}: the cursor for {target.cursor_key} kept moving "
                         f"({attempts} tries); is another sync running?")


def cursor_state(store: Store, mirror: str, run_id: str) -> dict[str, Any] | None:
    """The committed state of one cursor, or None (for tools and tests)."""
    cur = Cursor.load(store, mirror, run_id)
    return cur.state if cur.version >= 0 else None


# --------------------------------------------------------------------------------------------
# the live side: a sink that replays on its own thread


def _mirror_timeout() -> float:
    try:
        return float(os.environ.get("TRACKHOOKS_MIRROR_TIMEOUT", "10"))
    except ValueError:
        return 10.0


def _touched_runs(batch: Batch) -> set[str]:
    ids: set[str] = {r.run_id for r in batch.runs}
    ids.update(batch.params, batch.tags, batch.metrics, batch.system)
    ids.update(c.run_id for c in batch.checkpoints)
    ids.update(u.run_id for u in batch.checkpoint_updates)
    ids.update(a.run_id for a in batch.artifacts)
    ids.update(d.run_id for d in batch.datasets)
    ids.update(m.run_id for m in batch.media)
    ids.update(batch.notes)
    ids.update(batch.heartbeats)
    ids.update(s.run_id for s in batch.status)
    return ids


class ReplaySink(Sink, ReplayTarget):
    """Base of mirror sinks: ``write`` only records which runs changed (never blocks, never fails);
    a thread of the sink replays them from the local store, with backoff while the mirror is down.

    ``flush`` (called by the writer on ``run.flush()``/``finish()``) waits for a replay of everything
    noted so far, at most ``$TRACKHOOKS_MIRROR_TIMEOUT`` seconds (default 10); a mirror that timed out
    recently is not waited for at all. Whatever is not delivered stays described by the cursors, for
    the next attempt or ``trackhooks sync``.
    """

    def __init__(self, cursor_key: str, name: str):
        self.cursor_key = cursor_key
        self.name = name
        self._cv = threading.Condition()
        self._dirty: dict[str, set[str]] = {}
        self._stores: dict[str, Store] = {}
        self._requested = 0  # generation of the latest change noted
        self._attempted = 0  # generation covered by the latest finished pass (ok or not)
        self._passes = 0  # passes finished
        self._gave_up = -1  # value of _passes when a flush last stopped waiting
        self._retry_at = 0.0
        self._backoff = 0.5
        self._hanging = False  # the last failure was a timeout: do not make flush() wait for it
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # ---- writer thread ------------------------------------------------------------------------
    def write(self, batch: Batch) -> None:
        if batch.store is None:
            return
        ids = _touched_runs(batch)
        if not ids:
            return
        with self._cv:
            self._dirty.setdefault(batch.store, set()).update(ids)
            self._requested += 1
            self._cv.notify_all()
        self._ensure_thread()

    def flush(self) -> None:
        self._wait(_mirror_timeout())

    def close(self) -> None:
        # the writer flushes (a bounded wait) right before it closes: do not wait a second time, only
        # let the pass in progress end (its requests are bounded by their own timeouts)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        t = self._thread
        if t is not None and t.is_alive() and t is not threading.current_thread() and self._pid == os.getpid():
            t.join(_mirror_timeout())

    def give_up(self, batches: list[Batch]) -> None:
        pass  # nothing to record: the cursors already say what the mirror lacks

    def _wait(self, timeout: float) -> None:
        if self._pid != os.getpid():
            return
        deadline = time.monotonic() + timeout
        with self._cv:
            target = self._requested
            if self._attempted >= target:
                return
            if self._hanging and self._retry_at > time.monotonic():
                return  # known to hang: skip it now, it is caught up later
            if self._gave_up == self._passes:
                # an earlier flush already waited for the pass in progress (a long catch-up): the
                # writer flushes every store's sinks, so without this one flush could wait many times
                return
            self._retry_at = 0.0  # try now rather than after the backoff
            self._cv.notify_all()
            while self._attempted < target and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._gave_up = self._passes
                    return
                self._cv.wait(left)

    # ---- replay thread ------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread does not exist here
            self._pid = os.getpid()
            self._thread = None
            self._stores = {}
        t = self._thread
        if t is not None and t.is_alive():
            return
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(target=self._loop, name=f"trackhooks-mirror {self.name}",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        from .writer import warn_once

        while True:
            with self._cv:
                while not self._closed and (not self._dirty or time.monotonic() < self._retry_at):
                    wait = None if not self._dirty else max(0.01, self._retry_at - time.monotonic())
                    self._cv.wait(wait)
                if self._closed:
                    return
                generation = self._requested
                work, self._dirty = self._dirty, {}
            failure: BaseException | None = None
            failed_store = ""
            left: dict[str, set[str]] = {}
            for store_path, ids in work.items():
                if failure is not None:
                    left[store_path] = ids
                    continue
                failed_store = store_path
                done: set[str] = set()
                try:
                    store = self._stores.get(store_path)
                    if store is None:
                        from .store.sqlite import SQLiteStore

                        store = self._stores[store_path] = SQLiteStore(store_path)
                    for run_id in self._order(store, ids):
                        try:
                            stats = replay_run(store, run_id, self)
                        except Exception as exc:  # noqa: BLE001
                            if _is_outage(exc):
                                raise
                            # the mirror refuses this run (not an outage): retrying at once would
                            # fail the same way and hold up the other runs; its next change or
                            # `trackhooks sync` tries again
                            warn_once(("mirror-run", self.cursor_key, run_id),
                                      f"{self.name} refused run {run_id[:8]} ({type(exc).__name__}: {exc}); "
                                      "it stays in the local store")
                            done.add(run_id)
                            continue
                        done.add(run_id)
                        if stats.get("complete"):
                            self.close_run(run_id)
                except Exception as exc:  # noqa: BLE001 - a mirror failure must never escape
                    failure = exc
                    left[store_path] = ids - done
            with self._cv:
                for store_path, ids in left.items():
                    self._dirty.setdefault(store_path, set()).update(ids)
                self._attempted = max(self._attempted, generation)
                self._passes += 1
                if failure is None:
                    self._backoff = 0.5
                    self._retry_at = 0.0
                    self._hanging = False
                else:
                    self._hanging = _is_timeout(failure)
                    self._retry_at = time.monotonic() + self._backoff
                    self._backoff = min(self._backoff * 2, 30.0)
                self._cv.notify_all()
            if failure is not None:
                warn_once(("mirror", self.cursor_key),
                          f"{self.name} failed ({type(failure).__name__}: {failure}); training goes on, the "
                          f"local store keeps everything and the mirror is caught up when it is back "
                          f"(or run `trackhooks sync --to {self.cursor_key} --store {failed_store}`)")

    @staticmethod
    def _order(store: Store, ids: set[str]) -> list[str]:
        # parents first, so that a child can refer to its parent's mirrored run
        return store._start_order(ids)


def _is_outage(exc: BaseException) -> bool:
    """Worth retrying later: the mirror or the store is unreachable, slow or busy."""
    return isinstance(exc, (OSError, TimeoutError, sqlite3.OperationalError, CursorConflict))


def _is_timeout(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower() \
                or "timed out" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False


# --------------------------------------------------------------------------------------------
# trackhooks sync --to URI [RUN...]


def make_target(uri: str) -> ReplayTarget:
    """The mirror for a URI, made by the installed plugins (``trackhooks_make_sink``)."""
    from .errors import UnknownPluginError
    from .plugins import plugin_manager

    pm = plugin_manager()
    sink = pm.hook.trackhooks_make_sink(uri=uri, options={})
    if sink is None or not isinstance(sink, ReplayTarget):
        what = "no installed plugin handles" if sink is None else "the sink for"
        raise UnknownPluginError(
            f"{what} {redact_uri(uri)!r} {'' if sink is None else 'cannot replay stored runs '}(installed plugins: "
            f"{', '.join(sorted(n for n, _ in pm.list_name_plugin()))}); `trackhooks sync` replays into "
            "mlflow+<tracking uri> (trackhooks-mlflow), tensorboard:<dir> (trackhooks-tensorboard) and "
            "postgresql://... (trackhooks-postgres)")
    return sink


def sync(store: Store, uri: str, runs: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Replay runs of ``store`` (all when ``runs`` is empty) into the mirror ``uri``.

    Returns one report per run: what was sent (``points``, ``params``, ``tags``, ``artifacts``,
    ``checkpoints``, ``status``) or ``error``.
    """
    target = make_target(uri)
    ids = [store.run(r).id for r in runs] if runs else [r.id for r in store.runs(archived=True)]
    reports: list[dict[str, Any]] = []
    try:
        for run_id in ids:
            rec = store.run(run_id)
            report: dict[str, Any] = {"run_id": rec.id, "name": rec.name, "experiment": rec.experiment}
            try:
                stats = replay_run(store, rec.id, target)
                report.update({k: v for k, v in stats.items() if k != "complete"})
            except Exception as exc:  # noqa: BLE001 - reported per run; the others are still synced
                report["error"] = f"{type(exc).__name__}: {exc}"
            target.close_run(rec.id)
            reports.append(report)
    finally:
        close = getattr(target, "close_all", None)
        if close is not None:
            close()
    return reports


def main(args: Any) -> int:
    """``trackhooks sync --to URI [RUN...]``: args has .store, .to, .runs, .json.

    Returns 0 when every run is in sync, 1 when some could not be synced (each named on stderr).
    Raises TrackhooksError, which the CLI prints as one line, when the store, a run or the mirror's
    plugin cannot be found.
    """
    from .store import open_store

    store = open_store(getattr(args, "store", None))
    reports = sync(store, args.to, list(getattr(args, "runs", None) or []))
    failed = [r for r in reports if "error" in r]
    shown = redact_uri(args.to)  # the mirror URI may hold a password (postgresql://user:pw@...)
    if getattr(args, "json", False):
        print(json.dumps({"mirror": shown, "runs": reports}, indent=2, allow_nan=False, default=str))
    else:
        for r in reports:
            head = f"{r['run_id'][:12]}  {r['name']}"
            if "error" in r:
                print(f"{head}: FAILED {r['error']}")
                continue
            sent = [f"{r[k]} {k}" for k in ("points", "params", "tags", "artifacts", "checkpoints") if r.get(k)]
            if r.get("status"):
                sent.append(f"status {r['status']}")
            print(f"{head}: " + (", ".join(sent) if sent else "up to date"))
        print(f"{len(reports) - len(failed)} of {len(reports)} runs in sync with {shown}")
    for r in failed:
        print(f"trackhooks: error: run {r['run_id'][:12]} could not be synced to {shown}: {r['error']} "
              "(run the same command again once the mirror is reachable)", file=sys.stderr)
    return 1 if failed else 0
