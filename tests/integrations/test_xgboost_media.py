"""XGBoost integration, rich records: every importance type as the table ``feature_importance``."""

from __future__ import annotations

import pytest

xgb = pytest.importorskip("xgboost")

from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402

from trackhooks.sink import Sink  # noqa: E402
from trackhooks_xgboost import TrackhooksCallback  # noqa: E402


class Capture(Sink):
    name = "capture"

    def __init__(self):
        self.media = []

    def write(self, batch):
        self.media.extend(batch.media)


def test_importance_table_has_every_type(store_path):
    X, y = load_breast_cancer(return_X_y=True)
    cap = Capture()
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, label=y), 5,
                    callbacks=[TrackhooksCallback(mirrors=[cap])])
    [table] = [m for m in cap.media if m.key == "feature_importance"]
    assert table.kind == "table"
    kinds = ["weight", "gain", "cover", "total_gain", "total_cover"]
    assert table.data["columns"] == ["feature", *kinds]
    rows = {r[0]: dict(zip(kinds, r[1:])) for r in table.data["rows"]}
    for kind in kinds:
        expected = bst.get_score(importance_type=kind)
        assert {f: v[kind] for f, v in rows.items()} == pytest.approx(expected)
    gains = [r[2] for r in table.data["rows"]]
    assert gains == sorted(gains, reverse=True)


@pytest.mark.parametrize("params", [
    {"objective": "reg:squarederror", "max_depth": 6},
    {"objective": "multi:softprob", "num_class": 3, "max_depth": 4},
])
def test_gain_and_cover_derived_from_the_totals_are_xgboosts_own_bit_for_bit(params):
    from sklearn.datasets import load_wine

    from trackhooks_xgboost.media import IMPORTANCE_TYPES, importance_scores

    X, y = (load_diabetes if params["objective"].startswith("reg") else load_wine)(return_X_y=True)
    bst = xgb.train({**params, "nthread": 1}, xgb.DMatrix(X, label=y), 40)
    scores = importance_scores(bst)
    assert list(scores) == list(IMPORTANCE_TYPES)
    for kind in IMPORTANCE_TYPES:
        assert scores[kind] == bst.get_score(importance_type=kind), kind  # ==, not approx


def test_gblinear_has_only_weight(store_path):
    X, y = load_diabetes(return_X_y=True)
    cap = Capture()
    xgb.train({"booster": "gblinear", "nthread": 1}, xgb.DMatrix(X, label=y), 3,
              callbacks=[TrackhooksCallback(mirrors=[cap])])
    [table] = [m for m in cap.media if m.key == "feature_importance"]
    assert table.data["columns"] == ["feature", "weight"] and len(table.data["rows"]) == X.shape[1]


def test_log_importance_false_records_no_table(store_path):
    X, y = load_diabetes(return_X_y=True)
    cap = Capture()
    xgb.train({"nthread": 1}, xgb.DMatrix(X, label=y), 2, callbacks=[TrackhooksCallback(mirrors=[cap], log_importance=False)])
    assert cap.media == []


def test_trackhooks_autolog_options_of_other_plugins_are_ignored_with_a_warning(store_path):
    import trackhooks

    from trackhooks_xgboost import autolog

    X, y = load_diabetes(return_X_y=True)
    try:
        with pytest.warns(RuntimeWarning, match="log_histograms"):
            trackhooks.autolog("xgboost", log_histograms=2, log_importance=True)
        xgb.train({"nthread": 1}, xgb.DMatrix(X, label=y), 2)
    finally:
        autolog(disable=True)
    (rec,) = trackhooks.open_store(store_path).runs()
    assert rec.media_keys() == ["feature_importance"]
    with pytest.raises(TypeError):
        autolog(log_histograms=2)  # the plugin's own autolog still rejects it
