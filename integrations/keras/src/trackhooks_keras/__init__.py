"""trackhooks for Keras 3 on any backend: ``TrackhooksCallback`` and ``autolog``.

Importing this package does not import Keras; the names below load it on first use, so that the
plugin entry point (``trackhooks_keras.plugin``) stays light.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .callback import TrackhooksCallback
    from .patching import autolog

__all__ = ["TrackhooksCallback", "autolog"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("TrackhooksCallback", "autolog"):
        from .backend import ensure_loadable_backend

        ensure_loadable_backend()
    if name == "TrackhooksCallback":
        from .callback import TrackhooksCallback as value
    elif name == "autolog":
        from .patching import autolog as value
    else:
        raise AttributeError(f"module 'trackhooks_keras' has no attribute {name!r}")
    globals()[name] = value
    return value
