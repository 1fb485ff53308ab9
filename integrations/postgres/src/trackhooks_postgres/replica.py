"""Replication of runs from a local store (the spool, or any local store with a ``postgresql://``
mirror) into a team store.

``PostgresReplica`` is a mirror sink (``trackhooks.plugin.ReplaySink``): the writer thread only
notes which runs changed; the sink's own thread replays each run from its cursor in the local store.
Every write is an idempotent upsert in one transaction per round, pipelined (the round's statements
go out together; it waits for the server twice):

- metric blocks are copied as they are (packed bytes, the local block number as ``seq``, binary
  parameters) with ``ON CONFLICT DO NOTHING``, and the key's summary (count, last, min, max) is
  advanced in the same statement by exactly the blocks that were inserted, so a round replayed after
  a lost acknowledgement, or by a ``trackhooks sync`` racing the live process, counts nothing twice;
- the run row carries the stored status, pid, host, pid start and heartbeat (so ``killed`` reads the
  same on every host), and a terminal status only once every point is in;
- artifact and media files go into ``files``/``file_chunks`` (content-addressed, chunked, shared by
  every run) or into a shared artifact directory.

The cursor (in the local store) only says where to read next; it moves after the team store
committed, and the live replication writes it into the local store at most every CURSOR_EVERY_S
(``trackhooks sync`` after every run). A database that is down raises ``ConnectionError`` (an outage: the sink warns once and
catches up later); a statement that times out raises ``TimeoutError``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import shutil
import threading
import time
from typing import Any

from trackhooks.plugin import TERMINAL, Cursor, CursorConflict, ReplaySink, RunView, unpack, warn_once

from . import conninfo, schema
from .engine import shared_file
from .housekeeping import GC_LOCK

CHUNK_BYTES = 4 * 1024 * 1024  # one file_chunks row
ROUND_BLOCKS = 512  # metric blocks read from the local store per key per round (bounds memory)
# points per round over all keys: bounds memory (their bytes here, and in libpq's buffer while the
# pipeline sends them)
ROUND_POINTS = 1_000_000
# points per statement: the round's statements go out one after the other in a pipeline, so the
# server stores one while the next is read and packed here (and every array stays far below
# PostgreSQL's 1 GB a value)
STATEMENT_POINTS = 250_000
STATEMENT_TIMEOUT_MS = 60_000
# The live replication writes a run's cursor into the spool at most this often (and when the run is
# complete). The cursor only says where to read next: the team store itself makes every block and
# record count once, so a cursor that lags after a crash only means re-reading a few seconds of the
# spool, all of which conflicts. Writing it every round cost a write transaction on the spool per
# round, waiting for the writer thread's own transactions there (tens of ms each on a busy machine).
CURSOR_EVERY_S = 5.0

RUN_COLUMNS = ("id, experiment, name, status, parent_id, start_time, end_time, pid, host, pid_start, heartbeat, "
               "system, note, archived")

_UPSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
    "ON CONFLICT (id) DO UPDATE SET experiment=EXCLUDED.experiment, name=EXCLUDED.name, status=EXCLUDED.status, "
    "parent_id=EXCLUDED.parent_id, start_time=EXCLUDED.start_time, end_time=EXCLUDED.end_time, pid=EXCLUDED.pid, "
    "host=EXCLUDED.host, pid_start=EXCLUDED.pid_start, heartbeat=EXCLUDED.heartbeat, system=EXCLUDED.system, "
    "note=EXCLUDED.note, archived=EXCLUDED.archived "
    # two replayers of one run (the live process and `trackhooks sync`): the older view never wins
    "WHERE runs.heartbeat IS NULL OR EXCLUDED.heartbeat IS NULL OR EXCLUDED.heartbeat >= runs.heartbeat")
_NEW_KEYS = ("INSERT INTO metric_keys (run_id, key) SELECT %s, unnest(%s::text[]) "
             "ON CONFLICT (run_id, key) DO NOTHING")
# One statement for the new blocks of several keys (up to STATEMENT_POINTS points): insert what the
# team store lacks, then advance each key's summary by exactly the blocks inserted, so a block sent
# again (a round whose acknowledgement was lost, a `trackhooks sync` racing the live process, a
# spool that lost its cursors) conflicts and counts nothing. Parameters travel in binary (%b):
# psycopg's text form of a bytea[] escapes every byte in Python, which was most of a round's time.
# Each block brings its summary (min, max, last step and value; NaN as NULL), computed here from the
# bytes at hand; "last" moves only to a later block than metric_keys.last_seq, compared on the row
# the update has locked.
_SEND_BLOCKS = (
    "WITH ins AS (INSERT INTO metric_blocks (key_id, seq, n, steps, epochs, vals, times) "
    "SELECT (SELECT k.id FROM metric_keys k WHERE k.run_id = %(run)s AND k.key = b.key), b.seq, b.n, b.steps, "
    "b.epochs, b.vals, b.times "
    # unnest() in the select list streams the blocks into the insert; in FROM it would first copy
    # them into a tuplestore (to a temporary file beyond work_mem), and a join would hash them again
    "FROM (SELECT unnest(%(key)b::text[]) AS key, unnest(%(seq)b::int4[]) AS seq, unnest(%(n)b::int4[]) AS n, "
    "unnest(%(steps)b::bytea[]) AS steps, unnest(%(epochs)b::bytea[]) AS epochs, unnest(%(vals)b::bytea[]) AS vals, "
    "unnest(%(times)b::bytea[]) AS times) b "
    "ON CONFLICT DO NOTHING RETURNING key_id, seq), "
    # the summaries apart from the bytes: a CTE read twice is materialised, and blocks beyond
    # work_mem would go through a temporary file. Keys are looked up by (run, key), the unique
    # index: by key alone would visit that key of every run in the store
    "sm AS (SELECT (SELECT k.id FROM metric_keys k WHERE k.run_id = %(run)s AND k.key = u.key) AS key_id, u.* "
    "FROM unnest(%(key)b::text[], %(seq)b::int4[], %(n)b::int4[], %(lo)b::float8[], %(hi)b::float8[], "
    "%(ls)b::int8[], %(lv)b::float8[]) AS u (key, seq, n, lo, hi, ls, lv)), "
    "s AS (SELECT sm.key_id, sum(sm.n) AS n, min(sm.lo) AS lo, max(sm.hi) AS hi, max(sm.seq) AS seq, "
    "(array_agg(sm.ls ORDER BY sm.seq DESC))[1] AS ls, (array_agg(sm.lv ORDER BY sm.seq DESC))[1] AS lv "
    "FROM ins JOIN sm ON sm.key_id = ins.key_id AND sm.seq = ins.seq GROUP BY sm.key_id) "
    "UPDATE metric_keys m SET n = m.n + s.n, min_value = LEAST(m.min_value, s.lo), "
    "max_value = GREATEST(m.max_value, s.hi), "
    "last_step = CASE WHEN m.last_seq IS NULL OR s.seq > m.last_seq THEN s.ls ELSE m.last_step END, "
    "last_value = CASE WHEN m.last_seq IS NULL OR s.seq > m.last_seq THEN s.lv ELSE m.last_value END, "
    "last_seq = GREATEST(m.last_seq, s.seq) FROM s WHERE m.id = s.key_id RETURNING s.n")


_BLOCK_COLUMNS = ("key", "seq", "n", "steps", "epochs", "vals", "times", "lo", "hi", "ls", "lv")


def _upsert_pairs(conn: Any, table: str, run_id: str, pairs: list) -> None:
    """A run's params or tags (``table``, one of the two) as stored locally, resent whole."""
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} (run_id, key, value) VALUES (%s,%s,%s) "
                        "ON CONFLICT (run_id, key) DO UPDATE SET value=EXCLUDED.value",
                        [(run_id, k, v) for k, v in pairs])


def _digest(rows: Any) -> str:
    return hashlib.sha1(repr(rows).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _block_summary(n: int, steps: bytes, vals: bytes) -> tuple[float | None, float | None, int | None, float | None]:
    """(min, max, last step, last value) of one block, NaN ignored (stored as NULL, like SQLite)."""
    if not n:
        return None, None, None, None
    arr = unpack("d", [vals])
    lo, hi = min(arr), max(arr)
    if lo != lo or hi != hi:  # a NaN first poisons min/max
        finite = [v for v in arr if v == v]
        lo, hi = (min(finite), max(finite)) if finite else (None, None)
    last = arr[-1]
    return lo, hi, unpack("q", [steps[-8:]])[0], last if last == last else None


class PostgresReplica(ReplaySink):
    """A mirror sink for ``postgresql://...``: the team store a run (or a local store) replicates into."""

    def __init__(self, uri: str, options: dict[str, Any] | None = None):
        self.target = conninfo.parse(uri)
        super().__init__(cursor_key=self.target.display, name=f"team store {self.target.display}")
        self._conn: Any = None
        self._conn_pid = os.getpid()
        self._store_id: str | None = None
        self._verified: set[str] = set()
        self._known_files: set[str] = set()
        self._replay_lock = threading.Lock()
        # run id -> (its local store, its cursor as the team store has it, ahead of the stored one)
        self._unsaved: dict[str, tuple[Any, Cursor]] = {}
        self._saved_at: dict[str, float] = {}

    # ---- the connection ---------------------------------------------------------------------
    def _db(self):
        if self._conn is not None and self._conn_pid != os.getpid():
            # a forked child: the connection's socket is the parent's; closing it here would end
            # the parent's session, so only forget it (and the parent's cursors)
            self._conn = None
            self._unsaved.clear()
            self._saved_at.clear()
        if self._conn is None or self._conn.closed:
            # autocommit: rounds write BEGIN and COMMIT themselves (see _transaction)
            conn = conninfo.connect(self.target, autocommit=True, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
            try:
                schema.ensure(conn, self.target.where)
                row = conn.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
            except BaseException:
                conn.close()
                raise
            self._store_id = row[0] if row else ""
            self._conn = conn
            self._conn_pid = os.getpid()
            self._verified.clear()
            self._known_files.clear()
        return self._conn

    def _lost(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass

    def close_all(self) -> None:
        self._lost()

    def close(self) -> None:
        super().close()
        if self._thread is None or not self._thread.is_alive():
            self._save_cursors()
            self._lost()

    def close_run(self, run_id: str) -> None:
        self._unsaved.pop(run_id, None)
        self._saved_at.pop(run_id, None)

    def _save_cursors(self) -> None:
        """Write the cursors the live replication held back (the process is ending)."""
        for run_id, (_store, cur) in list(self._unsaved.items()):
            try:
                cur.commit()
            except Exception:  # noqa: BLE001 - a hint only: another replayer moved it, or the spool is busy
                pass
            self._unsaved.pop(run_id, None)

    # ---- replay -------------------------------------------------------------------------------
    def replay(self, view: RunView, cursor: Cursor) -> dict[str, Any]:
        import psycopg

        stats: dict[str, Any] = {"points": 0, "params": 0, "tags": 0, "artifacts": 0, "checkpoints": 0,
                                 "media": 0, "datasets": 0, "status": None, "complete": False}
        with self._replay_lock:
            run_id = view.rec.id
            store, held = self._unsaved.get(run_id, (None, None))
            if held is not None and held.version == cursor.version and store is view.store:
                # nobody committed the cursor since: what this process sent is further on
                cursor.state.clear()
                cursor.state.update(copy.deepcopy(held.state))
            try:
                conn = self._db()
                self._check_cursor(conn, view, cursor)
                while self._round(conn, view, cursor, stats):
                    pass
                live = threading.current_thread() is self._thread
                now = time.monotonic()
                if not live or stats["complete"] or now - self._saved_at.get(run_id, -CURSOR_EVERY_S) >= \
                        CURSOR_EVERY_S:
                    # `trackhooks sync` (its process ends after the run) and finished runs: now
                    cursor.commit()
                    self._unsaved.pop(run_id, None)
                    self._saved_at[run_id] = now
            except psycopg.errors.QueryCanceled as exc:
                self._lost()
                raise TimeoutError(f"the team store {self.target.where} timed out: "
                                   f"{conninfo.reason(self.target, exc)}") from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._lost()
                raise ConnectionError(f"lost the team store {self.target.where}: "
                                      f"{conninfo.reason(self.target, exc)}") from None
            except psycopg.Error as exc:
                # a pipeline that failed leaves its transaction for the server to end: start afresh
                self._lost()
                # the server refuses this run's data (not an outage): named once, the others go on
                raise ValueError(f"the team store {self.target.where} refused run {view.rec.id[:8]}: "
                                 f"{conninfo.reason(self.target, exc)}") from None
            except CursorConflict:
                raise  # another replayer moved the cursor: the caller reloads it and goes on
            except BaseException:
                self._lost()
                raise
        return stats

    def _check_cursor(self, conn, view: RunView, cursor: Cursor) -> None:
        st = cursor.state
        run_id = view.rec.id
        if st.get("db") == self._store_id and run_id in self._verified:
            return
        if st.get("db") == self._store_id and st:
            # once per run and process: a cursor is only as good as the database's memory (restored
            # from a backup, the run deleted): if the run is not there, send everything again
            present = conn.execute("SELECT 1 FROM runs WHERE id=%s", (run_id,)).fetchone() is not None
            if present:
                self._verified.add(run_id)
                return
        st.clear()
        st["db"] = self._store_id
        self._verified.add(run_id)

    @staticmethod
    @contextlib.contextmanager
    def _transaction(conn):
        """One round's transaction, pipelined where libpq can: every statement goes out at once and
        the round waits for the server twice (the deleted-run check, then the commit), where it
        waited once per statement before; each wait costs a GIL hand-over in a process whose
        training thread keeps the GIL busy. ``raise psycopg.Rollback()`` inside rolls back quietly."""
        import psycopg

        if not psycopg.Pipeline.is_supported():  # libpq before 14 (psycopg[c] on an old system)
            with conn.transaction():
                yield
            return
        # BEGIN and COMMIT by hand on the autocommit connection: psycopg's transaction() in a
        # pipeline nests pipelines of its own, whose exit logs "error ignored terminating
        # <Pipeline ...>" to stderr whenever the server refused a statement
        failure: BaseException | None = None
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                try:
                    yield
                    conn.execute("COMMIT")
                except psycopg.Rollback:
                    conn.execute("ROLLBACK")
                except psycopg.Error as exc:
                    failure = exc  # raised below, once out of the aborted pipeline
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except psycopg.errors.PipelineAborted:
            if failure is None:
                raise
        if failure is not None:
            raise failure

    def _round(self, conn, view: RunView, cursor: Cursor, stats: dict[str, Any]) -> bool:
        """One transaction: what is missing (up to ROUND_BLOCKS blocks per key, ROUND_POINTS points in
        all). True if more is left."""
        import psycopg

        local = view.store
        run_id = view.rec.id
        # the round works on a copy: the cursor moves only once the team store has committed
        st = copy.deepcopy(cursor.state)
        row = local._one(f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (run_id,))
        if row is None:
            return False
        sent: dict[str, Any] = dict.fromkeys(("params", "tags", "artifacts", "checkpoints", "media", "datasets"), 0)
        with self._transaction(conn):
            # shared: rounds run side by side, but never during a housekeeping change (gc, delete)
            check = conn.execute("SELECT nextval('changes'), pg_advisory_xact_lock_shared(%s), "
                                 "EXISTS (SELECT 1 FROM deleted_runs WHERE id = %s)", (GC_LOCK, run_id))
            row = list(row)
            final_status = row[3]
            # the run exists (as running) before anything refers to it
            if not st.get("row"):
                first = list(row)
                first[3], first[6] = "running", None
                conn.execute(_UPSERT_RUN, first)

            # params and tags: raw JSON/text as stored locally, resent whole when they changed
            params = local._rows("SELECT key, value FROM params WHERE run_id=? ORDER BY key", (run_id,))
            d = _digest(params)
            if params and st.get("p") != d:
                _upsert_pairs(conn, "params", run_id, params)
                sent["params"] = len(params) - len(st.get("pk", ()))
            st["p"], st["pk"] = d, [k for k, _ in params]
            tags = local._rows("SELECT key, value FROM tags WHERE run_id=? ORDER BY key", (run_id,))
            d = _digest(tags)
            if tags and st.get("t") != d:
                _upsert_pairs(conn, "tags", run_id, tags)
                sent["tags"] = len(tags)
            st["t"] = d

            more, blocks = self._metrics(conn, local, run_id, st)
            self._checkpoints(conn, local, run_id, st, sent)
            self._artifacts(conn, local, run_id, st, sent)
            self._datasets(conn, local, run_id, st, sent)
            self._media(conn, local, run_id, st, sent)

            if more:
                row[3], row[6] = "running", None  # a terminal status only once every point is in
            d = _digest(row)
            if st.get("row") != d:
                conn.execute(_UPSERT_RUN, row)
                if row[3] != st.get("status"):
                    sent["status"] = row[3]
                st["row"], st["status"] = d, row[3]
            # asked last, so that the round's statements are on their way meanwhile; a run
            # deleted from the team store rolls all of them back
            gone = check.fetchone()[2]
            if gone:
                raise psycopg.Rollback()
        if gone:
            # deleted from the team store (`trackhooks rm`): a spool that still has it never brings
            # it back (docs/team.md "Deleting runs")
            warn_once(("pg-deleted-run", self.target.where, run_id),
                      f"trackhooks: run {run_id[:8]} was deleted from the team store {self.target.where}; "
                      "it is not replicated again (it stays in the local store)")
            stats["deleted"] = True
            return False
        # committed (the pipeline's end waited for it): now the cursor may move
        stats["points"] += sum(r[0] for cur in blocks for r in cur.fetchall())
        for k, v in sent.items():
            if k == "status":
                stats["status"] = v
            else:
                stats[k] += v
        cursor.state.clear()
        cursor.state.update(st)
        self._unsaved[run_id] = (local, Cursor(local, cursor.mirror, run_id, copy.deepcopy(st), cursor.version))
        stats["complete"] = not more and final_status in TERMINAL
        return more

    def _metrics(self, conn, local, run_id: str, st: dict) -> tuple[bool, list]:
        """Queue the blocks the team store lacks. Returns (more left, the statements' cursors)."""
        ms: dict[str, list[int]] = st.setdefault("m", {})
        grown = [(key, n) for key, n in local._metric_counts(run_id).items() if ms.get(key, [0, -1])[1] < n]
        if grown:
            # every round, not once per process: a key row a cache remembered may have gone with
            # its run (`trackhooks rm`; the round then rolls back as the run is found deleted)
            conn.execute(_NEW_KEYS, (run_id, [key for key, _ in grown]))
        more = False
        sent: list = []
        cols: dict[str, list] = {c: [] for c in _BLOCK_COLUMNS}
        pending = 0
        budget = ROUND_POINTS
        for key, n in grown:
            if budget <= 0:
                more = True  # the rest next round
                break
            seq0, delivered = ms.get(key, [0, -1])
            blocks = local._metric_blocks(run_id, key, seq0, ROUND_BLOCKS)
            delivered = max(delivered, 0)
            taken = 0
            for seq, bn, steps, epochs, vals, times in blocks:
                if taken and bn > budget:
                    break
                steps, vals = bytes(steps), bytes(vals)
                lo, hi, ls, lv = _block_summary(bn, steps, vals)
                for c, v in zip(_BLOCK_COLUMNS, (key, seq, bn, steps, bytes(epochs), vals, bytes(times), lo, hi, ls, lv)):
                    cols[c].append(v)
                taken += 1
                budget -= bn
                delivered += bn
                seq0 = seq + 1
                pending += bn
                if pending >= STATEMENT_POINTS:
                    # on its way while the next blocks are read: the server stores these meanwhile
                    sent.append(conn.execute(_SEND_BLOCKS, {"run": run_id, **cols}))
                    cols = {c: [] for c in _BLOCK_COLUMNS}
                    pending = 0
            ms[key] = [seq0, delivered]
            if taken < len(blocks) or (len(blocks) >= ROUND_BLOCKS and delivered < n):
                more = True
        if cols["seq"]:
            sent.append(conn.execute(_SEND_BLOCKS, {"run": run_id, **cols}))
        return more, sent

    def _checkpoints(self, conn, local, run_id: str, st: dict, stats: dict) -> None:
        rows = local._rows("SELECT path, step, epoch, metrics, monitor, mode, best, size, sha256, deleted, time "
                           "FROM checkpoints WHERE run_id=? ORDER BY id", (run_id,))
        d = _digest(rows)
        if not rows or st.get("c") == d:
            st["c"] = d
            return
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO checkpoints (run_id, idx, path, step, epoch, metrics, monitor, mode, best, size, sha256, "
                "deleted, time) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (run_id, idx) DO UPDATE SET "
                "path=EXCLUDED.path, step=EXCLUDED.step, epoch=EXCLUDED.epoch, metrics=EXCLUDED.metrics, "
                "monitor=EXCLUDED.monitor, mode=EXCLUDED.mode, best=EXCLUDED.best, size=EXCLUDED.size, "
                "sha256=EXCLUDED.sha256, deleted=EXCLUDED.deleted, time=EXCLUDED.time",
                [(run_id, i, *r) for i, r in enumerate(rows)])
        stats["checkpoints"] += len(rows) - st.get("cn", 0)
        st["c"], st["cn"] = d, len(rows)

    def _artifacts(self, conn, local, run_id: str, st: dict, stats: dict) -> None:
        done: dict[str, str] = st.setdefault("a", {})
        for name, sha, size, t in local._rows("SELECT name, sha256, size, time FROM artifacts WHERE run_id=? "
                                              "ORDER BY time, name", (run_id,)):
            if done.get(name) == sha:
                continue
            if not self._put_file(conn, local, sha, f"artifact {name!r} of run {run_id[:8]}"):
                continue
            conn.execute("INSERT INTO artifacts (run_id, name, sha256, size, time) VALUES (%s,%s,%s,%s,%s) "
                         "ON CONFLICT (run_id, name) DO UPDATE SET sha256=EXCLUDED.sha256, size=EXCLUDED.size, "
                         "time=EXCLUDED.time", (run_id, name, sha, size, t))
            done[name] = sha
            stats["artifacts"] += 1

    def _datasets(self, conn, local, run_id: str, st: dict, stats: dict) -> None:
        rows = local._rows("SELECT name, context, digest, schema, n_rows, source, sampled, time FROM datasets "
                           "WHERE run_id=? ORDER BY time, name", (run_id,))
        d = _digest(rows)
        if rows and st.get("d") != d:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO datasets (run_id, name, context, digest, schema, n_rows, source, sampled, time) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (run_id, digest, context, name) DO UPDATE SET "
                    "schema=EXCLUDED.schema, n_rows=EXCLUDED.n_rows, source=EXCLUDED.source, "
                    "sampled=EXCLUDED.sampled, time=EXCLUDED.time", [(run_id, *r) for r in rows])
            stats["datasets"] += len(rows)
        st["d"] = d

    def _media(self, conn, local, run_id: str, st: dict, stats: dict) -> None:
        done: dict[str, int] = st.setdefault("md", {})
        for key, n in local._media_counts(run_id).items():
            start = done.get(key, 0)
            if start >= n:
                continue
            rows = local._rows("SELECT kind, step, epoch, time, data, sha256, ext, width, height FROM media "
                               "WHERE run_id=? AND key=? ORDER BY id", (run_id, key))[start:]
            out = []
            for i, r in enumerate(rows):
                if r[5]:
                    self._put_file(conn, local, r[5], f"media {key!r} of run {run_id[:8]}")
                out.append((run_id, key, start + i, *r))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO media (run_id, key, idx, kind, step, epoch, time, data, sha256, ext, width, height) "
                    "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (run_id, key, idx) DO NOTHING", out)
            done[key] = start + len(rows)
            stats["media"] += len(rows)

    # ---- files --------------------------------------------------------------------------------
    def _put_file(self, conn, local, sha: str, what: str) -> bool:
        """Make the file with this digest available in the team store; False if the local copy is gone."""
        src = local._artifact_file(sha)
        if self.target.artifact_dir:
            # checked every time (a stat), not remembered: gc may have removed it since
            dest = shared_file(self.target.artifact_dir, sha)
            if not os.path.exists(dest):
                if not os.path.exists(src):
                    return self._missing(what, src)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                tmp = f"{dest}.{os.getpid()}.{threading.get_ident()}.tmp"
                try:
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, dest)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
            self._known_files.add(sha)
            return True
        if conn.execute("SELECT 1 FROM files WHERE sha256=%s", (sha,)).fetchone() is not None:
            return True  # another run (any host) stored the same bytes already
        if not os.path.exists(src):
            return self._missing(what, src)
        parts = 0
        size = 0
        with open(src, "rb") as f:
            while True:
                data = f.read(CHUNK_BYTES)
                if not data and parts:
                    break
                # waited for chunk by chunk: in a pipeline the chunks of a big file would otherwise
                # all sit in libpq's buffer at once
                conn.execute("INSERT INTO file_chunks (sha256, part, data) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING "
                             "RETURNING part", (sha, parts, data)).fetchone()
                parts += 1
                size += len(data)
                if not data:
                    break
        conn.execute("INSERT INTO files (sha256, size, chunks) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING",
                     (sha, size, parts))
        return True

    def _missing(self, what: str, src: str) -> bool:
        warn_once(("pg-missing-file", src), f"trackhooks: {what}: the local copy {src} is gone; "
                  f"{self.name} gets the record without the file")
        return False


