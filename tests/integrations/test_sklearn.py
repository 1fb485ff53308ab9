"""scikit-learn integration: track(estimator), log_eval and autolog against real scikit-learn fits."""

from __future__ import annotations

import copy
import gc
import os
import pickle
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import trackhooks  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin, clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    GradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    RandomizedSearchCV,
    cross_val_predict,
    cross_val_score,
    cross_validate,
    learning_curve,
)
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from trackhooks_sklearn import autolog, log_eval, track  # noqa: E402
from trackhooks_sklearn import recording  # noqa: E402
from trackhooks.writer import get_writer  # noqa: E402

IRIS = load_iris(return_X_y=True)
CANCER = load_breast_cancer(return_X_y=True)
DIABETES = load_diabetes(return_X_y=True)
_digits = load_digits(return_X_y=True)
DIGITS = (_digits[0][:400] / 16.0, _digits[1][:400])


@pytest.fixture(autouse=True)
def _one_thread():
    # the machine is shared: BLAS threads would only oversubscribe it
    with threadpool_limits(1):
        yield


@pytest.fixture
def auto(store_path):
    autolog()
    yield store_path
    autolog(disable=True)


def only_run(store_path, **kw):
    runs = [r for r in trackhooks.open_store(store_path).runs(**kw) if r.parent_id is None]
    assert len(runs) == 1, runs
    return runs[0]


def lr():
    return LogisticRegression(max_iter=1000)


# ---- track(): what one fit records --------------------------------------------------------------


def test_classifier_fit_records_params_data_metrics(store_path):
    X, y = CANCER
    X = StandardScaler().fit_transform(X)
    model = track(lr(), experiment="cancer").fit(X, y)
    rec = trackhooks.open_store(store_path).run(model.run_id_)
    assert rec.status == "finished" and rec.experiment == "cancer"
    assert rec.tags["framework"] == "sklearn"
    assert rec.params["model.class"] == "LogisticRegression"
    assert rec.params["max_iter"] == 1000 and rec.params["C"] == 1.0
    assert rec.params["data.n_samples"] == 569 and rec.params["data.n_features"] == 30
    assert rec.params["data.dtypes"] == ["float64"]
    names = {d.name: d for d in rec.datasets()}
    assert {d.context for d in names.values()} == {"train"}
    assert names["X_train"].n_rows == 569
    with trackhooks.start_run() as other:
        assert names["X_train"].digest == other.log_dataset(X).digest
    metrics = {k: rec.metric(k).values[-1] for k in rec.metric_keys()}
    pred = model.predict(X)
    assert metrics["train_accuracy"] == pytest.approx(np.mean(pred == y))
    for key in ("train_balanced_accuracy", "train_f1_macro", "train_log_loss", "train_roc_auc", "fit_time_s"):
        assert key in metrics
    assert 0.9 < metrics["train_roc_auc"] <= 1.0 and metrics["fit_time_s"] > 0


def test_regressor_metrics_and_log_eval(store_path):
    X, y = DIABETES
    model = track(Ridge(alpha=0.5)).fit(X[:300], y[:300])
    out = log_eval(model, X[300:], y[300:])
    rec = trackhooks.open_store(store_path).run(model.run_id_)
    assert rec.status == "finished"
    keys = set(rec.metric_keys())
    assert {"train_r2", "train_mse", "train_rmse", "train_mae", "test_r2", "test_mse", "test_rmse", "test_mae"} <= keys
    resid = model.predict(X[300:]) - y[300:]
    assert rec.metric("test_mse").values == [pytest.approx(float(np.mean(resid ** 2)))]
    assert out["test_rmse"] == pytest.approx(float(np.sqrt(np.mean(resid ** 2))))
    ctx = {(d.name, d.context) for d in rec.datasets()}
    assert {("X_train", "train"), ("y_train", "train"), ("X_test", "test"), ("y_test", "test")} <= ctx


def test_log_eval_into_explicit_run_and_new_run(store_path):
    X, y = IRIS
    with trackhooks.start_run(experiment="x") as run:
        model = track(lr(), run=run).fit(X, y)
        log_eval(model, X, y, prefix="val")
        assert run.status == "running"  # the user's run is left open
    rec = trackhooks.open_store(store_path).run(run.id)
    assert rec.status == "finished" and "val_accuracy" in rec.metric_keys() and "train_accuracy" in rec.metric_keys()
    plain = LogisticRegression(max_iter=500).fit(X, y)  # not tracked: log_eval opens its own run
    metrics = log_eval(plain, X, y)
    last = trackhooks.open_store(store_path).runs()[-1]
    assert last.id != run.id and last.metric("test_accuracy").values == [metrics["test_accuracy"]]
    with pytest.raises(sklearn.exceptions.NotFittedError):
        log_eval(LogisticRegression(), X, y)


def _sk(task, y, y_pred, proba=None, classes=None):
    return {k: v for k, v in recording._sklearn_metrics(task, y, y_pred, proba, classes).items() if not np.isnan(v)}


@pytest.mark.parametrize("case", ["binary", "multiclass", "strings", "class-missing", "regression", "multi-output"])
def test_fast_metrics_equal_sklearn_metrics(case):
    if case == "regression":
        X, y = DIABETES
        est = Ridge().fit(X, y)
        got = recording.prediction_metrics(est, y, est.predict(X), "t")
        want = _sk("regressor", y, est.predict(X))
    elif case == "multi-output":
        X, y = DIABETES
        Y = np.c_[y, y * 2.0]
        est = Ridge().fit(X, Y)
        got = recording.prediction_metrics(est, Y, est.predict(X), "t")  # falls back to sklearn.metrics
        want = _sk("regressor", Y, est.predict(X))
    else:
        X, y = {"binary": CANCER, "multiclass": IRIS, "strings": IRIS, "class-missing": IRIS}[case]
        X = StandardScaler().fit_transform(X)
        if case == "strings":
            y = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
        est = LogisticRegression(C=0.05, max_iter=500).fit(X, y)
        if case == "class-missing":
            X, y = X[:100], y[:100]  # class 2 absent from y_true: roc_auc is undefined, the rest is not
        pred, proba = est.predict(X), est.predict_proba(X)
        got = recording.prediction_metrics(est, y, pred, "t", proba, est.classes_)
        want = _sk("classifier", y, pred, proba, est.classes_)
        assert recording._fast_classifier(y, pred, proba, est.classes_) is not None  # the fast path was taken
    assert set(got) == {f"t_{k}" for k in want}
    for k, v in want.items():
        assert got[f"t_{k}"] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_fit_inside_a_run_becomes_its_child(store_path):
    X, y = IRIS
    with trackhooks.start_run(experiment="outer") as outer:
        model = track(lr(), experiment="outer").fit(X, y)
    store = trackhooks.open_store(store_path)
    assert store.run(model.run_id_).parent_id == outer.id
    assert [c.id for c in store.run(outer.id).children()] == [model.run_id_]


def test_pipeline_params_under_step_names(store_path):
    X, y = IRIS
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(C=0.5, max_iter=500))])
    model = track(pipe).fit(X, y)
    p = trackhooks.open_store(store_path).run(model.run_id_).params
    assert p["model.class"] == "Pipeline" and p["steps"] == ["scale", "clf"]
    assert p["clf"] == "LogisticRegression" and p["scale"] == "StandardScaler"
    assert p["clf.C"] == 0.5 and p["scale.with_mean"] is True


def test_pandas_feature_names(store_path):
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = track(lr()).fit(X, y)
    assert list(model.feature_names_in_) == list(X.columns)
    rec = trackhooks.open_store(store_path).run(model.run_id_)
    assert rec.params["data.feature_names"] == list(X.columns)
    assert {d.name for d in rec.datasets()} >= {"X_train", "y_train"}
    assert isinstance(X, pd.DataFrame)


# ---- track(): a real scikit-learn estimator -----------------------------------------------------


def test_meta_estimator_protocol(store_path):
    X, y = IRIS
    t = track(lr(), experiment="e")
    assert t.get_params()["estimator__C"] == 1.0
    t.set_params(estimator__C=0.3)
    c = clone(t)
    assert c.estimator.C == 0.3 and c.run_kwargs == {"experiment": "e"} and c.estimator is not t.estimator
    assert not hasattr(t, "predict_proba") or True  # available_if is resolved on access
    with pytest.raises(sklearn.exceptions.NotFittedError):
        t.predict(X)
    t.fit(X, y)
    assert t.estimator.__dict__.get("coef_") is None  # the given estimator is never fitted in place
    assert list(t.classes_) == [0, 1, 2] and t.n_features_in_ == 4 and t.coef_.shape == (3, 4)
    assert t.predict_proba(X).shape == (150, 3) and t.decision_function(X).shape == (150, 3)
    assert t.score(X, y) == t.estimator_.score(X, y)
    assert sklearn.base.is_classifier(t)
    back = pickle.loads(pickle.dumps(t))
    assert (back.predict(X) == t.predict(X)).all() and back.run_id_ == t.run_id_
    assert not hasattr(track(StandardScaler()), "predict")
    assert track(StandardScaler()).fit_transform(X).shape == X.shape
    from sklearn.cluster import KMeans

    labels = track(KMeans(n_clusters=3, n_init=1, random_state=0)).fit_predict(X)
    assert labels.shape == (150,)
    kinds = [r.tags["sklearn.kind"] for r in trackhooks.open_store(store_path).runs()]
    assert kinds[-2:] == ["fit_transform", "fit_predict"]
    with pytest.raises(TypeError, match="experimnt"):
        track(lr(), experimnt="typo")


def test_clone_deepcopy_pickle_share_or_drop_the_run(store_path):
    X, y = IRIS
    with trackhooks.start_run() as run:
        t = track(lr(), run=run)
        assert clone(t).run is run and copy.deepcopy(t).run is run
        assert pickle.loads(pickle.dumps(t)).run is None  # a Run is a live handle: not pickled
        scores = cross_val_score(t, X, y, cv=3)  # clones share the run: one run, three points
        child = track(lr(), parent=run)
        assert clone(child).run_kwargs["parent"] is run and copy.deepcopy(child).run_kwargs["parent"] is run
        assert pickle.loads(pickle.dumps(child)).run_kwargs["parent"] == run.id
    assert len(scores) == 3
    rec = trackhooks.open_store(store_path).run(run.id)
    assert len(rec.metric("train_accuracy").values) == 3
    assert len(trackhooks.open_store(store_path).runs()) == 1


def test_track_inside_grid_search_and_pipeline(store_path):
    X, y = IRIS
    pipe = Pipeline([("scale", StandardScaler()), ("clf", track(lr()))])
    search = GridSearchCV(pipe, {"clf__estimator__C": [0.1, 1.0]}, cv=2).fit(X, y)
    assert search.best_params_["clf__estimator__C"] in (0.1, 1.0)
    runs = trackhooks.open_store(store_path).runs()
    assert len(runs) == 2 * 2 + 1  # the tracked estimator records each of its fits: candidates x folds + refit
    assert {r.params["C"] for r in runs} == {0.1, 1.0}


def test_check_estimator(store_path):
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(track(SGDClassifier(loss="log_loss", max_iter=50, tol=None, random_state=0)),
                                  on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert failed == []


# ---- searches --------------------------------------------------------------------------------------


def test_grid_search_children(store_path):
    X, y = IRIS
    grid = {"C": [0.01, 0.1, 1.0], "fit_intercept": [True, False]}
    model = track(GridSearchCV(lr(), grid, cv=3, return_train_score=True)).fit(X, y)
    store = trackhooks.open_store(store_path)
    parent = store.run(model.run_id_)
    search = model.estimator_
    children = parent.children()
    assert len(children) == 6 and all(c.status == "finished" for c in children)
    by_index = {c.params["candidate_index"]: c for c in children}
    for i, params in enumerate(search.cv_results_["params"]):
        c = by_index[i]
        assert c.params["C"] == params["C"] and c.params["fit_intercept"] == params["fit_intercept"]
        assert c.metric("mean_test_score").values == [pytest.approx(search.cv_results_["mean_test_score"][i])]
        assert c.metric("std_test_score").values == [pytest.approx(search.cv_results_["std_test_score"][i])]
        assert "mean_train_score" in c.metric_keys() and "fit_time_s" in c.metric_keys()
    assert parent.params["best_index"] == search.best_index_
    assert parent.params["best_params.C"] == search.best_params_["C"]
    assert parent.metric("best_score").values == [pytest.approx(search.best_score_)]
    assert parent.tags["sklearn.best_run"] == by_index[search.best_index_].id
    assert parent.params["estimator"] == "LogisticRegression" and parent.params["estimator.max_iter"] == 1000
    assert model.best_params_ == search.best_params_  # fitted attributes are delegated


def test_randomized_and_halving_search_children(store_path):
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    X, y = DIGITS
    rs = track(RandomizedSearchCV(Ridge(), {"alpha": [0.1, 1.0, 10.0, 100.0]}, n_iter=3, cv=2, random_state=0))
    rs.fit(X, y)
    assert len(trackhooks.open_store(store_path).run(rs.run_id_).children()) == 3
    hs = track(HalvingGridSearchCV(lr(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=2, factor=2, random_state=0,
                                   min_resources=60))
    hs.fit(X, y)
    res = hs.estimator_.cv_results_
    children = trackhooks.open_store(store_path).run(hs.run_id_).children()
    assert len(children) == 4  # one per candidate, not one per (candidate, iteration)
    iterations = max(len(c.metric("mean_test_score").values) for c in children)
    assert iterations == int(max(res["iter"])) + 1 > 1
    survivor = max(children, key=lambda c: len(c.metric("n_resources").values))
    assert survivor.metric("n_resources").steps == list(range(iterations))


# ---- iteration curves, partial_fit, model artifact -------------------------------------------


def test_iteration_curves(store_path):
    X, y = DIGITS
    mlp = track(MLPClassifier(hidden_layer_sizes=(16,), max_iter=8, early_stopping=True, n_iter_no_change=50,
                              random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few iterations on purpose
        mlp.fit(X, y)
    store = trackhooks.open_store(store_path)
    rec = store.run(mlp.run_id_)
    assert rec.metric("loss").values == pytest.approx(list(mlp.loss_curve_))
    assert rec.metric("loss").epochs == list(range(8))
    assert rec.metric("validation_score").values == pytest.approx(list(mlp.validation_scores_))
    gb = track(GradientBoostingClassifier(n_estimators=6, subsample=0.7, max_depth=2, random_state=0)).fit(*IRIS)
    rec = store.run(gb.run_id_)
    assert rec.metric("train_loss").values == pytest.approx(list(gb.train_score_))
    assert rec.metric("oob_improvement").steps == list(range(6))
    hgb = track(HistGradientBoostingRegressor(max_iter=15, early_stopping=True, validation_fraction=0.2,
                                              n_iter_no_change=100, random_state=0)).fit(*DIABETES)
    rec = store.run(hgb.run_id_)
    assert rec.metric("train_score").values == pytest.approx(list(hgb.train_score_))
    assert len(rec.metric("validation_score").values) == 16


def test_partial_fit_calls_are_steps(store_path):
    X, y = DIGITS
    t = track(SGDClassifier(random_state=0))
    for i in range(3):
        t.partial_fit(X[i * 100:(i + 1) * 100], y[i * 100:(i + 1) * 100], classes=np.arange(10))
    get_writer().flush()  # the run is still open: make what it logged readable
    store = trackhooks.open_store(store_path)
    rec = store.run(t.run_id_)
    assert rec.status == "running"
    assert rec.metric("n_samples_seen").values == [100, 200, 300]
    assert rec.metric("train_accuracy").steps == [0, 1, 2]
    run_id = t.run_id_
    t.fit(X, y)  # a full fit starts over: the partial_fit run is finished, a new one records the fit
    assert store.run(run_id).status == "finished" and t.run_id_ != run_id
    t2 = track(SGDClassifier(random_state=0))
    t2.partial_fit(X, y, classes=np.arange(10))
    rid = t2.run_id_
    del t2
    gc.collect()
    with trackhooks.start_run() as other:
        other.flush()
    assert store.run(rid).status == "finished"  # finished when the estimator goes away


def test_log_model_artifact(store_path):
    import joblib

    X, y = IRIS
    model = track(RandomForestClassifier(n_estimators=5, random_state=0), log_model=True).fit(X, y)
    (art,) = trackhooks.open_store(store_path).run(model.run_id_).artifacts()
    assert art.name == "model.joblib"
    loaded = joblib.load(art.path)
    assert type(loaded) is RandomForestClassifier and (loaded.predict(X) == model.predict(X)).all()
    plain = trackhooks.open_store(store_path).run(track(lr(), log_training_metrics=False).fit(X, y).run_id_)
    assert plain.artifacts() == [] and plain.metric_keys() == ["fit_time_s"]


# ---- lifecycle and failures --------------------------------------------------------------------


RAISED: list[BaseException] = []


class Boom(ClassifierMixin, BaseEstimator):
    def __init__(self, kind="value"):
        self.kind = kind

    def fit(self, X, y):
        RAISED.append(ValueError("bad data") if self.kind == "value" else KeyboardInterrupt())
        raise RAISED[-1]


def test_user_exception_propagates_and_marks_failed(store_path):
    X, y = IRIS
    with pytest.raises(ValueError) as info:
        track(Boom()).fit(X, y)
    assert info.value is RAISED[-1]  # the very object the user's fit raised
    with pytest.raises(KeyboardInterrupt):
        track(Boom("interrupt")).fit(X, y)
    statuses = [r.status for r in trackhooks.open_store(store_path).runs()]
    assert statuses == ["failed", "killed"]


def test_tracking_failure_warns_once_and_never_breaks_the_fit(store_path, monkeypatch, tmp_path):
    X, y = IRIS

    def broken(*a, **k):
        raise RuntimeError("curves exploded")

    monkeypatch.setattr(recording, "log_curves", broken)
    with pytest.warns(RuntimeWarning, match="curves exploded") as caught:
        for _ in range(3):
            model = track(lr()).fit(X, y)
    assert sum("curves exploded" in str(w.message) for w in caught) == 1
    assert trackhooks.open_store(store_path).run(model.run_id_).status == "finished"
    not_a_store = tmp_path / "file"
    not_a_store.write_text("x")
    with pytest.warns(RuntimeWarning, match="starting the run"):
        model = track(lr(), store=str(not_a_store)).fit(X, y)
    assert model.predict(X).shape == (150,) and model.run_id_ is None


# ---- autolog ----------------------------------------------------------------------------------------


def test_autolog_plain_fit_and_disable_restores(auto):
    X, y = IRIS
    original = sklearn.linear_model.LogisticRegression.fit.__trackhooks_original__
    lr().fit(X, y)
    rec = only_run(auto)
    assert rec.params["model.class"] == "LogisticRegression" and "train_accuracy" in rec.metric_keys()
    assert {d.context for d in rec.datasets()} == {"train"}
    autolog(disable=True)
    assert sklearn.linear_model.LogisticRegression.fit is original
    assert "__init_subclass__" not in sklearn.base.BaseEstimator.__dict__
    lr().fit(X, y)
    assert len(trackhooks.open_store(auto).runs()) == 1


def test_autolog_pipeline_is_one_run(auto):
    X, y = IRIS
    pipe = Pipeline([("scale", StandardScaler()), ("clf", lr())])
    assert hasattr(pipe, "predict_proba") and not hasattr(Pipeline([("s", StandardScaler())]), "predict_proba")
    pipe.fit(X, y)
    rec = only_run(auto)
    assert rec.params["model.class"] == "Pipeline" and rec.params["clf.max_iter"] == 1000
    assert len(trackhooks.open_store(auto).runs()) == 1


def test_autolog_search_is_parent_plus_children(auto):
    X, y = IRIS
    GridSearchCV(lr(), {"C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    parent = only_run(auto)
    assert len(parent.children()) == 3
    assert len(trackhooks.open_store(auto).runs()) == 4


def test_autolog_search_threading_backend_is_one_parent(auto):
    from joblib import parallel_backend

    X, y = IRIS
    with parallel_backend("threading", n_jobs=2):
        GridSearchCV(lr(), {"C": [0.1, 1.0]}, cv=2, n_jobs=2).fit(X, y)
    parent = only_run(auto)
    assert len(parent.children()) == 2 and len(trackhooks.open_store(auto).runs()) == 3


def test_autolog_cross_validation_is_one_run(auto):
    X, y = IRIS
    scores = cross_val_score(lr(), X, y, cv=3)
    rec = only_run(auto)
    assert rec.tags["sklearn.kind"] == "cross_validate"
    assert rec.metric("cv_test_score").values == pytest.approx(list(scores))
    assert rec.metric("cv_test_score_mean").values == [pytest.approx(float(np.mean(scores)))]
    cross_validate(lr(), X, y, cv=2, return_train_score=True)
    pred = cross_val_predict(lr(), X, y, cv=3)
    learning_curve(lr(), X, y, cv=2, train_sizes=[0.5, 1.0])
    runs = trackhooks.open_store(auto).runs()
    assert len(runs) == 4
    assert "cv_train_score" in runs[1].metric_keys()
    assert runs[2].metric("cv_accuracy").values == [pytest.approx(float(np.mean(pred == y)))]


def test_autolog_partial_fit_and_fit_transform(auto):
    X, y = DIGITS
    sgd = SGDClassifier(random_state=0)
    for i in range(2):
        sgd.partial_fit(X[i * 200:(i + 1) * 200], y[i * 200:(i + 1) * 200], classes=np.arange(10))
    get_writer().flush()
    rec = only_run(auto)
    assert rec.tags["sklearn.kind"] == "partial_fit" and rec.metric("n_samples_seen").values == [200, 400]
    StandardScaler().fit_transform(X)
    assert trackhooks.open_store(auto).runs()[-1].tags["sklearn.kind"] == "fit_transform"


def test_autolog_threads_record_their_own_runs(auto):
    X, y = IRIS
    errors = []

    def work(C):
        try:
            LogisticRegression(C=C, max_iter=500).fit(X, y)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(C,)) for C in (0.1, 0.2, 0.3, 0.4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    runs = trackhooks.open_store(auto).runs()
    assert sorted(r.params["C"] for r in runs) == [0.1, 0.2, 0.3, 0.4]


def test_autolog_with_track_records_once(auto):
    X, y = IRIS
    track(Pipeline([("s", StandardScaler()), ("m", lr())])).fit(X, y)
    assert len(trackhooks.open_store(auto).runs()) == 1


def test_autolog_internal_failure_never_breaks_fit(auto, monkeypatch):
    X, y = IRIS

    def broken(*a, **k):
        raise RuntimeError("params exploded")

    monkeypatch.setattr(recording, "estimator_params", broken)
    with pytest.warns(RuntimeWarning, match="params exploded"):
        model = lr().fit(X, y)
    assert model.predict(X).shape == (150,)


def test_autolog_options(store_path):
    X, y = IRIS
    autolog(log_model=True, log_training_metrics=False, experiment="opts", tags={"team": "a"})
    try:
        lr().fit(X, y)
        with pytest.raises(TypeError, match="experimnt"):
            autolog(experimnt="typo")
    finally:
        autolog(disable=True)
    rec = only_run(store_path)
    assert rec.experiment == "opts" and rec.tags["team"] == "a" and rec.tags["framework"] == "sklearn"
    assert [a.name for a in rec.artifacts()] == ["model.joblib"] and rec.metric_keys() == ["fit_time_s"]


def test_autolog_via_core_and_plugin_is_light():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="trackhooks") if e.name == "sklearn"]
    assert ep.value == "trackhooks_sklearn.plugin"
    code = ("import trackhooks, sys; trackhooks.autolog('sklearn', disable=True); "
            "import trackhooks_sklearn.plugin; print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "TRACKHOOKS_URI": os.devnull})
    assert out.stdout.strip() == "False"


def test_core_autolog_enables_plugin(store_path):
    X, y = IRIS
    with pytest.warns(RuntimeWarning, match="log_every_n_steps"):  # another plugin's option: ignored
        assert "sklearn" in trackhooks.autolog("sklearn", experiment="auto", log_every_n_steps=5)
    try:
        lr().fit(X, y)
    finally:
        trackhooks.autolog("sklearn", disable=True)
    assert only_run(store_path).experiment == "auto"


class _SeesTheCollector(ClassifierMixin, BaseEstimator):
    """Records whether the cyclic collector is on while its own fit runs."""

    def fit(self, X, y):
        self.collector_on_ = gc.isenabled()
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


@pytest.mark.parametrize("how", ["autolog", "track"])
def test_bookkeeping_pauses_the_collector_and_the_users_fit_never_runs_paused(store_path, monkeypatch, how):
    # the run's start, params, data, evaluation, plots and finish hold the collector off (one young
    # collection each side instead of several); the user's own fit runs with it as the user left it
    seen = {}
    for name in ("log_params", "evaluate"):
        original = getattr(recording, name)

        def spy(*a, _name=name, _original=original, **k):
            seen[_name] = gc.isenabled()
            return _original(*a, **k)

        monkeypatch.setattr(recording, name, spy)
    assert gc.isenabled()
    if how == "autolog":
        from sklearn.linear_model import _logistic

        inner, during_fit = _logistic._logistic_regression_path, []

        def path(*a, **k):  # inside LogisticRegression.fit: the user's fit
            during_fit.append(gc.isenabled())
            return inner(*a, **k)

        monkeypatch.setattr(_logistic, "_logistic_regression_path", path)
        autolog()
        try:
            lr().fit(*IRIS)
        finally:
            autolog(disable=True)
        assert during_fit and all(during_fit)
    else:
        est = track(_SeesTheCollector()).fit(*IRIS)
        assert est.estimator_.collector_on_ is True
    assert seen == {"log_params": False, "evaluate": False}
    assert gc.isenabled()
    rec = only_run(store_path)
    assert rec.status == "finished" and "train_accuracy" in rec.metric_keys()
