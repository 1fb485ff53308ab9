"""Every call form XGBoost accepts records a run (issue 21, item 3), and XGBoost's own warnings keep
their location under autolog (item 6)."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

import trackhooks  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from trackhooks_xgboost import autolog  # noqa: E402
from trackhooks_xgboost import patch as xgb_patch  # noqa: E402

PARAMS = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 2, "nthread": 1}
X, Y = load_breast_cancer(return_X_y=True)


@pytest.fixture
def auto(store_path):
    autolog()
    yield store_path
    autolog(disable=True)


@pytest.fixture
def dtrain():
    return xgb.DMatrix(X, label=Y)


def records(store_path):
    return [(r.tags.get("xgboost.api"), r.params.get("num_boost_round"), r.params.get("evals"),
             len(r.metric("train-logloss").values) if "train-logloss" in r.metric_keys() else 0, r.status)
            for r in trackhooks.open_store(store_path).runs()]


def _future_warnings(caught):
    return [str(w.message) for w in caught if issubclass(w.category, FutureWarning) and "keyword" in str(w.message)]


def test_evals_by_position_is_recorded_and_xgboost_still_warns(auto, dtrain):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xgb.train(PARAMS, dtrain, 4, [(dtrain, "train")], verbose_eval=False)
    assert _future_warnings(caught) == ["Pass `evals` as keyword args."]  # XGBoost's own, unchanged
    assert not [w for w in caught if "trackhooks" in str(w.message)]
    assert records(auto) == [("train", 4, ["train"], 4, "finished")]


def test_every_argument_by_position_including_callbacks(auto, dtrain):
    seen = []

    class Mine(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            seen.append(epoch)
            return False

    history: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # params, dtrain, num_boost_round, evals, obj, maximize, early_stopping_rounds, evals_result,
        # verbose_eval, xgb_model, callbacks
        xgb.train(PARAMS, dtrain, 3, [(dtrain, "train")], None, None, None, history, False, None, [Mine()])
    assert seen == [0, 1, 2] and len(history["train"]["logloss"]) == 3  # the user's callback still ran
    assert records(auto) == [("train", 3, ["train"], 3, "finished")]


def test_keyword_forms_and_cv_by_position(auto, dtrain):
    xgb.train(params=PARAMS, dtrain=dtrain, num_boost_round=2, evals=[(dtrain, "train")], verbose_eval=False)
    xgb.train(PARAMS, dtrain)  # defaults: 10 rounds, no evals
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        xgb.cv(PARAMS, dtrain, 2, 2)  # nfold by position
    got = records(auto)
    assert got[:2] == [("train", 2, ["train"], 2, "finished"), ("train", 10, None, 0, "finished")]
    assert got[2][0] == "cv" and got[2][1] == 2 and got[2][4] == "finished"
    assert trackhooks.open_store(auto).runs()[2].params["nfold"] == 2
    assert len(got) == 3


def test_a_call_the_wrapper_cannot_read_still_records_and_warns_once(auto, dtrain):
    original = xgb_patch._unwrapped(xgb.train)

    def train_like(*args, **kwargs):
        return original(*args, **kwargs)

    # a signature narrower than what the function accepts: the wrapper cannot bind the call
    train_like.__signature__ = inspect.Signature([
        inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("callbacks", inspect.Parameter.KEYWORD_ONLY, default=None)])
    wrapped = xgb_patch._wrap_call(train_like, "train")
    with pytest.warns(RuntimeWarning, match="could not read the arguments") as caught:
        wrapped(PARAMS, dtrain, 3, evals=[(dtrain, "train")], verbose_eval=False)
    wrapped(PARAMS, dtrain, 2, evals=[(dtrain, "train")], verbose_eval=False)
    assert len([w for w in caught if "could not read" in str(w.message)]) == 1
    assert caught[0].filename == __file__  # pointed at the caller, not at the wrapper
    got = records(auto)
    assert [(api, rounds, n, status) for api, rounds, _, n, status in got] == [
        ("train", None, 3, "finished"), ("train", None, 2, "finished")]


def test_a_call_xgboost_rejects_raises_its_own_error_and_records_nothing(auto, dtrain):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError):
            xgb.train(PARAMS, dtrain, 2, no_such_argument=1)
    assert not [w for w in caught if "trackhooks" in str(w.message)]
    import os

    assert not os.path.exists(auto)  # no run was ever started


def _unused_param_warning_locations(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return sorted({(w.filename, w.lineno) for w in caught if "are not used" in str(w.message)})


@pytest.mark.parametrize("api", ["train", "sklearn"])
def test_xgboost_warnings_keep_their_location_under_autolog(store_path, api):
    def fit():
        if api == "train":
            xgb.train({**PARAMS, "not_a_param": 1}, xgb.DMatrix(X, label=Y), 2)
        else:
            xgb.XGBClassifier(n_estimators=2, n_jobs=1, not_a_param=1).fit(X, Y)

    untracked = _unused_param_warning_locations(fit)
    autolog()
    try:
        tracked = _unused_param_warning_locations(fit)
    finally:
        autolog(disable=True)
    assert untracked and tracked == untracked
    assert all("trackhooks" not in filename for filename, _ in tracked)
    assert len(trackhooks.open_store(store_path).runs()) == 1
