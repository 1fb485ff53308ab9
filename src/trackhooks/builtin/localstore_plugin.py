"""Built-in plugin: a local store directory as a sink (so a second local store can be a mirror)."""

from __future__ import annotations

from typing import Any

from ..plugin import hookimpl
from ..store import is_local_uri, resolve_uri
from ..store.sqlite import LocalStoreSink


@hookimpl(trylast=True)
def trackhooks_make_sink(uri: str, options: dict[str, Any]):
    if not is_local_uri(uri):
        return None
    return LocalStoreSink(resolve_uri(uri))
