"""trackhooks_optuna against real Optuna: quadratics, pruning, failures, threads, processes, and the
framework integrations recording into the trial's run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

optuna = pytest.importorskip("optuna")

import trackhooks  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from trackhooks_optuna import TrackhooksCallback, autolog  # noqa: E402
from trackhooks_optuna import patch as optuna_patch  # noqa: E402
from trackhooks_optuna.describe import storage_url  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(autouse=True)
def _autolog_off():
    yield
    autolog(disable=True)


def study_run(store_path):
    parents = [r for r in trackhooks.open_store(store_path).runs() if r.parent_id is None]
    assert len(parents) == 1, parents
    return parents[0]


def quadratic(trial):
    x = trial.suggest_float("x", -10, 10)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if trial.number % 7 == 5:
        trial.report(1.0, 0)
        raise ValueError(f"x too large: {x}")
    for step in range(4):
        trial.report((x - 2) ** 2 + 3 - step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    trial.set_user_attr("kind_upper", kind.upper())
    return (x - 2) ** 2


def new_study(**kw):
    return optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0),
                               pruner=optuna.pruners.MedianPruner(n_startup_trials=3), **kw)


def test_study_is_the_parent_and_every_trial_a_child(store_path):
    study = new_study(study_name="quad")
    cb = TrackhooksCallback()
    study.optimize(quadratic, n_trials=25, callbacks=[cb], catch=(ValueError,))
    parent = study_run(store_path)
    assert parent.id == cb.run.id and parent.status == "finished"
    assert (parent.experiment, parent.name) == ("quad", "quad")
    assert parent.params["direction"] == "minimize" and parent.params["n_trials"] == 25
    assert parent.params["sampler.class"] == "TPESampler" and parent.params["sampler.n_startup_trials"] == 10
    assert parent.params["pruner.class"] == "MedianPruner" and parent.params["pruner.n_startup_trials"] == 3
    assert parent.tags["optuna.study_name"] == "quad" and parent.tags["optuna.storage"] == "in-memory"
    children = {int(c.tags["optuna.trial_number"]): c for c in parent.children()}
    assert sorted(children) == [t.number for t in study.trials]
    states = {t.state for t in study.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states  # the test covers all three
    for t in study.trials:
        rec = children[t.number]
        assert rec.name == f"trial-{t.number}" and rec.experiment == "quad"
        assert {k: rec.params[k] for k in t.params} == t.params
        assert rec.params["distribution.x"].startswith("FloatDistribution(")
        assert rec.tags["optuna.state"] == t.state.name
        assert rec.metric("objective").steps == sorted(t.intermediate_values)
        assert rec.metric("objective").values == [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
        if t.state == TrialState.COMPLETE:
            assert rec.status == "finished" and rec.metric("value").values == [t.value]
            assert rec.params["user_attrs.kind_upper"] == t.params["kind"].upper()
        elif t.state == TrialState.PRUNED:
            assert rec.status == "finished" and rec.tags["pruned"] == "true"
        else:
            assert rec.status == "failed" and rec.tags["optuna.fail_reason"].startswith("ValueError: x too large")
            assert "value" not in rec.metric_keys()
        assert rec.metric("duration_s").values[0] >= 0
    best = parent.metric("best_value")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert best.steps == [t.number for t in complete]
    assert best.values[-1] == study.best_value
    assert best.values == [min(c.value for c in complete[: i + 1]) for i in range(len(complete))]
    assert parent.tags["optuna.best_trial"] == str(study.best_trial.number)
    assert json.loads(parent.tags["optuna.best_params"]) == study.best_params


def test_exceptions_pass_through_unchanged_and_catch_is_unchanged(store_path):
    class Boom(Exception):
        pass

    raised = Boom("from the objective")

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 2:
            raise raised
        if trial.number == 1:
            raise KeyError("caught")
        return x

    def run(callbacks):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        with pytest.raises(Boom) as info:
            study.optimize(objective, n_trials=5, catch=(KeyError,), callbacks=callbacks)
        return study, info.value

    plain, plain_exc = run(None)
    tracked, tracked_exc = run([TrackhooksCallback()])
    assert tracked_exc is raised and plain_exc is raised
    assert [(t.state, t.params) for t in tracked.trials] == [(t.state, t.params) for t in plain.trials]
    parent = study_run(store_path)
    assert parent.status == "failed"
    by_number = {int(c.tags["optuna.trial_number"]): c for c in parent.children()}
    assert [by_number[i].status for i in range(3)] == ["finished", "failed", "failed"]
    assert by_number[2].tags["optuna.fail_reason"] == "Boom: from the objective"


def test_a_failing_store_changes_nothing_in_the_study(tmp_path, store_path):
    bad = tmp_path / "a-file"
    bad.write_text("not a store")

    def go(callbacks):
        study = new_study()
        study.optimize(quadratic, n_trials=12, catch=(ValueError,), callbacks=callbacks)
        return [(t.state, t.params, t.value) for t in study.trials]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracked = go([TrackhooksCallback(store=str(bad))])
    assert tracked == go(None)
    ours = [w for w in caught if "optuna:" in str(w.message)]
    assert len(ours) == 1 and "study's run" in str(ours[0].message)


def test_n_jobs_2_gives_one_child_per_trial_with_its_params(store_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from trackhooks_sklearn import autolog as sk_autolog

    X, y = load_iris(return_X_y=True)
    sk_autolog()
    try:
        def objective(trial):
            c = trial.suggest_float("C", 1e-3, 10, log=True)
            model = LogisticRegression(C=c, max_iter=200).fit(X, y)
            return model.score(X, y)

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3))
        study.optimize(objective, n_trials=12, n_jobs=2, callbacks=[TrackhooksCallback(experiment="threads")])
    finally:
        sk_autolog(disable=True)
    all_runs = trackhooks.open_store(store_path).runs()
    parent = study_run(store_path)
    assert len(all_runs) == 13 and parent.params["n_jobs"] == 2 and parent.params["direction"] == "maximize"
    children = parent.children()
    numbers = sorted(int(c.tags["optuna.trial_number"]) for c in children)
    assert numbers == list(range(12))
    trials = {t.number: t for t in study.trials}
    for c in children:
        t = trials[int(c.tags["optuna.trial_number"])]
        assert c.params["C"] == t.params["C"]  # the sampled value, and the fit's own record agrees
        assert c.params["model.class"] == "LogisticRegression" and c.tags["framework"] == "sklearn"
        assert c.metric("value").values == [t.value] and "train_accuracy" in c.metric_keys()


def test_a_resumed_study_adds_children_under_the_same_parent(store_path, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="res", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[TrackhooksCallback()])
    again = optuna.load_study(study_name="res", storage=storage)
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[TrackhooksCallback()])
    parent = study_run(store_path)
    assert parent.status == "finished" and parent.tags["optuna.storage"].startswith("sqlite:///")
    assert sorted(int(c.tags["optuna.trial_number"]) for c in parent.children()) == [0, 1, 2, 3, 4]
    assert parent.metric("best_value").values[-1] == again.best_value


SCRIPT = r"""
import sys, optuna, trackhooks
from trackhooks_optuna import TrackhooksCallback
optuna.logging.set_verbosity(optuna.logging.ERROR)
study = optuna.create_study(study_name="shared", storage=sys.argv[1], load_if_exists=True)
def objective(trial):
    return (trial.suggest_float("x", -5, 5) - 1) ** 2
study.optimize(objective, n_trials=6, callbacks=[TrackhooksCallback()])
print("done")
"""


def test_two_processes_on_one_sqlite_storage_share_the_parent(store_path, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="shared", storage=storage)  # both processes then load it
    env = dict(os.environ, TRACKHOOKS_URI=store_path)
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, storage], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0 and out.strip() == "done", err
    study = optuna.load_study(study_name="shared", storage=storage)
    parent = study_run(store_path)
    assert len(trackhooks.open_store(store_path).runs()) == 13
    numbers = sorted(int(c.tags["optuna.trial_number"]) for c in parent.children())
    assert numbers == sorted(t.number for t in study.trials) == list(range(12))
    values = {int(c.tags["optuna.trial_number"]): c.metric("value").values for c in parent.children()}
    assert values == {t.number: [t.value] for t in study.trials}
    assert parent.status == "finished"


def test_multi_objective_values_and_pareto_front(store_path):
    def objective(trial):
        x = trial.suggest_float("x", 0, 2)
        return x ** 2, (x - 2) ** 2

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=15, callbacks=[TrackhooksCallback()])
    parent = study_run(store_path)
    assert parent.params["directions"] == ["minimize", "minimize"]
    for c in parent.children():
        t = study.trials[int(c.tags["optuna.trial_number"])]
        assert [c.metric("values/0").values[0], c.metric("values/1").values[0]] == t.values
    front = sorted(t.number for t in study.best_trials)
    assert parent.tags["optuna.best_trials"] == ",".join(map(str, front))
    (art,) = [a for a in parent.artifacts() if a.name == "pareto_front.json"]
    with open(art.path) as f:
        assert [row["number"] for row in json.load(f)] == front
    assert parent.metric("pareto_front_size").values[-1] == len(front)


def test_xgboost_callback_inside_the_objective_records_into_the_trial(store_path):
    xgb = pytest.importorskip("xgboost")
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from trackhooks_xgboost import TrackhooksCallback as XGBCallback

    X, y = load_breast_cancer(return_X_y=True)
    Xt, Xv, yt, yv = train_test_split(X, y, test_size=0.3, random_state=0)

    def objective(trial):
        depth = trial.suggest_int("max_depth", 1, 4)
        model = xgb.XGBClassifier(n_estimators=8, max_depth=depth, n_jobs=1, eval_metric="logloss",
                                  callbacks=[XGBCallback()])
        model.fit(Xt, yt, eval_set=[(Xv, yv)], verbose=False)
        for i, v in enumerate(model.evals_result()["validation_0"]["logloss"]):
            trial.report(v, i)
        return model.evals_result()["validation_0"]["logloss"][-1]

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=4, callbacks=[TrackhooksCallback(experiment="xgb-search")])
    assert len(trackhooks.open_store(store_path).runs()) == 5  # the study and its four trials, nothing else
    parent = study_run(store_path)
    for c in parent.children():
        t = study.trials[int(c.tags["optuna.trial_number"])]
        assert c.tags["framework"] == "xgboost" and c.params["max_depth"] == t.params["max_depth"]
        assert c.metric("validation_0-logloss").steps == list(range(8))
        assert c.metric("validation_0-logloss").values[-1] == pytest.approx(t.value)
        assert c.metric("objective").values == c.metric("validation_0-logloss").values
        assert {d.context for d in c.datasets()} == {"train", "validation"}


def test_keras_fit_under_autolog_records_into_the_trial(store_path):
    keras = pytest.importorskip("keras")
    import numpy as np
    from trackhooks_keras import autolog as keras_autolog

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype("float32")
    y = (X.sum(axis=1) > 0).astype("float32")
    keras_autolog()
    try:
        def objective(trial):
            units = trial.suggest_int("units", 2, 6)
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="relu"),
                                      keras.layers.Dense(1, activation="sigmoid")])
            model.compile(optimizer="adam", loss="binary_crossentropy")
            history = model.fit(X, y, epochs=2, batch_size=32, verbose=0)
            return history.history["loss"][-1]

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(objective, n_trials=2, callbacks=[TrackhooksCallback()])
    finally:
        keras_autolog(disable=True)
    assert len(trackhooks.open_store(store_path).runs()) == 3
    for c in study_run(store_path).children():
        t = study.trials[int(c.tags["optuna.trial_number"])]
        assert c.tags["framework"] == "keras" and c.params["units"] == t.params["units"]
        assert c.metric("loss").epochs == [0, 1] and c.metric("loss").values[-1] == pytest.approx(t.value)


def test_autolog_records_every_optimize_and_disable_restores_optuna(store_path):
    original = optuna.study.Study.optimize
    assert trackhooks.autolog("optuna", experiment="auto") == ["optuna"]
    study = optuna.create_study(study_name="a", sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[lambda s, t: seen.append(t.number)])
    assert seen == [0, 1, 2]  # the user's callbacks still run
    parent = study_run(store_path)
    assert parent.experiment == "auto" and len(parent.children()) == 3
    autolog(disable=True)
    optuna.create_study().optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(trackhooks.open_store(store_path).runs()) == 4  # nothing more
    if not optuna_patch._explicit:
        assert optuna.study.Study.optimize is getattr(original, "__trackhooks_original__", original)


def test_storage_url_loses_its_password():
    from types import SimpleNamespace as NS

    def url(u):
        return storage_url(NS(_storage=NS(url=u)))

    assert url("postgresql://alice:s3cret@db:5432/optuna") == "postgresql://alice:***@db:5432/optuna"
    assert "s3cret" not in url("mysql+pymysql://bob:s3cret@h/db?password=s3cret&charset=utf8")
    assert url("sqlite:///tmp/x.db") == "sqlite:///tmp/x.db"
    cached = NS(_storage=NS(_backend=NS(url="postgresql://a:pw@h/d")))  # Optuna's _CachedStorage
    assert storage_url(cached) == "postgresql://a:***@h/d"


def test_bad_options_raise_naming_the_key():
    with pytest.raises(TypeError, match="experimnt"):
        TrackhooksCallback(experimnt="x")
    with pytest.raises(TypeError, match="experimnt"):
        autolog(experimnt="x")


# ---- looking at a study: CLI, report, UI ---------------------------------------------------------


@pytest.fixture
def recorded_study(store_path):
    study = new_study(study_name="look")
    study.optimize(quadratic, n_trials=20, callbacks=[TrackhooksCallback()], catch=(ValueError,))
    return study, study_run(store_path)


def _expected_order(study):
    rank = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 3}
    return [t.number for t in sorted(study.trials, key=lambda t: (rank[t.state], t.value is None,
                                                                  t.value if t.value is not None else 0, t.number))]


def test_cli_show_lists_the_trials_best_first(store_path, recorded_study):
    study, parent = recorded_study
    env = dict(os.environ, COLUMNS="120")
    out = subprocess.run([sys.executable, "-m", "trackhooks", "--store", store_path, "show", parent.id, "--json"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)["study"]
    assert [t["number"] for t in view["trials"]] == _expected_order(study)
    assert view["best"] == [study.best_trial.number] and view["param_names"] == ["kind", "x"]
    assert view["param_kinds"] == {"kind": "categorical", "x": "linear"}
    text = subprocess.run([sys.executable, "-m", "trackhooks", "--store", store_path, "show", parent.id],
                          capture_output=True, text=True, env=env, timeout=120).stdout
    section = text[text.index("trials (minimize; best first)"):]
    rows = [line.split() for line in section.splitlines()[3:3 + len(study.trials)]]
    numbers = [int(r[1]) if r[0] == "★" else int(r[0]) for r in rows]
    assert numbers == _expected_order(study)
    assert rows[0][0] == "★" and "complete" in rows[0] and f"x={study.best_params['x']:.4g}" in " ".join(rows[0])


def test_report_and_ui_carry_the_study_view(store_path, recorded_study, tmp_path):
    from trackhooks.report import build_data, build_report

    study, parent = recorded_study
    recs = trackhooks.open_store(store_path).runs()
    data = build_data(recs)
    (st,) = data["studies"]
    assert st["id"] == parent.id and st["run"] == [r.id for r in recs].index(parent.id)
    by_number = {t["number"]: t for t in st["trials"]}
    for t in study.trials:
        mine = by_number[t.number]
        assert mine["state"] == t.state.name and mine["pruned"] == (t.state == TrialState.PRUNED)
        assert mine["objective"]["steps"] == sorted(t.intermediate_values)
    page, info = build_report(recs)
    assert info["studies"] == 1 and 'data-study="0"' in page and "TrackhooksStudy" in page
    assert page.count("<tr>") >= len(study.trials)  # the trials table is there without JavaScript
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient
    from trackhooks.ui.server import create_app

    client = TestClient(create_app(store_path))
    detail = client.get(f"/api/runs/{parent.id}").json()
    assert [t["number"] for t in detail["study"]["trials"]] == _expected_order(study)
    child = next(iter(parent.children()))
    assert client.get(f"/api/runs/{child.id}").json()["study"] is None
    assert "TrackhooksStudy" in client.get("/static/study.js").text


def test_study_charts_draw_in_headless_chromium(store_path, recorded_study, tmp_path):
    import shutil

    chromium = os.environ.get("TRACKHOOKS_CHROMIUM") or shutil.which("chromium")
    browser_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "browser")
    if not chromium or not shutil.which("node") or \
            not os.path.isdir(os.path.join(browser_dir, "node_modules", "playwright-core")):
        pytest.skip("needs chromium, node and `npm ci` in tests/browser")
    report = str(tmp_path / "report.html")
    p = subprocess.run([sys.executable, "-m", "trackhooks", "report", "--store", store_path, "-o", report],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr

    def check(url: str) -> None:
        r = subprocess.run(["node", "check_study.mjs", url, str(tmp_path / "study.png"), chromium],
                           cwd=browser_dir, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        res = json.loads(r.stdout.strip().splitlines()[-1])
        assert res["console_errors"] == [] and res["page_errors"] == [], res
        titles = [c["title"] for c in res["charts"]]
        assert titles == ["optimisation history", "parallel coordinates", "intermediate values (objective)"]
        assert all(c["inked"] > 2000 for c in res["charts"]), res["charts"]  # axes and data, not blank
        assert res["readout"].startswith("trial ") and ("complete" in res["readout"] or "pruned" in res["readout"])

    check("file://" + report)
    # the same charts in the UI, at the study's run
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "trackhooks", "ui", "--store", store_path, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/api/runs", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.2)
        check(f"{base}/#/run/{recorded_study[1].id}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ask_and_tell_loop_with_start_wrap_objective_and_end(store_path):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cb = TrackhooksCallback()
    cb.start(study)
    run_trial = cb.wrap_objective(quadratic)
    for _ in range(6):
        trial = study.ask()
        try:
            value = run_trial(trial)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED)
        except ValueError:
            frozen = study.tell(trial, state=TrialState.FAIL)
        else:
            frozen = study.tell(trial, value)
        cb(study, frozen)
    cb.end()
    parent = study_run(store_path)
    assert parent.status == "finished"
    children = {int(c.tags["optuna.trial_number"]): c for c in parent.children()}
    assert sorted(children) == list(range(6))
    for t in study.trials:
        assert children[t.number].tags["optuna.state"] == t.state.name
        assert children[t.number].params["x"] == t.params["x"]


def test_lightning_callback_inside_the_objective_records_into_the_trial(store_path, tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from trackhooks_lightning import TrackhooksCallback as PLCallback

    torch.manual_seed(0)
    X = torch.randn(64, 4)
    y = X.sum(dim=1, keepdim=True)

    class Reg(pl.LightningModule):
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _):
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def objective(trial):
        model = Reg(trial.suggest_float("lr", 1e-3, 1e-1, log=True))
        trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, log_every_n_steps=1, callbacks=[PLCallback()],
                             default_root_dir=tmp_path)
        trainer.fit(model, DataLoader(TensorDataset(X, y), batch_size=16))
        return float(trainer.callback_metrics["train_loss_epoch"])

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=2, callbacks=[TrackhooksCallback()])
    assert len(trackhooks.open_store(store_path).runs()) == 3
    for c in study_run(store_path).children():
        t = study.trials[int(c.tags["optuna.trial_number"])]
        assert c.tags["framework"] == "lightning" and c.status == "finished"
        assert c.params["lr"] == t.params["lr"]  # sampled, and Lightning's hparams agree
        assert c.metric("train_loss_epoch").epochs == [0, 1]
        assert c.metric("train_loss_epoch").values[-1] == pytest.approx(t.value)
        assert len(c.metric("train_loss_step")) == 8
