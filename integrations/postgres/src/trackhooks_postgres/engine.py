"""The read API over a team store: ``trackhooks.Store`` on PostgreSQL.

Every query is the engine-neutral SQL of ``trackhooks.Store``; this class only runs it (``?``
placeholders become ``%s``), fetches stored files into a local cache, and keeps one autocommit
connection per thread. Opening a store never writes (a role with only SELECT rights reads
everything; housekeeping needs write rights); the schema is created by the first writer (see ``replica.py``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Hashable, Sequence

from trackhooks import StoreError
from trackhooks.plugin import Store

from . import conninfo, schema
from .housekeeping import PostgresHousekeeping

CACHE_ENV = "TRACKHOOKS_CACHE"


def cache_dir() -> str:
    raw = os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "trackhooks")
    return os.path.join(os.path.abspath(os.path.expanduser(raw)), "files")


def _translate(sql: str, _cache: dict[str, str] = {}) -> str:  # noqa: B006 - a deliberate memo
    out = _cache.get(sql)
    if out is None:
        # the read API's SQL holds no '?' or '%' inside literals (values are always parameters)
        out = _cache[sql] = sql.replace("%", "%%").replace("?", "%s")
    return out


def shared_file(artifact_dir: str, sha256: str) -> str:
    """Where a file lives in a shared artifact directory (the same layout as a local store)."""
    return os.path.join(artifact_dir, sha256[:2], sha256)


class PostgresStore(PostgresHousekeeping, Store):
    """A team store on PostgreSQL (``postgresql://...``): the read API, housekeeping (delete, archive,
    tags, rename, note, gc) and read-only ``query()`` (see ``housekeeping.py``)."""

    engine = "postgres"
    _run_order = "start_time, ord"

    def __init__(self, uri: str):
        self.target = conninfo.parse(uri)
        self.uri = self.target.display
        self.artifact_dir = self.target.artifact_dir
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[Any] = []
        self._empty = False
        self._pid = os.getpid()

    # ---- connections --------------------------------------------------------------------------
    def _open(self):
        import psycopg

        try:
            conn = conninfo.connect(self.target, autocommit=True)
        except ConnectionError as exc:
            raise StoreError(str(exc)) from None
        try:
            version = schema.stored_version(conn)
            schema.refuse(version, self.target.where, version is None and schema.has_other_tables(conn))
        except StoreError:
            conn.close()
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. no USAGE on the schema
            conn.close()
            raise StoreError(f"cannot read the team store {self.target.where}: "
                             f"{conninfo.reason(self.target, exc)}") from None
        # an empty database is an empty store until the first run is written into it
        self._empty = version is None
        # the read API's queries are index lookups in correlated subqueries, whose estimated cost
        # on a few thousand runs passes jit_above_cost: compiling them (~100-250 ms) then costs more
        # than running them (the main query of a 10 000-run runs_frame: 300 -> 170 ms)
        try:
            conn.execute("SET jit = off")
        except psycopg.Error:  # a server without JIT (before PostgreSQL 11)
            pass
        return conn

    def _db(self):
        if self._pid != os.getpid():  # a forked child: never use (or close) the parent's sessions
            self._pid = os.getpid()
            self._local = threading.local()
            self._conns = []
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._open()
            with self._lock:
                self._conns.append(conn)
        return conn

    def connect(self) -> "PostgresStore":
        """Connect now: raise StoreError naming host:port/db if the store cannot be read."""
        self._db()
        return self

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        import psycopg

        conn = self._db()
        if self._empty:
            if schema.stored_version(conn) is None:
                return []
            self._empty = False
        try:
            return conn.execute(_translate(sql), list(args)).fetchall()
        except psycopg.OperationalError as exc:
            # the server went away: the next call reconnects
            self._drop(conn)
            raise StoreError(f"lost the team store {self.target.where}: {conninfo.reason(self.target, exc)}") from None
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the team store {self.target.where}: "
                             f"{conninfo.reason(self.target, exc)}") from None

    def _drop(self, conn) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
        self._local.conn = None

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        self._local = threading.local()

    def change_token(self) -> Hashable:
        # _rows() notices the schema the first writer creates in an empty database (and returns no
        # rows until then): the token of an empty store changes when it appears
        row = self._one("SELECT last_value, is_called FROM changes")
        if row is None and self._empty:
            return ("empty",)
        return tuple(row) if row else None

    # ---- files ----------------------------------------------------------------------------------
    def _known_file(self, sha256: str) -> str | None:
        cached = os.path.join(cache_dir(), sha256[:2], sha256)
        return cached if os.path.exists(cached) else None

    def _artifact_file(self, sha256: str) -> str:
        """A local copy of a stored file: the cache, else fetched from the database (or the shared
        artifact directory, used in place)."""
        cached = os.path.join(cache_dir(), sha256[:2], sha256)
        if os.path.exists(cached):
            return cached
        row = self._one("SELECT size, chunks FROM files WHERE sha256=?", (sha256,))
        if row is None:
            if self.artifact_dir:
                return shared_file(self.artifact_dir, sha256)
            raise StoreError(f"the team store {self.target.where} has no file {sha256[:12]}... (not replicated yet?)")
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        tmp = f"{cached}.{os.getpid()}.{threading.get_ident()}.tmp"
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                for part in range(row[1]):
                    got = self._one("SELECT data FROM file_chunks WHERE sha256=? AND part=?", (sha256, part))
                    if got is None:
                        raise StoreError(f"the team store {self.target.where} lost part {part} of file {sha256[:12]}")
                    data = bytes(got[0])
                    digest.update(data)
                    f.write(data)
            if digest.hexdigest() != sha256:
                raise StoreError(f"file {sha256[:12]}... from the team store {self.target.where} is damaged")
            os.replace(tmp, cached)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return cached

    # ---- cursors of mirrors fed from this store (trackhooks sync --store <team store> --to ...) ----
    def _cursor_load(self, mirror: str, run_id: str) -> tuple[str, int] | None:
        return self._one("SELECT state, version FROM mirror_cursors WHERE mirror=? AND run_id=?", (mirror, run_id))

    def _cursor_commit(self, mirror: str, run_id: str, state: str, version: int, now: float) -> bool:
        import psycopg

        conn = self._db()
        try:
            if version < 0:
                cur = conn.execute("INSERT INTO mirror_cursors (mirror, run_id, state, version, updated) "
                                   "VALUES (%s,%s,%s,0,%s) ON CONFLICT DO NOTHING", (mirror, run_id, state, now))
            else:
                cur = conn.execute("UPDATE mirror_cursors SET state=%s, version=version+1, updated=%s "
                                   "WHERE mirror=%s AND run_id=%s AND version=%s", (state, now, mirror, run_id, version))
        except psycopg.Error as exc:
            raise StoreError(f"cannot write mirror cursors into the team store {self.target.where}: "
                             f"{conninfo.reason(self.target, exc)}") from None
        return cur.rowcount == 1
