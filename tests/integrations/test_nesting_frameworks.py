"""The core nesting rule across integrations: searches and cross-validation over XGBoost and Keras
estimators under autolog record exactly the runs a user expects (issue 21 item 4)."""

from __future__ import annotations

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

import trackhooks  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from trackhooks_sklearn import autolog as sk_autolog  # noqa: E402
from trackhooks_xgboost import autolog as xgb_autolog  # noqa: E402


@pytest.fixture
def autologged():
    sk_autolog()
    xgb_autolog()
    yield
    sk_autolog(disable=True)
    xgb_autolog(disable=True)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:200], y[:200]


def test_grid_search_over_xgboost_gives_the_candidates_and_the_refit_curves_in_the_parent(store_path, autologged,
                                                                                       diabetes):
    X, y = diabetes
    search = GridSearchCV(xgb.XGBRegressor(n_estimators=5, n_jobs=1), {"max_depth": [1, 2, 3]}, cv=3)
    search.fit(X, y, eval_set=[(X, y)], verbose=False)
    runs = trackhooks.open_store(store_path).runs()
    (parent,) = [r for r in runs if r.parent_id is None]
    assert len(runs) == 4  # the search and one child per candidate: no run per fold fit or refit
    assert sorted(c.params["max_depth"] for c in parent.children()) == [1, 2, 3]
    assert parent.tags["framework"] == "sklearn" and parent.params["model.class"] == "GridSearchCV"
    # the refit (and only the refit: 5 rounds, not 3 x 3 folds more) recorded its rounds into the parent
    rmse = parent.metric("validation_0-rmse")
    assert rmse.steps == list(range(5))
    assert rmse.values == pytest.approx(search.best_estimator_.evals_result()["validation_0"]["rmse"])
    assert parent.tags["xgboost.api"] == "sklearn"


def test_cross_val_score_over_xgboost_is_one_run(store_path, autologged, diabetes):
    X, y = diabetes
    scores = cross_val_score(xgb.XGBRegressor(n_estimators=4, n_jobs=1), X, y, cv=3)
    (run,) = trackhooks.open_store(store_path).runs()
    assert run.tags["framework"] == "sklearn" and run.metric("cv_test_score").values == pytest.approx(list(scores))
    assert not [k for k in run.metric_keys() if k.startswith("validation_")]


def test_cross_val_score_over_a_keras_estimator_is_one_run(store_path, autologged):
    keras = pytest.importorskip("keras")
    wrappers = pytest.importorskip("keras.wrappers")
    from trackhooks_keras import autolog as keras_autolog

    def build(X, y):
        model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        return model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)).astype("float32")
    y = X @ np.array([1.0, -2.0, 0.5], dtype="float32")
    keras_autolog()
    try:
        reg = wrappers.SKLearnRegressor(model=build, fit_kwargs={"epochs": 1, "verbose": 0})
        scores = cross_val_score(reg, X, y, cv=3)
    finally:
        keras_autolog(disable=True)
    (run,) = trackhooks.open_store(store_path).runs()
    assert run.tags["framework"] == "sklearn" and len(run.metric("cv_test_score").values) == len(scores) == 3
    assert "loss" not in run.metric_keys()  # the fold fits' epochs are not recorded anywhere


def test_fits_inside_a_user_run_become_its_children(store_path, autologged, diabetes):
    X, y = diabetes
    with trackhooks.start_run(name="mine") as mine:
        xgb.XGBRegressor(n_estimators=2, n_jobs=1).fit(X, y)
        GridSearchCV(xgb.XGBRegressor(n_estimators=2, n_jobs=1), {"max_depth": [1, 2]}, cv=2).fit(X, y)
    runs = trackhooks.open_store(store_path).runs()
    top = [r for r in runs if r.parent_id == mine.id]
    assert len(runs) == 1 + 2 + 2  # mine, the XGBoost fit, the search and its two candidates
    assert sorted(r.tags["framework"] for r in top) == ["sklearn", "xgboost"]
