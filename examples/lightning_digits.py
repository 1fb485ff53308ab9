"""Train a small MLP on sklearn's digits with PyTorch Lightning and record it as a trackhooks run.

1. an explicit TrackhooksCallback next to ModelCheckpoint and EarlyStopping, then test() with the same
   trainer: test metrics land in the run of that fit;
2. resume: a new Trainer continues the same run from the last checkpoint;
3. autolog(): every Trainer created afterwards records without touching its construction.

Runs go to $TRACKHOOKS_URI or ./.trackhooks; look at them with `trackhooks runs` / `trackhooks show RUN`.
Works the same with `import pytorch_lightning as pl`.
"""

import tempfile

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import trackhooks
from trackhooks_lightning import TrackhooksCallback


class DigitsMLP(pl.LightningModule):
    def __init__(self, hidden: int = 64, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()  # -> params "hidden", "lr"
        self.net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)  # train_loss_step, train_loss_epoch
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("acc", (self.net(x).argmax(1) == y).float().mean())  # recorded as test_acc

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)}


x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
train = DataLoader(TensorDataset(x[:1200], y[:1200]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[1200:1500], y[1200:1500]), batch_size=100)
test = DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=100)
quiet = dict(enable_progress_bar=False, enable_model_summary=False, logger=False, log_every_n_steps=10)

# 1. explicit callback: one run per fit; test() afterwards adds test_acc to it
ckpt_dir = tempfile.mkdtemp(prefix="lightning-ckpt-")
callback = TrackhooksCallback(experiment="lightning-digits", name="mlp")
checkpoint = ModelCheckpoint(dirpath=ckpt_dir, monitor="val_loss", save_top_k=2, save_last=True)
trainer = pl.Trainer(max_epochs=4, callbacks=[callback, checkpoint, EarlyStopping("val_loss", patience=3)], **quiet)
model = DigitsMLP()
trainer.fit(model, train, val)
trainer.test(model, test, verbose=False)

store = trackhooks.open_store()
rec = store.run(callback.run_id)
best = [c for c in rec.checkpoints() if c.best]
print(f"run {rec.id[:8]} {rec.status}: {len(rec.metric('train_loss_step'))} step points, "
      f"val_loss {rec.metric('val_loss').last:.4f}, test_acc {rec.metric('test_acc').last:.3f}")
print(f"  checkpoints: {len(rec.checkpoints())} recorded, {sum(c.deleted for c in rec.checkpoints())} pruned, "
      f"best {best[0].path}")
print(f"  data: {', '.join(f'{d.context}:{d.name}({d.n_rows})' for d in rec.datasets())}")

# 2. resume: the run id travels in the checkpoint; a fresh callback continues the same run
trainer = pl.Trainer(max_epochs=6, callbacks=[TrackhooksCallback(), ModelCheckpoint(dirpath=ckpt_dir)], **quiet)
trainer.fit(DigitsMLP(), train, val, ckpt_path=checkpoint.last_model_path)
rec = store.run(rec.id)
print(f"resumed run {rec.id[:8]} {rec.status}: steps up to {rec.metric('train_loss_step').steps[-1]}")

# 3. autolog: no callback in sight
trackhooks.autolog("lightning", experiment="lightning-digits")
pl.Trainer(max_epochs=2, **quiet).fit(DigitsMLP(hidden=32), train, val)
trackhooks.autolog("lightning", disable=True)
print(f"autolog run: {store.runs(experiment='lightning-digits')[-1].name}")
