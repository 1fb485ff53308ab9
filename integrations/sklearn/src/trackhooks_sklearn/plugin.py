"""Entry point ``sklearn`` of the ``trackhooks`` group. Light on purpose: scikit-learn is imported
only when ``trackhooks.autolog("sklearn")`` is called."""

from __future__ import annotations

from typing import Any

from trackhooks.hookspecs import hookimpl


@hookimpl
def trackhooks_autolog(options: dict[str, Any]) -> None:
    from .autolog import autolog

    autolog(**options)
