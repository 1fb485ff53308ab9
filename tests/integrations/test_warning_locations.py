"""Warnings keep their location through our wrappers (issue 21, item 6): a framework's warning is
reported where it is without trackhooks, and our own warnings at the user's line, never in a
trackhooks file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import trackhooks  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from trackhooks_sklearn import autolog as sklearn_autolog  # noqa: E402

X, Y = load_iris(return_X_y=True)


def _locations(fn, category):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return sorted({(w.filename, w.lineno) for w in caught if issubclass(w.category, category)})


@pytest.mark.parametrize("case", ["column-vector y", "not converged"])
def test_sklearn_warnings_through_autolog_keep_their_location(store_path, case):
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning

    if case == "column-vector y":
        def fit():
            RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y.reshape(-1, 1))
        category = DataConversionWarning
    else:
        def fit():
            LogisticRegression(max_iter=1).fit(X, Y)
        category = ConvergenceWarning
    plain = _locations(fit, category)
    sklearn_autolog()
    try:
        tracked = _locations(fit, category)
    finally:
        sklearn_autolog(disable=True)
    assert plain and tracked == plain
    assert len(trackhooks.open_store(store_path).runs()) == 1


def test_our_own_warnings_point_at_the_users_line(store_path):
    with pytest.warns(RuntimeWarning, match="ignores option") as caught:
        trackhooks.autolog("sklearn", option_of_another_plugin_for_this_test=1)
    try:
        assert [w.filename for w in caught if "ignores option" in str(w.message)] == [__file__]
    finally:
        trackhooks.autolog("sklearn", disable=True)


def test_keras_warnings_through_autolog_keep_their_location(store_path):
    keras = pytest.importorskip("keras")
    from trackhooks_keras import autolog as keras_autolog

    def fit():
        def batches():  # runs out after 3 batches: Keras warns and stops the epoch
            for _ in range(3):
                yield np.zeros((4, 4), "float32"), np.zeros((4, 1), "float32")

        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(batches(), steps_per_epoch=5, epochs=2, verbose=0)

    plain = _locations(fit, UserWarning)
    keras_autolog()
    try:
        tracked = _locations(fit, UserWarning)
    finally:
        keras_autolog(disable=True)
    assert plain and tracked == plain
    assert all("trackhooks" not in f for f, _ in tracked)
