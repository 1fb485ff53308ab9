"""The trackhooks product tour.

Trains a small classifier on scikit-learn's digits data (bundled, no download) in every installed
framework integration, each tracked by its one-liner, into the embedded local store. Then prints
`trackhooks runs`, a `trackhooks compare` of the top-level runs, and writes an HTML report.

    .venv/bin/python examples/tour.py [--store DIR] [--report PATH]

Defaults: the default store ($TRACKHOOKS_URI, else ./.trackhooks, so that `trackhooks runs` and
`trackhooks ui` see the runs without flags), report ./tour-report.html. A framework whose
integration is not installed is skipped with a note. Under 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on the torch backend (no tensorflow)

import trackhooks  # noqa: E402

EXPERIMENT = "digits-tour"


def load_data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32")
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=0.2, random_state=0,
                                                      stratify=y_train)
    return X_train, X_val, X_test, y_train, y_val, y_test


def accuracy(pred, y) -> float:
    return float((pred == y).mean())


# ---- one section per framework: the tracking is one line in each ------------------------------


def tour_lightning(data, workdir: str) -> str:
    import lightning as L
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from trackhooks_lightning import TrackhooksCallback

    X_train, X_val, X_test, y_train, y_val, y_test = data
    torch.manual_seed(0)
    # no "GPU available" banners in the tour (after every import: importing Lightning resets them)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_utilities", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)

    class MLP(L.LightningModule):
        def __init__(self, hidden: int = 64, lr: float = 3e-3):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, _):
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            logits = self(x)
            self.log("val_loss", F.cross_entropy(logits, y))
            self.log("val_accuracy", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def loader(X, y, shuffle=False):
        return DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y).long()), batch_size=64,
                          shuffle=shuffle)

    model = MLP()
    with trackhooks.start_run(EXPERIMENT, "lightning-mlp") as run:
        trainer = L.Trainer(
            max_epochs=6, log_every_n_steps=5, logger=False, enable_progress_bar=False,
            enable_model_summary=False, default_root_dir=workdir,
            callbacks=[TrackhooksCallback(run=run),  # <- the one line
                       L.pytorch.callbacks.ModelCheckpoint(dirpath=os.path.join(workdir, "lightning"),
                                                           monitor="val_loss", save_top_k=2)])
        trainer.fit(model, loader(X_train, y_train, shuffle=True), loader(X_val, y_val))
        with torch.no_grad():
            pred = model(torch.from_numpy(X_test)).argmax(1).numpy()
        run.log_metric("test_accuracy", accuracy(pred, y_test))
    return run.id


def tour_keras(data, workdir: str) -> str:
    import keras

    from trackhooks_keras import TrackhooksCallback

    X_train, X_val, X_test, y_train, y_val, y_test = data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    with trackhooks.start_run(EXPERIMENT, "keras-mlp") as run:
        model.fit(X_train, y_train, validation_data=(X_val, y_val), epochs=6, batch_size=64, verbose=0,
                  callbacks=[TrackhooksCallback(run=run)])  # <- the one line
        run.log_metric("test_accuracy", accuracy(model.predict(X_test, verbose=0).argmax(1), y_test))
    return run.id


def tour_sklearn(data, workdir: str) -> str:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    from trackhooks_sklearn import track

    X_train, X_val, X_test, y_train, y_val, y_test = data
    with trackhooks.start_run(EXPERIMENT, "sklearn-grid-search") as run:
        search = track(GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0, 10.0]}, cv=3),
                       run=run)  # <- the one line: the search and one child run per candidate
        search.fit(X_train, y_train)
        run.log_metric("test_accuracy", accuracy(search.predict(X_test), y_test))
    return run.id


def tour_xgboost(data, workdir: str) -> str:
    import xgboost as xgb

    from trackhooks_xgboost import TrackhooksCallback

    X_train, X_val, X_test, y_train, y_val, y_test = data
    with trackhooks.start_run(EXPERIMENT, "xgboost-trees") as run:
        model = xgb.XGBClassifier(n_estimators=40, max_depth=3, learning_rate=0.3, n_jobs=2,
                                  eval_metric=["mlogloss", "merror"],
                                  callbacks=[TrackhooksCallback(run=run)])  # <- the one line
        model.fit(X_train, y_train, eval_set=[(X_val, y_val)], verbose=False)
        run.log_metric("test_accuracy", accuracy(model.predict(X_test), y_test))
    return run.id


SECTIONS = [("Lightning", "trackhooks_lightning", tour_lightning), ("Keras", "trackhooks_keras", tour_keras),
            ("scikit-learn", "trackhooks_sklearn", tour_sklearn), ("XGBoost", "trackhooks_xgboost", tour_xgboost)]


def cli(*args: str) -> None:
    sys.stdout.flush()
    subprocess.run([sys.executable, "-m", "trackhooks", *args], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None, help="store directory (default: $TRACKHOOKS_URI, else ./.trackhooks)")
    ap.add_argument("--report", default="tour-report.html", help="where to write the HTML report")
    args = ap.parse_args()
    store = os.path.abspath(args.store or os.environ.get("TRACKHOOKS_URI") or ".trackhooks")
    os.environ["TRACKHOOKS_URI"] = store
    warnings.filterwarnings("ignore")  # keep the tour's output about the tour
    t0 = time.perf_counter()
    data = load_data()
    done = []
    with tempfile.TemporaryDirectory() as workdir:
        for title, module, fn in SECTIONS:
            try:
                __import__(module)
            except ImportError:
                print(f"-- {title}: skipped ({module} is not installed)")
                continue
            t = time.perf_counter()
            try:
                run_id = fn(data, workdir)
            except Exception as exc:  # one framework's trouble must not end the tour
                print(f"-- {title}: failed: {type(exc).__name__}: {exc}")
                if os.environ.get("TRACKHOOKS_DEBUG"):
                    traceback.print_exc()
                continue
            done.append(run_id)
            print(f"-- {title}: run {run_id[:8]} in {time.perf_counter() - t:.1f}s")
    if not done:
        print("no framework integration is installed: pip install -r requirements-dev.txt")
        return 1

    print(f"\n$ trackhooks runs --experiment {EXPERIMENT}")
    cli("runs", "--experiment", EXPERIMENT)
    if len(done) > 1:
        print("\n$ trackhooks compare " + " ".join(r[:8] for r in done))
        cli("compare", *done)
    report = os.path.abspath(args.report)
    print(f"\n$ trackhooks report {' '.join(r[:8] for r in done)} -o {args.report}")
    cli("report", *done, "-o", report)
    print(f"\ntour done in {time.perf_counter() - t0:.0f}s; runs stored in {store}")
    print(f"open {report} in a browser, or browse and compare live with: trackhooks ui")
    return 0


if __name__ == "__main__":
    sys.exit(main())
