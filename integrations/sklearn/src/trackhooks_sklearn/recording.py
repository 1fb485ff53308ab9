"""What one scikit-learn fit records, shared by ``track()`` and ``autolog()``.

Only the outermost fit of a thread records: ``_guard.depth`` counts the recorded fits (and the
metric computations, which fit small helpers such as ``LabelBinarizer``) in progress on this thread,
and every nested fit, ``partial_fit`` or cross-validation sees ``depth > 0`` and runs untouched. That
check is one thread-local read, so the inner fits of a search pay next to nothing. ``suppressed()``
also pushes the core's suppress frame, so that the other integrations' fits inside (an XGBoost,
Keras or Lightning estimator in a search) record nothing either; which run a recorded fit goes to is
the core nesting rule (``trackhooks.plugin.open_run``, docs/plugins.md "Nesting").
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import trackhooks
from trackhooks import TrackhooksError
from trackhooks.plugin import container, open_run as core_open_run, start_child_run, suppressed as core_suppressed
from trackhooks.plugin import collector_paused, warn_once

_guard = threading.local()
MAX_FEATURE_NAMES = 1000  # longer column lists are recorded by count only (params are for reading)


def depth() -> int:
    return getattr(_guard, "depth", 0)


class suppressed:
    """Within this block, fits on this thread are not recorded (they are inner fits)."""

    __slots__ = ("_core",)

    def __enter__(self) -> None:
        _guard.depth = getattr(_guard, "depth", 0) + 1
        self._core = core_suppressed()
        self._core.__enter__()

    def __exit__(self, *exc: Any) -> None:
        _guard.depth -= 1
        self._core.__exit__(None, None, None)


def _warn(stage: str, exc: BaseException) -> None:
    warn_once(("sklearn", stage, type(exc).__name__),
              f"sklearn integration: {stage} failed and was skipped ({type(exc).__name__}: {exc}); "
              "the fit itself is unaffected")


def _safe(stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # tracking must never break the user's fit
        _warn(stage, exc)
        return None


# ---- runs -----------------------------------------------------------------------------------------


class RunRef:
    """Which run recorded an estimator's fit, so that ``log_eval`` can add to it later."""

    __slots__ = ("run", "id", "store")

    def __init__(self, run: trackhooks.Run):
        self.run, self.id, self.store = run, run.id, run.store


#: fitted estimator -> the run that recorded its last fit (weak: the map never keeps a model alive)
fitted_runs: "weakref.WeakKeyDictionary[Any, RunRef]" = weakref.WeakKeyDictionary()
_fitted_lock = threading.Lock()


def remember(est: Any, run: trackhooks.Run) -> None:
    try:
        with _fitted_lock:
            fitted_runs[est] = RunRef(run)
    except TypeError:  # an estimator class without weakref support: log_eval then needs run=
        pass


def open_run(run: trackhooks.Run | None, run_kwargs: Mapping[str, Any] | None, *, user_run: str = "child") -> Any:
    """The core nesting rule for one fit (call it before entering ``suppressed()``): an ``Opened``
    (``.run``, ``.owned``; end it with ``end_run``), or None when the fit records nothing (an inner
    fit of another integration's fit) or the run could not be started (one warning)."""
    try:
        opened = core_open_run("sklearn", run=run, options=run_kwargs, user_run=user_run)
        if opened is not None:
            opened.set_tags({"framework": "sklearn", **dict((run_kwargs or {}).get("tags") or {})})
        return opened
    except Exception as exc:
        _warn("starting the run", exc)
        return None


def end_run(opened: Any, exc: BaseException | None) -> None:
    """End the fit of ``opened`` (finishing the run if the fit opened it)."""
    status = "finished" if exc is None else "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
    _safe("finishing the run", opened.close, status)


def refit_window(opened: Any, est: Any) -> Any:
    """A search's own fit: its refit (outside the cross-validation tasks, which are suppressed)
    records into the search's run, e.g. the per-round curves of an XGBoost best estimator."""
    import contextlib

    if opened is None or not hasattr(est, "_run_search"):
        return contextlib.nullcontext()
    return container(opened.run)


# ---- params -----------------------------------------------------------------------------------


def _is_estimator(value: Any) -> bool:
    return hasattr(value, "get_params") and not isinstance(value, type)


def _param(value: Any) -> Any:
    if _is_estimator(value):
        return type(value).__name__
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, tuple) and len(v) >= 2 and isinstance(v[0], str) for v in value):
        return [v[0] for v in value]  # Pipeline steps, FeatureUnion/ColumnTransformer parts: their names
    return value


def estimator_params(est: Any) -> dict[str, Any]:
    """``get_params(deep=True)`` with "__" turned into "." and estimator objects into their class name."""
    out: dict[str, Any] = {}
    try:
        params = est.get_params(deep=True)
    except Exception as exc:
        _warn("reading get_params()", exc)
        params = {}
    for key, value in params.items():
        out[key.replace("__", ".")] = _param(value)
    out["model.class"] = type(est).__name__
    return out


def log_params(run: trackhooks.Run, params: Mapping[str, Any]) -> None:
    """log_params that keeps what it can when a reused run already has other values for some keys."""
    from trackhooks.plugin import flatten_params, same_param

    flat = flatten_params(params)
    have = run.params
    conflicts = [k for k, v in flat.items() if k in have and not same_param(have[k], v)]
    if conflicts:
        warn_once(("sklearn", "param-conflict", run.id),
                  f"sklearn integration: run {run.id[:8]} already has other values for {', '.join(conflicts[:5])}; "
                  "kept the first values (use one run per fit to record each)")
        flat = {k: v for k, v in flat.items() if k not in conflicts}
    run.log_params(flat)


# ---- data -------------------------------------------------------------------------------------


def data_params(X: Any, y: Any) -> dict[str, Any]:
    """n_samples, n_features, dtypes and feature names of the training data (cheap: no data pass)."""
    out: dict[str, Any] = {}
    shape = getattr(X, "shape", None)
    if shape is not None:
        out["data.n_samples"] = int(shape[0])
        if len(shape) > 1:
            out["data.n_features"] = int(shape[1])
    elif hasattr(X, "__len__"):
        out["data.n_samples"] = len(X)
    dtypes = getattr(X, "dtypes", None)
    if dtypes is not None and not isinstance(dtypes, str) and hasattr(dtypes, "__iter__"):
        out["data.dtypes"] = sorted({str(d) for d in dtypes})
    elif getattr(X, "dtype", None) is not None:
        out["data.dtypes"] = [str(X.dtype)]
    columns = getattr(X, "columns", None)
    if columns is not None:
        names = [str(c) for c in columns]
        if len(names) <= MAX_FEATURE_NAMES:
            out["data.feature_names"] = names
    if y is not None and getattr(y, "dtype", None) is not None:
        out["data.y_dtype"] = str(y.dtype)
    return out


def log_data(run: trackhooks.Run, X: Any, y: Any, context: str) -> None:
    """X and y as dataset records (digest + schema), named X_<context> and y_<context>."""
    for label, data in (("X", X), ("y", y)):
        if data is None:
            continue
        name = f"{label}_{context}"
        try:
            run.log_dataset(data, name=name, context=context)
        except TrackhooksError as exc:
            # a container the core cannot fingerprint yet (e.g. a DataFrame before the core handles
            # pandas): its numeric content as an array; anything else only warns
            arr = _numeric_array(data)
            if arr is None:
                warn_once(("sklearn", "dataset", type(data).__name__),
                          f"sklearn integration: cannot fingerprint {label} of type {type(data).__name__}: {exc}")
                continue
            run.log_dataset(arr, name=name, context=context)


def _numeric_array(data: Any) -> Any:
    to_numpy = getattr(data, "to_numpy", None)
    if to_numpy is None:
        return None
    try:
        import numpy as np

        arr = np.ascontiguousarray(to_numpy())
    except Exception:
        return None
    return arr if arr.dtype.kind in "biufcmM" else None  # object arrays would hash pointers


# ---- metrics ------------------------------------------------------------------------------------


def _task(est: Any) -> str | None:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(est):
        return "classifier"
    if is_regressor(est):
        return "regressor"
    return None


class Predictions:
    """One evaluation pass over (X, y): the predictions and, for a classifier scored with
    ``predict_proba``, the one-vs-rest curves its ROC-AUC was computed from (class index -> (fpr, tpr,
    precision, recall)). The plots of the same fit take them from here, so nothing is predicted or
    sorted twice. It holds only arrays the estimator returned to us, never the user's X or y."""

    __slots__ = ("y_pred", "proba", "classes", "curves")

    def __init__(self, y_pred: Any, proba: Any, classes: Any):
        self.y_pred, self.proba, self.classes = y_pred, proba, classes
        self.curves: dict[int, tuple[Any, Any, Any, Any]] | None = None


def _argmax_of_proba(est: Any) -> bool:
    """Whether ``classes_[argmax(predict_proba(X))]`` gives ``est.predict(X)``, so that the
    probabilities give the predictions without a second pass over the data: by definition for a
    forest (its ``predict`` is that argmax; a second pass walks every tree again), and for a
    LogisticRegression whose probabilities are a softmax (or, for two classes, the logistic) of the
    same scores its ``predict`` takes the argmax of (0.4-0.6 ms of a 0.1 s fit on digits). Those
    transforms keep the order of the scores; they can only tie two scores that differ by less than
    about 1e-16, where the argmax takes the first class instead of the larger score's."""
    forest = sys.modules.get("sklearn.ensemble._forest")
    cls = type(est)
    if forest is not None and getattr(cls, "predict", None) is forest.ForestClassifier.predict:
        return getattr(est, "n_outputs_", None) == 1
    logistic, linear = sys.modules.get("sklearn.linear_model._logistic"), sys.modules.get("sklearn.linear_model._base")
    if logistic is None or linear is None:
        return False
    mixin = getattr(linear, "LinearClassifierMixin", None)
    return (mixin is not None and getattr(cls, "predict", None) is getattr(mixin, "predict", ())
            and getattr(cls, "decision_function", None) is getattr(mixin, "decision_function", ())
            and getattr(cls, "predict_proba", None) is getattr(logistic.LogisticRegression, "predict_proba", ())
            # one-vs-rest probabilities (liblinear, multi_class="ovr" of older versions) normalise
            # logistic values that saturate at 1.0 for large scores: ties that are not rare
            and (len(getattr(est, "classes_", ())) <= 2
                 or (getattr(est, "solver", None) != "liblinear" and getattr(est, "multi_class", "auto") != "ovr")))


def _predict_proba(est: Any, X: Any) -> Any:
    """``est.predict_proba(X)``. For scikit-learn's own single-output forest classifier on one job,
    the same sum of the trees' probabilities in the same order, without joblib's ``Parallel``
    (whose per-tree bookkeeping was ~2.5 of ~8 ms for 50 trees on digits): the same array to the
    bit (tested). Anything else, or anything unexpected on the way, asks the estimator itself."""
    forest = sys.modules.get("sklearn.ensemble._forest")
    if forest is None or getattr(type(est), "predict_proba", None) is not forest.ForestClassifier.predict_proba \
            or getattr(est, "n_outputs_", None) != 1:
        return est.predict_proba(X)
    try:
        import numpy as np
        from joblib import effective_n_jobs

        trees = est.estimators_
        if min(effective_n_jobs(est.n_jobs), len(trees)) != 1:
            return est.predict_proba(X)  # several jobs: its threads are faster than one loop here
        X = est._validate_X_predict(X)
        proba = np.zeros((X.shape[0], int(np.atleast_1d(est.n_classes_)[0])), dtype=np.float64)
        for tree in trees:
            proba += tree.predict_proba(X, check_input=False)
        proba /= len(trees)
        return proba
    except Exception:
        return est.predict_proba(X)


def predict(est: Any, X: Any, *, strict: bool = False) -> Predictions | None:
    """``predict`` (and ``predict_proba`` for a classifier that has it) of a fitted estimator on X.

    With ``strict`` an error of ``predict`` itself propagates (log_eval); otherwise None."""
    task = _task(est)
    with suppressed():
        proba = classes = None
        if task == "classifier" and hasattr(est, "predict_proba"):
            try:
                proba, classes = _predict_proba(est, X), est.classes_
            except Exception:
                proba = None
        if proba is not None and _argmax_of_proba(est) and getattr(proba, "ndim", 0) == 2:
            import numpy as np

            return Predictions(classes.take(np.argmax(proba, axis=1), axis=0), proba, classes)
        try:
            y_pred = est.predict(X)
        except Exception:
            if strict:
                raise
            return None
        return Predictions(y_pred, proba, classes)


def task_metrics(est: Any, X: Any, y: Any, prefix: str, *, strict: bool = False) -> dict[str, float]:
    """The metrics of a fitted classifier or regressor on (X, y), keys "<prefix>_<metric>".

    With ``strict`` an error of ``predict`` itself propagates (log_eval); otherwise nothing is recorded.
    """
    return evaluate(est, X, y, prefix, strict=strict)[0]


def evaluate(est: Any, X: Any, y: Any, prefix: str, *, strict: bool = False
             ) -> tuple[dict[str, float], Predictions | None]:
    """``task_metrics`` and the predictions they were computed from (for the plots of the same data)."""
    if y is None or _task(est) is None:
        return {}, None
    preds = predict(est, X, strict=strict)
    if preds is None:
        return {}, None
    return prediction_metrics(est, y, preds.y_pred, prefix, preds.proba, preds.classes, preds), preds


def prediction_metrics(est: Any, y: Any, y_pred: Any, prefix: str, proba: Any = None,
                       classes: Any = None, preds: Predictions | None = None) -> dict[str, float]:
    """Classifier: accuracy, balanced_accuracy, f1_macro (+ log_loss, roc_auc from ``proba``);
    regressor: r2, mse, rmse, mae. A metric that is undefined here (one class only, multi-label
    targets, ...) is left out.

    1-D targets take a numpy path that gives scikit-learn's values (tested against sklearn.metrics)
    at a fraction of the cost of its input validation; anything else goes through sklearn.metrics.
    ``preds``, when given, receives the one-vs-rest curves the ROC-AUC was computed from.
    """
    task = _task(est)
    if y is None or task is None:
        return {}
    curves: dict[int, Any] = {}
    try:
        import numpy as np

        with np.errstate(all="ignore"):  # thread-safe, unlike warnings.catch_warnings
            if task == "classifier":
                values = _fast_classifier(y, y_pred, proba, classes, curves)
            else:
                values = _fast_regressor(y, y_pred, proba, classes)
    except Exception:
        values = None
    if values is None:
        values = _sklearn_metrics(task, y, y_pred, proba, classes)
    elif preds is not None and curves:
        preds.curves = curves
    return {f"{prefix}_{k}": v for k, v in values.items() if not math.isnan(v)}


def binary_curves(positive: Any, score: Any) -> tuple[Any, Any, Any, Any]:
    """(fpr, tpr, precision, recall) exactly as ``sklearn.metrics.roc_curve`` (drop_intermediate=True)
    and ``precision_recall_curve(drop_intermediate=True)`` compute them (tested equal; the PR curve
    also without the inner points of horizontal runs, see ``horizontal_ends``), from one sort,
    without their per-call input validation (which costs more than the curves themselves when there
    is one curve per class). ``positive``: bool array; both classes must be present."""
    import numpy as np

    score = np.asarray(score, dtype=np.float64)
    if not np.isfinite(score).all():
        raise ValueError("non-finite scores")
    # sklearn sorts with mergesort for a stable order of ties; only the counts at the end of each run
    # of equal scores are used, and those do not depend on the order inside the run, so any sort
    # gives the same curves: numpy's stable sort up to a few thousand scores (24 vs 45 µs for the
    # 1 797 of digits, and for random ones), its quicksort above (6 vs 10 ms for 100 000)
    order = np.argsort(score, kind="stable" if score.size <= 8192 else None)[::-1]
    score, hit = score[order], positive[order]
    last = np.append(np.flatnonzero(score[1:] != score[:-1]), hit.size - 1)  # the last index of each distinct score
    tps = np.cumsum(hit)[last].astype(np.float64)  # counts: exact in either type, the integer sum is faster
    fps = (last + 1) - tps
    zero = np.zeros(1)
    if len(fps) > 2:  # points on a straight ROC segment add nothing to the plot or the area
        keep = np.flatnonzero(np.concatenate(([True], (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), [True])))
        rf, rt = np.concatenate((zero, fps[keep])), np.concatenate((zero, tps[keep]))
        # PR points with the recall of both neighbours lie on a vertical segment
        keep = np.flatnonzero(np.concatenate(([True], (tps[1:-1] != tps[:-2]) | (tps[2:] != tps[1:-1]), [True])))
        tps, fps = tps[keep], fps[keep]
    else:
        rf, rt = np.concatenate((zero, fps)), np.concatenate((zero, tps))
    fpr, tpr = rf / rf[-1], rt / rt[-1]
    ps = tps + fps
    precision = np.divide(tps, ps, out=np.zeros_like(tps), where=ps != 0)
    recall = tps / tps[-1]
    precision, recall = np.concatenate((precision[::-1], [1.0])), np.concatenate((recall[::-1], zero))
    return fpr, tpr, *horizontal_ends(precision, recall)


def horizontal_ends(precision: Any, recall: Any) -> tuple[Any, Any]:
    """A PR curve without the points inside a run of equal precision: they lie on a horizontal
    segment, so the plotted curve is the same, as it is for the vertical runs that sklearn's
    ``drop_intermediate`` leaves out. On training data most positives score above every negative:
    precision 1.0 for a run of ~one point per positive, each an expensive float in the JSON record."""
    import numpy as np

    if len(precision) <= 2:
        return precision, recall
    keep = np.flatnonzero(np.concatenate(
        ([True], (precision[1:-1] != precision[:-2]) | (precision[2:] != precision[1:-1]), [True])))
    return precision[keep], recall[keep]


def _auc(fpr: Any, tpr: Any) -> float:
    # sklearn.metrics.auc of a ROC curve (x never decreases): scipy's trapezoid, same operations
    import numpy as np

    return float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0))


def _fast_classifier(y: Any, y_pred: Any, proba: Any, classes: Any,
                     curves: dict[int, Any] | None = None) -> dict[str, float] | None:
    import numpy as np

    y, y_pred = np.asarray(y), np.asarray(y_pred)
    if y.ndim != 1 or y_pred.shape != y.shape or y.dtype.kind not in "biuUSO" or len(y) == 0:
        return None
    labels = np.unique(np.concatenate([y, y_pred]))
    yi, pi = np.searchsorted(labels, y), np.searchsorted(labels, y_pred)
    k = len(labels)
    cm = np.bincount(yi * k + pi, minlength=k * k).reshape(k, k)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    out = {"accuracy": float(tp.sum() / len(y)),
           "balanced_accuracy": float(np.mean(tp[support > 0] / support[support > 0])),
           "f1_macro": float(np.mean(2 * tp / (support + predicted)))}
    if proba is None or getattr(proba, "ndim", 0) != 2:
        return out
    classes = np.asarray(classes)
    if proba.shape != (len(y), len(classes)) or len(classes) < 2:
        return out
    ci = np.searchsorted(classes, y)
    if (ci >= len(classes)).any() or (classes[np.minimum(ci, len(classes) - 1)] != y).any():
        return out  # a label the model never saw: leave it to sklearn.metrics
    proba = np.asarray(proba, dtype=np.float64)
    eps = np.finfo(proba.dtype).eps
    out["log_loss"] = float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), ci], eps, 1 - eps))))
    present = np.bincount(ci, minlength=len(classes))
    # one curve per class (binary: the positive class, classes_[1]); its area is the class's ROC-AUC,
    # as sklearn.metrics.roc_auc_score computes it (roc_curve, then auc)
    aucs = []
    for c in ([1] if len(classes) == 2 else range(len(classes))):
        if 0 < present[c] < len(y):
            curve = binary_curves(ci == c, proba[:, c])
            if curves is not None:
                curves[c] = curve
            aucs.append(_auc(curve[0], curve[1]))
    if (present == 0).any():
        return out  # ROC-AUC is undefined with a class missing
    if len(classes) == 2:
        out["roc_auc"] = aucs[0]
    else:
        # sklearn refuses one-vs-rest AUC of scores that are not probabilities: its
        # np.allclose(1, sums) test, written out (allclose's generic path cost more than the curves)
        sums = proba.sum(axis=1)
        if (np.abs(sums - 1.0) <= 1e-08 + 1e-05 * np.abs(sums)).all():
            out["roc_auc"] = float(np.mean(aucs))
    return out


def _fast_regressor(y: Any, y_pred: Any, proba: Any, classes: Any) -> dict[str, float] | None:
    import numpy as np

    y, y_pred = np.asarray(y), np.asarray(y_pred)
    if y.ndim != 1 or y_pred.shape != y.shape or y.dtype.kind not in "biuf" or y_pred.dtype.kind not in "biuf" \
            or len(y) < 2:
        return None
    y, y_pred = y.astype(np.float64), y_pred.astype(np.float64)
    err = y - y_pred
    mse = float(np.mean(err * err))
    ss_res, ss_tot = float(np.sum(err * err)), float(np.sum((y - y.mean()) ** 2))
    r2 = (1.0 - ss_res / ss_tot) if ss_tot != 0 else (1.0 if ss_res == 0 else 0.0)  # sklearn's force_finite
    return {"r2": r2, "mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(err)))}


_warnings_lock = threading.Lock()


def _sklearn_metrics(task: str, y: Any, y_pred: Any, proba: Any, classes: Any) -> dict[str, float]:
    from sklearn import metrics as m

    out: dict[str, float] = {}

    def put(name: str, fn: Callable[[], Any]) -> None:
        try:
            out[name] = float(fn())
        except Exception:
            pass

    # catch_warnings swaps process-wide filters: two of ours interleaving across threads could leave
    # "ignore" installed for good, so ours are serialised (the undefined-metric warnings are noise here)
    with suppressed(), _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "classifier":
            put("accuracy", lambda: m.accuracy_score(y, y_pred))
            put("balanced_accuracy", lambda: m.balanced_accuracy_score(y, y_pred))
            put("f1_macro", lambda: m.f1_score(y, y_pred, average="macro"))
            if proba is not None and getattr(proba, "ndim", 0) == 2:
                put("log_loss", lambda: m.log_loss(y, proba, labels=classes))
                if proba.shape[1] == 2:
                    put("roc_auc", lambda: m.roc_auc_score(y, proba[:, 1]))
                else:
                    put("roc_auc", lambda: m.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
        else:
            put("r2", lambda: m.r2_score(y, y_pred))
            put("mse", lambda: m.mean_squared_error(y, y_pred))
            if "mse" in out:
                out["rmse"] = math.sqrt(out["mse"])
            put("mae", lambda: m.mean_absolute_error(y, y_pred))
    return out


# ---- iteration curves ---------------------------------------------------------------------------


def final_estimator(est: Any) -> Any:
    """The model at the end of trackers, fitted searches and Pipelines."""
    for _ in range(20):
        inner = est.__dict__.get("estimator_") if type(est).__name__ == "TrackedEstimator" else None
        if inner is None:
            inner = getattr(est, "best_estimator_", None) if hasattr(est, "cv_results_") else None
        if inner is None and hasattr(est, "steps") and hasattr(est, "_final_estimator"):
            inner = est._final_estimator
        if inner is None or inner is est or isinstance(inner, str):
            return est
        est = inner
    return est


def curves(est: Any) -> dict[str, tuple[list[float], bool]]:
    """Per-iteration series the fitted model exposes: name -> (values, steps are epochs)."""
    # a model of sklearn.ensemble exists only once the program imported it: importing it here cost
    # ~50 ms at the end of every other fit
    ens = sys.modules.get("sklearn.ensemble")
    boosting = (ens.GradientBoostingClassifier, ens.GradientBoostingRegressor) if ens is not None else ()
    hist = (ens.HistGradientBoostingClassifier, ens.HistGradientBoostingRegressor) if ens is not None else ()

    def series(attr: str) -> list[float] | None:
        values = getattr(est, attr, None)
        if values is None:
            return None
        try:
            out = [float(v) for v in values]
        except (TypeError, ValueError):
            return None
        return out or None

    found: dict[str, tuple[list[float], bool]] = {}
    if boosting and isinstance(est, boosting):
        pairs = (("train_score_", "train_loss"), ("oob_improvement_", "oob_improvement"))
        epochs = False
    elif hist and isinstance(est, hist):
        pairs = (("train_score_", "train_score"), ("validation_score_", "validation_score"))
        epochs = False
    elif hasattr(est, "loss_curve_"):  # MLPClassifier / MLPRegressor (sgd and adam solvers)
        pairs = (("loss_curve_", "loss"), ("validation_scores_", "validation_score"))
        epochs = True
    else:
        return found
    for attr, name in pairs:
        values = series(attr)
        if values is not None:
            found[name] = (values, epochs)
    return found


def log_curves(run: trackhooks.Run, est: Any) -> None:
    for name, (values, epochs) in curves(final_estimator(est)).items():
        for i, v in enumerate(values):
            run.log_metric(name, v, step=i, epoch=i if epochs else None)


# ---- search estimators ---------------------------------------------------------------------------


def log_search(run: trackhooks.Run, search: Any) -> None:
    """One child run per candidate; best params, score and index on the parent.

    Successive-halving searches evaluate a candidate in several iterations: its child run holds one
    point per iteration (step = iteration) instead of one child per (candidate, iteration) row.
    """
    res = search.cv_results_
    cand_params = res["params"]
    iters = res.get("iter")
    groups: dict[str, list[int]] = {}
    for row, p in enumerate(cand_params):
        groups.setdefault(repr(sorted((k, repr(v)) for k, v in p.items())), []).append(row)
    keys = [k for k in res if k.startswith(("mean_", "std_", "rank_")) or k == "n_resources"]
    best = getattr(search, "best_index_", None)
    best_child: str | None = None
    for i, rows in enumerate(groups.values()):
        params = {k.replace("__", "."): _param(v) for k, v in cand_params[rows[0]].items()}
        params["candidate_index"] = i
        # a child writes no row of its own on this thread and its finish does not wait for the
        # writer: the search's run, finished right after, makes all of them durable in one drain
        # (a blocking start and finish per candidate cost ~2 ms each, most of a small search's overhead)
        child = start_child_run(run, f"{run.name}.{i}", tags={"framework": "sklearn", "sklearn.role": "candidate"},
                                params=params)
        for row in rows:
            step = int(iters[row]) if iters is not None else 0
            values = {}
            for key in keys:
                try:
                    values[key] = float(res[key][row])
                except (TypeError, ValueError):
                    continue
            if "mean_fit_time" in values:
                values["fit_time_s"] = values["mean_fit_time"]
            child.log_metrics(values, step=step)
            if best is not None and row == best:
                best_child = child.id
        child.finish(timeout=0)
    if best is not None:
        best_params = getattr(search, "best_params_", None) or {}
        log_params(run, {"best_index": int(best),
                         **{f"best_params.{k.replace('__', '.')}": _param(v) for k, v in best_params.items()}})
    score = getattr(search, "best_score_", None)
    if score is not None:
        run.log_metric("best_score", float(score))
    if best_child is not None:
        run.set_tags({"sklearn.best_run": best_child})


# ---- model artifact -------------------------------------------------------------------------------


def log_model(run: trackhooks.Run, model: Any) -> None:
    import joblib

    tmp = tempfile.mkdtemp(prefix="trackhooks-sklearn-")
    try:
        path = os.path.join(tmp, "model.joblib")
        joblib.dump(model, path)
        run.log_artifact(path, name="model.joblib")
        run.flush()  # the writer copies the file: keep it until then
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- one recorded fit ----------------------------------------------------------------------------


def record_fit(est: Any, call: Callable[[], Any], X: Any, y: Any, *, run: trackhooks.Run | None = None,
               run_kwargs: Mapping[str, Any] | None = None, model: Callable[[], Any] | None = None,
               params_of: Any = None, save_model: bool = False, training_metrics: bool = True,
               kind: str = "fit") -> Any:
    """Run ``call()`` (the user's fit) as the outermost, recorded fit of this thread.

    ``model()`` gives the fitted model to evaluate and save (default ``est``); ``params_of`` the
    estimator whose params are recorded (default ``est``). The user's exception propagates unchanged
    after an owned run is marked failed (killed for KeyboardInterrupt).
    """
    # The bookkeeping before and after the user's fit runs with the collector paused: its allocations
    # (the run, its records, the evaluation) then cost one young collection each side instead of
    # several, which on a freshly imported scikit-learn heap were often enough to start a full one
    # (~75 ms) inside a 0.1 s fit (benchmarks/README.md, "Sixth pass"). The user's fit is never inside.
    with collector_paused():
        opened = open_run(run, run_kwargs)
        run = opened.run if opened is not None else None
        if run is not None:
            with suppressed():
                _safe("recording params and data", _log_start, run, params_of if params_of is not None else est, X,
                      y, kind)
    with suppressed():
        t0 = time.perf_counter()
        try:
            with refit_window(opened, params_of if params_of is not None else est):
                result = call()
        except BaseException as exc:
            if opened is not None:
                end_run(opened, exc)
            raise
        fit_time = time.perf_counter() - t0
        if run is not None:
            with collector_paused():
                fitted = est if model is None else _safe("reading the fitted model", model)
                _safe("recording fit results", _log_end, run, fitted, X, y, fit_time, training_metrics)
                if save_model and fitted is not None:
                    _safe("saving the model", log_model, run, fitted)
                remember(est, run)
                end_run(opened, None)
        return result


def _log_start(run: trackhooks.Run, est: Any, X: Any, y: Any, kind: str) -> None:
    params = estimator_params(est)
    params.update(data_params(X, y))
    log_params(run, params)
    run.set_tags({"sklearn.kind": kind})
    log_data(run, X, y, "train")


def _log_end(run: trackhooks.Run, fitted: Any, X: Any, y: Any, fit_time: float, training_metrics: bool) -> None:
    values: dict[str, float] = {"fit_time_s": fit_time}
    preds = None
    if training_metrics and fitted is not None:
        metrics, preds = evaluate(fitted, X, y, "train")
        values.update(metrics)
    run.log_metrics(values)
    if fitted is None:
        return
    from .plots import log_fit_plots

    _safe("recording plots", log_fit_plots, run, fitted, X, y, training_metrics, preds)
    _safe("recording iteration curves", log_curves, run, fitted)
    search = fitted
    if type(search).__name__ == "TrackedEstimator":
        search = search.__dict__.get("estimator_")
    if hasattr(search, "cv_results_"):
        _safe("recording search candidates", log_search, run, search)


# ---- partial_fit: one run per estimator, one step per call --------------------------------------


class _PartialState:
    __slots__ = ("opened", "run", "owned", "step", "seen", "__weakref__")

    def __init__(self, opened: Any):
        self.opened, self.run, self.owned, self.step, self.seen = opened, opened.run, opened.owned, 0, 0


_partial: "weakref.WeakKeyDictionary[Any, _PartialState]" = weakref.WeakKeyDictionary()


def _finish_quietly(run: trackhooks.Run) -> None:
    if run.status == "running":
        try:
            run.finish("finished", timeout=0)
        except Exception:
            pass


def end_partial(est: Any) -> None:
    """Finish the run of an estimator's partial_fit calls (a new fit() starts a new run)."""
    try:
        state = _partial.pop(est, None) if _partial else None
    except TypeError:
        return
    if state is not None:
        end_run(state.opened, None)


def record_partial_fit(est: Any, call: Callable[[], Any], X: Any, y: Any, *, run: trackhooks.Run | None = None,
                       run_kwargs: Mapping[str, Any] | None = None, model: Callable[[], Any] | None = None,
                       params_of: Any = None, training_metrics: bool = True) -> Any:
    """Each partial_fit call is one step of one run per estimator (finished when the estimator is
    garbage-collected, refitted with fit(), or at interpreter exit)."""
    try:
        state = _partial.get(est)
    except TypeError:  # not weak-referenceable: every call is a run of its own
        state = None
    opened = None
    if state is None or state.run.status != "running":
        opened = open_run(run, run_kwargs)
        if opened is not None:
            opened.detach()  # the run spans many calls; each call's inner fits are suppressed below
    with suppressed():
        if opened is not None:
            state = _PartialState(opened)
            try:
                _partial[est] = state
                if opened.owned:
                    weakref.finalize(est, _finish_quietly, opened.run)
            except TypeError:
                pass
            _safe("recording params", _log_start_partial, opened.run,
                  params_of if params_of is not None else est, X, y)
        t0 = time.perf_counter()
        try:
            result = call()
        except BaseException as exc:
            if state is not None:
                _partial.pop(est, None)
                end_run(state.opened, exc)
            raise
        dt = time.perf_counter() - t0
        if state is not None:
            _safe("recording a partial_fit step", _log_partial_step, state, est if model is None else model(),
                  X, y, dt, training_metrics)
            remember(est, state.run)
        return result


def _log_start_partial(run: trackhooks.Run, est: Any, X: Any, y: Any) -> None:
    params = estimator_params(est)
    params.update({k: v for k, v in data_params(X, y).items() if k != "data.n_samples"})
    log_params(run, params)
    run.set_tags({"sklearn.kind": "partial_fit"})


def _log_partial_step(state: _PartialState, fitted: Any, X: Any, y: Any, dt: float, training_metrics: bool) -> None:
    shape = getattr(X, "shape", None)
    n = int(shape[0]) if shape is not None else (len(X) if hasattr(X, "__len__") else 0)
    state.seen += n
    values: dict[str, float] = {"fit_time_s": dt, "n_samples_seen": state.seen}
    loss = getattr(final_estimator(fitted), "loss_", None)
    if isinstance(loss, (int, float)):
        values["loss"] = float(loss)
    if training_metrics:
        values.update(task_metrics(fitted, X, y, "train"))
    state.run.log_metrics(values, step=state.step)
    state.step += 1


# ---- held-out evaluation ---------------------------------------------------------------------------


def log_eval(estimator: Any, X: Any, y: Any, prefix: str = "test", run: trackhooks.Run | None = None,
             **start_run_kwargs: Any) -> dict[str, float]:
    """Record the task metrics of a fitted estimator on held-out ``(X, y)`` as ``<prefix>_<metric>``,
    and ``X``/``y`` as datasets with context ``prefix``. Returns the metrics.

    The run is ``run`` if given, else the run that recorded the estimator's fit (continued with
    ``resume`` if it has finished), else the active run, else a new run (``start_run_kwargs``).
    An error of ``predict`` itself (e.g. not fitted) propagates; tracking failures only warn.
    """
    metrics, preds = evaluate(estimator, X, y, prefix, strict=True)
    target, owned = run, False
    if target is None:
        try:
            ref = fitted_runs.get(estimator)
        except TypeError:  # not weak-referenceable: it was never remembered
            ref = None
        run_id = ref.id if ref is not None else getattr(estimator, "run_id_", None)
        if ref is not None and ref.run.status == "running":
            target = ref.run
        elif run_id is not None:
            store = ref.store if ref is not None else None  # an unpickled tracker: the default store
            target = _safe("resuming the run", trackhooks.start_run, resume=run_id, store=store)
            owned = target is not None
        else:  # the trial's or the user's run, else a new one (the core nesting rule)
            opened = open_run(None, start_run_kwargs, user_run="into")
            if opened is not None:
                opened.detach()
                target, owned = opened.run, opened.owned
    elif target.status != "running":
        target = _safe("resuming the run", trackhooks.start_run, resume=target.id, store=target.store)
        owned = target is not None
    if target is None:
        return metrics
    with suppressed():
        _safe("recording evaluation metrics", target.log_metrics, metrics)
        from .plots import log_prediction_plots

        _safe("recording evaluation plots", log_prediction_plots, target, estimator, X, y, f"{prefix}_", preds)
        _safe("recording evaluation data", log_data, target, X, y, prefix)
    if owned:
        _safe("finishing the run", target.finish, "finished")
    return metrics
