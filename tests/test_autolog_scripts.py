"""Typical small scripts, run untracked and then with ``import trackhooks; trackhooks.autolog()``
added at their top, in fresh processes (issue 21): the output is unchanged and the store holds
exactly one run per fit the script makes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import trackhooks

pytest.importorskip("sklearn")

HEADER = "import trackhooks\ntrackhooks.autolog()\n"

SKLEARN_METRICS_AND_SEARCH = """
import sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, f1_score, log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X, y = load_iris(return_X_y=True)
clf = LogisticRegression(max_iter=500).fit(X, y)
pred = clf.predict(X)
print(classification_report(y, pred, digits=3))
print([round(f1_score(y, pred, average=a), 4) for a in ("macro", "micro", "weighted") for _ in range(10)][:3])
print(round(log_loss(y, clf.predict_proba(X)), 4))
search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
                      {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
print(search.best_params_)
print([round(s, 4) for s in cross_val_score(LogisticRegression(max_iter=500), X, y, cv=3)])
print(sorted(m for m in ("torch", "keras", "lightning", "xgboost") if m in sys.modules))
"""

XGBOOST_CALL_FORMS = """
import sys, warnings
warnings.simplefilter("ignore", FutureWarning)
import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer

X, y = load_breast_cancer(return_X_y=True)
d = xgb.DMatrix(X, label=y)
params = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": 2, "nthread": 1}
history = {}
bst = xgb.train(params, d, 5, [(d, "train")], evals_result=history, verbose_eval=False)
print([round(v, 4) for v in history["train"]["logloss"]])
bst2 = xgb.train(params=params, dtrain=d, num_boost_round=3)
print(bst2.num_boosted_rounds())
model = xgb.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1).fit(X, y)
print(round(float(model.score(X, y)), 4))
print(sorted(m for m in ("torch", "keras", "lightning") if m in sys.modules))
"""

SEARCH_OVER_XGBOOST = """
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV

X, y = load_breast_cancer(return_X_y=True)
search = GridSearchCV(xgb.XGBClassifier(n_estimators=3, n_jobs=1), {"max_depth": [2, 3]}, cv=2).fit(X, y)
print(search.best_params_)
"""


def _run(code: str, store: str, cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRACKHOOKS_URI": store, "PYTHONWARNINGS": "ignore::FutureWarning"}
    env.pop("TRACKHOOKS_MIRRORS", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def _runs(store: str) -> list[tuple]:
    recs = trackhooks.open_store(store).runs()
    by_id = {r.id: r for r in recs}
    return [(r.tags.get("framework"), r.params.get("model.class"), r.tags.get("sklearn.kind") or
             r.tags.get("xgboost.api"), by_id[r.parent_id].params.get("model.class") if r.parent_id else None,
             r.status) for r in recs]


def _compare(script: str, tmp_path) -> list[tuple]:
    plain = _run(script, str(tmp_path / "untracked-store"), str(tmp_path))
    assert plain.returncode == 0, plain.stderr
    assert not os.path.exists(tmp_path / "untracked-store")
    tracked = _run(HEADER + script, str(tmp_path / "store"), str(tmp_path))
    assert tracked.returncode == 0, tracked.stderr
    assert tracked.stdout == plain.stdout  # the script behaves exactly as before
    assert "trackhooks" not in tracked.stderr, tracked.stderr  # and we say nothing
    return _runs(str(tmp_path / "store"))


def test_sklearn_metrics_and_searches(tmp_path):
    runs = _compare(SKLEARN_METRICS_AND_SEARCH, tmp_path)
    parent = ("sklearn", "GridSearchCV", "fit", None, "finished")
    child = ("sklearn", None, None, "GridSearchCV", "finished")  # a candidate: its params, no class
    assert sorted(runs, key=str) == sorted([
        ("sklearn", "LogisticRegression", "fit", None, "finished"), parent, child, child, child,
        ("sklearn", "LogisticRegression", "cross_validate", None, "finished")], key=str), runs


def test_xgboost_call_forms(tmp_path):
    pytest.importorskip("xgboost")
    runs = _compare(XGBOOST_CALL_FORMS, tmp_path)
    assert runs == [("xgboost", "Booster", "train", None, "finished"),
                    ("xgboost", "Booster", "train", None, "finished"),
                    ("xgboost", "XGBClassifier", "sklearn", None, "finished")], runs


def test_search_over_an_xgboost_estimator(tmp_path):
    pytest.importorskip("xgboost")
    runs = _compare(SEARCH_OVER_XGBOOST, tmp_path)
    parent = [r for r in runs if r[3] is None]
    assert parent == [("sklearn", "GridSearchCV", "fit", None, "finished")], runs
    assert len(runs) == 3, runs  # the parent and its two candidates, nothing from the fold fits
