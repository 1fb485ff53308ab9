"""trackhooks for XGBoost: ``TrackhooksCallback`` for ``xgb.train``, ``xgb.cv`` and the sklearn API,
and ``autolog()`` which adds it to every training.

The names are loaded on first access so that the entry-point module ``trackhooks_xgboost.plugin``
can be imported (at plugin discovery) without importing xgboost.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"
__all__ = ["TrackhooksCallback", "autolog"]


def __getattr__(name: str) -> Any:
    if name == "TrackhooksCallback":
        from .callback import TrackhooksCallback

        return TrackhooksCallback
    if name == "autolog":
        from .patch import autolog

        return autolog
    raise AttributeError(f"module 'trackhooks_xgboost' has no attribute {name!r}")
