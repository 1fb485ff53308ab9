"""The plugin surface: everything a plugin (an integration, a mirror, a store engine) may import.

Plugins import from here and from the public ``trackhooks`` names only, never from internals such as
``trackhooks.writer`` or ``trackhooks.values``: those modules may change shape between releases,
this one changes only with a note in ``docs/plugins.md``.

- ``hookimpl``: the pluggy marker for ``trackhooks_*`` hook implementations.
- ``warn_once(key, message)``: one ``RuntimeWarning`` per process for a given key (a failing
  integration or mirror reports once, then keeps quiet).
- ``flatten_params(mapping)`` / ``same_param(a, b)``: the core's param flattening and equality.
- ``START_RUN_OPTIONS``: the keyword arguments of ``start_run`` an integration passes through.
- the mirror replay base: ``ReplaySink``, ``ReplayTarget``, ``RunView``, ``Cursor``,
  ``CursorConflict``, ``replay_run``, ``TERMINAL``.
- the store engine base: ``Store`` (subclass it, see ``trackhooks/store/api.py``), the packed
  metric column helpers ``pack``/``unpack`` and ``NO_EPOCH``, ``redact_uri`` (a URI without its
  password), ``spool_path()``.
"""

from __future__ import annotations

import inspect
from typing import Any

from .hookspecs import hookimpl
from .values import flatten_params, same_param
from .writer import warn_once


def _start_run_options() -> tuple[str, ...]:
    from .run import start_run

    return tuple(p for p in inspect.signature(start_run).parameters if p != "resume")


def __getattr__(name: str) -> Any:
    # the replay base pulls in the store read side: load it only for the mirrors that need it
    if name in ("ReplaySink", "ReplayTarget", "RunView", "Cursor", "CursorConflict", "replay_run", "TERMINAL"):
        from . import sync

        return getattr(sync, name)
    if name in ("Store", "redact_uri", "spool_path", "NO_EPOCH"):
        from . import store

        return getattr(store, name)
    if name in ("pack", "unpack"):
        from .store import records

        return getattr(records, name)
    if name == "START_RUN_OPTIONS":
        return _start_run_options()
    raise AttributeError(f"module 'trackhooks.plugin' has no attribute {name!r}")


__all__ = ["hookimpl", "warn_once", "flatten_params", "same_param", "START_RUN_OPTIONS", "ReplaySink",
           "ReplayTarget", "RunView", "Cursor", "CursorConflict", "replay_run", "TERMINAL", "Store", "pack", "unpack", "NO_EPOCH", "redact_uri", "spool_path"]
