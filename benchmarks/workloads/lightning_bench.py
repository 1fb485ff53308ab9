"""Lightning: a tiny Linear model, self.log every step, with no tracking, trackhooks and the peer loggers.

Fit time includes the logger's own finalization (Lightning calls ``logger.finalize`` at the end of
``fit``; the trackhooks callback finishes its run there; W&B needs ``wandb.finish()``), so work a
logger defers to the end is counted.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "lightning"
LABEL_KEYS = ("log_every_n_steps",)
EXTRA_ARGS = [(("--log-every-n-steps",), {"type": int, "default": 1, "help": "Trainer(log_every_n_steps=)"})]

_BASE = ["lightning", "torch"]
CONFIGS: dict[str, list[str]] = {
    "none": _BASE,
    "trackhooks": _BASE + ["trackhooks_lightning"],
    # issue 17's reference: the same callback without system metrics and console capture
    "trackhooks (system metrics and capture off)": _BASE + ["trackhooks_lightning"],
    "CSVLogger": _BASE,
    "TensorBoardLogger": _BASE + ["tensorboard"],
    "MLFlowLogger(sqlite)": _BASE + ["mlflow"],
    "MLFlowLogger(file)": _BASE + ["mlflow"],
    "WandbLogger(offline)": _BASE + ["wandb"],
    "trackhooks+mlflow mirror": _BASE + ["trackhooks_lightning", "trackhooks_mlflow", "mlflow"],
}

# epochs x steps per epoch = 2000 steps at full size
SIZES = {
    "full": {"epochs": 10, "steps_per_epoch": 200, "batch_size": 32, "features": 32},
    "quick": {"epochs": 3, "steps_per_epoch": 100, "batch_size": 32, "features": 32},
    "tiny": {"epochs": 2, "steps_per_epoch": 5, "batch_size": 8, "features": 8},
}


def preload(configs: list[str]) -> None:
    mods = {m for c in configs for m in CONFIGS[c]}
    _bench.import_modules(["torch", "lightning.pytorch"])
    if "tensorboard" in mods:
        _bench.import_modules(["lightning.pytorch.loggers", "torch.utils.tensorboard"])
    for m in ("mlflow", "wandb", "trackhooks_mlflow"):
        if m in mods:
            _bench.import_modules([m])
    if "trackhooks_lightning" in mods:
        _bench.preload_trackhooks("trackhooks_lightning", "TrackhooksCallback")


def _module_class():
    import torch
    import lightning.pytorch as pl

    class TinyLinear(pl.LightningModule):
        def __init__(self, features: int):
            super().__init__()
            self.layer = torch.nn.Linear(features, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return TinyLinear


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    import torch
    import lightning.pytorch as pl

    _bench.seed_all(0)
    n = p["steps_per_epoch"] * p["batch_size"]
    x = torch.randn(n, p["features"])
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=p["batch_size"])
    model = _module_class()(p["features"])

    logger: Any = False
    callbacks: list[Any] = []
    finish = None
    if config == "trackhooks":
        from trackhooks_lightning import TrackhooksCallback

        callbacks.append(TrackhooksCallback(experiment="bench"))
    elif config == "trackhooks (system metrics and capture off)":
        from trackhooks_lightning import TrackhooksCallback

        callbacks.append(TrackhooksCallback(experiment="bench", system_metrics=False, capture_output=False))
    elif config == "trackhooks+mlflow mirror":
        from trackhooks_lightning import TrackhooksCallback

        callbacks.append(TrackhooksCallback(experiment="bench",
                                            mirrors=[f"mlflow+sqlite:///{os.path.join(tmp, 'mlflow.db')}"]))
    elif config == "CSVLogger":
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(save_dir=tmp, name="bench")
    elif config == "TensorBoardLogger":
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(save_dir=tmp, name="bench")
    elif config == "MLFlowLogger(sqlite)":
        from lightning.pytorch.loggers import MLFlowLogger

        logger = MLFlowLogger(experiment_name="bench", tracking_uri=f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
        logger.experiment_id  # creates the database and experiment: setup, not fit  # noqa: B018
    elif config == "MLFlowLogger(file)":
        from lightning.pytorch.loggers import MLFlowLogger

        logger = MLFlowLogger(experiment_name="bench", tracking_uri=f"file:{os.path.join(tmp, 'mlruns')}")
        logger.experiment_id  # noqa: B018
    elif config == "WandbLogger(offline)":
        import wandb
        from lightning.pytorch.loggers import WandbLogger

        logger = WandbLogger(project="bench", save_dir=tmp, offline=True)
        logger.experiment  # starts the offline run: setup, not fit  # noqa: B018
        finish = wandb.finish
    elif config != "none":
        raise ValueError(config)

    trainer = pl.Trainer(max_epochs=p["epochs"], logger=logger, callbacks=callbacks, accelerator="cpu", devices=1,
                         log_every_n_steps=p["log_every_n_steps"], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    clock.setup_done()
    trainer.fit(model, loader)
    if finish is not None:
        finish()
    clock.fit_done()
    return {"steps": int(trainer.global_step)}


if __name__ == "__main__":
    _bench.run_script(__name__)
