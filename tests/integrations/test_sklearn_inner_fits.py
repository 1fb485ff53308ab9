"""scikit-learn autolog records the fits the user makes, never the helper fits of scikit-learn's own
functions (issue 21, item 2): metrics, scorers, permutation importance, calibration, pipelines."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import trackhooks  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.feature_selection import mutual_info_classif  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
# bound before autolog() runs, as at the top of any script: the rule must not depend on the lookup
from sklearn.metrics import classification_report, f1_score, get_scorer, log_loss  # noqa: E402
from sklearn.model_selection import cross_val_predict, cross_val_score, learning_curve  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import LabelEncoder, StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from trackhooks_sklearn import autolog  # noqa: E402

X, Y = load_iris(return_X_y=True)
LABELS = np.array(["setosa", "versicolor", "virginica"])[Y]


@pytest.fixture
def auto(store_path):
    with threadpool_limits(1):
        autolog()
        yield store_path
        autolog(disable=True)


def runs(store_path):
    return [(r.params.get("model.class"), r.tags.get("sklearn.kind"), r.parent_id is None)
            for r in trackhooks.open_store(store_path).runs()]


def lr():
    return LogisticRegression(max_iter=500)


def test_metrics_in_a_loop_record_nothing(auto):
    clf = lr().fit(X, LABELS)
    pred, proba = clf.predict(X), clf.predict_proba(X)
    for _ in range(20):
        classification_report(LABELS, pred, output_dict=True)
        log_loss(LABELS, proba)
        f1_score(LABELS, pred, average="macro")
        sklearn.metrics.f1_score(LABELS, pred, average="micro")  # looked up after autolog() too
    get_scorer("f1_macro")(clf, X, LABELS)
    assert runs(auto) == [("LogisticRegression", "fit", True)]


def test_the_users_own_helper_fit_still_records(auto):
    LabelEncoder().fit(LABELS)
    f1_score(LABELS, LABELS, average="macro")
    assert runs(auto) == [("LabelEncoder", "fit", True)]


def test_permutation_importance_and_mutual_info_record_nothing(auto):
    clf = lr().fit(X, Y)
    permutation_importance(clf, X, Y, n_repeats=2, random_state=0, scoring="f1_macro")
    mutual_info_classif(X, Y, random_state=0)  # fits nearest neighbours internally
    assert runs(auto) == [("LogisticRegression", "fit", True)]


def test_permutation_importance_on_threads_records_nothing(auto):
    from joblib import parallel_backend

    clf = lr().fit(X, LABELS)
    with parallel_backend("threading", n_jobs=2):
        permutation_importance(clf, X, LABELS, n_repeats=2, random_state=0, scoring="f1_macro", n_jobs=2)
    assert runs(auto) == [("LogisticRegression", "fit", True)]


def test_cross_validation_functions_are_one_run_each(auto):
    cross_val_predict(lr(), X, LABELS, cv=3)
    learning_curve(lr(), X, LABELS, cv=2, train_sizes=[0.5, 1.0], scoring="f1_macro")
    cross_val_score(lr(), X, LABELS, cv=2, scoring="f1_macro")
    assert runs(auto) == [("LogisticRegression", "cross_val_predict", True),
                          ("LogisticRegression", "cross_validate", True),
                          ("LogisticRegression", "cross_validate", True)]


def test_calibration_and_pipelines_are_one_run_per_user_fit(auto):
    CalibratedClassifierCV(lr(), cv=3).fit(X, LABELS)
    pipe = Pipeline([("scale", StandardScaler()), ("clf", lr())]).fit(X, LABELS)
    f1_score(LABELS, pipe.predict(X), average="macro")
    assert runs(auto) == [("CalibratedClassifierCV", "fit", True), ("Pipeline", "fit", True)]


def test_disable_restores_the_validation_context(auto):
    from sklearn.utils import _param_validation

    patched = _param_validation.config_context
    autolog(disable=True)
    assert _param_validation.config_context is not patched
    assert _param_validation.config_context is sklearn.config_context
    autolog()
