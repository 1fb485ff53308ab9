"""scikit-learn integration, rich records: confusion matrix, ROC/PR curves, residuals, importance
tables, on real fits of bundled data; checked against sklearn.metrics."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import trackhooks  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits  # noqa: E402
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.metrics import confusion_matrix, roc_curve  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from trackhooks.sink import Sink  # noqa: E402
from trackhooks_sklearn import autolog, log_eval, track  # noqa: E402

_digits = load_digits(return_X_y=True)
DIGITS = (_digits[0][:300] / 16.0, _digits[1][:300])
CANCER = load_breast_cancer(return_X_y=True)
DIABETES = load_diabetes(return_X_y=True)


class Capture(Sink):
    name = "capture"

    def __init__(self):
        self.media = []

    def write(self, batch):
        self.media.extend(batch.media)

    def keys(self, run_id=None):
        return sorted({m.key for m in self.media if run_id is None or m.run_id == run_id})

    def of(self, key):
        return [m for m in self.media if m.key == key]


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture
def cap(store_path):
    return Capture()


def _flush():
    from trackhooks.writer import get_writer

    get_writer().flush()


def test_binary_classifier_records_confusion_roc_pr_and_coefficients(cap):
    X, y = CANCER
    model = track(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), mirrors=[cap]).fit(X, y)
    _flush()
    assert cap.keys() == ["coefficients", "confusion_matrix", "precision_recall_curve", "roc_curve"]
    (cm,) = cap.of("confusion_matrix")
    assert cm.data["labels"] == [0, 1]
    assert cm.data["matrix"] == confusion_matrix(y, model.predict(X)).tolist()
    (roc,) = cap.of("roc_curve")
    fpr, tpr, _ = roc_curve(y, model.predict_proba(X)[:, 1])
    assert roc.data["x"] == fpr.tolist() and roc.data["y"] == tpr.tolist()
    assert roc.data["x_label"] == "false positive rate"
    (pr,) = cap.of("precision_recall_curve")
    assert pr.data["x"][0] == 0.0 and pr.data["x"][-1] == 1.0 and pr.data["x"] == sorted(pr.data["x"])
    (coef,) = cap.of("coefficients")
    assert coef.data["columns"] == ["feature", "coef"] and len(coef.data["rows"]) == X.shape[1]
    assert [r[1] for r in coef.data["rows"]] == model.estimator_[-1].coef_[0].tolist()


def test_multiclass_one_vs_rest_per_class_and_importance(cap):
    X, y = DIGITS
    track(RandomForestClassifier(n_estimators=5, random_state=0), mirrors=[cap]).fit(X, y)
    _flush()
    keys = cap.keys()
    assert "confusion_matrix" in keys and "feature_importance" in keys
    assert [k for k in keys if k.startswith("roc_curve/")] == [f"roc_curve/{c}" for c in range(10)]
    assert len([k for k in keys if k.startswith("precision_recall_curve/")]) == 10
    (cm,) = cap.of("confusion_matrix")
    assert np.asarray(cm.data["matrix"]).sum() == len(y) and cm.data["labels"] == list(range(10))
    (imp,) = cap.of("feature_importance")
    assert imp.data["columns"] == ["feature", "importance"] and len(imp.data["rows"]) == 64
    assert abs(sum(r[1] for r in imp.data["rows"]) - 1.0) < 1e-9


def test_forest_probabilities_equal_sklearns_predict_proba(monkeypatch):
    # one job: the trees' probabilities summed in sklearn's order without joblib, the same array to
    # the bit; several jobs, a subclass with its own predict_proba or a multi-output forest: sklearn's
    from sklearn.ensemble import ExtraTreesClassifier

    from trackhooks_sklearn.recording import _predict_proba

    X, y = DIGITS
    calls = []

    class OwnProbabilities(RandomForestClassifier):
        def predict_proba(self, X):
            calls.append(1)
            return super().predict_proba(X)

    two_outputs = np.stack([y, y % 2], axis=1)
    models = [RandomForestClassifier(n_estimators=7, random_state=0).fit(X, y),
              RandomForestClassifier(n_estimators=4, random_state=0, n_jobs=2).fit(X, y),
              ExtraTreesClassifier(n_estimators=5, random_state=0, class_weight="balanced").fit(X, y),
              RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y == 3),
              OwnProbabilities(n_estimators=2, random_state=0).fit(X, y),
              RandomForestClassifier(n_estimators=3, random_state=0).fit(X, two_outputs)]
    for model in models:
        ours, theirs = _predict_proba(model, X[::3]), model.predict_proba(X[::3])
        if isinstance(theirs, list):
            assert all(a.tobytes() == b.tobytes() for a, b in zip(ours, theirs))
        else:
            assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes(), type(model).__name__
    assert len(calls) == 2  # the subclass was asked both times
    import sklearn.ensemble._forest as forest

    def no_parallel(*a, **k):
        raise AssertionError("the one-job path went through joblib")

    monkeypatch.setattr(forest, "Parallel", no_parallel)
    assert _predict_proba(models[0], X).shape == (len(y), 10)
    with pytest.raises(ValueError):  # a wrong X fails as sklearn's own predict_proba does
        _predict_proba(models[0], X[:, :10])


def test_forest_importances_equal_sklearns_property():
    # taken tree by tree instead of through joblib's Parallel: the same array to the bit
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    from trackhooks_sklearn.plots import _importances

    X, y = DIGITS
    Xr, yr = DIABETES

    class OwnImportances(RandomForestClassifier):
        @property
        def feature_importances_(self):
            return np.arange(self.n_features_in_, dtype=np.float64)

    models = [RandomForestClassifier(n_estimators=7, random_state=0).fit(X, y),
              RandomForestClassifier(n_estimators=4, random_state=0, n_jobs=2).fit(X, y),
              ExtraTreesClassifier(n_estimators=5, random_state=0).fit(X, y),
              RandomForestRegressor(n_estimators=5, random_state=0).fit(Xr, yr),
              ExtraTreesRegressor(n_estimators=3, max_depth=2, random_state=0).fit(Xr, yr),
              RandomForestClassifier(n_estimators=3, max_depth=1, random_state=0).fit(X, np.zeros(len(y))),
              OwnImportances(n_estimators=2, random_state=0).fit(X, y)]
    for model in models:
        ours, theirs = _importances(model), model.feature_importances_
        assert ours.dtype == theirs.dtype and ours.tobytes() == theirs.tobytes(), type(model).__name__
    assert not models[-2].feature_importances_.any()  # only single-node trees: zeros, as sklearn says


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [300, 20_000])  # both sorts: stable up to 8 192 scores, quicksort above
def test_fast_curves_equal_sklearn_metrics(seed, n):
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    from trackhooks_sklearn.plots import _binary_curves
    from trackhooks_sklearn.recording import _auc, horizontal_ends

    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.3
    score = np.round(rng.random(n) + positive * 0.3, 2)  # ties on purpose
    fpr, tpr, precision, recall = _binary_curves(positive, score)
    f2, t2, _ = roc_curve(positive, score)
    p2, r2 = horizontal_ends(*precision_recall_curve(positive, score, drop_intermediate=True)[:2])
    assert fpr.tolist() == f2.tolist() and tpr.tolist() == t2.tolist()
    assert precision.tolist() == p2.tolist() and recall.tolist() == r2.tolist()
    assert _auc(fpr, tpr) == roc_auc_score(positive, score)


@pytest.mark.parametrize("score", [[0.5] * 6, [0.2, 0.2, 0.2, 0.7, 0.7, 0.7], [0.1, 0.9, 0.1, 0.9, 0.5, 0.5]])
def test_fast_curves_with_one_or_two_distinct_scores_equal_sklearn_metrics(score):
    from sklearn.metrics import precision_recall_curve

    from trackhooks_sklearn.plots import _binary_curves
    from trackhooks_sklearn.recording import horizontal_ends

    positive = np.array([True, False, True, False, True, False])
    fpr, tpr, precision, recall = _binary_curves(positive, np.array(score))
    f2, t2, _ = roc_curve(positive, score)
    p2, r2 = horizontal_ends(*precision_recall_curve(positive, score, drop_intermediate=True)[:2])
    assert fpr.tolist() == f2.tolist() and tpr.tolist() == t2.tolist()
    assert precision.tolist() == p2.tolist() and recall.tolist() == r2.tolist()


def test_recorded_one_vs_rest_curves_equal_sklearn_metrics(cap):
    """The curves of a fit come from the metrics pass (one sort per class, shared with ROC-AUC):
    each equals sklearn's own curve of that class's probabilities."""
    from sklearn.metrics import precision_recall_curve

    from trackhooks_sklearn.recording import horizontal_ends

    X, y = DIGITS
    model = track(LogisticRegression(max_iter=300), mirrors=[cap]).fit(X, y)
    _flush()
    proba = model.predict_proba(X)
    for c in range(10):
        (roc,) = cap.of(f"roc_curve/{c}")
        fpr, tpr, _ = roc_curve(y == c, proba[:, c])
        assert roc.data["x"] == fpr.tolist() and roc.data["y"] == tpr.tolist()
        (pr,) = cap.of(f"precision_recall_curve/{c}")
        precision, recall, _ = precision_recall_curve(y == c, proba[:, c], drop_intermediate=True)
        precision, recall = horizontal_ends(precision, recall)
        assert pr.data["x"] == recall[::-1].tolist() and pr.data["y"] == precision[::-1].tolist()


def test_forest_predictions_come_from_its_probabilities(cap):
    """A forest's predict() is the argmax of its predict_proba(): the metrics pass predicts once, and
    the recorded values equal sklearn's on predict() itself."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    X, y = DIGITS
    model = track(RandomForestClassifier(n_estimators=5, random_state=0), mirrors=[cap]).fit(X, y)
    _flush()
    rec = trackhooks.open_store().run(model.run_id_)
    pred, proba = model.predict(X), model.predict_proba(X)
    assert rec.metric("train_accuracy").values == [accuracy_score(y, pred)]
    assert rec.metric("train_log_loss").values == [pytest.approx(log_loss(y, proba), rel=1e-12)]
    assert rec.metric("train_roc_auc").values == [pytest.approx(roc_auc_score(y, proba, multi_class="ovr"),
                                                                rel=1e-12)]
    (cm,) = cap.of("confusion_matrix")
    assert cm.data["matrix"] == confusion_matrix(y, pred).tolist()

    class CountingForest(RandomForestClassifier):
        calls = 0

        def predict_proba(self, X):  # predict() would call it a second time
            type(self).calls += 1
            return super().predict_proba(X)

    track(CountingForest(n_estimators=3, random_state=0)).fit(X, y)
    assert CountingForest.calls == 1


class _OwnProbabilities(LogisticRegression):
    def predict_proba(self, X):  # not the softmax of the scores any more, as far as we can tell
        return super().predict_proba(X)


@pytest.mark.parametrize("data, cls, passes", [("digits", LogisticRegression, 1), ("cancer", LogisticRegression, 1),
                                               ("digits", _OwnProbabilities, 2)])
def test_logistic_regression_predictions_come_from_its_softmax(cap, monkeypatch, data, cls, passes):
    """A LogisticRegression's probabilities are a softmax (two classes: the logistic) of the scores
    its predict() takes the argmax of: the metrics pass computes the scores once; a subclass with its
    own predict_proba is asked for predict() as well."""
    from sklearn.linear_model._base import LinearClassifierMixin
    from sklearn.metrics import accuracy_score, f1_score

    X, y = DIGITS if data == "digits" else CANCER
    calls = []
    decision = LinearClassifierMixin.decision_function

    def counting(self, X):
        calls.append(1)
        return decision(self, X)

    monkeypatch.setattr(LinearClassifierMixin, "decision_function", counting)
    model = track(cls(max_iter=5000), mirrors=[cap]).fit(X, y)
    _flush()
    assert len(calls) == passes
    rec = trackhooks.open_store().run(model.run_id_)
    pred = model.predict(X)
    assert rec.metric("train_accuracy").values == [accuracy_score(y, pred)]
    assert rec.metric("train_f1_macro").values == [pytest.approx(f1_score(y, pred, average="macro"), rel=1e-12)]
    (cm,) = cap.of("confusion_matrix")
    assert cm.data["matrix"] == confusion_matrix(y, pred).tolist()


def test_decision_function_used_without_predict_proba(cap):
    X, y = CANCER
    track(make_pipeline(StandardScaler(), SVC()), mirrors=[cap]).fit(X, y)
    _flush()
    assert "roc_curve" in cap.keys() and "coefficients" not in cap.keys()  # rbf SVC has no coef_


def test_regressor_residual_histogram(cap):
    X, y = DIABETES
    model = track(Ridge(), mirrors=[cap]).fit(X, y)
    _flush()
    assert cap.keys() == ["coefficients", "residuals"]
    (h,) = cap.of("residuals")
    res = y - model.predict(X)
    assert h.kind == "histogram" and h.data["count"] == len(y)
    assert h.data["min"] == pytest.approx(res.min()) and h.data["max"] == pytest.approx(res.max())
    counts, _ = np.histogram(res, bins=64)
    assert h.data["counts"] == counts.tolist()


def test_log_eval_records_the_same_with_its_prefix(cap):
    X, y = CANCER
    run = trackhooks.start_run(mirrors=[cap])
    model = track(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), run=run).fit(X[:400], y[:400])
    log_eval(model, X[400:], y[400:], run=run)
    rf_run = trackhooks.start_run(mirrors=[cap])
    rf = track(RandomForestRegressor(n_estimators=3, random_state=0), run=rf_run).fit(*DIABETES)
    log_eval(rf, DIABETES[0][:50], DIABETES[1][:50], prefix="val", run=rf_run)
    rf_run.finish()
    run.finish()
    _flush()
    assert cap.keys(rf_run.id) == ["feature_importance", "residuals", "val_residuals"]
    keys = cap.keys(run.id)
    for k in ("confusion_matrix", "roc_curve", "precision_recall_curve"):
        assert k in keys and f"test_{k}" in keys
    (cm,) = cap.of("test_confusion_matrix")
    assert cm.data["matrix"] == confusion_matrix(y[400:], model.predict(X[400:])).tolist()


def test_search_only_the_parent_records_plots(cap):
    X, y = CANCER
    search = track(GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
                                {"logisticregression__C": [0.1, 1.0]}, cv=2), mirrors=[cap]).fit(X, y)
    _flush()
    run_ids = {m.run_id for m in cap.media}
    assert len(run_ids) == 1  # not the candidates
    (parent,) = run_ids
    store = trackhooks.open_store()
    rec = store.run(parent)
    assert rec.parent_id is None and len(rec.children()) == 2
    assert cap.keys() == ["coefficients", "confusion_matrix", "precision_recall_curve", "roc_curve"]
    (cm,) = cap.of("confusion_matrix")
    assert cm.data["matrix"] == confusion_matrix(y, search.predict(X)).tolist()


def test_autolog_records_plots_and_training_metrics_off_disables_them(store_path, monkeypatch):
    cap = Capture()
    import trackhooks.run as run_mod

    monkeypatch.setattr(run_mod, "_mirror_list", lambda mirrors: [cap] if mirrors is None else list(mirrors))
    autolog()
    try:
        RandomForestClassifier(n_estimators=3, random_state=0).fit(*DIGITS)
        _flush()
        assert "confusion_matrix" in cap.keys() and "feature_importance" in cap.keys()
        cap.media.clear()
        autolog(log_training_metrics=False)
        RandomForestClassifier(n_estimators=3, random_state=0).fit(*DIGITS)
        _flush()
        assert cap.keys() == ["feature_importance"]
    finally:
        autolog(disable=True)


def test_log_eval_after_the_fit_run_finished_adds_plots_to_it(store_path):
    X, y = CANCER
    model = track(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))).fit(X[:400], y[:400])
    log_eval(model, X[400:], y[400:])  # the fit's run is finished: it is resumed, then finished again
    (rec,) = trackhooks.open_store(store_path).runs()
    assert rec.status == "finished"
    keys = rec.media_keys()
    assert {"confusion_matrix", "test_confusion_matrix", "test_roc_curve", "test_precision_recall_curve",
            "coefficients"} <= set(keys)
    (cm,) = rec.media("test_confusion_matrix")
    assert cm.data["matrix"] == confusion_matrix(y[400:], model.predict(X[400:])).tolist()
