"""scikit-learn: GridSearchCV with 20 candidates x 3 folds plus one small fit, with no tracking,
trackhooks autolog (and ``track``) and ``mlflow.sklearn.autolog`` with ``log_models=False`` (like the
other MLflow rows) and with its defaults (which also pickle and log every fitted model).

``--search tree96``: instead, GridSearchCV of a small DecisionTreeClassifier on digits, 96 candidates
x 3 folds (288 short fits and one refit, ~2 s): the per-child-run cost of a tracker in a search.

Fit time includes ending the runs (``mlflow.end_run()`` for MLflow's autolog if it left one open).
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "sklearn"
LABEL_KEYS = ("search",)
EXTRA_ARGS = [(("--search",), {"choices": ["logreg", "tree96"], "default": "logreg",
                               "help": "logreg: 20 candidates + one small fit; tree96: 96 tree candidates on digits"})]
_BASE = ["sklearn", "numpy"]
CONFIGS: dict[str, list[str]] = {
    "none": _BASE,
    "trackhooks autolog": _BASE + ["trackhooks_sklearn"],
    "trackhooks track()": _BASE + ["trackhooks_sklearn"],
    "mlflow.sklearn.autolog(log_models=False)": _BASE + ["mlflow"],
    "mlflow.sklearn.autolog()": _BASE + ["mlflow"],  # its defaults: also pickles and logs every model
}

# candidates = len(C) x len(fit_intercept)
SIZES = {
    "full": {"n_C": 10, "folds": 3, "dataset": "breast_cancer"},
    "quick": {"n_C": 10, "folds": 3, "dataset": "breast_cancer"},
    "tiny": {"n_C": 2, "folds": 2, "dataset": "iris"},
}


def preload(configs: list[str]) -> None:
    _bench.import_modules(["numpy", "sklearn.linear_model", "sklearn.model_selection", "sklearn.pipeline",
                           "sklearn.preprocessing", "sklearn.datasets", "sklearn.tree"])
    mods = {m for c in configs for m in CONFIGS[c]}
    if "mlflow" in mods:
        _bench.import_modules(["mlflow", "mlflow.sklearn"])
    if "trackhooks_sklearn" in mods:
        _bench.preload_trackhooks("trackhooks_sklearn", "track", "autolog")


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import numpy as np
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = getattr(datasets, f"load_{p['dataset']}")(return_X_y=True)
    xi, yi = datasets.load_iris(return_X_y=True)
    grid = {"logisticregression__C": list(np.logspace(-3, 2, p["n_C"])),
            "logisticregression__fit_intercept": [True, False]}
    trees = p.get("search") == "tree96"
    if trees:
        from sklearn.tree import DecisionTreeClassifier

        x, y = datasets.load_digits(return_X_y=True)
        # 8 x 4 x 3 = 96 candidates (tiny: 2 x 2 x 1 on the same data)
        small = p["n_C"] < 10
        grid = {"max_depth": [2, 4] if small else [2, 3, 4, 5, 6, 8, 10, None],
                "min_samples_leaf": [1, 4] if small else [1, 2, 4, 8],
                "criterion": ["gini"] if small else ["gini", "entropy", "log_loss"]}

    def search_estimator():
        if trees:
            return GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=p["folds"], n_jobs=1)
        return GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), grid, cv=p["folds"],
                            n_jobs=1)

    def small_estimator():
        return LogisticRegression(max_iter=500)

    end = None
    wrap = None
    if config == "trackhooks autolog":
        import trackhooks_sklearn

        trackhooks_sklearn.autolog()  # its options are not part of the contract; the store comes from $TRACKHOOKS_URI
    elif config == "trackhooks track()":
        from trackhooks_sklearn import track

        wrap = track
    elif config.startswith("mlflow.sklearn.autolog"):
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
        mlflow.set_experiment("bench")  # creates the database: setup, not fit
        if config.endswith("(log_models=False)"):
            mlflow.sklearn.autolog(log_models=False)
        else:
            mlflow.sklearn.autolog()
        end = mlflow.end_run
    elif config != "none":
        raise ValueError(config)
    search, small = search_estimator(), small_estimator()
    if wrap is not None:
        search, small = wrap(search), wrap(small)

    clock.setup_done()
    search.fit(x, y)
    if end is not None:
        end()
    if not trees:
        small.fit(xi, yi)
        if end is not None:
            end()
    clock.fit_done()
    return {"candidates": len(search.cv_results_["params"])}


if __name__ == "__main__":
    _bench.run_script(__name__)
