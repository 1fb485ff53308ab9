"""Entry point of the "xgboost" plugin (group "trackhooks"). Kept light: xgboost is imported only
when ``trackhooks.autolog("xgboost")`` actually calls the hook."""

from __future__ import annotations

from trackhooks.plugin import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@hookimpl
def trackhooks_autolog_modules() -> list[str]:
    return ["xgboost"]


@hookimpl
def trackhooks_autolog(options: dict[str, Any]) -> None:
    from .patch import autolog

    autolog(**options)
