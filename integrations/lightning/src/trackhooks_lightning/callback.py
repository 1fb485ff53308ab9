"""TrackhooksCallback: one trackhooks run per ``Trainer.fit``, for lightning.pytorch and pytorch_lightning.

The class derives from the ``Callback`` of every Lightning distribution that is installed, so one
instance is accepted by a Trainer of either tree. Values that Lightning logs are read from its result
collection as 0-d tensors and handed to the core unconverted (no ``.item()`` on the training thread).
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trackhooks
from trackhooks.plugin import flatten_params, log_step_metrics, open_run, prepare_runs, same_param, settle_run
from trackhooks.plugin import split_options
from trackhooks.plugin import warn_once

_TRAINER_SETTINGS = ("max_epochs", "min_epochs", "max_steps", "min_steps", "precision", "accumulate_grad_batches",
                     "gradient_clip_val", "gradient_clip_algorithm", "num_devices", "num_nodes",
                     "limit_train_batches", "limit_val_batches", "limit_test_batches", "val_check_interval",
                     "check_val_every_n_epoch", "log_every_n_steps")


_open: "weakref.WeakSet[_TrackhooksCallback]" = weakref.WeakSet()
_exit_hook_installed = False


def _finish_open_runs_at_exit() -> None:
    # Lightning reports a failure through on_exception, except inside ddp_spawn workers, where an
    # exception ends the process instead: a run still open when the process exits did not finish its fit.
    for cb in list(_open):
        try:
            cb._end_run("failed")
        except Exception:
            pass


def _install_exit_hook() -> None:
    # registered after the core's exit handler (which finishes open runs as "finished"), so it runs first
    global _exit_hook_installed
    if not _exit_hook_installed:
        _exit_hook_installed = True
        atexit.register(_finish_open_runs_at_exit)


_TREES = ("lightning.pytorch", "pytorch_lightning")


def _imported_bases() -> list[type]:
    found = []
    for name in _TREES:
        module = sys.modules.get(name)
        base = getattr(module, "Callback", None) if module is not None else None
        if isinstance(base, type):
            found.append(base)
    return found


def _callback_bases() -> tuple[type, ...]:
    """The ``Callback`` of every Lightning tree the program has imported, else of the first one
    installed. Importing the other tree as well (when both are installed) cost ~150 ms and ~14 000
    objects for the cyclic collector in every script that uses one of them."""
    bases = _imported_bases()
    if bases:
        return tuple(bases)
    for module in _TREES:
        try:
            return (importlib.import_module(module).Callback,)
        except ImportError:
            continue
    raise ImportError("trackhooks_lightning needs lightning (pip install lightning) or pytorch-lightning")


def _adopt_imported_trees(cls: type) -> None:
    """A tree imported after the class was made: its ``Callback`` joins the bases, so that
    ``isinstance(cb, Callback)`` holds in that tree too (checked at every new instance: the program has
    imported the tree whose Trainer it is about to build by then)."""
    missing = [b for b in _imported_bases() if not issubclass(cls, b)]
    if missing:
        cls.__bases__ = (*cls.__bases__, *missing)


def _batch_len(batch: Any) -> int:
    t = type(batch)
    if t is list or t is tuple:
        batch = batch[0] if batch else None
    elif t is dict:
        batch = next(iter(batch.values()), None)
    shape = getattr(batch, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    try:
        return len(batch)
    except TypeError:
        return 0


def _step_counter(trainer: Any) -> Any:
    """The progress tracker whose ``completed`` is ``trainer.global_step`` (the optimizer steps of
    the training loop), or None when this Lightning keeps it elsewhere. ``global_step`` walks the
    loop, the strategy and the module through four properties on every read (~1 us per step, cold
    between torch's work); Lightning updates and restores the tracker in place, and the callback
    looks it up again at every epoch's start."""
    try:
        loop = trainer.fit_loop.epoch_loop
        module = trainer.lightning_module
        if module is None or module.automatic_optimization:
            total = loop.automatic_optimization.optim_progress.optimizer.step.total
        else:
            total = loop.manual_optimization.optim_step_progress.total
        return total if type(total.completed) is int and total.completed == trainer.global_step else None
    except Exception:
        return None


def _rates(groups: list[tuple[str, dict]]) -> dict[str, Any]:
    return {k: g["lr"] for k, g in groups}


def _as_array(x: Any) -> Any:
    """A numpy view of a CPU tensor (a copy for other devices); arrays pass through."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        return x.detach().cpu().numpy()
    return x


def _dataset_arrays(ds: Any) -> list[Any] | None:
    """The in-memory arrays behind a dataset, or None when it does not expose them."""
    tensors = getattr(ds, "tensors", None)  # torch TensorDataset
    if isinstance(tensors, (tuple, list)) and tensors and all(hasattr(t, "shape") for t in tensors):
        return list(tensors)
    if hasattr(ds, "shape") and hasattr(ds, "dtype"):  # a tensor or array used as the dataset
        return [ds]
    data, targets = getattr(ds, "data", None), getattr(ds, "targets", None)  # torchvision style
    if hasattr(data, "shape") and hasattr(data, "dtype"):
        return [data] + ([targets] if hasattr(targets, "shape") and hasattr(targets, "dtype") else [])
    return None


class _StepValues:
    """The values logged with ``on_step=True`` in the current training batch, keyed as Lightning's
    loggers see them (``results.metrics(True)["log"]``), read straight from the training loop's result
    collection. Lightning's own ``metrics()`` also builds the progress-bar dict, which calls ``.item()``
    on every ``prog_bar`` value: reading the cache directly keeps the step path free of device syncs.
    Falls back to ``metrics()`` if the collection's layout is not the one expected."""

    def __init__(self, results: Any):
        from torch import Tensor

        self._results = results
        self._tensor = Tensor
        self._names: dict[str, str] = {}
        self._direct = True

    def __call__(self) -> dict[str, Any]:
        if self._direct:
            try:
                return self._read()
            except AttributeError:
                self._direct = False
        return dict(self._results.metrics(True)["log"])  # ours to keep: the run takes the dict over

    def _read(self) -> dict[str, Any]:
        results, names, tensor = self._results, self._names, self._tensor
        dataloader_idx = results.dataloader_idx
        out: dict[str, Any] = {}
        for key, rm in results.items():
            meta = rm.meta
            if rm.has_reset or not meta.on_step or not meta.logger or meta.dataloader_idx != dataloader_idx:
                continue
            value = rm._forward_cache
            if not isinstance(value, tensor):
                continue
            name = names.get(key)
            if name is None:
                name = names[key] = results._forked_name(rm, True)[1]
            # Lightning detached it already unless enable_graph (``log`` calls recursive_detach): a
            # second detach() cost ~1.5 us per value per step
            out[name] = value if meta.enable_graph or not value.requires_grad else value.detach()
        return out


class _ConnectorStepValues:
    """Fallback for Lightning versions whose training loop keeps its results elsewhere."""

    def __init__(self, connector: Any):
        self._connector = connector

    def __call__(self) -> dict[str, Any]:
        return dict(self._connector.metrics["log"])


class _TrackhooksCallback:
    """Records a Lightning run into trackhooks (see docs/integrations/lightning.md).

    ``run``: log into this run and leave it open; otherwise the core nesting rule decides
    (docs/plugins.md, "Nesting"): inside an Optuna trial the trial's run, inside another
    integration's fit nothing, inside a run the user started a child of it, else the keyword
    arguments of ``trackhooks.start_run`` (experiment, name, params, tags, store, mirrors, parent)
    open a run at fit start that is finished at fit end. ``log_every_n_steps`` overrides the Trainer's cadence
    for per-step values; ``checkpoints`` and ``datasets`` switch those records off.
    ``log_histograms=N``: weight histograms every N epochs (epochs 0, N, 2N, ...);
    ``log_gradient_histograms=M``: gradient histograms every M optimizer steps (see histograms.py).
    """

    def __init__(self, run: "trackhooks.Run | None" = None, *, log_every_n_steps: int | None = None,
                 checkpoints: bool = True, datasets: bool = True, log_histograms: int | None = None,
                 log_gradient_histograms: int | None = None, **start_run_kwargs: Any):
        split_options(start_run_kwargs, ("run", "log_every_n_steps", "checkpoints", "datasets", "log_histograms",
                       "log_gradient_histograms"), "TrackhooksCallback")
        _adopt_imported_trees(type(self))
        if log_every_n_steps is not None and (type(log_every_n_steps) is not int or log_every_n_steps < 0):
            raise ValueError(f"log_every_n_steps must be an int >= 0, got {log_every_n_steps!r}")
        parent = start_run_kwargs.get("parent")
        if parent is not None and not isinstance(parent, str):
            start_run_kwargs["parent"] = parent.id  # an id pickles into ddp_spawn workers, a Run does not
        self._user_run = run
        self._run: trackhooks.Run | None = run
        self._opened: Any = None
        self._owns = False
        self._run_kwargs = start_run_kwargs
        self._log_every = log_every_n_steps
        self._log_checkpoints = checkpoints
        self._log_datasets = datasets
        from .histograms import check_every

        self._hist_every = check_every("log_histograms", log_histograms)
        self._grad_hist_every = check_every("log_gradient_histograms", log_gradient_histograms)
        self._last_id: str | None = run.id if run is not None else None
        self._resume_id: str | None = None
        self._warned = False
        self._reset_fit_state()
        # the core modules the first recorded fit loads, imported here, in the user's set-up, with the
        # collector paused: ~4 ms (and the young collections they cause) less inside the first fit
        prepare_runs(data=bool(datasets), media=bool(self._hist_every or self._grad_hist_every))

    def _reset_fit_state(self) -> None:
        self._lc: Any = None
        self._step_values: Any = None
        self._every = 0
        self._step = 0
        self._counter: Any = None  # _step_counter(trainer), from each training epoch's start
        self._due = False
        self._epoch = 0
        self._accumulates = False
        self._lr_groups: list[tuple[str, dict]] = []
        self._lr: dict[str, Any] | None = None
        self._samples = 0
        self._t_epoch = 0.0
        self._t_val = 0.0
        self._val_time = 0.0
        self._pending: tuple[int, int, dict] | None = None
        self._eval_steps: dict[str, int] = {}
        self._wrapped: list[Any] = []
        self._ckpts: dict[str, Any] = {}
        self._contexts: set[str] = set()

    # ---- pickling (ddp_spawn sends the callback to worker processes) -------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._user_run is not None:
            state["_spawned_user_run"] = self._user_run.id
        state["_user_run"] = state["_run"] = state["_opened"] = None
        state["_owns"] = False
        state["_lc"] = state["_step_values"] = None
        state["_wrapped"] = []
        state["_ckpts"] = {}
        state["_pending"] = None
        state["_lr_groups"] = []
        return state

    # ---- run lifecycle ---------------------------------------------------------------------------
    @property
    def run(self) -> "trackhooks.Run | None":
        """The run being recorded into (None outside fit/validate/test and on ranks other than 0)."""
        return self._run

    @property
    def run_id(self) -> str | None:
        """The id of the run being recorded into or, after a stage ended, of the last one."""
        return self._run.id if self._run is not None else self._last_id

    def _fail(self, what: str, exc: BaseException) -> None:
        # one warning per callback: the first failure says what went wrong, later ones would only repeat it
        if self._warned:
            return
        self._warned = True
        warn_once(("lightning", id(self), what, type(exc)), f"lightning: could not record {what} "
                  f"({type(exc).__name__}: {exc}); training goes on")

    def _ensure_run(self, trainer: Any, reuse_last: bool) -> "trackhooks.Run | None":
        """Open (or resume) the run on global rank 0. ``reuse_last``: validate/test after a fit go on
        recording into the fit's run; a new fit only continues the run its checkpoint names."""
        if self._run is not None or not trainer.is_global_zero:
            return self._run
        if self.__dict__.get("_spawned_user_run"):
            warn_once(("lightning", "spawn-run"), "lightning: a run= object cannot follow the callback into "
                      "ddp_spawn workers; pass start_run keywords (experiment=..., name=...) instead")
            return None
        kwargs = {k: v for k, v in self._run_kwargs.items() if k not in ("params", "tags")}
        resume = self._resume_id or (self._last_id if reuse_last else None)
        try:
            opened = open_run("lightning", options=kwargs, resume=resume)
        except trackhooks.RunNotFoundError:
            warn_once(("lightning", "resume", resume), f"lightning: run {str(resume)[:8]} named by the checkpoint "
                      "is not in this store; recording into a new run")
            opened = open_run("lightning", options=kwargs)
        if opened is None:  # an inner fit of another integration's fit: only the outer one records
            return None
        run = opened.run
        self._run, self._opened, self._owns, self._resume_id = run, opened, opened.owned, None
        if opened.owned:
            self._last_id = run.id
            _open.add(self)
            _install_exit_hook()
        self._log_params(self._run_kwargs.get("params") or {})
        tags = dict(self._run_kwargs.get("tags") or {})
        opened.set_tags({"framework": "lightning", "lightning.package": type(trainer).__module__.split(".")[0],
                         **tags})
        return run

    def _end_run(self, status: str) -> None:
        run = self._run
        if run is None:
            return
        opened, self._opened = self._opened, None
        if self._owns:
            self._run = None
            _open.discard(self)
            if opened is not None:
                opened.close(status)
            else:
                run.finish(status)
        else:
            if opened is not None:  # a trial's run (or the user's) goes on; this fit is over
                self._run = None if opened.run is not self._user_run else self._run
                opened.close(status)
            run.flush()

    def _log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; keys the run already holds keep their first value (a resumed fit may differ)."""
        run = self._run
        if run is None or not params:
            return
        known = run.params
        flat = {k: v for k, v in flatten_params(params).items() if k not in known or same_param(known[k], v)}
        if flat:
            run.log_params(flat)

    # ---- lightning hooks: setup and params ---------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero or not self._log_checkpoints:
            return
        try:
            for cb in trainer.checkpoint_callbacks:
                self._wrap_checkpoint(cb)
        except Exception as exc:
            self._fail("checkpoints", exc)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        try:
            run = self._ensure_run(trainer, reuse_last=False)
            if run is None:
                return
            if not self._owns:  # a run= given by the user still says which framework filled it
                run.set_tags({"framework": "lightning"})
            self._log_params(self._fit_params(trainer, pl_module))
        except Exception as exc:
            self._fail("params", exc)

    def _fit_params(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        hp = getattr(pl_module, "hparams", None)
        if isinstance(hp, Mapping):
            params.update(hp)
        dm = getattr(trainer, "datamodule", None)
        dm_hp = getattr(dm, "hparams", None)
        if isinstance(dm_hp, Mapping) and dm_hp:
            params["datamodule"] = dict(dm_hp)
        settings: dict[str, Any] = {}
        for name in _TRAINER_SETTINGS:
            try:
                value = getattr(trainer, name)
            except Exception:
                continue
            if value is not None:
                settings[name] = value
        settings["strategy"] = type(trainer.strategy).__name__
        settings["accelerator"] = type(trainer.accelerator).__name__
        params["trainer"] = settings
        params["model.class"] = type(pl_module).__name__
        total = trainable = 0
        for p in pl_module.parameters():
            n = p.numel()
            total += n
            if p.requires_grad:
                trainable += n
        params["model.params_total"], params["model.params_trainable"] = total, trainable
        optimizers = list(trainer.optimizers)
        for i, opt in enumerate(optimizers):
            key = "optimizer" if len(optimizers) == 1 else f"optimizer.{i}"
            params[f"{key}.class"] = type(opt).__name__
            groups = opt.param_groups
            for j, group in enumerate(groups):
                gkey = key if len(groups) == 1 else f"{key}.group{j}"
                for hk, hv in group.items():
                    if hk != "params" and hk != "initial_lr":
                        params[f"{gkey}.{hk}"] = group.get("initial_lr", hv) if hk == "lr" else hv
        configs = list(getattr(trainer, "lr_scheduler_configs", []) or [])
        for i, cfg in enumerate(configs):
            key = "lr_scheduler" if len(configs) == 1 else f"lr_scheduler.{i}"
            params[f"{key}.class"] = type(cfg.scheduler).__name__
            params[f"{key}.interval"] = cfg.interval
            params[f"{key}.frequency"] = cfg.frequency
            if cfg.monitor is not None:
                params[f"{key}.monitor"] = cfg.monitor
        for es in self._early_stoppers(trainer):
            prefix = self._es_prefix(trainer, es)
            params[prefix] = {"monitor": es.monitor, "mode": es.mode, "patience": es.patience,
                              "min_delta": abs(float(es.min_delta))}
        return params

    @staticmethod
    def _early_stoppers(trainer: Any) -> list[Any]:
        return list(getattr(trainer, "early_stopping_callbacks", []) or [])

    def _es_prefix(self, trainer: Any, es: Any) -> str:
        return "early_stopping" if len(self._early_stoppers(trainer)) == 1 else f"early_stopping.{es.monitor}"

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        run = self._run
        if run is None:
            return
        try:
            self._lc = trainer._logger_connector
            # the training loop's result collection, read directly: going through
            # trainer._logger_connector.metrics costs a loop lookup per read
            results = getattr(trainer.fit_loop.epoch_loop, "_results", None)
            self._step_values = _ConnectorStepValues(self._lc) if results is None else _StepValues(results)
            every = trainer.log_every_n_steps if self._log_every is None else self._log_every
            self._every = int(every or 0)
            self._accumulates = trainer.accumulate_grad_batches != 1
            groups = [g for opt in trainer.optimizers for g in opt.param_groups]
            self._lr_groups = [("lr" if len(groups) == 1 else f"lr.{i}", g) for i, g in enumerate(groups)]
            self._install_step_hooks(trainer)
            self._log_params({"per_step_every_n_steps": self._every})
            loader = trainer.train_dataloader
            batch_size = getattr(loader, "batch_size", None)
            if batch_size is not None:
                self._log_params({"batch_size": batch_size})
        except Exception as exc:
            self._fail("training setup", exc)
        self._log_data(trainer.train_dataloader, "train")
        try:
            settle_run(run)  # the writer's start-up now, not beside the training loop (docs/plugins.md)
        except Exception as exc:
            self._fail("training setup", exc)

    # ---- the per-step path (keep it cheap: it runs on every batch) -------------------------------
    # One Lightning hook per step: Lightning dispatches every callable hook of every callback inside a
    # profiler context (~2 us each before the hook's own work), so the step number and the learning
    # rates a step starts with are read when the step before it ends (or at the epoch's start), after
    # that step's scheduler updates: what ``trainer.global_step`` and the optimizer hold when the next
    # batch begins. A plateau scheduler stepped per step changes the rate after the batch ends; with
    # one, ``on_train_batch_start`` stays callable and reads the rates there (_install_step_hooks).
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        run = self._run
        if run is None:
            return
        try:
            self._samples += _batch_len(batch)
            step = self._step
            counter = self._counter
            now = trainer.global_step if counter is None else counter.completed
            if self._accumulates and now == step:
                return  # an accumulating batch: Lightning's loggers skip it too
            self._step = now
            if self._due:
                values = self._step_values()
                lr = self._lr
                if lr:
                    values.update(lr)
                    self._lr = None
                if values:
                    # values: a dict built for this call, of Lightning's checked one-element tensors (and floats)
                    log_step_metrics(run, values, step, self._epoch)
            self._next_step(now)
        except Exception as exc:
            self._due = False
            self._fail("per-step metrics", exc)

    def _next_step(self, step: int) -> None:
        """The batch that starts at optimizer step ``step``: is it due, and if so the rates it uses."""
        every = self._every
        due = self._due = every > 0 and (step + 1) % every == 0
        if due and self._lr_groups:
            self._lr = _rates(self._lr_groups)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        # called only with a per-step plateau scheduler (_install_step_hooks)
        if self._due and self._lr_groups:
            try:
                self._lr = _rates(self._lr_groups)
            except Exception as exc:
                self._fail("learning rates", exc)

    def _install_step_hooks(self, trainer: Any) -> None:
        """Hide the per-step hooks this fit does not need from Lightning (an instance attribute None
        shadows the method; ``_call_callback_hooks`` skips what is not callable). A subclass's own
        definition of one is never hidden."""
        configs = getattr(trainer, "lr_scheduler_configs", None) or []
        plateau = any(getattr(c, "reduce_on_plateau", False) and getattr(c, "interval", "epoch") == "step"
                      for c in configs)
        for hook, wanted in (("on_train_batch_start", plateau and bool(self._lr_groups)),
                             ("on_before_optimizer_step", bool(self._grad_hist_every))):
            if wanted or getattr(type(self), hook) is not getattr(_TrackhooksCallback, hook):
                self.__dict__.pop(hook, None)
            else:
                self.__dict__[hook] = None

    # ---- epochs -------------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._run is None:
            return
        self._record_epoch_aggregates()
        self._epoch = trainer.current_epoch
        try:
            # after the epoch-end (plateau) scheduler updates: the first batch's step and rates
            self._step = trainer.global_step
            self._counter = _step_counter(trainer)
            self._next_step(self._step)
        except Exception as exc:
            self._due = False
            self._fail("learning rates", exc)
        self._samples = 0
        self._val_time = 0.0
        self._t_epoch = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        run = self._run
        if run is None:
            return
        try:
            duration = time.perf_counter() - self._t_epoch
            train_time = max(duration - self._val_time, 1e-9)
            step = max(trainer.global_step - 1, 0)
            run.log_metrics({"epoch_duration_s": duration, "samples_per_s": self._samples / train_time},
                            step=step, epoch=self._epoch)
            # Epoch aggregates are computed by Lightning after this hook (and the module's own
            # on_train_epoch_end may log more): remember what the logged values are now and
            # record the ones that change at the next epoch start or at train end.
            self._pending = (self._epoch, step, dict(self._lc._logged_metrics))
        except Exception as exc:
            self._fail("epoch metrics", exc)
        if self._hist_every and self._epoch % self._hist_every == 0:
            try:
                from .histograms import log_weight_histograms

                log_weight_histograms(run, pl_module, max(trainer.global_step - 1, 0), self._epoch)
            except Exception as exc:
                self._fail("weight histograms", exc)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        # called only when gradient histograms are asked for (_install_step_hooks)
        every = self._grad_hist_every
        run = self._run
        if not every or run is None or trainer.global_step % every:
            return
        try:
            from .histograms import log_gradient_histograms

            log_gradient_histograms(run, pl_module, trainer.global_step, trainer.current_epoch)
        except Exception as exc:
            self._fail("gradient histograms", exc)

    def _record_epoch_aggregates(self) -> None:
        pending, self._pending = self._pending, None
        if pending is None or self._run is None:
            return
        epoch, step, before = pending
        try:
            now = self._lc._logged_metrics
            values = {k: v for k, v in now.items() if before.get(k) is not v}
            if values:
                self._run.log_metrics(values, step=step, epoch=epoch)
        except Exception as exc:
            self._fail("epoch metrics", exc)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        run = self._run
        if run is None:
            return
        self._record_epoch_aggregates()
        try:
            step = trainer.global_step
            for es in self._early_stoppers(trainer):
                prefix = self._es_prefix(trainer, es)
                values = {f"{prefix}.stopped_epoch": es.stopped_epoch, f"{prefix}.wait_count": es.wait_count,
                          f"{prefix}.patience": es.patience}
                if es.best_score is not None:
                    values[f"{prefix}.best_score"] = es.best_score
                run.log_metrics(values, step=step, epoch=trainer.current_epoch)
                run.set_tags({f"{prefix}.stopped": str(bool(es.stopped_epoch) or bool(trainer.should_stop)).lower()})
        except Exception as exc:
            self._fail("early stopping", exc)
        self._mark_best(trainer)

    # ---- validation and test ----------------------------------------------------------------------
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._eval_start(trainer, "validation", trainer.val_dataloaders)

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._eval_start(trainer, "test", trainer.test_dataloaders)

    def _eval_start(self, trainer: Any, context: str, loaders: Any) -> None:
        try:
            if self._run is None:
                if not trainer.is_global_zero:
                    return
                self._ensure_run(trainer, reuse_last=True)
                if self._run is None:
                    return
                self._lc = trainer._logger_connector
                self._log_params({"model.class": type(trainer.lightning_module).__name__})
        except Exception as exc:
            self._fail("run start", exc)
            return
        self._t_val = time.perf_counter()
        if not trainer.sanity_checking:
            self._eval_steps.setdefault(context, 0)
        self._log_data(loaders, context)

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self._run is not None and not trainer.sanity_checking:
            self._eval_step(trainer, "validation", None)

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        if self._run is not None:
            self._eval_step(trainer, "test", "test_")

    def _eval_step(self, trainer: Any, context: str, prefix: str | None) -> None:
        # values logged with on_step=True inside validation_step/test_step: rare, recorded at the
        # evaluation batch count like Lightning's loggers do
        n = self._eval_steps.get(context, 0)
        self._eval_steps[context] = n + 1
        try:
            values = _StepValues(trainer._results)()
            if values:
                self._run.log_metrics(self._prefixed(values, prefix), step=n, epoch=self._epoch)
        except Exception as exc:
            self._fail(f"{context} step metrics", exc)

    @staticmethod
    def _prefixed(values: dict, prefix: str | None) -> dict:
        if prefix is None:
            return values
        return {(k if k.startswith("test") else prefix + k): v for k, v in values.items()}

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._run is None or trainer.sanity_checking:
            return
        self._val_time += time.perf_counter() - self._t_val
        self._eval_end(trainer, None)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        if self._run is not None:
            self._eval_end(trainer, "test_")

    def _eval_end(self, trainer: Any, prefix: str | None) -> None:
        try:
            values = self._lc.metrics["log"]
            if values:
                self._run.log_metrics(self._prefixed(values, prefix), step=trainer.global_step,
                                      epoch=trainer.current_epoch)
        except Exception as exc:
            self._fail("evaluation metrics", exc)

    # ---- end, failure, resume --------------------------------------------------------------------
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._unwrap_checkpoints()
        if stage == "predict":
            return
        try:
            self._end_run("finished")
        except Exception as exc:
            self._fail("run end", exc)
        self._reset_fit_state()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._unwrap_checkpoints()
        try:
            if self._run is not None:
                self._record_epoch_aggregates()
                self._end_run("killed" if isinstance(exception, KeyboardInterrupt) else "failed")
        except Exception as exc:
            self._fail("run end", exc)
        self._reset_fit_state()

    def state_dict(self) -> dict[str, Any]:
        run_id = self._run.id if self._run is not None else self._last_id
        return {"run_id": run_id} if run_id else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        run_id = state_dict.get("run_id")
        if not run_id or self._user_run is not None:
            return
        if self._run is not None and self._run.id != run_id:
            warn_once(("lightning", "late-restore"), "lightning: the checkpoint names run "
                      f"{run_id[:8]} but recording had already started in {self._run.id[:8]}")
            return
        self._resume_id = run_id

    # ---- checkpoints ------------------------------------------------------------------------------
    def _wrap_checkpoint(self, cb: Any) -> None:
        save, remove = getattr(cb, "_save_checkpoint", None), getattr(cb, "_remove_checkpoint", None)
        if save is None or remove is None:
            warn_once(("lightning", "ckpt-api"), f"lightning: {type(cb).__name__} has no _save_checkpoint/"
                      "_remove_checkpoint; its checkpoints are not recorded")
            return

        def _save_checkpoint(trainer: Any, filepath: str) -> None:
            save(trainer, filepath)
            self._checkpoint_saved(cb, trainer, filepath)

        def _remove_checkpoint(trainer: Any, filepath: str) -> None:
            self._checkpoint_removed(filepath)
            remove(trainer, filepath)

        _save_checkpoint.__trackhooks__ = _remove_checkpoint.__trackhooks__ = True  # type: ignore[attr-defined]
        cb._save_checkpoint, cb._remove_checkpoint = _save_checkpoint, _remove_checkpoint
        self._wrapped.append(cb)

    def _unwrap_checkpoints(self) -> None:
        for cb in self._wrapped:
            for name in ("_save_checkpoint", "_remove_checkpoint"):
                if getattr(cb.__dict__.get(name), "__trackhooks__", False):
                    del cb.__dict__[name]
        self._wrapped = []

    def _checkpoint_saved(self, cb: Any, trainer: Any, filepath: str) -> None:
        run = self._run
        if run is None or not os.path.exists(filepath):
            return
        try:
            monitor = getattr(cb, "monitor", None)
            metrics = {k: v for k, v in self._lc._callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
            score = cb.best_k_models.get(filepath) if monitor else None
            if score is not None:
                metrics[monitor] = score
            best_path = getattr(cb, "best_model_path", "") or ""
            best = bool(best_path) and os.path.abspath(best_path) == os.path.abspath(filepath)
            rec = run.log_checkpoint(filepath, step=trainer.global_step, epoch=trainer.current_epoch,
                                     metrics=metrics, best=best, monitor=monitor,
                                     mode=getattr(cb, "mode", None) if monitor else None)
            self._ckpts[os.path.abspath(filepath)] = rec
        except Exception as exc:
            self._fail("checkpoint", exc)

    def _checkpoint_removed(self, filepath: str) -> None:
        run = self._run
        if run is None:
            return
        try:
            rec = self._ckpts.pop(os.path.abspath(filepath), None)
            if rec is not None and rec.sha256 is None:
                run.flush(timeout=30)  # hash the file before Lightning deletes it
            run.update_checkpoint(filepath, deleted=True)
        except Exception as exc:
            self._fail("checkpoint deletion", exc)

    def _mark_best(self, trainer: Any) -> None:
        run = self._run
        try:
            for cb in self._wrapped:
                best = getattr(cb, "best_model_path", "")
                if best and os.path.abspath(best) in self._ckpts:
                    run.update_checkpoint(best, best=True)
        except Exception as exc:
            self._fail("best checkpoint", exc)

    # ---- data -------------------------------------------------------------------------------------
    def _log_data(self, loaders: Any, context: str) -> None:
        if not self._log_datasets or self._run is None or context in self._contexts or loaders is None:
            return
        self._contexts.add(context)
        if isinstance(loaders, Mapping):
            items = [(str(k), v) for k, v in loaders.items()]
        elif isinstance(loaders, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(loaders)] if len(loaders) > 1 else [("", loaders[0])]
        else:
            items = [("", loaders)]
        for suffix, loader in items:
            try:
                self._log_one_dataset(getattr(loader, "dataset", None), context, suffix)
            except Exception as exc:
                self._fail(f"{context} dataset", exc)

    def _log_one_dataset(self, ds: Any, context: str, suffix: str) -> None:
        if ds is None:
            return
        run = self._run
        name = str(getattr(ds, "name", None) or type(ds).__name__) + (f"/{suffix}" if suffix else "")
        arrays = _dataset_arrays(ds)
        if arrays:
            try:
                if len(arrays) == 1:
                    run.log_dataset(_as_array(arrays[0]), name=name, context=context)
                else:
                    parts = ("x", "y") if len(arrays) == 2 else tuple(str(i) for i in range(len(arrays)))
                    for part, arr in zip(parts, arrays):
                        run.log_dataset(_as_array(arr), name=f"{name}.{part}", context=context)
                return
            except trackhooks.TrackhooksError as exc:
                self._fail(f"{context} dataset", exc)
        # not fingerprintable without iterating it: record what it is instead
        info: dict[str, Any] = {"name": name, "type": f"{type(ds).__module__}.{type(ds).__qualname__}"}
        try:
            info["length"] = len(ds)
        except Exception:
            pass
        self._log_params({f"data.{context}": info})


# Per-step hooks of Callback that this class leaves None. Lightning calls every callable hook of
# every callback inside a profiler context (~2 us each, three times per training step for these
# alone); a hook that is None is skipped (``_call_callback_hooks`` checks ``callable``). Lightning
# calls no hook of this list any other way, and a subclass that defines one gets it called. Two
# more are hidden per instance when a fit does not need them (``_install_step_hooks``).
_UNUSED_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_zero_grad", "on_validation_batch_start",
                      "on_test_batch_start", "on_predict_batch_start", "on_predict_batch_end")

if TYPE_CHECKING:
    TrackhooksCallback = _TrackhooksCallback
else:
    # one class accepted by the Trainers of both trees (the second joins when it is imported); its
    # state key stays "TrackhooksCallback"
    TrackhooksCallback = type("TrackhooksCallback", (_TrackhooksCallback, *_callback_bases()),
                              {"__module__": __name__, "__doc__": _TrackhooksCallback.__doc__,
                               "__qualname__": "TrackhooksCallback",
                               **{hook: None for hook in _UNUSED_STEP_HOOKS if not hasattr(_TrackhooksCallback, hook)}})
