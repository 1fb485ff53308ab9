"""Housekeeping and read-only SQL on a team store: the same methods, semantics and errors as the
SQLite engine (``trackhooks.plugin.Housekeeping`` holds the shared part).

Every change runs in one transaction that first takes ``GC_LOCK`` (a transaction-scoped advisory
lock) exclusively; every replication round (``replica.py``) takes it shared for its whole
transaction. So no housekeeping change interleaves with a round: ``gc`` cannot remove a file that a
replicating writer has checked (``SELECT 1 FROM files``) or copied into the shared artifact
directory but whose artifact/media row it has not committed yet — when ``gc`` holds the lock, such
a round has either committed (its row is seen by gc's statement, which starts after the lock) or not
begun (it will find the file gone and store it again). ``delete_runs`` likewise never leaves half a
round behind, and records the deleted ids in ``deleted_runs`` (schema 002), which replication
checks under the same lock: a deleted run is never re-created from a spool that still holds it.

``query()``: the documented views are created as TEMP views over the store's tables, then the
transaction is switched to READ ONLY with a ``statement_timeout``, ``search_path`` is narrowed to
those views, and the one statement runs; the transaction is always rolled back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from trackhooks import QueryError, StoreError
from trackhooks.plugin import GcResult, Housekeeping, QueryResult, VIEWS, view_ddl

from . import conninfo

# pg_advisory_xact_lock key of housekeeping vs replication, the same on every host
GC_LOCK = int.from_bytes(b"trkh-gc!", "big") & 0x7FFF_FFFF_FFFF_FFFF

# functions that touch the server beyond reading the store (files, other sessions, settings)
_DENIED = re.compile(
    r'"?\b(lo_\w+|pg_read_\w*file|pg_ls_\w+|pg_stat_file|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|'
    r'pg_rotate_logfile|pg_advisory\w*|pg_try_advisory\w*|set_config|dblink\w*|pg_logical\w*|pg_replication\w*|'
    r'pg_switch_wal|pg_create\w*|pg_drop\w*|pg_promote|pg_notify|txid_current|pg_current_xact_id)"?\s*\(',
    re.IGNORECASE)
_LEAD = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_READS = ("SELECT", "WITH", "VALUES", "TABLE")
# an empty database (no schema yet): the views over empty TEMP tables of the columns they read
_EMPTY = {
    "runs": "id text, name text, experiment text, status text, parent_id text, start_time float8, end_time float8, "
            "heartbeat float8, archived integer, note text",
    "params": "run_id text, key text, value text",
    "tags": "run_id text, key text, value text",
    "metric_keys": "run_id text, key text, n bigint, last_value float8, min_value float8, max_value float8, "
                   "last_step bigint",
    "checkpoints": "run_id text, path text, step bigint, epoch bigint, best integer, size bigint, sha256 text, "
                   "deleted integer, time float8",
    "artifacts": "run_id text, name text, sha256 text, size bigint, time float8",
    "datasets": "run_id text, name text, context text, digest text, n_rows bigint, source text, time float8",
}


class _Conn:
    """A psycopg connection inside one transaction, taking the read API's ``?`` SQL."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, args: Any = ()):
        from .engine import _translate

        return self.conn.execute(_translate(sql), list(args))

    def executemany(self, sql: str, rows: Any) -> None:
        from .engine import _translate

        with self.conn.cursor() as cur:
            cur.executemany(_translate(sql), [list(r) for r in rows])


class _Tx:
    def __init__(self, store):
        self.store = store

    def __enter__(self) -> _Conn:
        conn = self.store._db()
        self._tx = conn.transaction()
        self._tx.__enter__()
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (GC_LOCK,))
        except BaseException as exc:
            self._tx.__exit__(type(exc), exc, exc.__traceback__)
            self._fail(exc)
        return _Conn(conn)

    def __exit__(self, exc_type, exc, tb) -> None:
        import psycopg

        try:
            self._tx.__exit__(exc_type, exc, tb)
        except psycopg.Error as e:
            self._fail(e)
        if isinstance(exc, psycopg.Error):
            self._fail(exc)

    def _fail(self, exc: BaseException):
        import psycopg

        if not isinstance(exc, psycopg.Error):
            raise exc
        t = self.store.target
        if isinstance(exc, psycopg.OperationalError):
            conn = getattr(self.store._local, "conn", None)
            if conn is not None:
                self.store._drop(conn)  # the next call reconnects
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            raise StoreError(f"cannot change the team store {t.where}: the role has no write rights there "
                             f"({conninfo.reason(t, exc)}); nothing was changed") from None
        raise StoreError(f"cannot change the team store {t.where}: {conninfo.reason(t, exc)}; "
                         "nothing was changed") from None


class PostgresHousekeeping(Housekeeping):
    """Write methods and ``query()`` of ``PostgresStore`` (needs ``_db()``, ``target``, ``artifact_dir``)."""

    def _write(self) -> _Tx:
        return _Tx(self)

    def _run_tables(self, tx: _Conn) -> list[str]:
        names = [r[0] for r in tx.execute(
            "SELECT c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = current_schema() AND c.column_name = 'run_id' AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name").fetchall()]
        return ['"' + n.replace('"', '""') + '"' for n in names]

    def _before_delete(self, tx: _Conn, ids: list[str]) -> None:
        # tombstones: replication never re-creates a deleted run from a spool that still has it
        import time

        tx.execute(f"INSERT INTO deleted_runs (id, time) SELECT id, ? FROM runs WHERE id IN {self._json_list()} "
                   "ON CONFLICT (id) DO UPDATE SET time = excluded.time", (time.time(), json.dumps(ids)))

    def _referenced(self, conn: _Conn, shas: list[str] | None) -> set[str]:
        if shas is None:
            sql = "SELECT sha256 FROM artifacts UNION SELECT sha256 FROM media WHERE sha256 IS NOT NULL"
            return {r[0] for r in conn.execute(sql).fetchall()}
        if not shas:
            return set()
        ids = self._json_list()
        sql = f"SELECT sha256 FROM artifacts WHERE sha256 IN {ids} UNION SELECT sha256 FROM media WHERE sha256 IN {ids}"
        return {r[0] for r in conn.execute(sql, (json.dumps(shas), json.dumps(shas))).fetchall()}

    def _has_schema(self) -> bool:
        from . import schema

        self._db()
        if self._empty and schema.stored_version(self._db()) is None:
            return False
        self._empty = False
        return True

    def gc(self, *, dry_run: bool = False) -> GcResult:
        """Remove stored files (``files``/``file_chunks`` rows, and files in the shared artifact
        directory when one is configured) that no artifact or media record references; returns the
        bytes freed (a ``GcResult``; ``.files`` lists sha256 digests of database files and paths in
        the shared directory). Safe while other hosts replicate (module docstring)."""
        if not self._has_schema():
            return GcResult(0, [], dry_run)
        unref = ("NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.sha256 = f.sha256) "
                 "AND NOT EXISTS (SELECT 1 FROM media m WHERE m.sha256 = f.sha256)")
        with self._write() as tx:
            if dry_run:
                rows = tx.execute(f"SELECT f.sha256, f.size FROM files f WHERE {unref} ORDER BY f.sha256").fetchall()
            else:
                rows = tx.execute(f"DELETE FROM files f WHERE {unref} RETURNING f.sha256, f.size").fetchall()
                # chunks of files whose files row is gone (now, or left by an older crash); no round
                # is between its chunks and its files row while we hold the lock
                tx.execute("DELETE FROM file_chunks c WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = c.sha256)")
        freed = sum(int(r[1]) for r in rows)
        names = sorted(r[0] for r in rows)
        if self.artifact_dir:
            shared = self._gc_dir(self.artifact_dir, self._referenced(_Conn(self._db()), None), dry_run)
            freed += int(shared)
            names += shared.files
        return GcResult(freed, names, dry_run)

    # ---- read-only SQL ----------------------------------------------------------------------------
    def _readonly_query(self, sql: str, limit: int, timeout_s: float) -> QueryResult:
        import time

        import psycopg

        if not isinstance(sql, str) or not sql.strip():
            raise QueryError("a query is a non-empty SQL string", None, None, "SELECT ... FROM runs ...")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise QueryError(f"the row limit must be a positive integer, not {limit!r}", None, None, "1, 2, ...")
        hint = f"a SELECT over the views {', '.join(VIEWS)}"

        def refuse(what: str):
            return QueryError("trackhooks query is read-only: " + what + " is not allowed; nothing was changed",
                              sql, None, hint)

        body = _LEAD.sub("", sql, count=1)
        first = (re.match(r"\w+", body) or [""])[0].upper()
        if first and first not in _READS:
            raise refuse(first)
        bad = _DENIED.search(sql)
        if bad:
            raise refuse(f"the function {bad.group(1)}()")
        has_schema = self._has_schema()
        conn = self._db()
        killed = self._killed_ids() if has_schema else []
        try:
            with conn.transaction(force_rollback=True):
                if has_schema:
                    src = conn.execute("SELECT quote_ident(current_schema())").fetchone()[0] + "."
                else:
                    src = "pg_temp.th_empty_"
                    for table, cols in _EMPTY.items():
                        conn.execute(f"CREATE TEMP TABLE th_empty_{table} ({cols})")
                conn.execute("CREATE TEMP TABLE th_killed (id text PRIMARY KEY) ON COMMIT DROP")
                if killed:
                    with conn.cursor() as cur:
                        cur.executemany("INSERT INTO th_killed (id) VALUES (%s)", [(k,) for k in killed])
                for ddl in view_ddl("postgres", src=src, killed="pg_temp.th_killed",
                                    now=repr(float(time.time())), prefix="CREATE TEMP VIEW"):
                    conn.execute(ddl)
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute("SELECT set_config('statement_timeout', %s, true), "
                             "set_config('search_path', 'pg_temp, pg_catalog', true)",
                             (str(max(1, int(timeout_s * 1000))),))
                try:
                    cur = conn.execute(sql, prepare=True)  # extended protocol: one statement
                    desc = cur.description
                    rows = cur.fetchmany(limit + 1) if desc is not None else []
                except psycopg.errors.ReadOnlySqlTransaction as exc:
                    m = re.search(r"cannot execute (.+?) in a read-only transaction", str(exc))
                    raise refuse(m.group(1) if m else first or "this statement") from None
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise refuse(str(exc).splitlines()[0]) from None
                except psycopg.errors.QueryCanceled:
                    raise QueryError(f"the query ran longer than the time limit of {timeout_s:g} s and was stopped",
                                     sql, None, "a cheaper query, or a larger timeout") from None
                except psycopg.errors.SyntaxError as exc:
                    if "multiple commands" in str(exc):
                        raise QueryError("one SQL statement per query", sql, None,
                                         "a single SELECT (remove the ';' and what follows)") from None
                    raise QueryError(f"SQL error: {str(exc).splitlines()[0]}", sql, None, hint) from None
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if "multiple commands" in msg:
                        raise QueryError("one SQL statement per query", sql, None,
                                         "a single SELECT (remove the ';' and what follows)") from None
                    raise QueryError(f"SQL error: {msg}", sql, None, hint) from None
        except psycopg.OperationalError as exc:
            self._drop(conn)
            raise StoreError(f"lost the team store {self.target.where}: {conninfo.reason(self.target, exc)}") from None
        except psycopg.Error as exc:  # setting up the TEMP views (e.g. the role lacks TEMP on the database)
            raise StoreError(f"cannot query the team store {self.target.where}: {conninfo.reason(self.target, exc)} "
                             "(trackhooks query needs the TEMP privilege on the database, PUBLIC has it "
                             "by default)") from None
        if desc is None:
            raise QueryError("the statement returns no rows", sql, None, "a SELECT")
        columns = [c.name for c in desc]
        return QueryResult([tuple(r) for r in rows[:limit]], columns, len(rows) > limit, sql)
