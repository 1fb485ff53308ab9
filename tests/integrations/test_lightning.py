"""TrackhooksCallback and autolog on real Lightning (both import trees) with sklearn digits and a small MLP."""

from __future__ import annotations

import csv
import functools
import glob
import importlib.util
import os
import subprocess
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
PL = pytest.importorskip("pytorch_lightning")
if importlib.util.find_spec("sklearn") is None:
    pytest.skip("scikit-learn is not installed", allow_module_level=True)

import trackhooks  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402
from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402
from trackhooks_lightning import TrackhooksCallback  # noqa: E402

TRAIN_BATCHES = 4  # per epoch
BATCH = 32



@functools.cache
def digits() -> tuple:
    # loaded on first use: ddp_spawn workers import this module to unpickle the model, and need no sklearn
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)


def loaders():
    x, y = digits()
    return (DataLoader(TensorDataset(x[:1000], y[:1000]), batch_size=BATCH),
            DataLoader(TensorDataset(x[1000:1300], y[1000:1300]), batch_size=100))


class _Digits:
    """The module body, mixed into a LightningModule of either tree."""

    def __init__(self, hidden: int = 16, lr: float = 0.05, fail_at: int | None = None,
                 scores: tuple = (), interrupt: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))

    def training_step(self, batch, batch_idx):
        if self.hparams.fail_at is not None and self.global_step == self.hparams.fail_at:
            raise (KeyboardInterrupt() if self.hparams.interrupt else FAILURE)
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("hidden_from_loggers", loss, logger=False)
        return loss

    def on_train_epoch_end(self):
        self.log("epoch_marker", float(self.current_epoch) + 0.5)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())
        self.log("val_batch_loss", torch.nn.functional.cross_entropy(out, y), on_step=True, on_epoch=False)
        if self.hparams.scores:
            self.log("score", float(self.hparams.scores[min(self.current_epoch, len(self.hparams.scores) - 1)]))
            self.log("flat", 1.0)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)}


FAILURE = ValueError("boom from training_step")


class DigitsMLP(_Digits, L.LightningModule):
    pass


@functools.cache
def classic_module_class() -> type:
    """The same module on the pytorch_lightning tree (built lazily: spawned workers never need it)."""
    return type("DigitsMLPClassic", (_Digits, PL.LightningModule), {})


def trainer(*, tree=L, callbacks=(), **kw):
    opts = dict(max_epochs=2, limit_train_batches=TRAIN_BATCHES, limit_val_batches=1, logger=False,
                enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                log_every_n_steps=1, num_sanity_val_steps=1)
    opts.update(kw)
    return tree.Trainer(callbacks=list(callbacks), **opts)


def only_run(store_path):
    runs = trackhooks.open_store(store_path).runs()
    assert len(runs) == 1, runs
    return runs[0]


def test_fit_records_params_metrics_and_data(store_path, tmp_path):
    cb = TrackhooksCallback(experiment="digits", name="mlp")
    trainer(callbacks=[cb], default_root_dir=tmp_path).fit(DigitsMLP(), *loaders())
    rec = only_run(store_path)
    assert cb.run is None and cb.run_id == rec.id
    assert (rec.experiment, rec.name, rec.status) == ("digits", "mlp", "finished")
    assert rec.tags["framework"] == "lightning"
    p = rec.params
    assert (p["hidden"], p["lr"]) == (16, 0.05)
    assert p["trainer.max_epochs"] == 2 and p["trainer.limit_train_batches"] == TRAIN_BATCHES
    assert p["trainer.precision"] == "32-true" and p["trainer.strategy"] == "SingleDeviceStrategy"
    assert (p["optimizer.class"], p["optimizer.lr"], p["optimizer.momentum"]) == ("SGD", 0.05, 0.9)
    assert (p["lr_scheduler.class"], p["lr_scheduler.interval"]) == ("StepLR", "epoch")
    assert p["model.class"] == "DigitsMLP" and p["model.params_total"] == 64 * 16 + 16 + 16 * 10 + 10
    assert p["model.params_trainable"] == p["model.params_total"] and p["batch_size"] == BATCH

    n = 2 * TRAIN_BATCHES
    step = rec.metric("train_loss_step")
    assert step.steps == list(range(n))
    assert step.epochs == [0] * TRAIN_BATCHES + [1] * TRAIN_BATCHES
    lr = rec.metric("lr")  # the rate each step used; StepLR halves it after epoch 0
    assert lr.steps == list(range(n)) and lr.values == [0.05] * TRAIN_BATCHES + [0.025] * TRAIN_BATCHES
    agg = rec.metric("train_loss_epoch")  # at the last step of each epoch, like Lightning's loggers
    assert (agg.steps, agg.epochs) == ([TRAIN_BATCHES - 1, n - 1], [0, 1])
    assert rec.metric("epoch_marker").values == [0.5, 1.5]  # logged in the module's on_train_epoch_end
    assert not [k for k in rec.metric_keys() if k.startswith("hidden_from_loggers")]
    val = rec.metric("val_loss")  # one point per epoch: the sanity check is not an epoch
    assert (val.steps, val.epochs) == ([TRAIN_BATCHES, n], [0, 1])
    batch_val = rec.metric("val_batch_loss")  # on_step inside validation_step: the running count of val batches
    assert (batch_val.steps, batch_val.epochs) == ([0, 1], [0, 1])
    assert len(rec.metric("epoch_duration_s")) == 2
    assert all(v > 0 for v in rec.metric("samples_per_s").values)

    data = {(d.context, d.name): d for d in rec.datasets()}
    assert data[("train", "TensorDataset.x")].n_rows == 1000
    assert data[("train", "TensorDataset.y")].n_rows == 1000
    assert data[("validation", "TensorDataset.x")].n_rows == 300


def test_pytorch_lightning_tree_with_csvlogger_beside(store_path, tmp_path):
    csv_logger = PL.loggers.CSVLogger(str(tmp_path), name="csv")
    cb = TrackhooksCallback()
    assert isinstance(cb, PL.Callback) and isinstance(cb, L.Callback)
    trainer(tree=PL, callbacks=[cb], logger=csv_logger, default_root_dir=tmp_path).fit(classic_module_class()(), *loaders())
    rec = only_run(store_path)
    assert rec.status == "finished" and rec.tags["lightning.package"] == "pytorch_lightning"
    with open(os.path.join(csv_logger.log_dir, "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train_loss_step")]
    ours = rec.metric("train_loss_step")
    assert ours.steps == [int(r["step"]) for r in rows]
    assert ours.values == pytest.approx([float(r["train_loss_step"]) for r in rows], rel=1e-6)


def test_checkpoints_topk_best_deletions_and_early_stopping(store_path, tmp_path):
    # score by epoch: 0.5, 0.3, 0.4 (mode min, top 2): epoch 2 pushes epoch 0 out; epoch 1 stays best.
    # "flat" never improves, so EarlyStopping(patience=2) stops after epoch 2.
    top = ModelCheckpoint(dirpath=tmp_path / "top", monitor="score", mode="min", save_top_k=2,
                          filename="{epoch}-{step}")
    latest = ModelCheckpoint(dirpath=tmp_path / "latest", filename="{epoch}-{step}")  # no monitor: keeps the last
    es = EarlyStopping(monitor="flat", mode="min", patience=2)
    model = DigitsMLP(scores=(0.5, 0.3, 0.4, 0.1, 0.1))
    trainer(callbacks=[TrackhooksCallback(), top, latest, es], max_epochs=6, enable_checkpointing=True,
            default_root_dir=tmp_path).fit(model, *loaders())
    rec = only_run(store_path)
    cks = rec.checkpoints()
    assert es.stopped_epoch == 2

    tops = [c for c in cks if c.monitor == "score"]
    assert [(c.epoch, c.step) for c in tops] == [(e, (e + 1) * TRAIN_BATCHES) for e in range(3)]
    assert [c.deleted for c in tops] == [True, False, False]
    assert [c.best for c in tops] == [False, True, False]
    assert os.path.samefile([c.path for c in tops if c.best][0], top.best_model_path)
    assert [c.metrics["score"] for c in tops] == pytest.approx([0.5, 0.3, 0.4])
    assert all(c.mode == "min" and c.sha256 and c.size > 0 for c in tops)
    assert not os.path.exists(tops[0].path)

    lasts = [c for c in cks if c.monitor is None]
    assert [c.deleted for c in lasts] == [True, True, False]
    assert sum(c.best for c in lasts) == 1 and os.path.samefile(lasts[-1].path, latest.best_model_path)
    on_disk = {os.path.realpath(p) for p in glob.glob(str(tmp_path / "*" / "*.ckpt"))}
    assert on_disk == {os.path.realpath(c.path) for c in cks if not c.deleted}

    assert rec.params["early_stopping.monitor"] == "flat" and rec.params["early_stopping.patience"] == 2
    assert rec.metric("early_stopping.stopped_epoch").values == [2.0]
    assert rec.metric("early_stopping.wait_count").values == [2.0]
    assert rec.metric("early_stopping.best_score").values == [1.0]
    assert rec.tags["early_stopping.stopped"] == "true"


def test_validate_and_test_after_fit_go_into_the_same_run(store_path, tmp_path):
    cb = TrackhooksCallback()
    tr = trainer(callbacks=[cb], default_root_dir=tmp_path)
    model = DigitsMLP()
    train, val = loaders()
    tr.fit(model, train, val)
    tr.validate(model, val)
    tr.test(model, val)
    rec = only_run(store_path)
    assert rec.status == "finished"
    end = 2 * TRAIN_BATCHES
    assert rec.metric("val_loss").steps == [TRAIN_BATCHES, end, end]
    assert (rec.metric("test_acc").steps, rec.metric("test_acc").epochs) == ([end], [2])
    assert {d.context for d in rec.datasets()} == {"train", "validation", "test"}


def test_user_exception_passes_unchanged_and_marks_failed(store_path, tmp_path):
    with pytest.raises(ValueError) as info:
        trainer(callbacks=[TrackhooksCallback()], default_root_dir=tmp_path).fit(DigitsMLP(fail_at=2), *loaders())
    assert info.value is FAILURE
    rec = only_run(store_path)
    assert rec.status == "failed"
    assert rec.metric("train_loss_step").steps == [0, 1]


def test_keyboard_interrupt_marks_killed(store_path, tmp_path):
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into a graceful shutdown and exit(1)
        trainer(callbacks=[TrackhooksCallback()], default_root_dir=tmp_path).fit(
            DigitsMLP(fail_at=1, interrupt=True), *loaders())
    assert only_run(store_path).status == "killed"


def test_resume_from_checkpoint_continues_the_run(store_path, tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    trainer(callbacks=[TrackhooksCallback(), ckpt], max_epochs=1, enable_checkpointing=True,
            default_root_dir=tmp_path).fit(DigitsMLP(), *loaders())
    first = only_run(store_path)
    assert first.status == "finished"
    state = torch.load(ckpt.last_model_path, weights_only=False)["callbacks"]["TrackhooksCallback"]
    assert state == {"run_id": first.id}

    trainer(callbacks=[TrackhooksCallback(), ModelCheckpoint(dirpath=tmp_path / "ck2")], max_epochs=2,
            enable_checkpointing=True, default_root_dir=tmp_path).fit(
        DigitsMLP(), *loaders(), ckpt_path=ckpt.last_model_path)
    rec = only_run(store_path)
    assert rec.id == first.id and rec.status == "finished"
    assert rec.metric("train_loss_step").steps == list(range(2 * TRAIN_BATCHES))
    assert rec.metric("train_loss_epoch").epochs == [0, 1]


def test_run_argument_is_left_open_and_gets_tensors(store_path, tmp_path, monkeypatch):
    import trackhooks_lightning.callback as callback_module

    with trackhooks.start_run(experiment="mine") as run:
        seen = []
        original = callback_module.log_step_metrics  # the per-step path (trackhooks.plugin)

        def spy(into, values, step, epoch=None):
            assert into is run
            seen.extend(type(v) for k, v in values.items() if k == "train_loss_step")
            original(into, values, step, epoch)

        monkeypatch.setattr(callback_module, "log_step_metrics", spy)
        trainer(callbacks=[TrackhooksCallback(run)], max_epochs=1, default_root_dir=tmp_path).fit(
            DigitsMLP(), *loaders())
        assert run.status == "running"
        run.log_metric("after_fit", 1.0)
    assert seen and all(t is torch.Tensor for t in seen)  # no .item() on the training thread
    rec = only_run(store_path)
    assert rec.status == "finished" and rec.experiment == "mine" and rec.tags["framework"] == "lightning"
    assert len(rec.metric("train_loss_step")) == TRAIN_BATCHES and "after_fit" in rec.metric_keys()


def test_log_every_n_steps_follows_trainer_unless_overridden(store_path, tmp_path):
    trainer(callbacks=[TrackhooksCallback(name="trainer")], log_every_n_steps=3,
            default_root_dir=tmp_path).fit(DigitsMLP(), *loaders())
    trainer(callbacks=[TrackhooksCallback(name="own", log_every_n_steps=1)], log_every_n_steps=3,
            default_root_dir=tmp_path).fit(DigitsMLP(), *loaders())
    runs = {r.name: r for r in trackhooks.open_store(store_path).runs()}
    assert runs["trainer"].metric("train_loss_step").steps == [2, 5]
    assert runs["trainer"].metric("lr").steps == [2, 5]
    assert runs["own"].metric("train_loss_step").steps == list(range(2 * TRAIN_BATCHES))
    assert runs["trainer"].metric("train_loss_epoch").epochs == [0, 1]  # epoch values always


class _RateProbe(L.LightningModule):
    """Logs every step and keeps the rate each optimizer step used (read inside training_step)."""

    def __init__(self, schedule: str):
        super().__init__()
        self.schedule = schedule
        self.layer = torch.nn.Linear(64, 10)
        self.used: list[float] = []

    def training_step(self, batch, batch_idx):
        self.used.append(self.optimizers().param_groups[0]["lr"])
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.layer(x), y)
        self.log("loss", loss)
        self.log("flat", 1.0)  # never improves: the plateau scheduler halves the rate every step
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        if self.schedule == "step":
            sched = {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (k + 1)), "interval": "step"}
        elif self.schedule == "plateau":
            sched = {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5),
                     "interval": "step", "monitor": "flat"}
        else:
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": sched}


@pytest.mark.parametrize("schedule", ["step", "plateau", "epoch"])
@pytest.mark.parametrize("every", [1, 3])
def test_recorded_rate_is_the_rate_each_step_used(store_path, tmp_path, schedule, every):
    # the step's rate is read when the step before it ends (one Lightning hook per step), or at its
    # start when a plateau scheduler steps per step; either way it is the rate the update used
    cb = TrackhooksCallback(name=f"{schedule}-{every}")
    module = _RateProbe(schedule)
    trainer(callbacks=[cb], default_root_dir=tmp_path, log_every_n_steps=every, limit_val_batches=0,
            max_epochs=3).fit(module, loaders()[0])
    rec = only_run(store_path).metric("lr")
    due = [s for s in range(3 * TRAIN_BATCHES) if (s + 1) % every == 0]
    assert rec.steps == due
    assert rec.values == [module.used[s] for s in due]
    assert len(set(module.used)) > 2  # the schedule did change the rate
    assert only_run(store_path).metric("loss").steps == due
    # Lightning skips the hooks this fit does not need: the plateau fit keeps the batch start
    assert callable(cb.on_train_batch_start) is (schedule == "plateau")
    assert cb.on_before_optimizer_step is None


def test_gradient_histograms_keep_the_optimizer_hook(store_path, tmp_path):
    cb = TrackhooksCallback(name="grads", log_gradient_histograms=2)
    trainer(callbacks=[cb], default_root_dir=tmp_path, limit_val_batches=0, max_epochs=1).fit(DigitsMLP(), loaders()[0])
    assert callable(cb.on_before_optimizer_step) and cb.on_train_batch_start is None
    hist = [k for k in only_run(store_path).media_keys() if k.startswith("gradients/")]
    assert hist and [m.step for m in only_run(store_path).media(hist[0])] == [0, 2]


def test_autolog_injects_callback_into_both_trees_and_disable_restores(store_path, tmp_path):
    import trackhooks_lightning

    assert trackhooks.autolog("lightning", experiment="auto") == ["lightning"]
    try:
        explicit = TrackhooksCallback()
        assert [c for c in trainer(callbacks=[explicit]).callbacks if isinstance(c, TrackhooksCallback)] == [explicit]
        assert any(isinstance(c, TrackhooksCallback) for c in trainer(tree=PL).callbacks)
        trainer(max_epochs=1, default_root_dir=tmp_path).fit(DigitsMLP(), *loaders())
    finally:
        trackhooks_lightning.autolog(disable=True)
    assert not any(isinstance(c, TrackhooksCallback) for c in trainer().callbacks)
    assert not any(isinstance(c, TrackhooksCallback) for c in trainer(tree=PL).callbacks)
    rec = only_run(store_path)
    assert rec.experiment == "auto" and rec.status == "finished" and "train_loss_step" in rec.metric_keys()
    with pytest.raises(TypeError):
        trackhooks_lightning.autolog(no_such_option=1)
    with pytest.warns(RuntimeWarning, match="ignores options it does not know: keras_only"):
        trackhooks.autolog("lightning", keras_only=1)  # autolog() hands every plugin the same options
    assert any(isinstance(c, TrackhooksCallback) for c in trainer().callbacks)
    trackhooks.autolog("lightning", disable=True)
    assert not any(isinstance(c, TrackhooksCallback) for c in trainer().callbacks)


class _Opaque(Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        x, y = digits()
        return x[i], y[i]


def test_dataset_without_arrays_recorded_by_name_length_type(store_path, tmp_path):
    trainer(callbacks=[TrackhooksCallback()], max_epochs=1, limit_train_batches=1,
            default_root_dir=tmp_path).fit(DigitsMLP(), DataLoader(_Opaque(), batch_size=BATCH))
    rec = only_run(store_path)
    assert rec.params["data.train.length"] == 64 and rec.params["data.train.name"] == "_Opaque"
    assert rec.params["data.train.type"].endswith("._Opaque")


def test_own_failures_become_one_warning_and_training_goes_on(store_path, tmp_path):
    run = trackhooks.start_run()
    run.finish()  # every record the callback tries now fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = trainer(callbacks=[TrackhooksCallback(run)], max_epochs=1, default_root_dir=tmp_path)
        tr.fit(DigitsMLP(), *loaders())
    assert tr.global_step == TRAIN_BATCHES
    ours = [w for w in caught if "trackhooks" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in ours]


def test_ddp_spawn_records_one_run_from_rank_zero(store_path, tmp_path):
    cb = TrackhooksCallback(experiment="ddp")
    trainer(callbacks=[cb], strategy="ddp_spawn", accelerator="cpu", devices=2, max_epochs=1,
            limit_train_batches=2, num_sanity_val_steps=0, default_root_dir=tmp_path).fit(DigitsMLP(), *loaders())
    rec = only_run(store_path)
    assert rec.experiment == "ddp" and rec.status == "finished"
    assert rec.params["trainer.strategy"] == "DDPStrategy" and rec.params["trainer.num_devices"] == 2
    assert rec.metric("train_loss_step").steps == [0, 1]
    assert len(rec.metric("val_loss")) == 1


ONE_TREE_THEN_THE_OTHER = """
import sys
import lightning.pytorch as L
from trackhooks_lightning import TrackhooksCallback
early = TrackhooksCallback()
assert "pytorch_lightning" not in sys.modules  # the tree the program uses, not the other one
assert isinstance(early, L.Callback)
import pytorch_lightning as PL
late = TrackhooksCallback()  # the tree imported since joins the bases, for every instance
assert isinstance(late, PL.Callback) and isinstance(late, L.Callback) and isinstance(early, PL.Callback)
assert TrackhooksCallback.__name__ == "TrackhooksCallback" and late.state_key.startswith("TrackhooksCallback")
"""


def test_the_callback_imports_only_the_tree_in_use_and_adopts_the_other():
    subprocess.run([sys.executable, "-c", ONE_TREE_THEN_THE_OTHER], check=True, timeout=120)
    code = ("import sys, pytorch_lightning as PL; from trackhooks_lightning import TrackhooksCallback; "
            "assert 'lightning.pytorch' not in sys.modules and isinstance(TrackhooksCallback(), PL.Callback)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    code = ("import sys; from trackhooks_lightning import TrackhooksCallback; import lightning.pytorch as L; "
            "assert isinstance(TrackhooksCallback(), L.Callback)")  # neither imported yet: lightning first
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_plugin_knows_the_callbacks_options():
    import inspect

    from trackhooks_lightning import plugin

    own = set(inspect.signature(TrackhooksCallback.__init__).parameters) - {"self", "start_run_kwargs"}
    assert own == set(plugin.OWN_OPTIONS)  # the light plugin lists them without importing the callback


def test_plugin_entry_point_does_not_import_lightning():
    code = ("import sys, trackhooks_lightning.plugin; "
            "assert not [m for m in sys.modules if m.startswith(('lightning', 'pytorch_lightning', 'torch'))]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="trackhooks") if ep.name == "lightning"] == ["trackhooks_lightning.plugin"]


class TwoGroups(DigitsMLP):
    def configure_optimizers(self):
        first, second = self.net[0], self.net[2]
        return torch.optim.Adam([{"params": first.parameters(), "lr": 0.01},
                                 {"params": second.parameters(), "lr": 0.002}])


class DigitsData(L.LightningDataModule):
    def __init__(self, batch_size: int = BATCH):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        return loaders()[0]


def test_param_groups_accumulation_and_datamodule_hparams(store_path, tmp_path):
    trainer(callbacks=[TrackhooksCallback()], accumulate_grad_batches=2, limit_val_batches=0,
            default_root_dir=tmp_path).fit(TwoGroups(), datamodule=DigitsData())
    rec = only_run(store_path)
    p = rec.params
    assert (p["optimizer.class"], p["optimizer.group0.lr"], p["optimizer.group1.lr"]) == ("Adam", 0.01, 0.002)
    assert p["datamodule.batch_size"] == BATCH and p["trainer.accumulate_grad_batches"] == 2
    steps = list(range(TRAIN_BATCHES))  # 2 epochs x 2 optimizer steps: accumulating batches are skipped
    assert rec.metric("train_loss_step").steps == steps
    assert (rec.metric("lr.0").steps, rec.metric("lr.0").values) == (steps, [0.01] * len(steps))
    assert rec.metric("lr.1").values == [0.002] * len(steps)


class TwoStepsPerBatch(DigitsMLP):
    """Manual optimization with two optimizers: two optimizer steps per batch."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.seen_steps = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        for opt in self.optimizers():
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        self.seen_steps.append(self.trainer.global_step)

    def configure_optimizers(self):
        return [torch.optim.SGD(self.net[0].parameters(), lr=0.05), torch.optim.SGD(self.net[2].parameters(), lr=0.05)]


@pytest.mark.parametrize("module_class", [DigitsMLP, TwoStepsPerBatch])
@pytest.mark.parametrize("counter", ["tracker", "global_step"])
def test_steps_are_lightnings_global_step(store_path, tmp_path, monkeypatch, module_class, counter):
    # the per-step hook reads the loop's progress tracker instead of trainer.global_step (four
    # properties per read); where the tracker is not found it falls back to global_step
    import trackhooks_lightning.callback as callback

    found = []
    real = callback._step_counter

    def step_counter(trainer):
        found.append(real(trainer))
        return found[-1] if counter == "tracker" else None

    monkeypatch.setattr(callback, "_step_counter", step_counter)
    module = module_class()
    trainer(callbacks=[TrackhooksCallback()], limit_val_batches=0, default_root_dir=tmp_path).fit(
        module, train_dataloaders=loaders()[0])
    assert found and all(c is not None for c in found)  # this Lightning keeps it where we look
    key = "train_loss_step" if module_class is DigitsMLP else "train_loss"
    steps = only_run(store_path).metric(key).steps
    if module_class is DigitsMLP:
        assert steps == list(range(2 * TRAIN_BATCHES))
    else:  # each batch logs at the step it began with: two optimizer steps apart
        assert steps == [s - 2 for s in module.seen_steps] == list(range(0, 4 * TRAIN_BATCHES, 2))


class PrintingMLP(DigitsMLP):
    def training_step(self, batch, batch_idx):
        print(f"rank {self.global_rank} step {batch_idx}", flush=True)
        return super().training_step(batch, batch_idx)


def test_ddp_spawn_system_metrics_and_console_of_rank_zero(store_path, tmp_path):
    import socket

    cb = TrackhooksCallback(experiment="ddp", system_metrics=0.2, capture_output=True)
    trainer(callbacks=[cb], strategy="ddp_spawn", accelerator="cpu", devices=2, max_epochs=1,
            limit_train_batches=2, num_sanity_val_steps=0, default_root_dir=tmp_path).fit(PrintingMLP(), *loaders())
    rec = only_run(store_path)
    facts = rec.system["system_metrics"]
    assert facts["interval_s"] == 0.2 and facts["node"] == socket.gethostname()
    cpu = rec.metric("system/cpu_percent")
    assert len(cpu) >= 2 and cpu.steps == list(range(len(cpu)))
    assert rec.system["pid"] != os.getpid()  # rank 0's worker process, not the launcher
    lines = [ln for ln in rec.console().decode().splitlines() if ln.startswith("rank ")]
    assert lines == ["rank 0 step 0", "rank 0 step 1"]  # rank 0's output only


@pytest.mark.parametrize("tree", [L, PL], ids=["lightning", "pytorch_lightning"])
def test_subclass_hooks_the_callback_skips_are_still_called(store_path, tmp_path, tree):
    # the callback leaves the per-step hooks it does not use to Lightning as None (skipped); a subclass
    # that defines one gets it called on every step, and the base's records are unchanged
    calls = []

    class WithGradHook(TrackhooksCallback):
        def on_after_backward(self, trainer, pl_module):
            calls.append(trainer.global_step)

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            calls.append("opt")

    module = DigitsMLP() if tree is L else classic_module_class()()
    trainer(tree=tree, callbacks=[WithGradHook(experiment="hooks")], default_root_dir=tmp_path,
            max_epochs=1, limit_val_batches=0).fit(module, loaders()[0])
    assert calls == [s for step in range(TRAIN_BATCHES) for s in (step, "opt")]
    assert only_run(store_path).metric("train_loss_step").steps == list(range(TRAIN_BATCHES))


SETTLED = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import torch
import lightning.pytorch as L
from torch.utils.data import DataLoader, TensorDataset
from trackhooks_lightning import TrackhooksCallback


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


ours = TrackhooksCallback(name="settled")
seen = []


class Probe(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            seen.append(ours._run._sysinfo_pending)


data = DataLoader(TensorDataset(torch.randn(16, 4), torch.randn(16, 1)), batch_size=8)
L.Trainer(max_epochs=1, callbacks=[ours, Probe()], logger=False, enable_checkpointing=False, enable_progress_bar=False,
          enable_model_summary=False, accelerator="cpu", devices=1).fit(Tiny(), data)
print("PENDING", seen)
"""


def test_the_writer_start_up_is_done_before_the_first_batch(tmp_path):
    # settle_run at on_train_start: the environment is described before the loop, not beside it
    # (a writer that would otherwise sleep through the whole fit: interval 60 s)
    env = {**os.environ, "TRACKHOOKS_URI": str(tmp_path / "store"), "TRACKHOOKS_FLUSH_INTERVAL": "60"}
    out = subprocess.run([sys.executable, "-c", SETTLED], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "PENDING [False]" in out.stdout
    assert trackhooks.open_store(str(tmp_path / "store")).runs()[0].system.get("python")
