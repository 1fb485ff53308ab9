"""Per-step cost of the Lightning callback, hook by hook, timed inside a real fit.

The `lightning` workload's model (a tiny `nn.Linear(32, 1)`, `self.log` every step,
`log_every_n_steps=1`), one fit in this process, with a `perf_counter` wrapper around the
callback's per-step hook (`on_train_batch_end`: the only one Lightning calls in this fit, see
docs/integrations/lightning.md "Cost") and around its pieces (the batch length, reading the
step values, handing them to the run). Prints the mean microseconds per call of each, and the
wrapper's own cost (`wrapper(nop)`), which every figure includes once per level of nesting.

    .venv/bin/python benchmarks/lightning_hooks.py [--steps 1000]

See benchmarks/README.md, "Fourth pass" and "Sixth pass".
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1000, help="training steps (batches of 32), default 1000")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRACKHOOKS_URI", os.path.join(tempfile.mkdtemp(), "store"))
    os.environ.setdefault("TRACKHOOKS_GIT_DIFF", "0")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads"))
    import logging

    import lightning.pytorch as pl
    import torch

    import _bench
    import lightning_bench
    import trackhooks_lightning.callback as cb_module
    from trackhooks_lightning import TrackhooksCallback

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    acc: dict[str, list] = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                e = acc.setdefault(name, [0, 0.0])
                e[0] += 1
                e[1] += time.perf_counter() - t
        return wrapper

    cb_module._batch_len = timed("  batch length", cb_module._batch_len)
    cb_module._StepValues.__call__ = timed("  step values", cb_module._StepValues.__call__)
    cb_module.log_step_metrics = timed("  log_step_metrics", cb_module.log_step_metrics)
    cls = cb_module._TrackhooksCallback  # the base: a hook wrapped on a subclass would count as overridden
    for hook in ("on_train_batch_start", "on_train_batch_end", "on_before_optimizer_step"):
        setattr(cls, hook, timed(hook, getattr(cls, hook)))  # a hook Lightning does not call shows no row

    _bench.seed_all(0)
    per_epoch = 200
    epochs = max(1, args.steps // per_epoch)
    batches = min(per_epoch, args.steps)
    x = torch.randn(batches * 32, 32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=32)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, callbacks=[TrackhooksCallback(experiment="probe")],
                         accelerator="cpu", devices=1, log_every_n_steps=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(lightning_bench._module_class()(32), loader)

    def nop() -> None:
        pass

    probe = timed("wrapper(nop)", nop)
    for _ in range(1000):
        probe()
    order = ["on_train_batch_start", "on_train_batch_end", "  batch length", "  step values", "  log_step_metrics",
             "on_before_optimizer_step", "wrapper(nop)"]
    # what Lightning's dispatch of one hook costs per callable hook of one callback (the floor of a
    # per-step hook, before its own work): _call_callback_hooks with no callback and with an empty one
    import timeit

    from lightning.pytorch.trainer import call

    class Empty(pl.Callback):
        def on_train_batch_start(self, *a: object) -> None:
            pass

    batch = next(iter(loader))
    saved = trainer.callbacks
    dispatch = {}
    for label, cbs in (("dispatch, no callable hook", []), ("dispatch, one empty hook", [Empty()])):
        trainer.callbacks = cbs
        best = min(timeit.repeat(lambda: call._call_callback_hooks(trainer, "on_train_batch_start", batch, 0),
                                 number=2000, repeat=9))
        dispatch[label] = best / 2000 * 1e6
    trainer.callbacks = saved
    print(f"steps: {int(trainer.global_step)}")
    print("| hook or piece | calls | µs per call |")
    print("|---|---|---|")
    for name in order:
        if name in acc:
            n, total = acc[name]
            print(f"| {name.strip()} | {n} | {total / n * 1e6:.2f} |")
    for label, us in dispatch.items():
        print(f"| {label} (min of 9 x 2000) | 18000 | {us:.2f} |")


if __name__ == "__main__":
    main()
