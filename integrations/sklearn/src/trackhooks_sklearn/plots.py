"""Rich records of a fitted scikit-learn model: confusion matrix, ROC and precision-recall curves,
residual histogram, feature importance / coefficient tables.

Keys (``prefix`` is empty for the training data of a fit, ``"test_"`` or ``"<prefix>_"`` for
``log_eval``):

- classifiers: ``<prefix>confusion_matrix`` (labels = ``classes_``), and from ``predict_proba`` (else
  ``decision_function``) ``<prefix>roc_curve`` / ``<prefix>precision_recall_curve``: one curve for a
  binary problem (the positive class is ``classes_[1]``), one-vs-rest per class for more classes
  (``<prefix>roc_curve/<class>``). PR curves leave out the points inside straight (vertical or
  horizontal) runs (``recording.binary_curves``); a curve longer than ``MAX_CURVE_POINTS`` is thinned evenly.
- regressors: ``<prefix>residuals``, a histogram of ``y - predict(X)``.
- a final estimator with ``feature_importances_``: the table ``feature_importance`` (feature,
  importance); with ``coef_``: the table ``coefficients`` (feature, coef, or one column per class).

The predictions, and for ``predict_proba`` scores the one-vs-rest curves, come from the metrics
pass of the same data (``recording.evaluate`` returns them), so plotting predicts and sorts nothing
twice.
"""

from __future__ import annotations

from typing import Any

import trackhooks
from trackhooks.plugin import warn_once

MAX_CURVE_POINTS = 1000
MAX_TABLE_ROWS = 10_000


def _warn(stage: str, exc: BaseException) -> None:
    warn_once(("sklearn-plots", stage, type(exc).__name__),
              f"sklearn integration: {stage} failed and was skipped ({type(exc).__name__}: {exc}); "
              "the fit itself is unaffected")


def _thin(x: Any, y: Any) -> tuple[Any, Any]:
    import numpy as np

    n = len(x)
    if n <= MAX_CURVE_POINTS:
        return x, y
    idx = np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(int))
    return x[idx], y[idx]


def _scores(est: Any, X: Any, proba: Any) -> Any:
    if proba is not None:
        return proba
    fn = getattr(est, "decision_function", None)
    if fn is None:
        return None
    try:
        return fn(X)
    except Exception:
        return None


def log_prediction_plots(run: trackhooks.Run, est: Any, X: Any, y: Any, prefix: str = "",
                         preds: Any = None) -> None:
    """Confusion matrix + ROC + PR (classifiers) or a residual histogram (regressors) on (X, y).

    ``preds``: the ``recording.Predictions`` of ``est`` on this X (else it predicts here)."""
    if y is None:
        return
    from sklearn.base import is_classifier, is_regressor

    from .recording import predict, suppressed

    with suppressed():
        if preds is None:
            preds = predict(est, X)
            if preds is None:
                return
        if is_classifier(est):
            _classifier_plots(run, est, X, y, preds, prefix)
        elif is_regressor(est):
            _regressor_plots(run, y, preds.y_pred, prefix)


def _classifier_plots(run: trackhooks.Run, est: Any, X: Any, y: Any, preds: Any, prefix: str) -> None:
    import numpy as np

    y = np.asarray(y)
    y_pred = np.asarray(preds.y_pred)
    if y.ndim != 1 or y_pred.shape != y.shape:
        return  # multi-label / multi-output: no single confusion matrix
    classes = getattr(est, "classes_", None)
    labels = None
    if classes is not None and getattr(classes, "ndim", 1) == 1:
        labels = list(np.asarray(classes).tolist())
        extra = set(np.unique(np.concatenate([y, y_pred])).tolist()) - set(labels)
        if extra:  # labels the model never saw (held-out data): append them so nothing is lost
            labels += sorted(extra, key=lambda v: (type(v).__name__, v))
    try:
        run.log_confusion_matrix(f"{prefix}confusion_matrix", y, y_pred, labels=labels)
    except Exception as exc:
        _warn("recording the confusion matrix", exc)
    if classes is None:
        return
    try:
        if preds.curves is not None:  # sorted once already, for the ROC-AUC
            _log_curves(run, preds.curves, np.asarray(classes), prefix)
            return
        scores = _scores(est, X, preds.proba)
        if scores is None:
            return
        _curves(run, np.asarray(scores), y, np.asarray(classes), prefix)
    except Exception as exc:
        _warn("recording ROC / precision-recall curves", exc)


def _binary_curves(positive: Any, score: Any) -> tuple[Any, Any, Any, Any]:
    from .recording import binary_curves

    return binary_curves(positive, score)


def _log_curve_pair(run: trackhooks.Run, key_suffix: str, prefix: str, curve: tuple[Any, Any, Any, Any]) -> None:
    fpr, tpr, precision, recall = curve
    fpr, tpr = _thin(fpr, tpr)
    run.log_curve(f"{prefix}roc_curve{key_suffix}", fpr, tpr, x_label="false positive rate",
                  y_label="true positive rate")
    recall, precision = _thin(recall[::-1], precision[::-1])  # recall ascending
    run.log_curve(f"{prefix}precision_recall_curve{key_suffix}", recall, precision, x_label="recall",
                  y_label="precision")


def _log_curves(run: trackhooks.Run, curves: dict[int, Any], classes: Any, prefix: str) -> None:
    """The curves of the metrics pass: class index -> curve (binary: index 1, the positive class)."""
    for i, curve in curves.items():
        _log_curve_pair(run, "" if len(classes) == 2 else f"/{classes[i]}", prefix, curve)


def _curves(run: trackhooks.Run, scores: Any, y: Any, classes: Any, prefix: str) -> None:
    def one(suffix: str, positive: Any, score: Any) -> None:
        if positive.all() or not positive.any():
            return  # undefined with one class only
        try:
            curve = _binary_curves(positive, score)
        except Exception:
            from sklearn.metrics import precision_recall_curve, roc_curve

            fpr, tpr, _ = roc_curve(positive, score)
            precision, recall, _ = precision_recall_curve(positive, score, drop_intermediate=True)
            curve = (fpr, tpr, precision, recall)
        _log_curve_pair(run, suffix, prefix, curve)

    if len(classes) == 2:
        score = scores[:, 1] if scores.ndim == 2 else scores
        one("", y == classes[1], score)
    elif len(classes) > 2 and scores.ndim == 2 and scores.shape[1] == len(classes):
        for i, c in enumerate(classes):
            one(f"/{c}", y == c, scores[:, i])


def _regressor_plots(run: trackhooks.Run, y: Any, y_pred: Any, prefix: str) -> None:
    import numpy as np

    y, y_pred = np.asarray(y), np.asarray(y_pred)
    if y.shape != y_pred.shape or y.dtype.kind not in "biuf" or y_pred.dtype.kind not in "biuf":
        return
    try:
        run.log_histogram(f"{prefix}residuals", (y.astype(np.float64) - y_pred).ravel())
    except Exception as exc:
        _warn("recording the residual histogram", exc)


def _feature_names(est: Any, n: int) -> list[str]:
    names = getattr(est, "feature_names_in_", None)
    if names is not None and len(names) == n:
        return [str(v) for v in names]
    return [f"x{i}" for i in range(n)]


def _importances(est: Any) -> Any:
    """``est.feature_importances_``. A forest's property asks every tree through joblib's
    ``Parallel`` even with ``n_jobs=1`` (~4 ms for 50 trees on digits, three quarters of it joblib's
    per-task bookkeeping): for scikit-learn's own property the same mean of the trees' importances is
    taken here, tree by tree (~1 ms, the same array to the bit; tested)."""
    import sys

    forest = sys.modules.get("sklearn.ensemble._forest")
    prop = getattr(forest, "BaseForest", None) and forest.BaseForest.__dict__.get("feature_importances_")
    if prop is None or getattr(type(est), "feature_importances_", None) is not prop \
            or not hasattr(est, "estimators_"):
        return getattr(est, "feature_importances_", None)
    import numpy as np

    per_tree = [tree.feature_importances_ for tree in est.estimators_ if tree.tree_.node_count > 1]
    if not per_tree:
        return np.zeros(est.n_features_in_, dtype=np.float64)
    mean = np.mean(per_tree, axis=0, dtype=np.float64)
    return mean / np.sum(mean)


def log_importance_tables(run: trackhooks.Run, est: Any) -> None:
    """``feature_importances_`` / ``coef_`` of the final estimator as tables."""
    import numpy as np

    imp = _importances(est)
    if imp is not None:
        imp = np.asarray(imp, dtype=np.float64).ravel()
        if 0 < len(imp) <= MAX_TABLE_ROWS:
            names = _feature_names(est, len(imp))
            run.log_table("feature_importance", {"feature": names, "importance": imp})
    try:
        coef = getattr(est, "coef_", None)
    except Exception:  # e.g. SVC(kernel="rbf") raises AttributeError from a property
        coef = None
    if coef is None:
        return
    if hasattr(coef, "toarray"):  # sparse coefficients
        coef = coef.toarray()
    coef = np.asarray(coef, dtype=np.float64)
    if coef.ndim == 1:
        coef = coef[None, :]
    if coef.ndim != 2 or not 0 < coef.shape[1] <= MAX_TABLE_ROWS:
        return
    names = _feature_names(est, coef.shape[1])
    cols: dict[str, Any] = {"feature": names}
    classes = getattr(est, "classes_", None)
    if coef.shape[0] == 1:
        cols["coef"] = coef[0]
    else:
        labels = list(classes) if classes is not None and len(classes) == coef.shape[0] else range(coef.shape[0])
        for i, c in enumerate(labels):
            cols[f"coef[{c}]"] = coef[i]
    run.log_table("coefficients", cols)


def log_fit_plots(run: trackhooks.Run, fitted: Any, X: Any, y: Any, training_plots: bool, preds: Any = None) -> None:
    """Everything a recorded fit adds: plots on the training data and the importance tables.

    For a search, ``fitted`` is the search: it predicts with its refitted best estimator, and the
    importance tables come from that estimator; the candidates (inner fits) record no plots.
    ``preds``: the predictions of the training metrics on (X, y), when they were computed.
    """
    from .recording import final_estimator

    if training_plots:
        try:
            log_prediction_plots(run, fitted, X, y, "", preds)
        except Exception as exc:
            _warn("recording training plots", exc)
    try:
        log_importance_tables(run, final_estimator(fitted))
    except Exception as exc:
        _warn("recording feature importance", exc)


__all__ = ["log_prediction_plots", "log_importance_tables", "log_fit_plots"]
