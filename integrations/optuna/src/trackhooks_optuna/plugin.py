"""The entry point module (group "trackhooks", name "optuna"). Must not import Optuna at import time."""

from __future__ import annotations

from trackhooks.plugin import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@hookimpl
def trackhooks_autolog_modules() -> list[str]:
    # trackhooks.autolog() enables this plugin only once Optuna is imported (never importing it)
    return ["optuna"]


@hookimpl
def trackhooks_autolog(options: "dict[str, Any]") -> None:
    """``trackhooks.autolog("optuna", **options)``: record every ``Study.optimize``.

    Options meant for other plugins (``trackhooks.autolog()`` passes the same options to every
    installed integration) are ignored with one warning instead of failing.
    """
    from trackhooks.plugin import START_RUN_OPTIONS, warn_once

    from .callback import OWN_OPTIONS
    from .patch import autolog

    known = set(OWN_OPTIONS) - {"run"} | set(START_RUN_OPTIONS) | {"disable"}
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        warn_once(("optuna", "options", tuple(unknown)),
                  f"optuna autolog ignores options it does not know: {', '.join(unknown)}")
    autolog(**{k: v for k, v in options.items() if k in known})
