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


#: TrackhooksCallback's own keyword arguments (a test checks them against its signature)
OWN_OPTIONS = ("run", "checkpoint_every", "checkpoint_dir", "log_model", "log_importance", "log_datasets")


@hookimpl
def trackhooks_autolog(options: dict[str, Any]) -> None:
    """``trackhooks.autolog("xgboost", **options)``: ``trackhooks_xgboost.autolog(**options)``.

    Options meant for other plugins (``trackhooks.autolog()`` passes the same options to every
    installed integration, e.g. Keras' and Lightning's ``log_histograms``) are ignored with one
    warning instead of failing; ``trackhooks_xgboost.autolog`` itself still rejects them.
    """
    from trackhooks.plugin import START_RUN_OPTIONS, warn_once

    from .patch import autolog

    # not read from TrackhooksCallback's signature: importing the callback module counts as the
    # user's explicit use, which keeps xgboost's functions wrapped after autolog(disable=True)
    known = set(OWN_OPTIONS) | set(START_RUN_OPTIONS) | {"disable"}
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        warn_once(("xgboost", "options", tuple(unknown)),
                  f"xgboost autolog ignores options it does not know: {', '.join(unknown)}")
    autolog(**{k: v for k, v in options.items() if k in known})
