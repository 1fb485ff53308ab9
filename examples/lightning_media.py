"""Rich records from PyTorch Lightning: sample predictions as images every epoch (logged by user code
through ``trackhooks.active_run()`` into the run the callback opened), weight histograms every epoch,
gradient histograms every 10 optimizer steps, and a confusion matrix of the validation set.

Look at them with ``trackhooks show RUN``, ``trackhooks report -o report.html`` or ``trackhooks ui``.
"""

import lightning.pytorch as pl
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import trackhooks
from trackhooks_lightning import TrackhooksCallback


class DigitsMLP(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        self._val = []

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._val.append((y, self(x).argmax(1)))

    def on_validation_epoch_end(self):
        run = trackhooks.active_run()  # the run TrackhooksCallback opened for this fit
        y, pred = (torch.cat(t) for t in zip(*self._val))
        self._val.clear()
        if run is None or self.trainer.sanity_checking:
            return
        # tensors are handed over as they are: copied on their device, no host sync here
        run.log_confusion_matrix("val_confusion_matrix", y, pred, labels=list(range(10)), epoch=self.current_epoch)
        x, _ = next(iter(self.trainer.val_dataloaders))
        sample = x[:8].to(self.device)
        strip = sample.reshape(8, 8, 8).permute(1, 0, 2).reshape(1, 8, 64)  # 8 digits side by side, CxHxW
        run.log_image("val_samples", strip, epoch=self.current_epoch,
                      caption="predicted " + " ".join(map(str, self(sample).argmax(1).tolist())))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
train = DataLoader(TensorDataset(x[:1400], y[:1400]), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(x[1400:], y[1400:]), batch_size=200)

callback = TrackhooksCallback(experiment="lightning-media", log_histograms=1, log_gradient_histograms=10)
trainer = pl.Trainer(max_epochs=4, callbacks=[callback], logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)
trainer.fit(DigitsMLP(), train, val)

rec = trackhooks.open_store().run(callback.run_id)
for key in rec.media_keys():
    records = rec.media(key)
    print(f"{key:32} {records[0].kind:17} {len(records)} records")
