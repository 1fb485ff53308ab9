"""Entry point ``sklearn`` of the ``trackhooks`` group. Light on purpose: scikit-learn is imported
when scikit-learn itself is imported (``trackhooks.autolog()`` enables the plugin then)."""

from __future__ import annotations

from trackhooks.plugin import hookimpl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@hookimpl
def trackhooks_autolog_modules() -> list[str]:
    return ["sklearn"]


@hookimpl
def trackhooks_autolog(options: dict[str, Any]) -> None:
    """``trackhooks.autolog("sklearn", **options)``: ``trackhooks_sklearn.autolog(**options)``.

    Options meant for other plugins (``trackhooks.autolog()`` passes the same options to every
    installed integration) are ignored with one warning instead of failing; calling
    ``trackhooks_sklearn.autolog`` directly still rejects them.
    """
    import sys

    from trackhooks.plugin import warn_once

    if options.get("disable") and "trackhooks_sklearn.autolog" not in sys.modules:
        return  # never enabled in this process: nothing to restore, and no reason to import scikit-learn
    from .autolog import OPTION_NAMES, autolog

    unknown = sorted(k for k in options if k not in OPTION_NAMES)
    if unknown:
        warn_once(("sklearn", "options", tuple(unknown)),
                  f"sklearn autolog ignores option(s) {', '.join(unknown)} (not scikit-learn options; "
                  f"it takes {', '.join(sorted(OPTION_NAMES))})")
    autolog(**{k: v for k, v in options.items() if k in OPTION_NAMES})
