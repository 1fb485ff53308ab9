"""Log a toy run into the embedded local store and print where it is."""

import math
import random

import trackhooks

with trackhooks.start_run(experiment="quickstart", params={"model": {"kind": "toy", "width": 16}, "lr": 0.1}) as run:
    for epoch in range(5):
        for i in range(20):
            step = epoch * 20 + i
            run.log_metrics({"train_loss": math.exp(-step / 40) + random.random() * 0.05}, step=step, epoch=epoch)
        run.log_metric("val_loss", math.exp(-epoch / 2), step=step, epoch=epoch)

rec = trackhooks.open_store(run.store).run(run.id)
print(f"run {rec.id[:8]} ({rec.name}) {rec.status}: {len(rec.metric('train_loss'))} points, "
      f"final val_loss {rec.metric('val_loss').values[-1]:.3f}")
print(f"stored in {run.store}")
