"""Stores: where runs are kept, and the one read API over every engine.

- ``api.py``: :class:`Store`, the engine-neutral read API (its SQL is written once, portable).
- ``records.py``: what it returns (:class:`RunRecord`, :class:`Series`, checkpoint, artifact,
  dataset and media records).
- ``sqlite.py``: the embedded local store (a directory; the write side ``LocalStoreSink`` and the
  read side ``SQLiteStore``).
- ``status.py``: telling a live run from a killed one.
- Other engines come from plugins (``trackhooks_open_store``), e.g. ``postgresql://`` from
  trackhooks-postgres. A run whose store is such a team store is written to a local spool store and
  replicated by the mirror machinery (``trackhooks.sync``), so writing stays local-first.
"""

from __future__ import annotations

import os

from ..errors import StoreError, StoreNotFoundError, UnknownPluginError
from .api import Store
from .records import (
    NO_EPOCH,
    ArtifactRecord,
    CheckpointRecord,
    DatasetRecord,
    MediaRecord,
    MetricNotFoundError,
    RunRecord,
    Series,
)
from .status import HEARTBEAT_STALE_S, effective_status, process_start_time

DEFAULT_STORE = ".trackhooks"


def uri_text(uri: str | os.PathLike | None) -> str:
    """store= / ``$TRACKHOOKS_URI`` / ``./.trackhooks``, as given (not yet resolved)."""
    if uri is None:
        uri = os.environ.get("TRACKHOOKS_URI") or DEFAULT_STORE
    return os.fspath(uri).strip() if isinstance(uri, str) else os.fspath(uri)


def is_local_uri(uri: str) -> bool:
    """A plain path or ``file://`` names a local store directory; anything with a scheme does not."""
    if uri.startswith("file://"):
        return True
    head, sep, _ = uri.partition(":")
    if not sep:
        return True
    # "C:\\..." style drive letters and relative paths with a colon later on are paths, schemes are not
    return len(head) == 1 or not head.replace("+", "").replace("-", "").replace(".", "").isalnum() or "/" in head


def resolve_uri(uri: str | os.PathLike | None) -> str:
    """A local store's directory as an absolute path (store= / $TRACKHOOKS_URI / ./.trackhooks)."""
    text = uri_text(uri)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return os.path.abspath(os.path.expanduser(text))


_URL_PASSWORD = r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s?#]*):(?P<pw>[^@/\s]*)@"
_KV_PASSWORD = r"(?P<head>(?:^|[\s?&;])(?:password|passwd|pwd)=)(?P<pw>'[^']*'|[^\s&;]*)"


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (``scheme://user:***@host``, ``password=***``)."""
    if not isinstance(uri, str):
        return uri
    # both patterns need an "@" or a "=": most strings (every argv word of a run) skip compiling them
    if "@" not in uri and "=" not in uri:
        return uri
    import re  # here, not at module level: re is a few ms of the first start_run of a process

    out = re.sub(_URL_PASSWORD, lambda m: f"{m.group('head')}:***@", uri)
    return re.sub(_KV_PASSWORD, lambda m: f"{m.group('head')}***", out, flags=re.IGNORECASE)


def spool_path() -> str:
    """The local spool store of runs whose store is a team store (``$TRACKHOOKS_SPOOL``)."""
    raw = os.environ.get("TRACKHOOKS_SPOOL") or os.path.join("~", ".cache", "trackhooks", "spool")
    return os.path.abspath(os.path.expanduser(raw))


def engine_for(uri: str | os.PathLike | None) -> Store:
    """The store engine for a URI (a local directory, or a plugin's scheme), without existence checks."""
    text = uri_text(uri)
    if is_local_uri(text):
        from .sqlite import SQLiteStore

        return SQLiteStore(resolve_uri(text))
    from ..plugins import plugin_manager

    pm = plugin_manager()
    store = pm.hook.trackhooks_open_store(uri=text)
    if store is None:
        raise UnknownPluginError(
            f"no installed plugin opens the store {redact_uri(text)!r} (installed plugins: "
            f"{', '.join(sorted(n for n, _ in pm.list_name_plugin()))}); "
            "for postgresql://... install trackhooks-postgres")
    return store


def open_store(uri: str | os.PathLike | None = None) -> Store:
    """Open a store for reading. ``None`` -> ``$TRACKHOOKS_URI`` -> ``./.trackhooks``.

    A plain path names a local store directory (``StoreNotFoundError`` if it does not exist; an
    empty directory is an empty store); a URI with a scheme (``postgresql://...``) is opened by the
    plugin for that scheme, which raises ``StoreError`` naming the server when it cannot connect.
    """
    text = uri_text(uri)
    if not is_local_uri(text):
        return engine_for(text)
    from .sqlite import SQLiteStore

    path = resolve_uri(text)
    if not os.path.exists(path):
        raise StoreNotFoundError(f"no trackhooks store at {path} (nothing has been logged there yet)")
    if not os.path.isdir(path):
        raise StoreError(f"store path {path} is not a directory")
    store = SQLiteStore(path)
    if os.path.exists(store.db_path):
        store._db()  # fail now, naming the path, if the database is corrupt or from a newer version
    return store


__all__ = [
    "ArtifactRecord", "CheckpointRecord", "DatasetRecord", "HEARTBEAT_STALE_S", "MediaRecord", "MetricNotFoundError",
    "NO_EPOCH", "RunRecord", "Series", "Store", "effective_status", "engine_for", "is_local_uri", "open_store",
    "process_start_time", "redact_uri", "resolve_uri", "spool_path", "uri_text",
]
