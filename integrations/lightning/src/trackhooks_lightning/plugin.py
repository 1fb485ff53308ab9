"""The ``lightning`` entry point: ``trackhooks.autolog("lightning")`` adds a TrackhooksCallback to every
Trainer that has none. Light on purpose: Lightning is imported only when autolog is called."""

from __future__ import annotations

import functools
import importlib
from typing import Any

from trackhooks.plugin import hookimpl
from trackhooks.plugin import warn_once

_TREES = ("lightning.pytorch", "pytorch_lightning")
#: keyword arguments of trackhooks.start_run that TrackhooksCallback passes on
START_RUN_OPTIONS = ("experiment", "name", "params", "tags", "store", "mirrors", "parent")
#: every option TrackhooksCallback (and so autolog) takes
OPTION_NAMES = ("run", "log_every_n_steps", "checkpoints", "datasets", "log_histograms", "log_gradient_histograms",
                *START_RUN_OPTIONS)
_patched: dict[type, Any] = {}  # Trainer class -> its original __init__
_options: dict[str, Any] = {}


@hookimpl
def trackhooks_autolog(options: dict[str, Any]) -> None:
    """``trackhooks.autolog("lightning", **options)``: add a TrackhooksCallback to every new Trainer.

    Options meant for other plugins (``trackhooks.autolog()`` passes the same options to every
    installed integration) are ignored with one warning; ``trackhooks_lightning.autolog`` rejects them.
    """
    unknown = sorted(k for k in options if k not in OPTION_NAMES and k != "disable")
    if unknown:
        warn_once(("lightning", "options", tuple(unknown)),
                  f"lightning autolog ignores options it does not know: {', '.join(unknown)}")
    enable({k: v for k, v in options.items() if k not in unknown})


def enable(options: dict[str, Any]) -> None:
    """Patch (or with ``disable=True`` restore) the Trainer of every installed Lightning tree."""
    options = dict(options)
    if options.pop("disable", False):
        for trainer_cls, original in list(_patched.items()):
            trainer_cls.__init__ = original
        _patched.clear()
        _options.clear()
        return
    from .callback import TrackhooksCallback

    TrackhooksCallback(**options)  # fail here, at the autolog call, on an unknown option
    _options.clear()
    _options.update(options)
    for module in _TREES:
        try:
            trainer_cls = importlib.import_module(module).Trainer
        except ImportError:
            continue
        if trainer_cls not in _patched:
            _patched[trainer_cls] = trainer_cls.__init__
            trainer_cls.__init__ = _patched_init(trainer_cls.__init__)


def _patched_init(original: Any) -> Any:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            _inject(self)
        except Exception as exc:  # never break building a Trainer
            warn_once(("lightning", "autolog", type(exc)),
                      f"lightning autolog: could not add the callback ({type(exc).__name__}: {exc})")

    return __init__


def _inject(trainer: Any) -> None:
    from .callback import TrackhooksCallback

    callbacks = trainer.callbacks
    if any(isinstance(cb, TrackhooksCallback) for cb in callbacks):
        return
    cb = TrackhooksCallback(**_options)
    # before the checkpoint callbacks, where Lightning itself would have put a user callback
    checkpoints = set(map(id, trainer.checkpoint_callbacks))
    at = next((i for i, c in enumerate(callbacks) if id(c) in checkpoints), len(callbacks))
    callbacks.insert(at, cb)
