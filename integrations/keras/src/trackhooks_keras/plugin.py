"""The entry point module (group "trackhooks", name "keras"). Must not import Keras at import time."""

from __future__ import annotations

from trackhooks.plugin import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@hookimpl
def trackhooks_autolog_modules() -> list[str]:
    return ["keras"]


@hookimpl
def trackhooks_autolog(options: dict[str, Any]) -> None:
    """``trackhooks.autolog("keras", **options)``: patch ``keras.Model.fit``/``evaluate``.

    Options meant for other plugins (``trackhooks.autolog()`` passes the same options to every
    installed integration) are ignored with one warning instead of failing.
    """
    from trackhooks.plugin import warn_once

    from .patching import OPTION_NAMES, autolog

    unknown = sorted(k for k in options if k not in OPTION_NAMES and k != "disable")
    if unknown:
        warn_once(("keras", "options", tuple(unknown)),
                  f"keras autolog ignores options it does not know: {', '.join(unknown)}")
    autolog(**{k: v for k, v in options.items() if k in OPTION_NAMES or k == "disable"})
