"""trackhooks: record ML experiments from inside the training loop.

``import trackhooks`` stays light: it imports no ML framework, and the plugin manager, entry points
and CLI are only loaded when first used.
"""

from __future__ import annotations

from .errors import (
    AmbiguousRunError,
    InvalidKeyError,
    InvalidMediaError,
    InvalidShapeError,
    InvalidValueError,
    MissingExtraError,
    OutOfRangeError,
    ParamConflictError,
    QueryError,
    RunActiveError,
    RunFinishedError,
    RunNotFoundError,
    StoreError,
    StoreNotFoundError,
    TrackhooksError,
    UnknownPluginError,
    UnsafePathError,
)

# Everything below the errors is loaded on first attribute access, so that ``import trackhooks``
# costs almost nothing in a training script that imports it at the top (PEP 562).
_LAZY = {
    "ArtifactRecord": "store", "CheckpointRecord": "store", "DatasetRecord": "store", "MediaRecord": "store",
    "RunRecord": "store", "Series": "store", "Store": "store", "open_store": "store",
    "plugin_manager": "plugins", "Run": "run", "active_run": "run", "autolog": "autologging", "start_run": "run",
    "Batch": "sink", "Sink": "sink", "hookimpl": "hookspecs",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trackhooks' has no attribute {name!r}")
    import sys

    # __import__, not importlib.import_module: the importlib package (and warnings with it) is not
    # loaded at interpreter start, and ``trackhooks.autolog`` must cost next to nothing
    __import__(f"{__name__}.{module}")
    value = getattr(sys.modules[f"{__name__}.{module}"], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "AmbiguousRunError",
    "ArtifactRecord",
    "Batch",
    "CheckpointRecord",
    "DatasetRecord",
    "InvalidKeyError",
    "InvalidMediaError",
    "InvalidShapeError",
    "InvalidValueError",
    "MediaRecord",
    "MissingExtraError",
    "OutOfRangeError",
    "ParamConflictError",
    "QueryError",
    "Run",
    "RunActiveError",
    "RunFinishedError",
    "RunNotFoundError",
    "RunRecord",
    "Series",
    "Sink",
    "Store",
    "StoreError",
    "StoreNotFoundError",
    "TrackhooksError",
    "UnknownPluginError",
    "UnsafePathError",
    "active_run",
    "autolog",
    "hookimpl",
    "open_store",
    "plugin_manager",
    "start_run",
]
