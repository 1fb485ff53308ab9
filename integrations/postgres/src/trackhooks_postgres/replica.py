"""Replication of runs from a local store (the spool, or any local store with a ``postgresql://``
mirror) into a team store.

``PostgresReplica`` is a mirror sink (``trackhooks.plugin.ReplaySink``): the writer thread only
notes which runs changed; the sink's own thread replays each run from its cursor in the local store.
Every write is an idempotent upsert in one transaction per round:

- metric blocks are copied as they are (packed bytes, the local block number as ``seq``) with
  ``ON CONFLICT DO NOTHING``, and the key's summary (count, last, min, max) is advanced in SQL by
  exactly the blocks that were inserted, so a round replayed after a lost acknowledgement, or by a
  ``trackhooks sync`` racing the live process, counts nothing twice;
- the run row carries the stored status, pid, host, pid start and heartbeat (so ``killed`` reads the
  same on every host), and a terminal status only once every point is in;
- artifact and media files go into ``files``/``file_chunks`` (content-addressed, chunked, shared by
  every run) or into a shared artifact directory.

The cursor (in the local store) only says where to read next; it is committed after the team store
committed. A database that is down raises ``ConnectionError`` (an outage: the sink warns once and
catches up later); a statement that times out raises ``TimeoutError``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from typing import Any

from trackhooks.plugin import TERMINAL, Cursor, ReplaySink, RunView, unpack, warn_once

from . import conninfo, schema
from .engine import shared_file
from .housekeeping import GC_LOCK

CHUNK_BYTES = 4 * 1024 * 1024  # one file_chunks row
ROUND_BLOCKS = 512  # metric blocks read from the local store per key per round (bounds memory)
STATEMENT_TIMEOUT_MS = 60_000

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
_INSERT_BLOCKS = (
    "INSERT INTO metric_blocks (key_id, seq, n, steps, epochs, vals, times) "
    "SELECT %s, * FROM unnest(%s::int[], %s::int[], %s::bytea[], %s::bytea[], %s::bytea[], %s::bytea[]) "
    "ON CONFLICT DO NOTHING RETURNING seq")
_ADVANCE_KEY = (
    "UPDATE metric_keys SET n = n + %(n)s, min_value = LEAST(min_value, %(lo)s), "
    "max_value = GREATEST(max_value, %(hi)s), "
    "last_step = CASE WHEN EXISTS (SELECT 1 FROM metric_blocks WHERE key_id = %(id)s AND seq > %(seq)s) "
    "THEN last_step ELSE %(ls)s END, "
    "last_value = CASE WHEN EXISTS (SELECT 1 FROM metric_blocks WHERE key_id = %(id)s AND seq > %(seq)s) "
    "THEN last_value ELSE %(lv)s END WHERE id = %(id)s")


def _digest(rows: Any) -> str:
    return hashlib.sha1(repr(rows).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _summary(blocks: list[tuple]) -> tuple[int, float | None, float | None]:
    """(points, min, max) of some blocks' values, NaN ignored (stored as NULL, like SQLite)."""
    n, lo, hi = 0, None, None
    for _seq, bn, _s, _e, vals, _t in blocks:
        arr = unpack("d", [bytes(vals)])
        n += bn
        if not len(arr):
            continue
        a, b = min(arr), max(arr)
        if a != a or b != b:  # a NaN first poisons min/max
            finite = [v for v in arr if v == v]
            if not finite:
                continue
            a, b = min(finite), max(finite)
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return n, lo, hi


class PostgresReplica(ReplaySink):
    """A mirror sink for ``postgresql://...``: the team store a run (or a local store) replicates into."""

    def __init__(self, uri: str, options: dict[str, Any] | None = None):
        self.target = conninfo.parse(uri)
        super().__init__(cursor_key=self.target.display, name=f"team store {self.target.display}")
        self._conn: Any = None
        self._conn_pid = os.getpid()
        self._store_id: str | None = None
        self._key_ids: dict[tuple[str, str], int] = {}
        self._verified: set[str] = set()
        self._known_files: set[str] = set()
        self._replay_lock = threading.Lock()

    # ---- the connection ---------------------------------------------------------------------
    def _db(self):
        if self._conn is not None and self._conn_pid != os.getpid():
            # a forked child: the connection's socket is the parent's; closing it here would end
            # the parent's session, so only forget it
            self._conn = None
        if self._conn is None or self._conn.closed:
            conn = conninfo.connect(self.target, autocommit=False, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
            try:
                schema.ensure(conn, self.target.where)
                row = conn.execute("SELECT value FROM meta WHERE key='store_id'").fetchone()
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._store_id = row[0] if row else ""
            self._conn = conn
            self._conn_pid = os.getpid()
            self._key_ids.clear()
            self._verified.clear()
            self._known_files.clear()
        return self._conn

    def _lost(self) -> None:
        conn, self._conn = self._conn, None
        self._key_ids.clear()
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
            self._lost()

    # ---- replay -------------------------------------------------------------------------------
    def replay(self, view: RunView, cursor: Cursor) -> dict[str, Any]:
        import psycopg

        stats: dict[str, Any] = {"points": 0, "params": 0, "tags": 0, "artifacts": 0, "checkpoints": 0,
                                 "media": 0, "datasets": 0, "status": None, "complete": False}
        with self._replay_lock:
            try:
                conn = self._db()
                self._check_cursor(conn, view, cursor)
                while self._round(conn, view, cursor, stats):
                    pass
            except psycopg.errors.QueryCanceled as exc:
                self._lost()
                raise TimeoutError(f"the team store {self.target.where} timed out: "
                                   f"{conninfo.reason(self.target, exc)}") from None
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._lost()
                raise ConnectionError(f"lost the team store {self.target.where}: "
                                      f"{conninfo.reason(self.target, exc)}") from None
            except psycopg.Error as exc:
                self._key_ids.clear()
                # the server refuses this run's data (not an outage): named once, the others go on
                raise ValueError(f"the team store {self.target.where} refused run {view.rec.id[:8]}: "
                                 f"{conninfo.reason(self.target, exc)}") from None
            except BaseException:
                self._key_ids.clear()
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
            conn.commit()
            if present:
                self._verified.add(run_id)
                return
        st.clear()
        st["db"] = self._store_id
        self._verified.add(run_id)

    def _round(self, conn, view: RunView, cursor: Cursor, stats: dict[str, Any]) -> bool:
        """One transaction: what is missing (up to ROUND_BLOCKS blocks per key). True if more is left."""
        local = view.store
        run_id = view.rec.id
        st = cursor.state
        row = local._one(f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (run_id,))
        if row is None:
            return False
        more = False
        with conn.transaction():
            # shared: rounds run side by side, but never during a housekeeping change (gc, delete)
            gone = conn.execute("SELECT nextval('changes'), pg_advisory_xact_lock_shared(%s), "
                                "EXISTS (SELECT 1 FROM deleted_runs WHERE id = %s)", (GC_LOCK, run_id)).fetchone()[2]
            if gone:
                # deleted from the team store (`trackhooks rm`): a spool that still has it never
                # brings it back (docs/team.md "Deleting runs")
                warn_once(("pg-deleted-run", self.target.where, run_id),
                          f"trackhooks: run {run_id[:8]} was deleted from the team store {self.target.where}; "
                          "it is not replicated again (it stays in the local store)")
                stats["deleted"] = True
                return False
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
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO params (run_id, key, value) VALUES (%s,%s,%s) ON CONFLICT (run_id, key) "
                                    "DO UPDATE SET value=EXCLUDED.value", [(run_id, k, v) for k, v in params])
                stats["params"] += len(params) - len(st.get("pk", ()))
            st["p"], st["pk"] = d, [k for k, _ in params]
            tags = local._rows("SELECT key, value FROM tags WHERE run_id=? ORDER BY key", (run_id,))
            d = _digest(tags)
            if tags and st.get("t") != d:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO tags (run_id, key, value) VALUES (%s,%s,%s) ON CONFLICT (run_id, key) "
                                    "DO UPDATE SET value=EXCLUDED.value", [(run_id, k, v) for k, v in tags])
                stats["tags"] += len(tags)
            st["t"] = d

            more = self._metrics(conn, local, run_id, st, stats)
            self._checkpoints(conn, local, run_id, st, stats)
            self._artifacts(conn, local, run_id, st, stats)
            self._datasets(conn, local, run_id, st, stats)
            self._media(conn, local, run_id, st, stats)

            if more:
                row[3], row[6] = "running", None  # a terminal status only once every point is in
            d = _digest(row)
            if st.get("row") != d:
                conn.execute(_UPSERT_RUN, row)
                if row[3] != st.get("status"):
                    stats["status"] = row[3]
                st["row"], st["status"] = d, row[3]
        cursor.commit()
        stats["complete"] = not more and final_status in TERMINAL
        return more

    def _metrics(self, conn, local, run_id: str, st: dict, stats: dict) -> bool:
        ms: dict[str, list[int]] = st.setdefault("m", {})
        more = False
        for key, n in local._metric_counts(run_id).items():
            seq0, sent = ms.get(key, [0, -1])
            if sent >= n:
                continue
            key_id = self._key_id(conn, run_id, key)
            blocks = local._metric_blocks(run_id, key, seq0, ROUND_BLOCKS)
            if not blocks:
                ms[key] = [seq0, max(sent, 0)]
                continue
            inserted = {r[0] for r in conn.execute(
                _INSERT_BLOCKS, (key_id, [b[0] for b in blocks], [b[1] for b in blocks],
                                 [bytes(b[2]) for b in blocks], [bytes(b[3]) for b in blocks],
                                 [bytes(b[4]) for b in blocks], [bytes(b[5]) for b in blocks])).fetchall()}
            new = [b for b in blocks if b[0] in inserted]
            if new:
                count, lo, hi = _summary(new)
                last = max(new, key=lambda b: b[0])
                steps = unpack("q", [bytes(last[2])])
                vals = unpack("d", [bytes(last[4])])
                lv = vals[-1] if len(vals) and vals[-1] == vals[-1] else None
                conn.execute(_ADVANCE_KEY, {"n": count, "lo": lo, "hi": hi, "id": key_id, "seq": last[0],
                                            "ls": steps[-1] if len(steps) else None, "lv": lv})
            delivered = max(sent, 0) + sum(b[1] for b in blocks)
            ms[key] = [blocks[-1][0] + 1, delivered]
            stats["points"] += sum(b[1] for b in new)
            if len(blocks) >= ROUND_BLOCKS and delivered < n:
                more = True
        return more

    def _key_id(self, conn, run_id: str, key: str) -> int:
        kid = self._key_ids.get((run_id, key))
        if kid is None:
            kid = conn.execute("INSERT INTO metric_keys (run_id, key) VALUES (%s,%s) ON CONFLICT (run_id, key) "
                               "DO UPDATE SET key=EXCLUDED.key RETURNING id", (run_id, key)).fetchone()[0]
            self._key_ids[(run_id, key)] = kid
        return kid

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
                conn.execute("INSERT INTO file_chunks (sha256, part, data) VALUES (%s,%s,%s) ON CONFLICT DO NOTHING",
                             (sha, parts, data))
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


