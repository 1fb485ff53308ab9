"""Entry point of the "xgboost" plugin (group "trackhooks"). Kept light: xgboost is imported only
when ``trackhooks.autolog("xgboost")`` actually calls the hook."""

from __future__ import annotations

from typing import Any

from trackhooks.plugin import hookimpl


@hookimpl
def trackhooks_autolog(options: dict[str, Any]) -> None:
    from .patch import autolog

    autolog(**options)
