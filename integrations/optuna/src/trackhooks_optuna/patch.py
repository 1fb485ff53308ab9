"""Thin wrappers around ``Study.optimize``, ``Trial.report`` and ``Trial._suggest``.

- ``Study.optimize``: when a ``TrackhooksCallback`` is among the callbacks (or ``autolog()`` is on,
  which adds one), the study's run is opened before the first trial and the objective is wrapped so
  that each trial's run exists while the objective runs (see callback.py). Without either it calls
  the original at once: one scan of the callbacks list.
- ``Trial.report``: after Optuna has accepted the value, it is also recorded as the metric
  ``objective`` at that step of the trial's run.
- ``Trial._suggest`` (every ``suggest_*`` goes through it): each param is recorded as it is
  sampled, so that it is in the trial's run before the framework inside the objective logs its own.

Installed when ``TrackhooksCallback`` is constructed or ``autolog()`` is called; ``autolog(disable=True)``
stops adding callbacks and restores Optuna unless a ``TrackhooksCallback`` was built by the user.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any, Callable

from trackhooks.plugin import warn_once

_lock = threading.RLock()
_installed: list[tuple[Any, str, Any, Any]] = []  # (owner, attribute, original, wrapper)
_autolog_options: dict[str, Any] | None = None
_explicit = False  # a TrackhooksCallback was built by the user (not by autolog)
_internal = threading.local()
_live: list[Any] = []  # callbacks recording an optimize right now (report/suggest look their trial up there)


def _callback_class() -> type:
    _internal.on = True  # autolog importing the class is not the user's explicit use
    try:
        from .callback import TrackhooksCallback
    finally:
        _internal.on = False
    return TrackhooksCallback


def _new_callback(options: dict[str, Any]) -> Any:
    cls = _callback_class()
    _internal.on = True
    try:
        return cls(**options)
    finally:
        _internal.on = False


def _wrap_optimize(original: Callable) -> Callable:
    sig = inspect.signature(original)

    @functools.wraps(original)
    def optimize(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            plan = _plan(sig, self, args, kwargs)
        except Exception as exc:  # our bug must not cost the user's study
            warn_once(("optuna", "wrap", type(exc).__name__), f"optuna: the optimize wrapper failed "
                      f"({type(exc).__name__}: {exc}); the study runs unrecorded")
            plan = None
        if plan is None:
            return original(self, *args, **kwargs)
        bound, cb = plan
        recording = cb._begin_optimize(self, bound.arguments.get("n_trials"), bound.arguments.get("timeout"),
                                       bound.arguments.get("n_jobs"), bound.arguments.get("catch"))
        if not recording:
            return original(*bound.args, **bound.kwargs)
        try:
            bound.arguments["func"] = cb.wrap_objective(bound.arguments["func"])
        except Exception as exc:
            warn_once(("optuna", "wrap-objective"), f"optuna: could not wrap the objective ({exc})")
        with _lock:
            _live.append(cb)
        try:
            result = original(*bound.args, **bound.kwargs)
        except BaseException as exc:
            _done(cb, exc)
            raise
        _done(cb, None)
        return result

    optimize.__trackhooks_original__ = original  # type: ignore[attr-defined]
    return optimize


def add_live(cb: Any) -> None:
    with _lock:
        _live.append(cb)


def remove_live(cb: Any) -> None:
    with _lock:
        if cb in _live:
            _live.remove(cb)


def _done(cb: Any, exc: BaseException | None) -> None:
    remove_live(cb)
    try:
        cb._end_optimize(exc)
    except Exception as err:
        warn_once(("optuna", "end", type(err).__name__), f"optuna: recording the end of optimize failed ({err})")


def _plan(sig: inspect.Signature, study: Any, args: tuple, kwargs: dict) -> tuple[Any, Any] | None:
    try:
        bound = sig.bind(study, *args, **kwargs)
    except TypeError:
        return None  # Optuna raises the user's TypeError itself
    bound.apply_defaults()
    cls = _callback_class()
    callbacks = bound.arguments.get("callbacks")
    listed = list(callbacks) if callbacks is not None else []
    ours = [c for c in listed if isinstance(c, cls)]
    if ours:
        return bound, ours[0]
    options = _autolog_options
    if options is None:
        return None
    cb = _new_callback(options)
    bound.arguments["callbacks"] = [cb, *listed]  # ours first: trial runs end before user callbacks run
    return bound, cb


def _wrap_report(original: Callable) -> Callable:
    @functools.wraps(original)
    def report(self: Any, value: Any, step: int) -> None:
        result = original(self, value, step)  # Optuna validates (and may raise) first
        if _live:
            for cb in list(_live):
                cb._reported(self, value, step)
        return result

    report.__trackhooks_original__ = original  # type: ignore[attr-defined]
    return report


def _wrap_suggest(original: Callable) -> Callable:
    @functools.wraps(original)
    def _suggest(self: Any, name: str, distribution: Any) -> Any:
        value = original(self, name, distribution)
        if _live:
            for cb in list(_live):
                cb._param_sampled(self, name, value, distribution)
        return value

    _suggest.__trackhooks_original__ = original  # type: ignore[attr-defined]
    return _suggest


def _unwrapped(fn: Any) -> Any:
    return getattr(fn, "__trackhooks_original__", fn)


def mark_explicit() -> None:
    """A TrackhooksCallback was built: by the user (not autolog) it keeps the wrappers installed."""
    global _explicit
    if not getattr(_internal, "on", False):
        _explicit = True
    install()


def install() -> None:
    """Install the wrappers (idempotent)."""
    with _lock:
        if _installed:
            return
        import optuna
        from optuna.trial import Trial

        for owner, name, make in ((optuna.study.Study, "optimize", _wrap_optimize),
                                  (Trial, "report", _wrap_report), (Trial, "_suggest", _wrap_suggest)):
            original = owner.__dict__.get(name)
            if original is None or not callable(original):
                warn_once(("optuna", "missing", name), f"optuna: {owner.__name__}.{name} not found in this Optuna "
                          "version; that part is not recorded")
                continue
            wrapper = make(_unwrapped(original))
            _installed.append((owner, name, original, wrapper))
            setattr(owner, name, wrapper)


def uninstall() -> None:
    with _lock:
        while _installed:
            owner, name, original, wrapper = _installed.pop()
            if owner.__dict__.get(name) is wrapper:
                setattr(owner, name, original)


def autolog(*, disable: bool = False, **options: Any) -> None:
    """Record every ``Study.optimize`` (study = parent run, trial = child run) without code changes.

    ``options`` are TrackhooksCallback's keyword arguments (checked here); calling autolog again
    replaces them. ``disable=True`` stops recording and restores Optuna's methods (they stay as
    pass-throughs while a user-built TrackhooksCallback exists in this process).
    """
    global _autolog_options
    with _lock:
        if disable:
            _autolog_options = None
            if not _explicit:
                uninstall()
            return
        _new_callback(options)  # a bad option raises now, not at the first optimize
        _autolog_options = dict(options)
        install()
