"""trackhooks_xgboost against real XGBoost on sklearn's bundled breast_cancer and diabetes data."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

import trackhooks  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from trackhooks_xgboost import TrackhooksCallback, autolog  # noqa: E402
from trackhooks_xgboost import patch as xgb_patch  # noqa: E402
from trackhooks_xgboost.data import _dense, log_data  # noqa: E402

PARAMS = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "max_depth": 2, "nthread": 1}


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, random_state=0)


@pytest.fixture
def dmats(cancer):
    Xt, Xv, yt, yv = cancer
    return xgb.DMatrix(Xt, label=yt), xgb.DMatrix(Xv, label=yv)


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    autolog(disable=True)


def only_run(store_path):
    runs = trackhooks.open_store(store_path).runs()
    assert len(runs) == 1, runs
    return runs[0]


def test_train_records_params_metrics_every_round(store_path, dmats):
    dtrain, dval = dmats
    history: dict = {}
    cb = TrackhooksCallback(experiment="xgb", tags={"team": "a"})
    xgb.train(PARAMS, dtrain, 12, evals=[(dtrain, "train"), (dval, "val")], callbacks=[cb],
              evals_result=history, verbose_eval=False)
    rec = only_run(store_path)
    assert rec.id == cb.run.id and rec.status == "finished" and rec.experiment == "xgb"
    assert rec.tags["framework"] == "xgboost" and rec.tags["xgboost.api"] == "train" and rec.tags["team"] == "a"
    p = rec.params
    # the user's params as given, then XGBoost's resolved configuration
    assert p["max_depth"] == 2 and p["objective"] == "binary:logistic" and p["eval_metric"] == ["logloss", "auc"]
    assert p["config.learner.gradient_booster.tree_train_param.max_depth"] == "2"
    assert p["config.learner.learner_train_param.objective"] == "binary:logistic"
    assert p["num_boost_round"] == 12 and p["early_stopping_rounds"] is None and p["model.class"] == "Booster"
    assert p["evals"] == ["train", "val"]
    assert (p["train.rows"], p["train.cols"], p["evals.val.rows"], p["evals.val.cols"]) == (426, 30, 143, 30)
    for data in ("train", "val"):
        for metric in ("logloss", "auc"):
            series = rec.metric(f"{data}-{metric}")
            assert series.steps == list(range(12))
            assert series.values == pytest.approx(history[data][metric])
    assert rec.metric("stopped_round").values == [11]
    assert rec.tags["early_stopped"] == "false"
    assert rec.metric("fit_time_s").values[0] > 0


def test_early_stopping_best_iteration_score_and_stop(store_path, dmats):
    dtrain, dval = dmats
    cb = TrackhooksCallback()
    bst = xgb.train({**PARAMS, "eta": 1.0, "max_depth": 6}, dtrain, 200, evals=[(dval, "val")],
                    early_stopping_rounds=3, callbacks=[cb], verbose_eval=False)
    rec = only_run(store_path)
    assert rec.params["early_stopping_rounds"] == 3
    assert rec.metric("best_iteration").values == [bst.best_iteration]
    assert rec.metric("best_score").values == pytest.approx([bst.best_score])
    stopped = rec.metric("stopped_round").values[0]
    assert stopped == bst.best_iteration + 3 < 199
    assert rec.metric("val-auc").steps[-1] == stopped
    assert rec.tags["early_stopped"] == "true"


def test_sklearn_classifier_is_one_run_with_its_arrays(store_path, cancer):
    Xt, Xv, yt, yv = cancer
    cb = TrackhooksCallback()
    clf = xgb.XGBClassifier(n_estimators=8, max_depth=2, n_jobs=1, eval_metric="logloss", callbacks=[cb])
    clf.fit(Xt, yt, eval_set=[(Xt, yt), (Xv, yv)], verbose=False)
    rec = only_run(store_path)
    assert rec.tags["xgboost.api"] == "sklearn" and rec.params["model.class"] == "XGBClassifier"
    assert rec.params["num_boost_round"] == 8 and rec.params["evals"] == ["validation_0", "validation_1"]
    assert rec.metric("validation_1-logloss").values == pytest.approx(clf.evals_result()["validation_1"]["logloss"])
    assert rec.metric("validation_0-logloss").steps == list(range(8))
    by_name = {d.name: d for d in rec.datasets()}
    # the training data evaluated again is not a second data set
    assert set(by_name) == {"train", "train.label", "validation_1", "validation_1.label"}
    assert by_name["validation_1"].context == "validation" and by_name["train"].context == "train"
    assert by_name["train"].n_rows == 426 and by_name["validation_1"].n_rows == 143
    # recorded by the arrays themselves: the same digest as logging those arrays directly
    with trackhooks.start_run() as other:
        direct = other.log_dataset(Xt, name="X")
    assert store_runs_using(store_path, direct.digest) == {rec.id, other.id}


def store_runs_using(store_path, digest):
    return {r.id for r in trackhooks.open_store(store_path).runs_using(digest)}


def test_regressor_and_ranker(store_path):
    X, y = load_diabetes(return_X_y=True)
    reg = xgb.XGBRegressor(n_estimators=5, max_depth=2, n_jobs=1, callbacks=[TrackhooksCallback()])
    reg.fit(X[:300], y[:300], eval_set=[(X[300:], y[300:])], verbose=False)
    qid = np.repeat(np.arange(30), 10)
    rank = xgb.XGBRanker(n_estimators=4, max_depth=2, n_jobs=1, eval_metric="ndcg@5",
                         callbacks=[TrackhooksCallback()])
    labels = (y[:300] > np.median(y)).astype(int)
    rank.fit(X[:300], labels, qid=qid, eval_set=[(X[:300], labels)], eval_qid=[qid], verbose=False)
    reg_rec, rank_rec = trackhooks.open_store(store_path).runs()
    assert reg_rec.params["model.class"] == "XGBRegressor" and reg_rec.status == "finished"
    assert reg_rec.metric("validation_0-rmse").values == pytest.approx(reg.evals_result()["validation_0"]["rmse"])
    assert rank_rec.params["model.class"] == "XGBRanker"
    assert rank_rec.metric("validation_0-ndcg@5").steps == [0, 1, 2, 3]


def test_cv_records_mean_and_std_per_round(store_path, dmats):
    dtrain, _ = dmats
    res = xgb.cv({**PARAMS, "eval_metric": "auc"}, dtrain, 6, nfold=3, seed=1, metrics="logloss",
                 callbacks=[TrackhooksCallback()], as_pandas=False)
    rec = only_run(store_path)
    assert rec.tags["xgboost.api"] == "cv" and rec.params["nfold"] == 3 and rec.params["num_boost_round"] == 6
    assert rec.params["metrics"] == ["logloss"] and rec.params["seed"] == 1
    for col in ("train-logloss-mean", "train-logloss-std", "test-logloss-mean", "test-logloss-std"):
        assert rec.metric(col).values == pytest.approx(res[col]), col
        assert rec.metric(col).steps == list(range(6))
    assert [d.name for d in rec.datasets()] == ["train"]


def test_feature_importance_artifact_and_metrics(store_path, dmats):
    dtrain, _ = dmats
    bst = xgb.train(PARAMS, dtrain, 5, callbacks=[TrackhooksCallback()])
    rec = only_run(store_path)
    [art] = [a for a in rec.artifacts() if a.name == "feature_importance.json"]
    with open(art.path) as f:
        imp = json.load(f)
    assert set(imp) == {"weight", "gain", "cover"}
    assert imp["gain"] == pytest.approx(bst.get_score(importance_type="gain"))
    top = max(imp["weight"], key=imp["weight"].get)
    assert rec.metric(f"importance.weight.{top}").values == [imp["weight"][top]]


def test_checkpoints_every_n_rounds_and_best(store_path, dmats, tmp_path):
    dtrain, dval = dmats
    cb = TrackhooksCallback(checkpoint_every=5, checkpoint_dir=tmp_path / "ckpt")
    xgb.train(PARAMS, dtrain, 17, evals=[(dval, "val")], callbacks=[cb], verbose_eval=False)
    rec = only_run(store_path)
    cks = rec.checkpoints()
    assert [c.step for c in cks] == [4, 9, 14]
    for c in cks:
        assert c.path.endswith(".ubj") and os.path.dirname(c.path) == str(tmp_path / "ckpt")
        assert xgb.Booster(model_file=c.path).num_boosted_rounds() == c.step + 1
        assert c.size == os.path.getsize(c.path) and c.sha256
        assert c.metrics["val-auc"] == pytest.approx(rec.metric("val-auc").values[c.step])
    auc = [c.metrics["val-auc"] for c in cks]
    assert [c.best for c in cks].count(True) == 1
    assert [c for c in cks if c.best][0].metrics["val-auc"] == max(auc)


def test_log_model_stores_the_final_booster(store_path, dmats):
    dtrain, dval = dmats
    bst = xgb.train(PARAMS, dtrain, 4, callbacks=[TrackhooksCallback(log_model=True)])
    [art] = [a for a in only_run(store_path).artifacts() if a.name == "model.ubj"]
    with open(art.path, "rb") as f:
        loaded = xgb.Booster(model_file=bytearray(f.read()))
    np.testing.assert_allclose(loaded.predict(dval), bst.predict(dval))


def test_one_callback_reused_gives_fresh_runs(store_path, dmats, cancer, monkeypatch, tmp_path):
    dtrain, dval = dmats
    monkeypatch.chdir(tmp_path)
    cb = TrackhooksCallback(checkpoint_every=2)
    xgb.train(PARAMS, dtrain, 4, evals=[(dval, "val")], callbacks=[cb], verbose_eval=False)
    first = cb.run
    xgb.train({**PARAMS, "max_depth": 3}, dtrain, 3, evals=[(dval, "val")], callbacks=[cb], verbose_eval=False)
    a, b = trackhooks.open_store(store_path).runs()
    assert (a.id, b.id) == (first.id, cb.run.id) and a.id != b.id
    assert a.metric("val-auc").steps == [0, 1, 2, 3] and b.metric("val-auc").steps == [0, 1, 2]
    assert (a.params["max_depth"], b.params["max_depth"]) == (2, 3)
    assert [c.step for c in b.checkpoints()] == [1] and b.metric("stopped_round").values == [2]
    assert os.path.dirname(b.checkpoints()[0].path) == str(tmp_path / "xgboost_checkpoints" / b.id)
    # the same data, the same digest; other data, another digest
    assert {d.digest for d in a.datasets()} == {d.digest for d in b.datasets()}
    Xt, Xv, yt, yv = cancer
    Xt2 = Xt.copy()
    Xt2[0, 0] += 1
    xgb.train(PARAMS, xgb.DMatrix(Xt2, label=yt), 1, callbacks=[cb])
    train_digest = {d.name: d.digest for d in cb_run_record(store_path, cb).datasets()}["train"]
    assert train_digest != {d.name: d.digest for d in a.datasets()}["train"]


def cb_run_record(store_path, cb):
    return trackhooks.open_store(store_path).run(cb.run.id)


class Boom(Exception):
    pass


def test_user_exception_marks_failed_and_propagates_unchanged(store_path, dmats):
    dtrain, dval = dmats
    boom = Boom("from the objective")

    def obj(preds, data):
        if obj.calls == 3:
            raise boom
        obj.calls += 1
        p = 1 / (1 + np.exp(-preds))
        return p - data.get_label(), p * (1 - p)

    obj.calls = 0
    cb = TrackhooksCallback()
    with pytest.raises(Boom) as info:
        xgb.train({"max_depth": 2, "nthread": 1}, dtrain, 10, evals=[(dval, "val")], obj=obj, callbacks=[cb],
                  verbose_eval=False)
    assert info.value is boom
    rec = only_run(store_path)
    assert rec.status == "failed"
    assert rec.metric("val-rmse").steps == [0, 1, 2]


def test_keyboard_interrupt_marks_killed(store_path, dmats):
    class Stop(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch == 1:
                raise KeyboardInterrupt
            return False

    with pytest.raises(KeyboardInterrupt):
        xgb.XGBClassifier(n_estimators=5, n_jobs=1, callbacks=[TrackhooksCallback(), Stop()]).fit(*dmats_arrays(dmats))
    assert only_run(store_path).status == "killed"


def dmats_arrays(dmats):
    dtrain, _ = dmats
    return dtrain.get_data().toarray(), dtrain.get_label()


def test_unwrapped_train_failure_is_closed_at_the_next_training(store_path, dmats):
    dtrain, _ = dmats
    cb = TrackhooksCallback()
    raw_train = xgb.training.train.__trackhooks_original__  # as if imported before the callback existed

    def obj(preds, data):
        raise Boom()

    with pytest.raises(Boom):
        raw_train(PARAMS, dtrain, 3, obj=obj, callbacks=[cb])
    first = cb.run
    assert trackhooks.open_store(store_path).run(first.id).status == "running"
    raw_train(PARAMS, dtrain, 2, callbacks=[cb])  # no wrapper: the callback finishes in after_training
    store = trackhooks.open_store(store_path)
    assert store.run(first.id).status == "failed" and store.run(cb.run.id).status == "finished"


def test_autolog_train_sklearn_cv_and_disable(store_path, dmats, cancer):
    dtrain, dval = dmats
    Xt, Xv, yt, yv = cancer
    autolog(experiment="auto", log_importance=False)
    xgb.train(PARAMS, dtrain, 3, evals=[(dval, "val")], verbose_eval=False)
    xgb.XGBClassifier(n_estimators=3, n_jobs=1).fit(Xt, yt, eval_set=[(Xv, yv)], verbose=False)
    xgb.XGBRFClassifier(n_estimators=2, n_jobs=1).fit(Xt, yt)  # fit -> super().fit -> train: one run
    xgb.cv(PARAMS, dtrain, 2, nfold=2)
    mine = TrackhooksCallback(experiment="explicit")
    xgb.train(PARAMS, dtrain, 2, callbacks=[mine])  # an explicit callback is not doubled
    runs = trackhooks.open_store(store_path).runs()
    assert [(r.experiment, r.tags["xgboost.api"], r.params["model.class"]) for r in runs] == [
        ("auto", "train", "Booster"), ("auto", "sklearn", "XGBClassifier"), ("auto", "sklearn", "XGBRFClassifier"),
        ("auto", "cv", "Booster"), ("explicit", "train", "Booster")]
    assert all(r.status == "finished" for r in runs)
    assert runs[1].metric("validation_0-logloss").steps == [0, 1, 2]
    assert not any(k.startswith("importance.") for k in runs[0].metric_keys())
    autolog(disable=True)  # TrackhooksCallback is in explicit use here: the wrappers stay, adding nothing
    xgb.train(PARAMS, dtrain, 2)
    xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(Xt, yt)
    assert len(trackhooks.open_store(store_path).runs()) == 5


def test_autolog_nests_under_an_active_run_and_marks_failure(store_path, dmats):
    dtrain, _ = dmats
    autolog()
    with trackhooks.start_run(name="outer") as outer:
        xgb.train(PARAMS, dtrain, 2)

    def bad_metric(preds, data):
        raise Boom()

    with pytest.raises(Boom):
        xgb.train(PARAMS, dtrain, 3, custom_metric=bad_metric, evals=[(dtrain, "train")])
    store = trackhooks.open_store(store_path)
    child, failed = [r for r in store.runs() if r.id != outer.id]
    assert child.parent_id == outer.id and [c.id for c in store.run(outer.id).children()] == [child.id]
    assert failed.status == "failed" and failed.parent_id is None


def test_trackhooks_autolog_finds_the_plugin_by_entry_point(store_path, dmats):
    dtrain, _ = dmats
    assert trackhooks.autolog("xgboost", experiment="ep") == ["xgboost"]
    xgb.train(PARAMS, dtrain, 2)
    trackhooks.autolog("xgboost", disable=True)
    xgb.train(PARAMS, dtrain, 2)
    assert [r.experiment for r in trackhooks.open_store(store_path).runs()] == ["ep"]


PLUGIN_SCRIPT = """
import sys
import trackhooks_xgboost.plugin as plugin
assert "xgboost" not in sys.modules, "the entry-point module imported xgboost"
import numpy as np, xgboost as xgb, trackhooks
originals = (xgb.train, xgb.cv, xgb.sklearn.train, xgb.XGBClassifier.fit, xgb.XGBRegressor.fit)
plugin.trackhooks_autolog(options={"experiment": "sub"})
assert xgb.train is not originals[0]
d = xgb.DMatrix(np.arange(40.0).reshape(20, 2), label=np.arange(20) % 2)
xgb.train({"nthread": 1}, d, 2)
plugin.trackhooks_autolog(options={"disable": True})
assert (xgb.train, xgb.cv, xgb.sklearn.train, xgb.XGBClassifier.fit, xgb.XGBRegressor.fit) == originals
xgb.train({"nthread": 1}, d, 2)
print(len(trackhooks.open_store().runs()))
"""


def test_plugin_is_light_and_disable_restores_xgboost(store_path):
    out = subprocess.run([sys.executable, "-c", PLUGIN_SCRIPT], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "TRACKHOOKS_URI": store_path})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "1"


def test_plugin_knows_the_callbacks_options():
    import inspect

    from trackhooks_xgboost import plugin

    own = set(inspect.signature(TrackhooksCallback.__init__).parameters) - {"self", "start_run_kwargs"}
    assert own == set(plugin.OWN_OPTIONS)


def test_bad_options_raise_at_construction_and_autolog():
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrackhooksCallback(checkpoint_every=0)
    with pytest.raises(TypeError, match="experimnt"):
        autolog(experimnt="x")
    assert xgb_patch._autolog_options is None


@pytest.mark.parametrize("broken", ["finished run", "unusable store"])
def test_internal_failure_warns_once_and_training_goes_on(store_path, dmats, tmp_path, broken):
    dtrain, dval = dmats
    if broken == "finished run":
        finished = trackhooks.start_run()
        finished.finish()
        cb = TrackhooksCallback(run=finished)
    else:
        (tmp_path / "a_file").write_text("not a store")
        cb = TrackhooksCallback(store=str(tmp_path / "a_file"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bst = xgb.train(PARAMS, dtrain, 5, evals=[(dval, "val")], callbacks=[cb], verbose_eval=False)
    assert bst.num_boosted_rounds() == 5
    ours = [w for w in caught if "trackhooks" in str(w.message)]
    assert len(ours) == 1 and "TrackhooksCallback failed" in str(ours[0].message)


def test_given_run_is_used_and_left_open(store_path, dmats):
    dtrain, dval = dmats
    with trackhooks.start_run(name="mine") as run:
        xgb.train(PARAMS, dtrain, 3, evals=[(dval, "val")], callbacks=[TrackhooksCallback(run=run)],
                  verbose_eval=False)
        assert run.status == "running"
        run.log_metric("test_auc", 0.9)
    rec = only_run(store_path)
    assert rec.name == "mine" and rec.status == "finished" and rec.metric("val-auc").steps == [0, 1, 2]


def test_callback_survives_clone_deepcopy_and_pickle(store_path, cancer):
    Xt, _, yt, _ = cancer
    cb = TrackhooksCallback(experiment="c", log_model=True)
    est = clone(xgb.XGBClassifier(n_estimators=2, n_jobs=1, callbacks=[cb]))
    assert est.callbacks[0] is not cb and isinstance(est.callbacks[0], TrackhooksCallback)
    est.fit(Xt, yt)
    again = pickle.loads(pickle.dumps(copy.deepcopy(cb)))
    xgb.XGBClassifier(n_estimators=2, n_jobs=1, callbacks=[again]).fit(Xt, yt)
    runs = trackhooks.open_store(store_path).runs()
    assert [r.experiment for r in runs] == ["c", "c"]
    assert all("model.ubj" in [a.name for a in r.artifacts()] for r in runs)


def test_dmatrix_fallback_rebuilds_features_with_missing_values():
    X = np.array([[1.0, np.nan, 0.0], [np.nan, 2.5, 3.0]], dtype=np.float32)
    d = xgb.DMatrix(X)
    np.testing.assert_array_equal(_dense(d.get_data(), 2, 3), X)


def test_unsupported_data_only_warns(store_path):
    with trackhooks.start_run() as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert log_data(run, object(), name="odd", context="train") is False
    assert any("could not record dataset 'odd'" in str(w.message) for w in caught)
