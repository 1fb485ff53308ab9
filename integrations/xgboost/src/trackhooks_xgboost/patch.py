"""Thin wrappers around ``xgboost.train``, ``xgboost.cv`` and the sklearn wrappers' ``fit``.

XGBoost's callback API shows a callback neither the call's arguments (params as given,
num_boost_round, the DMatrices) nor an exception raised elsewhere in the training. The wrappers fill
that gap: when a ``TrackhooksCallback`` takes part in a call they publish the arguments to it through
a context variable and, if the call raises, mark its run failed before the exception propagates
unchanged. With ``autolog()`` on they also add a callback to calls that have none.

The wrappers are installed by ``autolog()`` and by importing or constructing ``TrackhooksCallback``
(at import, so that ``xgb.train(..., callbacks=[TrackhooksCallback()])`` is seen although
``xgb.train`` is looked up before the callback exists). ``autolog(disable=True)`` stops adding
callbacks and puts the original functions back, unless ``TrackhooksCallback`` is in explicit use in
this process: then the wrappers stay as pass-throughs that add nothing. A call without our callback
and without autolog costs one signature bind and one list scan.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from trackhooks.plugin import warn_once

_lock = threading.RLock()
_installed: list[tuple[Any, str, Any, Any]] = []  # (owner, attribute, original, wrapper)
_autolog_options: dict[str, Any] | None = None
_explicit = False  # TrackhooksCallback imported or built by the user (not by autolog)
_internal_use = False  # set while autolog imports or builds a callback itself


@dataclass
class SklearnFit:
    """The outermost sklearn-API ``fit`` in progress: the estimator and the arrays it was given."""

    estimator: Any
    X: Any
    y: Any
    eval_set: Any


@dataclass
class CallContext:
    """One ``xgb.train`` / ``xgb.cv`` call seen by the wrapper."""

    api: str  # "train" | "cv" | "sklearn"
    callbacks: tuple
    arguments: dict[str, Any]
    sklearn: SklearnFit | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_CALL: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("trackhooks_xgb_call", default=None)
_SKLEARN: contextvars.ContextVar[SklearnFit | None] = contextvars.ContextVar("trackhooks_xgb_fit", default=None)


def current_call(callback: Any) -> CallContext | None:
    """The call ``callback`` takes part in, if a wrapper saw it (None for an unwrapped call)."""
    ctx = _CALL.get()
    if ctx is not None and any(c is callback for c in ctx.callbacks):
        return ctx
    return None


def _callback_class() -> type:
    global _internal_use
    with _lock:
        _internal_use = True
        try:
            from .callback import TrackhooksCallback
        finally:
            _internal_use = False
    return TrackhooksCallback


def _new_callback(options: dict[str, Any]) -> Any:
    global _internal_use
    cls = _callback_class()
    with _lock:
        _internal_use = True
        try:
            return cls(**options)
        finally:
            _internal_use = False


def mark_explicit() -> None:
    """The user uses TrackhooksCallback directly: keep the wrappers for it (unless called by autolog)."""
    global _explicit
    if not _internal_use:
        _explicit = True
    install()


def _lenient(sig: inspect.Signature) -> inspect.Signature:
    """``sig`` with its keyword-only parameters also accepted by position, in order: what XGBoost's
    ``_deprecate_positional_args`` still accepts (with a FutureWarning), e.g. ``xgb.train(params,
    dtrain, 10, [(dtrain, "train")])``."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return sig.replace(parameters=[p.replace(kind=kind) if p.kind is inspect.Parameter.KEYWORD_ONLY else p
                                   for p in sig.parameters.values()])


def _bind(sig: inspect.Signature, lenient: inspect.Signature, args: tuple, kwargs: dict) -> Any:
    for s in (sig, lenient):
        try:
            return s.bind(*args, **kwargs)
        except TypeError:
            continue
    return None


def _plan(sig: inspect.Signature, api: str, args: tuple, kwargs: dict,
          lenient: inspect.Signature | None = None) -> tuple[tuple, dict, CallContext] | None:
    bound = _bind(sig, lenient or _lenient(sig), args, kwargs)
    if bound is not None:
        bound.apply_defaults()
        arguments = dict(bound.arguments)
    else:
        arguments = {}
    cls = _callback_class()
    names = list(sig.parameters)
    at = names.index("callbacks") if "callbacks" in names else None
    by_position = bound is not None and at is not None and at < len(args)
    callbacks = arguments.get("callbacks") if bound is not None else kwargs.get("callbacks")
    ours = [c for c in (callbacks or ()) if isinstance(c, cls)]
    if not ours:
        options = _autolog_options
        if options is None:
            return None
        cb = _new_callback(options)
        new = [*(callbacks or ()), cb]
        if by_position:  # the user gave callbacks by position: replace it there, not twice
            args = (*args[:at], new, *args[at + 1:])  # type: ignore[operator]
        else:
            kwargs = dict(kwargs)
            kwargs["callbacks"] = new
        ours = [cb]
    skl = _SKLEARN.get()
    ctx = CallContext("sklearn" if skl is not None and api == "train" else api, tuple(ours), arguments, skl)
    # a call form this wrapper cannot read: the callback still records what it sees by itself, and
    # the wrapper says so once if XGBoost accepted the call (else XGBoost's own TypeError speaks)
    ctx.extra["unbound"] = bound is None
    return args, kwargs, ctx


def _wrap_call(original: Callable, api: str) -> Callable:
    sig = inspect.signature(original)
    lenient = _lenient(sig)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            plan = _plan(sig, api, args, kwargs, lenient)
        except Exception as exc:  # our bug must not cost the user's training
            warn_once(("xgboost", "wrap", type(exc)), f"xgboost {api} wrapper failed ({type(exc).__name__}: {exc}); "
                      "training continues without trackhooks context")
            plan = None
        if plan is None:
            return original(*args, **kwargs)
        args, kwargs, ctx = plan
        token = _CALL.set(ctx)
        fit_token = _SKLEARN.set(None)  # a fit inside a callback is not this fit
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            for cb in ctx.callbacks:
                cb._abort(exc)
            raise
        finally:
            _SKLEARN.reset(fit_token)
            _CALL.reset(token)
        if ctx.extra.get("unbound"):
            warn_once(("xgboost", api, "unbound"),
                      f"xgboost.{api}: could not read the arguments of this call form; its run has the metrics "
                      "and the model but not the call's params and data")
        for cb in ctx.callbacks:
            cb._complete()
        return result

    wrapper.__trackhooks_original__ = original  # type: ignore[attr-defined]
    return wrapper


def _wrap_fit(original: Callable) -> Callable:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _SKLEARN.get() is not None:  # super().fit of a subclass: the outer fit already speaks
            return original(self, *args, **kwargs)
        try:
            info = SklearnFit(self, args[0] if args else kwargs.get("X"),
                              args[1] if len(args) > 1 else kwargs.get("y"), kwargs.get("eval_set"))
        except Exception:
            info = None
        token = _SKLEARN.set(info)
        try:
            return original(self, *args, **kwargs)
        finally:
            _SKLEARN.reset(token)

    fit.__trackhooks_original__ = original  # type: ignore[attr-defined]
    return fit


def _unwrapped(fn: Any) -> Any:
    return getattr(fn, "__trackhooks_original__", fn)


def install() -> None:
    """Install the wrappers (idempotent)."""
    with _lock:
        if _installed:
            return
        import xgboost
        import xgboost.sklearn
        import xgboost.training

        for name, api in (("train", "train"), ("cv", "cv")):
            original = _unwrapped(getattr(xgboost.training, name))
            wrapper = _wrap_call(original, api)
            # sklearn's fit calls the name "train" it imported into xgboost.sklearn
            for owner in (xgboost, xgboost.training, xgboost.sklearn):
                if _unwrapped(getattr(owner, name, None)) is original:
                    _installed.append((owner, name, getattr(owner, name), wrapper))
                    setattr(owner, name, wrapper)
        for cls in vars(xgboost.sklearn).values():
            if isinstance(cls, type) and issubclass(cls, xgboost.sklearn.XGBModel) and "fit" in vars(cls) \
                    and cls.__module__ == "xgboost.sklearn":
                original = vars(cls)["fit"]
                wrapper = _wrap_fit(_unwrapped(original))
                _installed.append((cls, "fit", original, wrapper))
                setattr(cls, "fit", wrapper)


def uninstall() -> None:
    """Put back what ``install`` replaced (only where nobody replaced our wrapper since)."""
    with _lock:
        while _installed:
            owner, name, original, wrapper = _installed.pop()
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)


def autolog(*, disable: bool = False, **options: Any) -> None:
    """Record every ``xgb.train``, ``xgb.cv`` and sklearn-API ``fit`` as a run.

    A training that already has a ``TrackhooksCallback`` keeps it; others get
    ``TrackhooksCallback(**options)`` (the options are checked here). ``disable=True`` restores
    xgboost's original functions.
    """
    global _autolog_options
    with _lock:
        if disable:
            _autolog_options = None
            if not _explicit:
                uninstall()
            return
        _new_callback(options)  # raises now, not at the first fit, on a bad option
        _autolog_options = dict(options)
        install()
