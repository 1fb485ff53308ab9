"""The team store's schema: the versioned SQL files in ``schema/``, applied by writers only.

``NNN.sql`` brings a store at version NNN-1 to version NNN. A writer's first connection checks the
stored version under a transaction-scoped advisory lock (so two hosts starting at once do not both
create it) and applies every missing file in one transaction: an interrupted upgrade leaves the old
schema intact. A store of a newer version than this package knows is refused, never touched.
Readers never write: they only check the version (``check``).
"""

from __future__ import annotations

import os
import re

from trackhooks import StoreError

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "schema")
# pg_advisory_xact_lock key: "trackhooks" in a bigint, the same on every host
LOCK_KEY = int.from_bytes(b"trkhooks", "big") & 0x7FFF_FFFF_FFFF_FFFF


def files(schema_dir: str = SCHEMA_DIR) -> dict[int, str]:
    """version -> SQL text of every schema file."""
    out = {}
    for name in os.listdir(schema_dir):
        m = re.fullmatch(r"(\d{3})\.sql", name)
        if m:
            with open(os.path.join(schema_dir, name), encoding="utf-8") as f:
                out[int(m.group(1))] = f.read()
    return dict(sorted(out.items()))


def latest(schema_dir: str = SCHEMA_DIR) -> int:
    return max(files(schema_dir))


SCHEMA_VERSION = latest()


def stored_version(conn) -> int | None:
    """The store's schema version; None when this database (search_path) holds no trackhooks store.

    Raises StoreError when it holds other tables but not ours.
    """
    # pg_class itself rather than to_regclass(): after waiting for the advisory lock, name lookups
    # may still answer from a cache that predates the other writer's CREATE TABLE
    names = {r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname IN ('meta', 'runs') AND c.relkind IN ('r', 'p')")}
    has_meta, has_runs = "meta" in names, "runs" in names
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None or not has_runs:
        return -1  # a table called meta that is not ours
    try:
        return int(row[0])
    except ValueError:
        return -1


def has_other_tables(conn) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v') AND n.nspname = current_schema()").fetchone()
    return bool(row and row[0])


def refuse(version: int | None, where: str, other_tables: bool, known: int = SCHEMA_VERSION) -> None:
    if version == -1 or (version is None and other_tables):
        raise StoreError(f"the database {where} is not a trackhooks store (it holds other tables); "
                         "give trackhooks a database (or a schema: options=-csearch_path=...) of its own")
    if version is not None and version > known:
        raise StoreError(f"the team store {where} was written by a newer trackhooks-postgres (schema {version}, "
                         f"this one knows up to {known}); upgrade trackhooks-postgres to use it")


def ensure(conn, where: str, schema_dir: str = SCHEMA_DIR) -> int:
    """Create or upgrade the schema (a writer's connection; each step is a transaction of its own).
    Returns the version."""
    sql = files(schema_dir)
    known = max(sql)
    with conn.transaction():
        version = stored_version(conn)
        if version is not None and version == known:
            return version  # the common case, without taking the lock
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        version = stored_version(conn)  # another writer may have done it meanwhile
        refuse(version, where, version is None and has_other_tables(conn), known)
        start = 0 if version is None else version
        for v, text in sql.items():
            if v > start:
                conn.execute(text)
        if version is None:
            conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s), ('store_id', md5(random()::text "
                         "|| clock_timestamp()::text))", (str(known),))
        elif start < known:
            conn.execute("UPDATE meta SET value=%s WHERE key='schema_version'", (str(known),))
    return known
