"""The SQLite engine: the embedded local store, one directory with a SQLite database (WAL) and files.

Layout::

    <store>/trackhooks.db          runs, params, tags, metric blocks, checkpoints, artifacts, datasets, media
    <store>/artifacts/ab/abcdef... artifact and media files named by their sha256

Metric points are stored in blocks: one row per (run, key, writer batch) holding packed arrays of
steps, epochs, values and timestamps. Packing keeps NaN/inf exact (SQLite would turn NaN into NULL),
lets one transaction ingest millions of points per second, and reading one series touches only the
blocks of that key (primary key ``(key_id, seq)``), never other runs.

``LocalStoreSink`` is the write side (the writer thread only); ``SQLiteStore`` the read side.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import warnings
TYPE_CHECKING = False  # typing (and the re it loads) is not imported at run time: see benchmarks/README.md
if TYPE_CHECKING:
    from typing import Any, Hashable, Sequence

from ..errors import StoreError
from ..sink import Batch, Sink
from .api import Store, _loads
from .housekeeping import SQLiteHousekeeping
from .records import NO_EPOCH, NO_EPOCH_BYTES, pack

SCHEMA_VERSION = 2
DB_NAME = "trackhooks.db"
BUSY_TIMEOUT_MS = 60_000

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
    system TEXT NOT NULL DEFAULT '{}',
    note TEXT,
    archived INTEGER NOT NULL DEFAULT 0
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
CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER,
    time REAL NOT NULL,
    data TEXT NOT NULL DEFAULT '{}',
    sha256 TEXT,
    ext TEXT,
    width INTEGER,
    height INTEGER
);
CREATE INDEX IF NOT EXISTS media_by_run ON media (run_id, key, id);
CREATE INDEX IF NOT EXISTS media_by_file ON media (sha256);
CREATE INDEX IF NOT EXISTS artifacts_by_file ON artifacts (sha256);
"""
# schema version -> statements that bring a store of the version before it up to it (one transaction)
_UPGRADES = {
    2: ["ALTER TABLE runs ADD COLUMN note TEXT", "ALTER TABLE runs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0"],
}
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
    import json  # not at module level: json and re are a few ms of the first start_run

    return json.dumps(value, allow_nan=True, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _connect(db_path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                               isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
    return conn  # timeout= is SQLite's busy timeout (sqlite3_busy_timeout), no PRAGMA needed


def _check_db(conn: sqlite3.Connection, path: str) -> int | None:
    """Raise StoreError naming ``path`` unless it is a trackhooks store this version can read (or
    an empty database); return its schema version (None for an empty or unversioned one)."""
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return None  # a new, empty database
        if "meta" not in tables:
            raise StoreError(f"{path} is a SQLite database but not a trackhooks store; "
                             "point store= at another directory")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not a valid trackhooks store ({exc}); move it away or point store= elsewhere"
        ) from exc
    if row is None:
        return None
    try:
        version = int(row[0])
    except ValueError:
        raise StoreError(f"{path}: unreadable schema version {row[0]!r}") from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer trackhooks (schema {version}, this one reads {SCHEMA_VERSION}); "
            "upgrade trackhooks to read or write it"
        )
    return version


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def _stored_version(conn: sqlite3.Connection) -> int | None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return None if row is None else int(row[0])


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring an older store up to SCHEMA_VERSION in place, in one transaction (all or nothing)."""
    version = _stored_version(conn)
    if version is None or version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _stored_version(conn)  # another process may have upgraded it meanwhile
        if version is not None and version < SCHEMA_VERSION:
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in _UPGRADES.get(v, []):
                    conn.execute(stmt)
            for stmt in _statements():  # the tables and indexes later versions added
                conn.execute(stmt)
            conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def init_store(path: str) -> str:
    """Create (if needed) and validate the store directory; return the database path.

    Raises StoreError naming ``path`` when the directory cannot be created or written, or when it
    holds something that is not a trackhooks store.
    """
    db_path, conn = _open_store(path)
    conn.close()
    return db_path


def _open_store(path: str) -> tuple[str, sqlite3.Connection]:
    """``init_store``, handing over the connection it checked the store with (open, in autocommit).

    The first connection of a process to a WAL database creates its -wal and -shm files, and the
    last one to close deletes them again: closing the check's connection and opening the next one
    at once cost a delete and a re-create of both (2-4 ms of the first ``start_run`` on this disk).
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
            if _check_db(conn, db_path) == SCHEMA_VERSION:
                # a store of this version has every table and is in WAL mode already (both persist):
                # the no-op write transaction below cost an fsync (tens of ms on a busy disk) on the
                # first start_run of every process; a store this process cannot write must still
                # fail here, naming the path, and not later on the writer thread
                for where in (path, os.path.join(path, "artifacts"), db_path):
                    if not os.access(where, os.W_OK):
                        raise StoreError(f"the store {path} cannot be written ({where} is read-only for this "
                                         "process); check its permissions or point store= elsewhere")
                return db_path, conn
            conn.execute("PRAGMA journal_mode=WAL")
            _upgrade(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _statements():
                    conn.execute(stmt)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            _check_db(conn, db_path)
            return db_path, conn
        except BaseException:
            conn.close()
            raise
    except StoreError:
        raise
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{db_path} is not a valid trackhooks store or cannot be written ({exc}); "
            "check permissions and free space, or point store= elsewhere"
        ) from exc


# --------------------------------------------------------------------------------------------
# write side


def _caller_settings(conn: sqlite3.Connection) -> sqlite3.Connection:
    """The connection ``start_run`` writes a run's row through, on the caller's thread."""
    conn.execute("PRAGMA busy_timeout=2000")  # busy: give up and let the writer record the run
    # as on the writer's connection: in WAL mode a commit survives the process being killed without
    # an fsync (only power loss can take it); FULL cost an fsync per start_run, 2-100 ms of the
    # caller's time on a busy disk
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class LocalStoreSink(Sink):
    """Writes batches into one local store. Used only from the writer thread."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.name = f"local store {self.path}"
        self.db_path, conn = _open_store(self.path)
        self._conn: sqlite3.Connection | None = None
        # the check's connection becomes the caller's (see _open_store and write_run_start_now)
        self._caller_conn: sqlite3.Connection | None = None
        try:
            self._caller_conn = _caller_settings(conn)
        except sqlite3.Error:  # write_run_start_now connects again, or leaves the row to the writer
            conn.close()
        self._caller_lock = threading.Lock()
        # run_id -> key -> [key_id, next_seq, n], for the runs still open in this process: a run's
        # entry is dropped when its end is written (a resumed run reads its state again)
        self._keys: dict[str, dict[str, list[int]]] = {}

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            # the connection start_run checked the store and wrote the run's row through becomes the
            # writer's: a process that records one run (a training script) then opens one connection,
            # not two (0.5-0.6 ms of the first drain, inside a short fit's finish(): the connection, its
            # settings and SQLite's reading of the schema); a later start_run opens its own
            with self._caller_lock:
                conn, self._caller_conn = self._caller_conn, None
            if conn is not None:
                try:
                    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                except sqlite3.Error:
                    conn.close()
                    conn = None
            if conn is None:
                conn = _connect(self.db_path)
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # checkpoint the WAL every ~40 MB instead of every 4 MB: checkpoints (with their fsync)
            # were half of the ingest time; commits stay durable against a crash of the process
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            # this build of SQLite zeroes every freed page (SECURE_DELETE), and the pages this connection
            # frees are a run's live console chunks once its console.log holds the same bytes: 1-5 ms per
            # 2 MB inside finish() here, 0.1 ms without; FAST still scrubs rows replaced inside a page
            conn.execute("PRAGMA secure_delete=FAST")
            self._conn = conn
        return self._conn

    def write_run_start_now(self, r: Any, params: dict[str, Any] | None = None,
                            tags: dict[str, str] | None = None) -> bool:
        """Make a run's row durable from the caller's thread (start_run), in one short transaction.

        A round trip through the writer thread costs a GIL hand-over or two (5 ms each on a busy
        machine); this costs a millisecond or two. The same RunStart still goes through the writer
        (the insert is idempotent) so mirrors see it. Returns False, without raising, if the store
        is busy or failing: the writer then records the run a moment later.
        """
        with self._caller_lock:
            try:
                if self._caller_conn is None:
                    self._caller_conn = _caller_settings(_connect(self.db_path))
                conn = self._caller_conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._apply(conn, Batch(runs=[r], params={r.run_id: params} if params else {},
                                            tags={r.run_id: tags} if tags else {}))
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
        # one statement per kind of record for all the batch's runs, not one per run: a search's
        # finish() writes its twenty-odd candidates in one batch (each statement prepared and stepped
        # is Python and SQLite work the finish() waits for)
        fresh = set()
        inserts = []
        for r in batch.runs:
            if r.resumed:
                conn.execute(
                    "UPDATE runs SET status='running', end_time=NULL, pid=?, host=?, pid_start=?, heartbeat=? "
                    "WHERE id=?", (r.pid, r.host, r.pid_start, time.time(), r.run_id))
            else:
                fresh.add(r.run_id)
                inserts.append((r.run_id, r.experiment, r.name, "running", r.parent_id, r.start_time, r.pid, r.host,
                                r.pid_start, time.time()))
        if inserts:
            conn.executemany(
                "INSERT OR IGNORE INTO runs (id, experiment, name, status, parent_id, start_time, pid, host, "
                "pid_start, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?)", inserts)
        if batch.params:
            conn.executemany("INSERT OR REPLACE INTO params (run_id, key, value) VALUES (?,?,?)",
                             [(run_id, k, _dumps(v)) for run_id, params in batch.params.items()
                              for k, v in params.items()])
        if batch.tags:
            conn.executemany("INSERT OR REPLACE INTO tags (run_id, key, value) VALUES (?,?,?)",
                             [(run_id, k, v) for run_id, tags in batch.tags.items() for k, v in tags.items()])
        first_system = []
        for run_id, system in batch.system.items():
            if run_id in fresh:  # started in this batch: nothing recorded to merge with yet
                first_system.append((_dumps(system), run_id))
                continue
            row = conn.execute("SELECT system FROM runs WHERE id=?", (run_id,)).fetchone()
            merged = _loads(row[0]) if row and row[0] else {}
            merged.update(system)
            conn.execute("UPDATE runs SET system=? WHERE id=?", (_dumps(merged), run_id))
        if first_system:
            conn.executemany("UPDATE runs SET system=? WHERE id=?", first_system)
        if batch.metrics:
            self._write_metrics(conn, batch)
        # a run's last chunks arrive with its console.log, which replaces the run's chunks in this
        # transaction: storing them first cost the finish an insert and a delete of the whole log
        # (2 MB for 100 000 prints: ~20 ms of a 70 ms loop)
        final = {a.run_id for a in batch.artifacts if a.name == "console.log"} if batch.console else ()
        if batch.console:
            self._write_console(conn, [c for c in batch.console if c.run_id not in final])
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
                if a.run_id in final and a.name == "console.log":  # its last chunks stay rows, as before
                    self._write_console(conn, [c for c in batch.console if c.run_id == a.run_id])
                # the source vanished between logging and copying: nothing left to keep
                warnings.warn(f"trackhooks: artifact {a.name!r}: {a.source} was deleted before it could be copied",
                              RuntimeWarning, stacklevel=2)
                continue
            conn.execute("INSERT OR REPLACE INTO artifacts (run_id, name, sha256, size, time) VALUES (?,?,?,?,?)",
                         (a.run_id, a.name, a.sha256, a.size, a.time))
            if a.name == "console.log":  # the finished log replaces its live chunks
                conn.execute("DELETE FROM console WHERE run_id=?", (a.run_id,))
        if batch.datasets:
            conn.executemany(
                "INSERT OR REPLACE INTO datasets (run_id, name, context, digest, schema, n_rows, source, sampled, time)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [(d.run_id, d.name, d.context, d.digest, _dumps(d.schema), d.n_rows, d.source, int(d.sampled), d.time)
                 for d in batch.datasets])
        if batch.media:
            for m in batch.media:
                if m.file is not None and m.sha256:
                    self._store_bytes(m.sha256, m.file)
            conn.executemany(
                "INSERT INTO media (run_id, key, kind, step, epoch, time, data, sha256, ext, width, height) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(m.run_id, m.key, m.kind, m.step, m.epoch, m.time, _dumps(m.data), m.sha256, m.ext, m.width,
                  m.height) for m in batch.media])
        if batch.notes:
            conn.executemany("UPDATE runs SET note=? WHERE id=?", [(note, run_id) for run_id, note in batch.notes.items()])
        if batch.heartbeats:
            conn.executemany("UPDATE runs SET heartbeat=? WHERE id=?", [(hb, run_id) for run_id, hb in batch.heartbeats.items()])
        if batch.status:
            now = time.time()
            conn.executemany("UPDATE runs SET status=?, end_time=?, heartbeat=? WHERE id=?",
                             [(s.status, s.end_time, now, s.run_id) for s in batch.status])
            for s in batch.status:
                if s.end_time is not None:
                    self._keys.pop(s.run_id, None)

    @staticmethod
    def _write_console(conn: sqlite3.Connection, chunks: list) -> None:
        conn.executemany("INSERT OR REPLACE INTO console (run_id, seq, data) VALUES (?,?,?)",
                         [(c.run_id, c.seq, c.data) for c in chunks])

    @staticmethod
    def _load_keys(conn: sqlite3.Connection, new: dict[str, list[str]], keys: dict) -> None:
        """Create the runs' keys not seen yet and read their ids, counts and next block numbers.

        Two statements per writer cycle for all of its runs (per ~250 runs and ~250 keys), whatever
        the number of keys: a search's candidates, all started in one batch, each bring several new
        keys, and every statement is Python and SQLite work (and GIL hand-overs) the writer does. The
        runs x keys cross product is looked up through the (run_id, key) index and filtered here.
        """
        conn.executemany("INSERT OR IGNORE INTO metric_keys (run_id, key) VALUES (?,?)",
                         [(run_id, k) for run_id, ks in new.items() for k in ks])
        wanted = {(run_id, k) for run_id, ks in new.items() for k in ks}
        runs = list(new)
        names = sorted({k for ks in new.values() for k in ks})
        for i in range(0, len(runs), 250):  # far below SQLite's limit on bound parameters
            part_runs = runs[i:i + 250]
            for j in range(0, len(names), 250):
                part_keys = names[j:j + 250]
                for key_id, run_id, key, count, seq in conn.execute(
                        "SELECT k.id, k.run_id, k.key, k.n, (SELECT COALESCE(MAX(b.seq), -1) + 1 FROM metric_blocks b "
                        f"WHERE b.key_id = k.id) FROM metric_keys k WHERE k.run_id IN ({','.join('?' * len(part_runs))}) "
                        f"AND k.key IN ({','.join('?' * len(part_keys))})", (*part_runs, *part_keys)):
                    if (run_id, key) in wanted:
                        keys[run_id][key] = [key_id, seq, count]

    def _write_metrics(self, conn: sqlite3.Connection, batch: Batch) -> None:
        rows = []
        key_updates = []
        new_keys: dict[str, list[str]] = {}
        for run_id, per_key in batch.metrics.items():
            known = self._keys.get(run_id)
            if known is None:
                known = self._keys[run_id] = {}
            new = [k for k, cols in per_key.items() if cols.values and k not in known]
            if new:
                new_keys[run_id] = new
        if new_keys:
            self._load_keys(conn, new_keys, self._keys)
        for run_id, per_key in batch.metrics.items():
            known = self._keys[run_id]
            for key, cols in per_key.items():
                n = len(cols.values)
                if not n:
                    continue
                state = known[key]
                epochs = cols.epochs
                if epochs[0] is None and epochs.count(None) == n:
                    epoch_blob = NO_EPOCH_BYTES * n  # the common case: no epochs at all
                else:
                    if None in epochs:
                        epochs = [NO_EPOCH if e is None else e for e in epochs]
                    epoch_blob = pack("q", epochs)
                rows.append((state[0], state[1], n, pack("q", cols.steps), epoch_blob,
                             pack("d", cols.values), pack("d", cols.timestamps)))
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
                import shutil

                shutil.copyfile(a.source, tmp)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _store_bytes(self, sha256: str, data: bytes) -> None:
        dest = artifact_path(self.path, sha256)
        if os.path.exists(dest):
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
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



def artifact_path(store_path: str, sha256: str) -> str:
    return os.path.join(store_path, "artifacts", sha256[:2], sha256)


class SQLiteStore(SQLiteHousekeeping, Store):
    """The read API over a local store directory (one SQLite connection per thread)."""

    engine = "sqlite"
    _run_order = "start_time, rowid"

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        self.uri = self.path
        self.db_path = os.path.join(self.path, DB_NAME)
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not os.path.exists(self.db_path):
                # an empty directory is an empty store: create the schema so that later reads see
                # runs written afterwards through the same connection
                init_store(self.path)
            try:
                conn = _connect(self.db_path)
                version = _check_db(conn, self.db_path)
                if version is not None and version < SCHEMA_VERSION:
                    _upgrade(conn)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.db_path} is not a valid trackhooks store ({exc})") from exc
            self._local.conn = conn
        return conn

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self._db().execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
            # a damaged database (truncated, overwritten): name the store and the remedy
            raise StoreError(f"the store {self.path} is damaged ({exc}): restore {self.db_path} from a backup, "
                             "or move it away and start a new store") from exc

    def _select(self, where: str = "", args: Sequence[Any] = (), *, limit: int | None = None):
        try:
            return super()._select(where, args, limit=limit)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot read store {self.path}: {exc}") from exc

    def _readonly_query(self, sql: str, limit: int, timeout_s: float):
        from .readonly import sqlite_query

        if not os.path.exists(self.db_path):
            init_store(self.path)
        return sqlite_query(self.db_path, sql, killed_ids=self._killed_ids(), limit=limit, timeout_s=timeout_s)

    def _known_file(self, sha256: str) -> str | None:
        return artifact_path(self.path, sha256)

    def _artifact_file(self, sha256: str) -> str:
        return artifact_path(self.path, sha256)

    def _cursor_load(self, mirror: str, run_id: str) -> tuple[str, int] | None:
        conn = self._db()
        conn.execute(MIRROR_CURSORS_DDL)
        row = conn.execute("SELECT state, version FROM mirror_cursors WHERE mirror=? AND run_id=?",
                           (mirror, run_id)).fetchone()
        return None if row is None else (row[0], row[1])

    def _cursor_commit(self, mirror: str, run_id: str, state: str, version: int, now: float) -> bool:
        conn = self._db()
        if version < 0:
            cur = conn.execute(
                "INSERT OR IGNORE INTO mirror_cursors (mirror, run_id, state, version, updated) VALUES (?,?,?,0,?)",
                (mirror, run_id, state, now))
        else:
            cur = conn.execute(
                "UPDATE mirror_cursors SET state=?, version=version+1, updated=? "
                "WHERE mirror=? AND run_id=? AND version=?", (state, now, mirror, run_id, version))
        return cur.rowcount == 1

    def change_token(self) -> Hashable:
        db = self._db()
        return (db.execute("PRAGMA data_version").fetchone()[0], db.total_changes)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
