"""The embedded local store: one directory with a SQLite database (WAL) and content-addressed files.

Layout::

    <store>/trackhooks.db          runs, params, tags, metric blocks, checkpoints, artifacts, datasets
    <store>/artifacts/ab/abcdef... artifact files named by their sha256

Metric points are stored in blocks: one row per (run, key, writer batch) holding packed arrays of
steps, epochs, values and timestamps. Packing keeps NaN/inf exact (SQLite would turn NaN into NULL),
lets one transaction ingest millions of points per second, and reading one series touches only the
blocks of that key (primary key ``(key_id, seq)``), never other runs.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import socket
import sqlite3
import sys
import threading
import time
import warnings
from array import array
from typing import Any, Iterator

from .errors import AmbiguousRunError, RunNotFoundError, StoreError, StoreNotFoundError, TrackhooksError
from .sink import Batch, Sink

SCHEMA_VERSION = 1
DB_NAME = "trackhooks.db"
NO_EPOCH = -(2**63)  # sentinel in the packed epoch column for "no epoch given"
HEARTBEAT_STALE_S = 120.0  # a run on another host with no heartbeat for this long reads as killed
BUSY_TIMEOUT_MS = 60_000
_LITTLE = sys.byteorder == "little"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_id TEXT,
    start_time REAL NOT NULL,
    end_time REAL,
    pid INTEGER,
    host TEXT,
    pid_start INTEGER,
    heartbeat REAL,
    system TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment, start_time);
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_id);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_keys (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    last_step INTEGER,
    last_value REAL,
    min_value REAL,
    max_value REAL,
    UNIQUE (run_id, key)
);
CREATE TABLE IF NOT EXISTS metric_blocks (
    key_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    steps BLOB NOT NULL,
    epochs BLOB NOT NULL,
    vals BLOB NOT NULL,
    times BLOB NOT NULL,
    PRIMARY KEY (key_id, seq)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    path TEXT NOT NULL,
    step INTEGER,
    epoch INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',
    monitor TEXT,
    mode TEXT,
    best INTEGER NOT NULL DEFAULT 0,
    size INTEGER,
    sha256 TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_by_run ON checkpoints (run_id, path);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS datasets (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    context TEXT NOT NULL,
    digest TEXT NOT NULL,
    schema TEXT NOT NULL DEFAULT '{}',
    n_rows INTEGER,
    source TEXT,
    sampled INTEGER NOT NULL DEFAULT 0,
    time REAL NOT NULL,
    PRIMARY KEY (run_id, digest, context, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS datasets_by_digest ON datasets (digest);
"""
# what each mirror has received of each run (see trackhooks.sync): JSON state, and a version for
# compare-and-swap updates by concurrent syncers (a live process and `trackhooks sync`)
MIRROR_CURSORS_DDL = """
CREATE TABLE IF NOT EXISTS mirror_cursors (
    mirror TEXT NOT NULL,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '{}',
    version INTEGER NOT NULL DEFAULT 0,
    updated REAL,
    PRIMARY KEY (mirror, run_id)
) WITHOUT ROWID
"""
_SCHEMA += MIRROR_CURSORS_DDL + ";\n"
# console output of runs that have not finished (or were killed): chunks by seq, the last one
# rewritten while its line is unfinished; at the finish it becomes the artifact console.log
CONSOLE_DDL = """
CREATE TABLE IF NOT EXISTS console (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID
"""
_SCHEMA += CONSOLE_DDL + ";\n"


def _json_default(value: Any) -> str:
    # a plugin's system info or a dataset schema holding an odd object must not poison a batch
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _connect(db_path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def _check_db(conn: sqlite3.Connection, path: str) -> None:
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return  # a new, empty database
        if "meta" not in tables:
            raise StoreError(f"{path} is a SQLite database but not a trackhooks store; "
                             "point store= at another directory")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not a valid trackhooks store ({exc}); move it away or point store= elsewhere"
        ) from exc
    if row is None:
        return
    try:
        version = int(row[0])
    except ValueError:
        raise StoreError(f"{path}: unreadable schema version {row[0]!r}") from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer trackhooks (schema {version}, this one reads {SCHEMA_VERSION}); "
            "upgrade trackhooks to read or write it"
        )


def init_store(path: str) -> str:
    """Create (if needed) and validate the store directory; return the database path.

    Raises StoreError naming ``path`` when the directory cannot be created or written, or when it
    holds something that is not a trackhooks store.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(f"store path {path} exists and is not a directory")
    try:
        os.makedirs(os.path.join(path, "artifacts"), exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create store directory {path}: {exc.strerror or exc}") from exc
    db_path = os.path.join(path, DB_NAME)
    try:
        conn = _connect(db_path)
        try:
            _check_db(conn, db_path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            _check_db(conn, db_path)
        finally:
            conn.close()
    except StoreError:
        raise
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{db_path} is not a valid trackhooks store or cannot be written ({exc}); "
            "check permissions and free space, or point store= elsewhere"
        ) from exc
    return db_path


# --------------------------------------------------------------------------------------------
# write side


class LocalStoreSink(Sink):
    """Writes batches into one local store. Used only from the writer thread."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.name = f"local store {self.path}"
        self.db_path = init_store(self.path)
        self._conn: sqlite3.Connection | None = None
        self._caller_conn: sqlite3.Connection | None = None
        self._caller_lock = threading.Lock()
        self._keys: dict[tuple[str, str], list[int]] = {}  # (run_id, key) -> [key_id, next_seq, n]

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = _connect(self.db_path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # checkpoint the WAL every ~40 MB instead of every 4 MB: checkpoints (with their fsync)
            # were half of the ingest time; commits stay durable against a crash of the process
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            self._conn = conn
        return self._conn

    def write_run_start_now(self, r: Any) -> bool:
        """Make a run's row durable from the caller's thread (start_run), in one short transaction.

        A round trip through the writer thread costs a GIL hand-over or two (5 ms each on a busy
        machine); this costs a millisecond or two. The same RunStart still goes through the writer
        (the insert is idempotent) so mirrors see it. Returns False, without raising, if the store
        is busy or failing: the writer then records the run a moment later.
        """
        with self._caller_lock:
            try:
                if self._caller_conn is None:
                    conn = sqlite3.connect(self.db_path, timeout=2.0, isolation_level=None, check_same_thread=False)
                    conn.execute("PRAGMA busy_timeout=2000")
                    self._caller_conn = conn
                conn = self._caller_conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._apply(conn, Batch(runs=[r]))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                return True
            except sqlite3.Error:
                return False

    def write(self, batch: Batch) -> None:
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._apply(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._keys.clear()  # cached sequence numbers may be ahead of what was rolled back
            if not os.path.exists(self.db_path):
                self._reset()
            raise

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None
        self.db_path = init_store(self.path)

    def _apply(self, conn: sqlite3.Connection, batch: Batch) -> None:
        for r in batch.runs:
            if r.resumed:
                conn.execute(
                    "UPDATE runs SET status='running', end_time=NULL, pid=?, host=?, pid_start=?, heartbeat=? "
                    "WHERE id=?", (r.pid, r.host, r.pid_start, time.time(), r.run_id))
            else:
                conn.execute(
                    "INSERT OR IGNORE INTO runs (id, experiment, name, status, parent_id, start_time, pid, host, "
                    "pid_start, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (r.run_id, r.experiment, r.name, "running", r.parent_id, r.start_time, r.pid, r.host,
                     r.pid_start, time.time()))
        for run_id, params in batch.params.items():
            conn.executemany("INSERT OR REPLACE INTO params (run_id, key, value) VALUES (?,?,?)",
                             [(run_id, k, _dumps(v)) for k, v in params.items()])
        for run_id, tags in batch.tags.items():
            conn.executemany("INSERT OR REPLACE INTO tags (run_id, key, value) VALUES (?,?,?)",
                             [(run_id, k, v) for k, v in tags.items()])
        for run_id, system in batch.system.items():
            row = conn.execute("SELECT system FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = json.loads(row[0]) if row and row[0] else {}
            merged.update(system)
            conn.execute("UPDATE runs SET system=? WHERE id=?", (_dumps(merged), run_id))
        if batch.metrics:
            self._write_metrics(conn, batch)
        if batch.console:
            conn.executemany("INSERT OR REPLACE INTO console (run_id, seq, data) VALUES (?,?,?)",
                             [(c.run_id, c.seq, c.data) for c in batch.console])
        for c in batch.checkpoints:
            if c.best:
                conn.execute("UPDATE checkpoints SET best=0 WHERE run_id=? AND monitor IS ?", (c.run_id, c.monitor))
            conn.execute(
                "INSERT INTO checkpoints (run_id, path, step, epoch, metrics, monitor, mode, best, size, sha256, time) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (c.run_id, c.path, c.step, c.epoch, _dumps(c.metrics), c.monitor, c.mode, int(c.best), c.size,
                 c.sha256, c.time))
        for u in batch.checkpoint_updates:
            row = conn.execute("SELECT id, monitor FROM checkpoints WHERE run_id=? AND path=? ORDER BY id DESC LIMIT 1",
                               (u.run_id, u.path)).fetchone()
            if row is None:
                continue
            if u.deleted is not None:
                conn.execute("UPDATE checkpoints SET deleted=? WHERE id=?", (int(u.deleted), row[0]))
            if u.best is not None:
                if u.best:
                    conn.execute("UPDATE checkpoints SET best=0 WHERE run_id=? AND monitor IS ?", (u.run_id, row[1]))
                conn.execute("UPDATE checkpoints SET best=? WHERE id=?", (int(u.best), row[0]))
        for a in batch.artifacts:
            try:
                self._store_file(a)
            except FileNotFoundError:
                # the source vanished between logging and copying: nothing left to keep
                warnings.warn(f"trackhooks: artifact {a.name!r}: {a.source} was deleted before it could be copied",
                              RuntimeWarning, stacklevel=2)
                continue
            conn.execute("INSERT OR REPLACE INTO artifacts (run_id, name, sha256, size, time) VALUES (?,?,?,?,?)",
                         (a.run_id, a.name, a.sha256, a.size, a.time))
            if a.name == "console.log":  # the finished log replaces its live chunks
                conn.execute("DELETE FROM console WHERE run_id=?", (a.run_id,))
        for d in batch.datasets:
            conn.execute(
                "INSERT OR REPLACE INTO datasets (run_id, name, context, digest, schema, n_rows, source, sampled, time)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (d.run_id, d.name, d.context, d.digest, _dumps(d.schema), d.n_rows, d.source, int(d.sampled), d.time))
        for run_id, hb in batch.heartbeats.items():
            conn.execute("UPDATE runs SET heartbeat=? WHERE id=?", (hb, run_id))
        for s in batch.status:
            conn.execute("UPDATE runs SET status=?, end_time=?, heartbeat=? WHERE id=?",
                         (s.status, s.end_time, time.time(), s.run_id))

    def _write_metrics(self, conn: sqlite3.Connection, batch: Batch) -> None:
        keys = self._keys
        rows = []
        key_updates = []
        for run_id, per_key in batch.metrics.items():
            for key, cols in per_key.items():
                n = len(cols.values)
                if not n:
                    continue
                state = keys.get((run_id, key))
                if state is None:
                    conn.execute("INSERT OR IGNORE INTO metric_keys (run_id, key) VALUES (?,?)", (run_id, key))
                    key_id, count = conn.execute("SELECT id, n FROM metric_keys WHERE run_id=? AND key=?",
                                                 (run_id, key)).fetchone()
                    seq = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM metric_blocks WHERE key_id=?",
                                       (key_id,)).fetchone()[0]
                    state = keys[(run_id, key)] = [key_id, seq, count]
                epochs = cols.epochs
                if epochs[0] is None and epochs.count(None) == n:
                    epoch_blob = _NO_EPOCH_BYTES * n  # the common case: no epochs at all
                else:
                    if None in epochs:
                        epochs = [NO_EPOCH if e is None else e for e in epochs]
                    epoch_blob = _pack("q", epochs)
                rows.append((state[0], state[1], n, _pack("q", cols.steps), epoch_blob,
                             _pack("d", cols.values), _pack("d", cols.timestamps)))
                state[1] += 1
                state[2] += n
                vals = cols.values
                lo, hi = min(vals), max(vals)
                if lo != lo or hi != hi:  # NaN first in the list poisons min/max: ignore NaNs
                    finite = [v for v in vals if v == v]
                    lo, hi = (min(finite), max(finite)) if finite else (None, None)
                last = vals[-1] if vals[-1] == vals[-1] else None
                key_updates.append((state[2], cols.steps[-1], last, lo, lo, hi, hi, state[0]))
        conn.executemany("INSERT INTO metric_blocks (key_id, seq, n, steps, epochs, vals, times) VALUES (?,?,?,?,?,?,?)",
                         rows)
        # summaries for listing and sorting many runs without reading their series (NaN -> NULL)
        conn.executemany(
            "UPDATE metric_keys SET n=?, last_step=?, last_value=?, "
            "min_value=CASE WHEN ? IS NULL THEN min_value ELSE min(COALESCE(min_value, ?), ?) END, "
            "max_value=CASE WHEN ? IS NULL THEN max_value ELSE max(COALESCE(max_value, ?), ?) END WHERE id=?",
            [(n_, ls, last, lo, lo, lo, hi, hi, hi, kid) for n_, ls, last, lo, _, hi, _, kid in key_updates])

    def _store_file(self, a) -> None:
        dest = artifact_path(self.path, a.sha256)
        if os.path.exists(dest):
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            if a.data is not None:
                with open(tmp, "wb") as f:
                    f.write(a.data)
            else:
                shutil.copyfile(a.source, tmp)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def flush(self) -> None:
        pass  # every write() is one committed transaction

    def close(self) -> None:
        for attr in ("_conn", "_caller_conn"):
            conn = getattr(self, attr)
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
                setattr(self, attr, None)


_NO_EPOCH_BYTES = NO_EPOCH.to_bytes(8, "little", signed=True)


def _pack(code: str, values: list) -> bytes:
    arr = array(code, values)
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def _unpack(code: str, blobs: list[bytes]) -> array:
    arr = array(code)
    for b in blobs:
        arr.frombytes(b)
    if not _LITTLE:
        arr.byteswap()
    return arr


def artifact_path(store_path: str, sha256: str) -> str:
    return os.path.join(store_path, "artifacts", sha256[:2], sha256)


# --------------------------------------------------------------------------------------------
# read side

_HOST = socket.gethostname()


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        fields = data[data.rindex(b")") + 2:].split()
        return int(fields[19])
    except (ValueError, IndexError):
        return None


def _pid_alive(pid: int, pid_start: int | None) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        state = data[data.rindex(b")") + 2:].split()[0]
        if state in (b"Z", b"X"):
            return False
    except (OSError, ValueError, IndexError):
        return True
    if pid_start is not None:
        now_start = process_start_time(pid)
        if now_start is not None and now_start != pid_start:
            return False
    return True


def effective_status(status: str, host: str | None, pid: int | None, pid_start: int | None,
                     heartbeat: float | None) -> str:
    """A running run whose writer is gone reads as killed (at once on this host, by heartbeat elsewhere)."""
    if status != "running":
        return status
    if host == _HOST and pid is not None:
        return "running" if _pid_alive(pid, pid_start) else "killed"
    if heartbeat is not None and time.time() - heartbeat > HEARTBEAT_STALE_S:
        return "killed"
    return status


class Series:
    """All points of one metric of one run, in logging order.

    Columns are unpacked from the stored blocks when first asked for. ``.steps``, ``.epochs``,
    ``.values`` and ``.timestamps`` are lists; ``.arrays()`` gives the packed ``array.array`` columns
    themselves (``numpy.frombuffer`` can wrap them without a copy; epochs use -2**63 for "none").
    """

    __slots__ = ("key", "_blocks", "_cols")

    _CODES = ("q", "q", "d", "d")

    def __init__(self, key: str, blocks: list[tuple[bytes, bytes, bytes, bytes]]):
        self.key = key
        self._blocks = blocks
        self._cols: list[array | None] = [None, None, None, None]

    def _col(self, i: int) -> array:
        col = self._cols[i]
        if col is None:
            col = self._cols[i] = _unpack(self._CODES[i], [b[i] for b in self._blocks])
        return col

    def arrays(self) -> tuple[array, array, array, array]:
        """(steps, epochs, values, timestamps) as array.array (int64, int64, float64, float64)."""
        return self._col(0), self._col(1), self._col(2), self._col(3)

    @property
    def steps(self) -> list[int]:
        return self._col(0).tolist()

    @property
    def epochs(self) -> list[int | None]:
        col = self._col(1)
        missing = col.count(NO_EPOCH)
        if missing == 0:
            return col.tolist()
        if missing == len(col):
            return [None] * missing
        return [None if e == NO_EPOCH else e for e in col.tolist()]

    @property
    def values(self) -> list[float]:
        return self._col(2).tolist()

    @property
    def timestamps(self) -> list[float]:
        return self._col(3).tolist()

    def __len__(self) -> int:
        return sum(len(b[2]) for b in self._blocks) // 8

    def __iter__(self) -> Iterator[tuple[int, int | None, float, float]]:
        return iter(zip(self.steps, self.epochs, self.values, self.timestamps))

    @property
    def last(self) -> float | None:
        values = self._col(2)
        return values[-1] if len(values) else None

    def __repr__(self) -> str:
        return f"Series({self.key!r}, {len(self)} points)"


class CheckpointRecord:
    """A checkpoint file as the framework wrote it (``path`` is where it was written)."""

    def __init__(self, path: str, step: int | None = None, epoch: int | None = None,
                 metrics: dict[str, float] | None = None, best: bool = False, sha256: str | None = None,
                 size: int | None = None, monitor: str | None = None, mode: str | None = None,
                 deleted: bool = False, time: float | None = None):
        self.path = path
        self.step = step
        self.epoch = epoch
        self.metrics = dict(metrics or {})
        self.best = best
        self.sha256 = sha256
        self.size = size
        self.monitor = monitor
        self.mode = mode
        self.deleted = deleted
        self.time = time

    @property
    def exists(self) -> bool:
        return os.path.exists(self.path)

    def __repr__(self) -> str:
        flags = "".join([" best" if self.best else "", " deleted" if self.deleted else ""])
        return f"CheckpointRecord({self.path!r}, step={self.step}, epoch={self.epoch}{flags})"


class ArtifactRecord:
    """A file copied into the store (``path`` is the stored copy)."""

    def __init__(self, name: str, path: str, sha256: str, size: int, time: float):
        self.name, self.path, self.sha256, self.size, self.time = name, path, sha256, size, time

    def __repr__(self) -> str:
        return f"ArtifactRecord({self.name!r}, {self.size} bytes)"


class DatasetRecord:
    def __init__(self, name: str, context: str, digest: str, schema: dict, n_rows: int | None,
                 source: str | None, sampled: bool, time: float):
        self.name, self.context, self.digest, self.schema = name, context, digest, schema
        self.n_rows, self.source, self.sampled, self.time = n_rows, source, sampled, time

    def __repr__(self) -> str:
        return f"DatasetRecord({self.name!r}, context={self.context!r}, digest={(self.digest or 'pending')[:12]}...)"


class MetricNotFoundError(TrackhooksError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _damaged_store_error(fn):
    """Reads of a damaged database (truncated, overwritten) raise a StoreError naming the store and
    the remedy instead of a bare ``sqlite3.DatabaseError``; busy/locked errors pass unchanged."""

    @functools.wraps(fn)
    def read(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            store = getattr(self, "_store", self)
            raise StoreError(f"the store {store.path} is damaged ({exc}): restore {store.db_path} from a backup, "
                             "or move it away and start a new store") from exc

    return read


class RunRecord:
    """A run as stored. Params, tags and system info are loaded with the record; metrics,
    checkpoints, artifacts and children are read when asked for."""

    def __init__(self, store: "Store", row: tuple):
        (self.id, self.experiment, self.name, raw_status, self.parent_id, self.start_time, self.end_time,
         pid, host, pid_start, heartbeat, system) = row
        self._store = store
        self.stored_status = raw_status
        self.status = effective_status(raw_status, host, pid, pid_start, heartbeat)
        self.pid, self.host, self.heartbeat = pid, host, heartbeat
        self.system = json.loads(system) if system else {}
        conn = store._db()
        self.params = {k: json.loads(v) for k, v in conn.execute(
            "SELECT key, value FROM params WHERE run_id=? ORDER BY key", (self.id,))}
        self.tags = dict(conn.execute("SELECT key, value FROM tags WHERE run_id=? ORDER BY key", (self.id,)))

    @property
    def duration(self) -> float | None:
        end = self.end_time
        if end is None:
            end = self.heartbeat if self.status != "running" else time.time()
        return None if end is None else max(0.0, end - self.start_time)

    @_damaged_store_error
    def metric_keys(self) -> list[str]:
        return [r[0] for r in self._store._db().execute(
            "SELECT key FROM metric_keys WHERE run_id=? AND n > 0 ORDER BY key", (self.id,))]

    @_damaged_store_error
    def metric_summaries(self) -> dict[str, dict[str, Any]]:
        """Per key: count, last step, last/min/max value (NaN points ignored), without reading series."""
        rows = self._store._db().execute(
            "SELECT key, n, last_step, last_value, min_value, max_value FROM metric_keys WHERE run_id=? AND n > 0 "
            "ORDER BY key", (self.id,)).fetchall()
        return {k: {"count": n, "last_step": ls, "last": lv, "min": lo, "max": hi} for k, n, ls, lv, lo, hi in rows}

    @_damaged_store_error
    def metric(self, key: str) -> Series:
        conn = self._store._db()
        row = conn.execute("SELECT id FROM metric_keys WHERE run_id=? AND key=?", (self.id, key)).fetchone()
        if row is None:
            raise MetricNotFoundError(f"run {self.id} has no metric {key!r} (it has: {', '.join(self.metric_keys())})")
        blocks = conn.execute("SELECT steps, epochs, vals, times FROM metric_blocks WHERE key_id=? ORDER BY seq",
                              (row[0],)).fetchall()
        return Series(key, blocks)

    @_damaged_store_error
    def checkpoints(self) -> list[CheckpointRecord]:
        rows = self._store._db().execute(
            "SELECT path, step, epoch, metrics, best, sha256, size, monitor, mode, deleted, time FROM checkpoints "
            "WHERE run_id=? ORDER BY id", (self.id,)).fetchall()
        return [CheckpointRecord(p, s, e, json.loads(m), bool(b), sha, size, mon, mode, bool(d), t)
                for p, s, e, m, b, sha, size, mon, mode, d, t in rows]

    @_damaged_store_error
    def artifacts(self) -> list[ArtifactRecord]:
        rows = self._store._db().execute(
            "SELECT name, sha256, size, time FROM artifacts WHERE run_id=? ORDER BY time, name", (self.id,)).fetchall()
        return [ArtifactRecord(n, artifact_path(self._store.path, sha), sha, size, t) for n, sha, size, t in rows]

    def console(self) -> bytes:
        """What the run printed (stdout and stderr, as captured), also while it is being written
        and after it was killed: the ``console.log`` artifact plus any chunks not yet folded in."""
        conn = self._store._db()
        out = b""
        row = conn.execute("SELECT sha256 FROM artifacts WHERE run_id=? AND name='console.log'", (self.id,)).fetchone()
        if row:
            try:
                with open(artifact_path(self._store.path, row[0]), "rb") as f:
                    out = f.read()
            except OSError:
                pass
        try:
            chunks = conn.execute("SELECT data FROM console WHERE run_id=? ORDER BY seq", (self.id,)).fetchall()
        except sqlite3.OperationalError:  # a store written before console capture existed
            chunks = []
        return out + b"".join(bytes(c[0]) for c in chunks)

    @_damaged_store_error
    def datasets(self) -> list[DatasetRecord]:
        rows = self._store._db().execute(
            "SELECT name, context, digest, schema, n_rows, source, sampled, time FROM datasets WHERE run_id=? "
            "ORDER BY time, name", (self.id,)).fetchall()
        return [DatasetRecord(n, c, d, json.loads(s), r, src, bool(sm), t) for n, c, d, s, r, src, sm, t in rows]

    def children(self) -> list["RunRecord"]:
        return self._store._select("WHERE parent_id=?", (self.id,))

    def __repr__(self) -> str:
        return f"RunRecord({self.id[:8]}, experiment={self.experiment!r}, name={self.name!r}, status={self.status!r})"


_RUN_COLUMNS = "id, experiment, name, status, parent_id, start_time, end_time, pid, host, pid_start, heartbeat, system"


class Store:
    """Read access to a local store. Safe to use while other processes write to it."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.db_path = os.path.join(self.path, DB_NAME)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not os.path.exists(self.db_path):
                # an empty directory is an empty store: create the schema so that later reads see
                # runs written afterwards through the same connection
                init_store(self.path)
            try:
                conn = _connect(self.db_path)
                _check_db(conn, self.db_path)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.db_path} is not a valid trackhooks store ({exc})") from exc
            self._local.conn = conn
        return conn

    @_damaged_store_error
    def _select(self, where: str = "", args: tuple = ()) -> list[RunRecord]:
        try:
            rows = self._db().execute(f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY start_time, rowid",
                                      args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read store {self.path}: {exc}") from exc
        return [RunRecord(self, r) for r in rows]

    def runs(self, experiment: str | None = None, status: str | None = None) -> list[RunRecord]:
        """Runs, oldest first, optionally of one experiment and/or one (effective) status."""
        if experiment is not None:
            recs = self._select("WHERE experiment=?", (experiment,))
        else:
            recs = self._select()
        if status is not None:
            recs = [r for r in recs if r.status == status]
        return recs

    def run(self, run_id: str) -> RunRecord:
        """The run with this id, or the only run whose id starts with this prefix."""
        if not isinstance(run_id, str) or not run_id:
            raise RunNotFoundError(f"no run {run_id!r} in {self.path}")
        recs = self._select("WHERE id=?", (run_id,))
        if recs:
            return recs[0]
        escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        recs = self._select("WHERE id LIKE ? ESCAPE '\\'", (escaped + "%",))
        if not recs:
            raise RunNotFoundError(f"no run {run_id!r} in {self.path}")
        if len(recs) > 1:
            raise AmbiguousRunError(
                f"run id prefix {run_id!r} matches {len(recs)} runs in {self.path}: "
                + ", ".join(r.id[:12] for r in recs[:5]))
        return recs[0]

    def runs_using(self, digest: str) -> list[RunRecord]:
        """Runs that logged a dataset with this digest (or digest prefix), oldest first."""
        escaped = digest.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self._select("WHERE id IN (SELECT run_id FROM datasets WHERE digest LIKE ? ESCAPE '\\')",
                            (escaped + "%",))

    @_damaged_store_error
    def experiments(self) -> list[str]:
        return [r[0] for r in self._db().execute("SELECT DISTINCT experiment FROM runs ORDER BY experiment")]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def resolve_uri(uri: str | os.PathLike | None) -> str:
    """store= / $TRACKHOOKS_URI / ./.trackhooks, as an absolute directory path."""
    if uri is None:
        uri = os.environ.get("TRACKHOOKS_URI") or ".trackhooks"
    uri = os.fspath(uri)
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return os.path.abspath(os.path.expanduser(uri))


def open_store(uri: str | os.PathLike | None = None) -> Store:
    """Open a local store for reading. ``None`` -> ``$TRACKHOOKS_URI`` -> ``./.trackhooks``."""
    path = resolve_uri(uri)
    if not os.path.exists(path):
        raise StoreNotFoundError(f"no trackhooks store at {path} (nothing has been logged there yet)")
    if not os.path.isdir(path):
        raise StoreError(f"store path {path} is not a directory")
    store = Store(path)
    if os.path.exists(store.db_path):
        store._db()  # fail now, naming the path, if the database is corrupt or from a newer version
    return store


def is_local_uri(uri: str) -> bool:
    if uri.startswith("file://"):
        return True
    head, sep, _ = uri.partition(":")
    if not sep:
        return True
    # "C:\..." style drive letters and relative paths with a colon later on are paths, schemes are not
    return len(head) == 1 or not head.replace("+", "").replace("-", "").replace(".", "").isalnum() or "/" in head


def nan_safe(value: float) -> float | str:
    """JSON-friendly number for CLI/report output (NaN and inf as strings)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
