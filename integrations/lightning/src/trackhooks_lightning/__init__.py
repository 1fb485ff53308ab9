"""trackhooks for PyTorch Lightning: ``Trainer(callbacks=[TrackhooksCallback()])``.

Importing this package stays light (the entry point loads ``trackhooks_lightning.plugin`` through it);
Lightning is imported when ``TrackhooksCallback`` is first touched.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TrackhooksCallback", "autolog"]


def __getattr__(name: str) -> Any:
    if name == "TrackhooksCallback":
        from .callback import TrackhooksCallback

        globals()[name] = TrackhooksCallback
        return TrackhooksCallback
    raise AttributeError(f"module 'trackhooks_lightning' has no attribute {name!r}")


def autolog(*, disable: bool = False, **options: Any) -> None:
    """Add a ``TrackhooksCallback(**options)`` to every Trainer created from now on that has none
    (``disable=True`` restores the Trainers). Same as ``trackhooks.autolog("lightning", ...)``."""
    from .plugin import enable

    enable(dict(options, disable=disable))
