"""Entry point of the PostgreSQL store engine: ``postgresql://`` and ``postgres://`` store URIs.

- ``trackhooks_open_store``: the read API (``PostgresStore``), connected at once so that a bad URI,
  an unreachable server, a wrong password or a database that is not a trackhooks store fail with
  one ``StoreError`` naming host:port/db.
- ``trackhooks_make_sink``: the replication of a local store (the spool of runs started with
  ``store="postgresql://..."``, or a local store with a ``postgresql://`` mirror) into the team
  store. It connects lazily, on its own thread: a database that is down never stops a run.
"""

from __future__ import annotations

from trackhooks.plugin import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SCHEMES = ("postgresql://", "postgres://")


def handles(uri: object) -> bool:
    # checked here, not by importing conninfo (dataclasses, urllib, the store package): this module
    # is loaded by every process that builds the plugin manager, and by trackhooks.autolog()
    return isinstance(uri, str) and uri.strip().lower().startswith(_SCHEMES)


@hookimpl
def trackhooks_open_store(uri: str):
    if not handles(uri):
        return None
    from .engine import PostgresStore

    return PostgresStore(uri).connect()


@hookimpl
def trackhooks_make_sink(uri: str, options: "dict[str, Any]"):
    if not handles(uri):
        return None
    from .replica import PostgresReplica

    return PostgresReplica(uri, options)
