"""Entry point of the TensorBoard mirror: light on purpose (tensorboard is imported on first write)."""

from __future__ import annotations

from trackhooks.plugin import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@hookimpl
def trackhooks_make_sink(uri: str, options: dict[str, Any]):
    """The TensorBoard mirror for ``tensorboard:<log dir>``, else None."""
    if not isinstance(uri, str) or not uri.startswith("tensorboard:"):
        return None
    from .mirror import TensorBoardMirror

    return TensorBoardMirror(uri, options)
