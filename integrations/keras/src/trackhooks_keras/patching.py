"""autolog(): ``keras.Model.fit`` and ``evaluate`` wrapped so that every fit is recorded.

The wrappers add one TrackhooksCallback to a fit that has none (never a second one), hand it the fit
arguments (which callbacks never see: batch size, validation split, the data itself), and mark its
run failed or killed when ``fit`` raises — the one thing a Keras callback cannot see. ``evaluate``
after an autologged fit adds the test metrics to that fit's run.
"""

from __future__ import annotations

import functools
import inspect
import threading
import weakref
from typing import Any, Callable

from trackhooks.plugin import warn_once

#: options of autolog(), passed on to each TrackhooksCallback it creates
OPTION_NAMES = ("log_every_n_batches", "log_model", "log_histograms", "experiment", "name", "params", "tags", "store",
                "mirrors", "parent")

_lock = threading.Lock()
_options: dict[str, Any] | None = None  # None: autolog is off
_saved: dict[str, tuple[bool, Any]] = {}  # method name -> (was in Model.__dict__, original value there)
_tls = threading.local()  # depth > 0 inside a wrapped call: inner fit/evaluate (validation) pass through
_last: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()  # model -> its last callback


def autolog(*, disable: bool = False, **options: Any) -> None:
    """Record every ``keras.Model.fit`` (and ``evaluate`` after it) without changing user code.

    ``options`` are TrackhooksCallback's keyword arguments (``log_every_n_batches``, ``log_model``,
    ``log_histograms``, ``experiment``, ``name``, ``params``, ``tags``, ``store``, ``mirrors``, ``parent``); calling
    autolog again replaces them. ``disable=True`` restores Keras' own methods. If patching fails,
    one warning is issued and Keras trains unpatched.
    """
    global _options
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise TypeError(f"autolog got unexpected options {', '.join(unknown)}; it takes disable= and "
                        f"{', '.join(OPTION_NAMES)}")
    with _lock:
        if disable:
            _options = None
            _restore()
            return
        try:
            from .callback import TrackhooksCallback

            TrackhooksCallback(**options)  # validates the options now, not at the first fit
        except (TypeError, ValueError):
            raise
        except Exception as exc:
            warn_once(("keras", "autolog-patch"), f"keras autolog could not start; Keras trains unpatched "
                                                  f"({type(exc).__name__}: {exc})")
            return
        try:
            _patch()
        except Exception as exc:
            _restore()
            warn_once(("keras", "autolog-patch"), f"keras autolog could not patch keras.Model; Keras trains "
                                                  f"unpatched ({type(exc).__name__}: {exc})")
            return
        _options = dict(options)


def _patch() -> None:
    from .backend import ensure_loadable_backend

    ensure_loadable_backend()
    import keras

    model_cls = keras.Model
    for name, make in (("fit", _wrap_fit), ("evaluate", _wrap_evaluate)):
        current = getattr(model_cls, name)
        if getattr(current, "_trackhooks_wrapped", False):
            continue
        _saved[name] = (name in model_cls.__dict__, model_cls.__dict__.get(name))
        wrapper = make(current)
        wrapper._trackhooks_wrapped = True  # type: ignore[attr-defined]
        setattr(model_cls, name, wrapper)


def _restore() -> None:
    try:
        import keras
    except Exception:
        return
    model_cls = keras.Model
    for name, (own, value) in list(_saved.items()):
        if getattr(model_cls.__dict__.get(name), "_trackhooks_wrapped", False):
            if own:
                setattr(model_cls, name, value)
            else:
                delattr(model_cls, name)
        del _saved[name]


def _split_callbacks(callbacks: Any) -> tuple[list[Any], Any] | None:
    """(the callbacks as a list, the TrackhooksCallback among them or None); None if not a plain list."""
    from .callback import TrackhooksCallback

    if callbacks is None:
        flat: list[Any] = []
    elif isinstance(callbacks, (list, tuple)):
        flat = list(callbacks)
    else:  # a CallbackList built by the user: already configured, cannot take one more callback
        return None
    mine = [cb for cb in flat if isinstance(cb, TrackhooksCallback)]
    return flat, (mine[0] if mine else None)


def _remember(model: Any, cb: Any) -> None:
    try:
        _last[model] = cb
    except TypeError:  # an unhashable model subclass: evaluate after fit then needs the callback passed
        pass


def _wrap_fit(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        options = _options
        if options is None or getattr(_tls, "depth", 0):
            return original(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:  # wrong arguments: let Keras say so
            return original(self, *args, **kwargs)
        user_callbacks = bound.arguments.get("callbacks")
        try:
            from .callback import TrackhooksCallback
            from .fitdata import describe_fit

            split = _split_callbacks(bound.arguments.get("callbacks"))
            if split is None:
                warn_once(("keras", "callbacklist"), "keras autolog: fit got a CallbackList; this fit is not "
                                                     "recorded (pass a list of callbacks)")
                return original(self, *args, **kwargs)
            flat, cb = split
            if cb is None:
                cb = TrackhooksCallback(**options)
                flat.append(cb)
            bound.apply_defaults()
            bound.arguments["callbacks"] = flat
            cb._siblings = flat
            cb._fit_info = describe_fit(bound.arguments)  # may swap a generator for a peeked one
            _remember(self, cb)
        except Exception as exc:
            warn_once(("keras", "autolog-fit"), f"keras autolog: preparing fit failed; this fit is not recorded "
                                                f"({type(exc).__name__}: {exc})")
            bound.arguments["callbacks"] = user_callbacks  # x stays as bound: a peeked generator replays
            return original(*bound.args, **bound.kwargs)
        _tls.depth = 1
        try:
            return original(*bound.args, **bound.kwargs)
        except BaseException as exc:
            cb._on_fit_error(exc)
            raise
        finally:
            _tls.depth = 0

    return fit


def _wrap_evaluate(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def evaluate(self: Any, *args: Any, **kwargs: Any) -> Any:
        options = _options
        if options is None or getattr(_tls, "depth", 0):
            return original(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return original(self, *args, **kwargs)
        try:
            from .fitdata import describe_evaluate

            split = _split_callbacks(bound.arguments.get("callbacks"))
            if split is None:
                return original(self, *args, **kwargs)
            flat, cb = split
            if cb is None:
                cb = _last.get(self)
                if cb is None:  # a model that was not fit under autolog: nothing to attach results to
                    return original(self, *args, **kwargs)
                flat.append(cb)
            bound.arguments["callbacks"] = flat
            cb._eval_info = describe_evaluate(bound.arguments)
        except Exception as exc:
            warn_once(("keras", "autolog-evaluate"), f"keras autolog: preparing evaluate failed; it is not "
                                                     f"recorded ({type(exc).__name__}: {exc})")
            return original(self, *args, **kwargs)
        _tls.depth = 1
        try:
            return original(*bound.args, **bound.kwargs)
        finally:
            _tls.depth = 0

    return evaluate
