"""Per-step cost of the Lightning callback against no per-step tracking, stretch against stretch in one fit.

On a machine whose speed drifts by ±15 % between processes (and within one), a 2 000-step fit
cannot resolve a few microseconds per step: the whole-fit medians of ``run.py`` move by more
than the effect. This script measures the per-step cost where drift cancels: one fit of
``--epochs`` epochs (after a warm-up epoch) of ``--steps`` batches each (the ``lightning``
workload's model and data, ``self.log`` every step, ``log_every_n_steps=1``), in which the
callback's per-step hook is switched on and off every ``--chunk`` steps, in the order off, on, on,
off, off, on, ... (each pair of neighbours has one of each, and a linear drift cancels over two
pairs); off, the hook is hidden from Lightning, as for a callback without it. The run, its start
and finish, its epoch-end records and the writer thread are there all along; only the per-step
path is switched, and a stretch over an epoch's end is not measured.

Printed: the median over neighbouring on/off pairs of (on − off) per step, a 10 % trimmed mean of
the same, the median step of the off stretches, and the CPU time of the writer thread during on
and off stretches (``/proc/self/task/<tid>/schedstat``, ns): the writer drains on its own clock
(every second), so some of its work on the points of an on stretch may fall into an off one; with
two cores it runs beside the training thread and only costs it where they meet on the GIL.

    .venv/bin/python benchmarks/lightning_step_pairs.py [--epochs 20] [--steps 200] [--chunk 10] [--quiet]
    .venv/bin/python benchmarks/lightning_step_pairs.py --callback empty
    .venv/bin/python benchmarks/lightning_step_pairs.py --fits 40 [--steps 200]

``--quiet``: system metrics and console capture off. ``--callback empty``: instead of trackhooks, a
``Callback`` whose ``on_train_batch_end`` does nothing (Lightning's dispatch of one hook, the
floor of any callback with a per-step hook). ``--fits N``: issue 17's comparison instead, system
metrics and console capture at their defaults against both off: N whole fits of one epoch in this
process (after one warm-up fit), each with a new Trainer and a new callback, hence a new run with
its start and finish, alternating (off, on, on, off, ...); printed: the median over neighbouring
pairs of the difference per fit, and what it makes of a 2 000-step fit. See benchmarks/README.md,
"Ninth pass".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings


def _thread_cpu_ns(tid: int | None) -> int:
    if tid is None:
        return 0
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            return int(f.read().split()[0])
    except OSError:
        return 0


def _setup(steps: int) -> tuple:
    """Lightning, the ``lightning`` workload's model class, and a loader of ``steps`` batches of 32."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRACKHOOKS_URI", os.path.join(tempfile.mkdtemp(), "store"))
    os.environ.setdefault("TRACKHOOKS_GIT_DIFF", "0")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads"))
    import logging

    import lightning.pytorch as pl
    import torch

    import _bench
    import lightning_bench

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    _bench.seed_all(0)
    x = torch.randn(steps * 32, 32)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)),
                                         batch_size=32)
    return pl, lightning_bench._module_class(), loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20, help="epochs measured after one warm-up epoch (default 20)")
    ap.add_argument("--steps", type=int, default=200, help="batches of 32 per epoch (default 200)")
    ap.add_argument("--chunk", type=int, default=10, help="steps per on or off stretch (default 10)")
    ap.add_argument("--quiet", action="store_true", help="system metrics and console capture off")
    ap.add_argument("--callback", choices=("trackhooks", "empty"), default="trackhooks")
    ap.add_argument("--fits", type=int, default=0, help="compare whole fits, defaults vs system metrics "
                    "and capture off (a multiple of 4)")
    args = ap.parse_args()
    if args.fits:
        return _fits(args)
    if args.steps % args.chunk:
        raise SystemExit("--steps: a multiple of --chunk")
    pl, model_class, loader = _setup(args.steps)
    if args.callback == "empty":
        class Empty(pl.Callback):
            def on_train_batch_end(self, *a: object) -> None:
                pass

        switched = Empty()
    else:
        from trackhooks_lightning import TrackhooksCallback

        quiet = {"system_metrics": False, "capture_output": False} if args.quiet else {}
        switched = TrackhooksCallback(experiment="step-pairs", **quiet)
    # (on, seconds, writer CPU ns) of each stretch that starts and ends inside one epoch
    rows: list[tuple[bool, float, int]] = []

    class Switch(pl.Callback):
        """Runs before the switched callback's hook in every step (it is first in the list): ends
        the stretch before, then switches the hook for the next ``--chunk`` steps."""

        def __init__(self) -> None:
            self._t: float | None = None
            self._n = 0
            self._tid: int | None = None

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self._t = None  # the stretch over the epoch's end (its records) is not measured
            if self._tid is None:
                writer = next((t for t in threading.enumerate() if t.name == "trackhooks-writer"), None)
                self._tid = getattr(writer, "native_id", None)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx % args.chunk:
                return
            now = time.perf_counter()
            cpu = _thread_cpu_ns(self._tid)
            if self._t is not None and trainer.current_epoch > 0:
                rows.append((self._on, now - self._t, cpu - self._cpu))
            # off, on, on, off, ...: each neighbouring pair has one of each, a linear drift cancels
            on = self._on = self._n % 4 in (1, 2)
            self._n += 1
            if on:
                switched.__dict__.pop("on_train_batch_end", None)
                if args.callback == "trackhooks":  # the step it resumes at (the hook did not see the gap)
                    switched._step = trainer.global_step
                    switched._next_step(trainer.global_step)
            else:
                switched.on_train_batch_end = None  # what Lightning skips: not callable
            self._t, self._cpu = time.perf_counter(), _thread_cpu_ns(self._tid)

    trainer = pl.Trainer(max_epochs=args.epochs + 1, logger=False, callbacks=[Switch(), switched],
                         accelerator="cpu", devices=1, log_every_n_steps=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model_class(32), loader)
    diffs = [((a[1] - b[1]) if a[0] else (b[1] - a[1])) / args.chunk * 1e6
             for a, b in zip(rows, rows[1:]) if a[0] != b[0]]
    diffs.sort()
    cut = len(diffs) // 10
    trimmed = diffs[cut:len(diffs) - cut]
    on = [r for r in rows if r[0]]
    off = [r for r in rows if not r[0]]
    label = "empty Callback" if args.callback == "empty" else (
        "trackhooks, system metrics and capture off" if args.quiet else "trackhooks defaults")
    print(f"{label}: {args.epochs} epochs of {args.steps} steps (+1 warm-up), the per-step hook on and off "
          f"in stretches of {args.chunk} steps; {len(diffs)} neighbouring on/off pairs")
    print("| switched per-step hook | µs per step, median of pairs | trimmed mean (10 %) | step µs (off, median) "
          "| writer CPU ms, on / off stretches |")
    print("|---|---|---|---|---|")
    print(f"| {label} | {statistics.median(diffs):.1f} | {statistics.mean(trimmed):.1f} | "
          f"{statistics.median(r[1] for r in off) / args.chunk * 1e6:.0f} | {sum(r[2] for r in on) / 1e6:.1f} / "
          f"{sum(r[2] for r in off) / 1e6:.1f} |")


def _fits(args: argparse.Namespace) -> None:
    if args.fits % 4:
        raise SystemExit("--fits: a multiple of 4 (off, on, on, off repeats)")
    pl, model_class, loader = _setup(args.steps)
    from trackhooks_lightning import TrackhooksCallback

    def fit(on: bool) -> float:
        quiet = {} if on else {"system_metrics": False, "capture_output": False}
        trainer = pl.Trainer(max_epochs=1, logger=False, callbacks=[TrackhooksCallback(experiment="fits", **quiet)],
                             accelerator="cpu", devices=1, log_every_n_steps=1, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
        model = model_class(32)
        t = time.perf_counter()
        trainer.fit(model, loader)
        return time.perf_counter() - t

    fit(True)  # warm-up: the process's first run pays for its imports either way
    rows = [(on, fit(on)) for on in (i % 4 in (1, 2) for i in range(args.fits))]
    diffs = [((a[1] - b[1]) if a[0] else (b[1] - a[1])) * 1e3 for a, b in zip(rows[::2], rows[1::2])]
    off = statistics.median(r[1] for r in rows if not r[0])
    per_step = off / args.steps
    d = statistics.median(diffs)
    print(f"{args.fits} fits of {args.steps} steps (+1 warm-up), system metrics and capture at their defaults "
          f"(on) or off, alternating; {len(diffs)} pairs")
    print("| on − off per fit, ms: median of pairs | pairs min–max | fit s (off, median) "
          "| a 2 000-step fit, on / off |")
    print("|---|---|---|---|")
    print(f"| {d:.2f} | {min(diffs):.1f} – {max(diffs):.1f} | {off:.3f} | "
          f"{(2000 * per_step + d / 1e3) / (2000 * per_step):.4f}× |")


if __name__ == "__main__":
    main()
