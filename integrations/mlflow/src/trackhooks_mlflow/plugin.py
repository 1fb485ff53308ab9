"""Entry point of the MLflow mirror: light on purpose (imports neither mlflow nor requests)."""

from __future__ import annotations

from trackhooks.plugin import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@hookimpl
def trackhooks_make_sink(uri: str, options: dict[str, Any]):
    """The MLflow mirror for ``mlflow+<tracking uri>``, else None."""
    if not isinstance(uri, str) or not uri.startswith("mlflow+"):
        return None
    from .mirror import MlflowMirror

    return MlflowMirror(uri, options)
