"""``autolog()``: patch scikit-learn so that the outermost fit of each thread records a run.

What is patched (and restored by ``autolog(disable=True)``):

- ``fit``, ``fit_transform``, ``fit_predict`` and ``partial_fit`` wherever scikit-learn defines them
  (every scikit-learn class in the MRO of an estimator, so ``BaseSearchCV.fit`` and the mixins too;
  classes imported later are patched when they are created, through ``BaseEstimator.__init_subclass__``);
  ``available_if`` descriptors stay descriptors, so ``hasattr(pipe, "predict_proba")`` still works.
- ``sklearn.utils.parallel.Parallel.__call__`` (scikit-learn's own joblib front end), for two things:
  a top-level batch of cross-validation fits (the ``_fit_and_score``/``_fit_and_predict`` tasks of
  ``cross_validate``, ``cross_val_score``, ``cross_val_predict``, ``learning_curve``, ...) becomes one
  run, however the function was imported; and a task dispatched from inside a recorded fit carries
  "inner" to the joblib worker thread that runs it (``_FuncWrapper.__call__``), so the threading
  backend with ``n_jobs > 1`` records one run too. Process workers (loky, the default) never see the
  patches: their fits record nothing and the parent records the search or the folds from the results.
- the ``config_context`` that ``sklearn.utils._param_validation.validate_params`` enters around every
  call of a public scikit-learn function (every ``sklearn.metrics`` function, ``permutation_importance``,
  ``label_binarize``, ``k_means``, ``mutual_info_classif``, ...): while one runs on a thread, fits on
  that thread are scikit-learn's own helper fits (the ``LabelEncoder`` of ``f1_score``) and record
  nothing. Why this hook and not the functions themselves: a function object cannot be patched in
  place, and the references that matter are bound before ``autolog()`` runs (``from sklearn.metrics
  import f1_score`` at the top of a script, the scorers' ``_score_func``, the metrics calling each
  other); every such call still goes through the one ``config_context`` name of that module.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import threading
from typing import Any

from trackhooks.plugin import warn_once

from . import recording
from .estimator import _START_RUN_ARGS

METHODS = ("fit", "fit_transform", "fit_predict", "partial_fit")
_lock = threading.RLock()
_patches: dict[tuple[Any, str], Any] = {}  # (class or module, attribute) -> original
_config: dict[str, Any] | None = None  # None: disabled; read without a lock (replaced whole, never mutated)
#: depth of public scikit-learn functions running on this thread: fits made meanwhile are theirs
_in_function = threading.local()
OPTION_NAMES = frozenset({"disable", "log_model", "log_training_metrics"}) | _START_RUN_ARGS


def autolog(*, disable: bool = False, log_model: bool = False, log_training_metrics: bool = True,
            **start_run_kwargs: Any) -> None:
    """Record every outermost scikit-learn fit, cross-validation and search as a run.

    ``start_run_kwargs`` (experiment, name, tags, store, mirrors, params, parent) go to the
    ``start_run`` of each recorded fit. Calling it again replaces the options; ``disable=True``
    restores scikit-learn exactly as it was.
    """
    global _config
    unknown = sorted(set(start_run_kwargs) - _START_RUN_ARGS)
    if unknown:
        raise TypeError(f"autolog() got unexpected option(s) {', '.join(map(repr, unknown))}; it takes disable=, "
                        f"log_model=, log_training_metrics= and {', '.join(sorted(_START_RUN_ARGS))}")
    with _lock:
        if disable:
            _config = None
            _unpatch()
            return
        _config = {"log_model": bool(log_model), "log_training_metrics": bool(log_training_metrics),
                   "run_kwargs": dict(start_run_kwargs)}
        from trackhooks.plugin import collector_paused, prepare_runs

        prepare_runs()  # the core modules a recorded fit loads, imported here rather than in the first fit
        if not _patches:
            with collector_paused():  # ~900 lasting objects (wrappers of ~160 methods) in one burst
                _patch()


def is_enabled() -> bool:
    return _config is not None


# ---- the wrappers ----------------------------------------------------------------------------------


def _wrap_method(fn: Any, method: str) -> Any:
    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or getattr(recording._guard, "depth", 0) or getattr(_in_function, "depth", 0):
            return fn(self, *args, **kwargs)  # an inner fit: two thread-local reads of overhead
        return _record(fn, method, config, self, args, kwargs)

    # what functools.wraps copies, assigned directly: its generic getattr/setattr loop was a third of
    # autolog()'s own time with ~160 methods to wrap
    patched.__module__, patched.__name__, patched.__qualname__ = fn.__module__, fn.__name__, fn.__qualname__
    patched.__doc__, patched.__annotations__ = fn.__doc__, fn.__annotations__
    patched.__dict__.update(fn.__dict__)
    patched.__wrapped__ = fn  # type: ignore[attr-defined]  # inspect.signature (metadata routing) follows it
    patched.__trackhooks_original__ = fn  # type: ignore[attr-defined]
    return patched


def _xy(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    X = args[0] if args else kwargs.get("X", kwargs.get("raw_documents"))
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return X, y


def _record(fn: Any, method: str, config: dict, est: Any, args: tuple, kwargs: dict) -> Any:
    def call() -> Any:
        return fn(est, *args, **kwargs)

    try:
        X, y = _xy(args, kwargs)
        if method != "partial_fit":
            recording.end_partial(est)
    except Exception as exc:
        recording._warn("autolog", exc)
        with recording.suppressed():
            return call()
    if method == "partial_fit":
        return recording.record_partial_fit(est, call, X, y, run_kwargs=config["run_kwargs"],
                                            training_metrics=config["log_training_metrics"])
    return recording.record_fit(est, call, X, y, run_kwargs=config["run_kwargs"], save_model=config["log_model"],
                                training_metrics=config["log_training_metrics"], kind=method)


_CV_TASKS = {"_fit_and_score": "cross_validate", "_fit_and_predict": "cross_val_predict"}


def _record_cv_batch(orig_call: Any, parallel: Any, items: Any, first: tuple, kind: str, config: dict) -> Any:
    """A top-level batch of cross-validation fits (cross_validate, cross_val_score, cross_val_predict,
    learning_curve, ...) is one run: the folds are recorded from their results, not as runs."""
    import time

    args = first[1]
    est, X, y = args[0], args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else None
    tasks: list[tuple] = []

    def keep(batch: Any) -> Any:  # the fold arguments, for cross_val_predict's metrics
        for item in batch:
            tasks.append(item)
            yield item

    opened = recording.open_run(None, config["run_kwargs"])
    run = opened.run if opened is not None else None
    with recording.suppressed():
        if run is not None:
            recording._safe("recording params and data", recording._log_start, run, est, X, y, kind)
        t0 = time.perf_counter()
        try:
            results = orig_call(parallel, _mark(keep(items)))
        except BaseException as exc:
            if opened is not None:
                recording.end_run(opened, exc)
            raise
        elapsed = time.perf_counter() - t0
        if run is not None:
            recording._safe("recording cross-validation results", _log_cv, run, kind, est, y, results, tasks, elapsed)
            recording.end_run(opened, None)
        return results


def _log_cv(run: Any, kind: str, est: Any, y: Any, results: list, tasks: list, elapsed: float) -> None:
    run.log_metric("fit_time_s", elapsed)
    if kind == "cross_validate":
        series: dict[str, list[float]] = {}
        for fold in results:
            for field, name in (("test_scores", "test"), ("train_scores", "train")):
                value = fold.get(field)
                if isinstance(value, dict):
                    for scorer, v in value.items():
                        series.setdefault(f"cv_{name}_{scorer}", []).append(float(v))
                elif value is not None:
                    series.setdefault(f"cv_{name}_score", []).append(float(value))
            for field in ("fit_time", "score_time"):
                if fold.get(field) is not None:
                    series.setdefault(f"cv_{field}", []).append(float(fold[field]))
        for key, vals in series.items():
            for i, v in enumerate(vals):
                run.log_metric(key, v, step=i)
            mean = sum(vals) / len(vals)
            run.log_metrics({f"{key}_mean": mean, f"{key}_std": (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5})
        return
    # cross_val_predict: metrics of the out-of-fold predictions (order does not matter to them)
    import numpy as np

    if y is None or any(len(t[1]) < 7 or t[1][6] != "predict" for t in tasks):
        return
    y_arr = np.asarray(y)
    tests = [np.asarray(t[1][4]) for t in tasks]
    y_true = np.concatenate([y_arr[idx] for idx in tests])
    y_pred = np.concatenate([np.asarray(p) for p in results])
    run.log_metrics(recording.prediction_metrics(est, y_true, y_pred, "cv"))


# ---- patching ---------------------------------------------------------------------------------------


def _sklearn_classes() -> set[type]:
    """Every scikit-learn class imported so far that an estimator inherits from (MROs included)."""
    from sklearn.base import BaseEstimator

    in_mros: set[type] = set()
    todo: list[type] = [BaseEstimator]
    seen: set[type] = set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        todo.extend(cls.__subclasses__())
        in_mros.update(cls.__mro__)  # in C; the module test below then runs once per distinct class
    return {k for k in in_mros if k.__module__.startswith("sklearn.")}


def _patch_class(cls: type) -> None:
    for method in METHODS:
        attr = cls.__dict__.get(method)
        if attr is None or getattr(attr, "__trackhooks_original__", None) is not None:
            continue
        new = _wrapped(attr, method)
        if new is not None:
            _set(cls, method, new)


def _install_class_hook() -> None:
    """Classes scikit-learn defines after autolog() (a module imported later) are patched as they are
    created, so autolog() does not have to import all of scikit-learn up front."""
    from sklearn.base import BaseEstimator

    orig = inspect.getattr_static(BaseEstimator, "__init_subclass__")
    orig_func = orig.__func__ if isinstance(orig, classmethod) else None

    def hook(cls: type, **kwargs: Any) -> None:
        if orig_func is not None:
            orig_func(cls, **kwargs)
        else:
            super(BaseEstimator, cls).__init_subclass__(**kwargs)
        if _config is not None and cls.__module__.startswith("sklearn."):
            try:
                with _lock:
                    _patch_class(cls)
            except Exception as exc:
                recording._warn("autolog: patching a new class", exc)

    _set(BaseEstimator, "__init_subclass__", classmethod(hook))


def _wrapped(attr: Any, method: str) -> Any:
    if inspect.isfunction(attr):
        return _wrap_method(attr, method)
    fn = getattr(attr, "fn", None)  # sklearn's available_if descriptor: keep the descriptor, wrap its function
    if inspect.isfunction(fn):
        new = copy.copy(attr)
        new.fn = _wrap_method(fn, method)
        return new
    return None


_ABSENT = object()  # the attribute was inherited: restoring deletes it


def _set(owner: Any, name: str, value: Any) -> None:
    if (owner, name) not in _patches:
        _patches[(owner, name)] = owner.__dict__.get(name, _ABSENT) if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, value)


def _patch() -> None:
    try:
        for cls in _sklearn_classes():
            _patch_class(cls)
        _install_class_hook()
        _patch_parallel()
        _patch_public_functions()
    except Exception as exc:  # a scikit-learn version we do not know: whatever is patched stays consistent
        warn_once(("sklearn", "autolog-patch"), f"sklearn autolog: could not patch everything ({type(exc).__name__}: "
                                                f"{exc}); some fits may not be recorded")


def _mark(items: Any, attr: str = "_trackhooks_inner") -> Any:
    """Mark each task dispatched from a recorded fit (or from a public scikit-learn function, with
    ``attr="_trackhooks_in_function"``) as inner: read by the worker thread that runs it."""
    for item in items:
        try:
            setattr(item[0], attr, True)
        except Exception:
            pass
        yield item


def _patch_public_functions() -> None:
    from sklearn.utils import _param_validation as pv

    orig = pv.__dict__.get("config_context")
    if orig is None:
        warn_once(("sklearn", "validate_params"), "sklearn autolog: this scikit-learn has no "
                  "_param_validation.config_context; fits inside scikit-learn functions (metrics) may record runs")
        return

    class in_public_function:
        """``config_context`` as validate_params enters it, counting the public call on this thread."""

        __slots__ = ("_cm",)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._cm = orig(*args, **kwargs)

        def __enter__(self) -> Any:
            _in_function.depth = getattr(_in_function, "depth", 0) + 1
            try:
                return self._cm.__enter__()
            except BaseException:
                _in_function.depth -= 1
                raise

        def __exit__(self, *exc: Any) -> Any:
            try:
                return self._cm.__exit__(*exc)
            finally:
                _in_function.depth -= 1

    _set(pv, "config_context", in_public_function)


def _patch_parallel() -> None:
    try:
        from sklearn.utils.parallel import Parallel, _FuncWrapper
    except ImportError:
        return
    orig_call = Parallel.__dict__["__call__"]
    orig_task = _FuncWrapper.__dict__["__call__"]

    def parallel_call(self: Any, iterable: Any) -> Any:
        if getattr(recording._guard, "depth", 0):
            return orig_call(self, _mark(iterable))
        config = _config
        if getattr(_in_function, "depth", 0):
            # a public function's tasks (permutation_importance's scorers): theirs, on worker threads too;
            # a cross-validation batch inside one (learning_curve) is still one run
            iterable = _mark(iterable, "_trackhooks_in_function")
        if config is None or getattr(self, "return_generator", False) or getattr(self, "return_ordered", True) is False:
            return orig_call(self, iterable)
        it = iter(iterable)
        try:
            first = next(it)
            kind = _CV_TASKS.get(getattr(getattr(first[0], "function", None), "__name__", ""))
        except StopIteration:
            return orig_call(self, ())
        except Exception:
            kind = None
        items = itertools.chain([first], it)
        if kind is None:
            return orig_call(self, items)
        return _record_cv_batch(orig_call, self, items, first, kind, config)

    def task_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.__dict__.get("_trackhooks_inner"):
            # a task of a recorded fit (on a joblib worker thread, or on this thread inside a search's
            # refit window, which lets only the refit record into the search's run)
            with recording.suppressed():
                return orig_task(self, *args, **kwargs)
        if self.__dict__.get("_trackhooks_in_function"):
            _in_function.depth = getattr(_in_function, "depth", 0) + 1
            try:
                return orig_task(self, *args, **kwargs)
            finally:
                _in_function.depth -= 1
        return orig_task(self, *args, **kwargs)

    _set(Parallel, "__call__", functools.wraps(orig_call)(parallel_call))
    _set(_FuncWrapper, "__call__", functools.wraps(orig_task)(task_call))


def _unpatch() -> None:
    for (owner, name), orig in reversed(list(_patches.items())):
        try:
            if orig is _ABSENT:
                delattr(owner, name)
            else:
                setattr(owner, name, orig)
        except Exception:
            pass
    _patches.clear()
