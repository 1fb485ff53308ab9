"""TrackhooksCallback: one Keras ``fit`` (and the ``evaluate`` calls after it) recorded into a trackhooks Run.

Only backend-neutral Keras APIs are used (``keras.ops``, ``optimizer.iterations``), so the callback
works on the torch, jax and tensorflow backends alike. Batch hooks are only defined when batch
metrics are asked for: Keras dispatches batch hooks on a thread pool (no device sync per batch)
only while no callback overrides them.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from .backend import ensure_loadable_backend

ensure_loadable_backend()

import keras  # noqa: E402
import numpy as np  # noqa: E402

import trackhooks
from trackhooks.plugin import START_RUN_OPTIONS, flatten_params, open_run, same_param, settle_run, split_options
from trackhooks.plugin import prepare_runs, warn_once

from .fitdata import DataInfo

#: keyword arguments of ``trackhooks.start_run`` the callback accepts (it opens its own run with them)
RUN_KWARGS = START_RUN_OPTIONS


def _warn(where: str, exc: BaseException) -> None:
    warn_once(("keras", where), f"keras: {where} failed; training goes on, that part is not recorded "
                                f"({type(exc).__name__}: {exc})")


def _log_params(run: "trackhooks.Run", params: Mapping[str, Any]) -> None:
    """log_params, except that keys this run already holds with another value are kept (one warning).

    A run given by the user may see several fits; the first fit's values stay the record.
    """
    flat = flatten_params(params)
    old = run.params
    clash = sorted(k for k, v in flat.items() if k in old and not same_param(old[k], v))
    if clash:
        warn_once(("keras", "param-clash"), f"keras: run {run.id[:8]} already has other values for "
                                            f"{', '.join(clash[:5])}; the first values are kept")
    new = {k: v for k, v in flat.items() if k not in old}
    if new:
        run.log_params(new)


def _scalars(logs: Mapping[str, Any] | None) -> dict[str, float]:
    """Keras logs -> metrics: scalars as they are, short 1-d arrays as ``key.<i>``, anything else skipped."""
    out: dict[str, float] = {}
    for k, v in (logs or {}).items():
        t = type(v)
        if t is float or t is int:
            out[k] = v
            continue
        try:
            arr = np.asarray(v)
        except Exception:
            continue
        if arr.dtype.kind not in "fiu":
            continue
        if arr.ndim == 0:
            out[k] = float(arr)
        elif arr.ndim == 1 and arr.size <= 64:  # e.g. F1Score(average=None): one value per class
            for i, x in enumerate(arr.tolist()):
                out[f"{k}.{i}"] = float(x)
    return out


def _clean(value: Any) -> Any:
    """A serialized Keras config -> readable params: {"class": "Adam", "learning_rate": ...}."""
    if isinstance(value, Mapping):
        if "class_name" in value and "config" in value:
            cfg = value["config"]
            inner = {"class": value["class_name"]}
            if isinstance(cfg, Mapping):
                inner.update({k: _clean(v) for k, v in cfg.items()})
            return inner
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_short(v) for v in value]
    return value


def _short(value: Any) -> Any:
    if isinstance(value, Mapping):
        return str(value.get("class_name") or value.get("config", {}).get("name") or value)
    if isinstance(value, (list, tuple)):
        return str([_short(v) for v in value])
    return value


def _name_of(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _name_of(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [str(_name_of(v)) for v in obj]
    return getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _stat(path: str | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _mode(ckpt: Any) -> str | None:
    mode = getattr(ckpt, "mode", None)
    if mode in ("min", "max"):
        return mode
    op = getattr(getattr(ckpt, "monitor_op", None), "__name__", "")
    if op in ("greater", "less"):
        return "max" if op == "greater" else "min"
    monitor = str(getattr(ckpt, "monitor", "") or "")
    return "max" if any(s in monitor for s in ("acc", "auc", "precision", "recall", "f1")) else "min"


class TrackhooksCallback(keras.callbacks.Callback):
    """Record a Keras ``fit`` into trackhooks: params, per-epoch metrics, checkpoints, artifacts.

    :param run: log into this run (never finished by the callback). Without it, the core nesting rule
        (docs/plugins.md, "Nesting") decides: inside an Optuna trial the trial's run, inside another
        integration's fit (a scikit-learn search, ``cross_val_score``) nothing, inside a run the user
        started that run (a child of it when ``start_run`` options are given), else its own run
        opened at train begin with the ``start_run`` keyword arguments given here (``experiment``,
        ``name``, ``params``, ``tags``, ``store``, ``mirrors``, ``parent``) and finished at train end.
    :param log_every_n_batches: also record Keras' batch logs as ``batch_<key>`` every N optimizer
        steps (off by default).
    :param log_model: save the final model as a ``model.keras`` artifact at train end (off by
        default: saving costs time and disk).
    :param log_histograms: record a histogram of every weight variable (``weights/<path>``) every N
        epochs (epochs 0, N, 2N, ...; off by default). See histograms.py.
    """

    def __init__(self, run: "trackhooks.Run | None" = None, *, log_every_n_batches: int | None = None,
                 log_model: bool = False, log_histograms: int | None = None, **start_run_kwargs: Any):
        super().__init__()
        split_options(start_run_kwargs, ("run", "log_every_n_batches", "log_model", "log_histograms"), "TrackhooksCallback")
        if log_every_n_batches is not None and (
                isinstance(log_every_n_batches, bool) or not isinstance(log_every_n_batches, int)
                or log_every_n_batches < 1):
            raise ValueError(f"log_every_n_batches must be a positive int or None, got {log_every_n_batches!r}")
        self._given_run = run
        self._run_kwargs = dict(start_run_kwargs)
        self._every = log_every_n_batches
        self._log_model = bool(log_model)
        from .histograms import check_every

        self._hist_every = check_every(log_histograms)
        if log_every_n_batches:
            # Defined per instance and only here: a callback that overrides on_train_batch_end is
            # otherwise called synchronously (device sync per batch). The hook only appends to
            # trackhooks' buffer, so it is safe on Keras' callback thread pool (async_safe).
            self.on_train_batch_end = self._log_batch  # type: ignore[method-assign]
            self.async_safe = True
        self._run: trackhooks.Run | None = None
        self._opened: Any = None
        self._owned = False
        self._in_fit = False
        self._siblings: list[Any] = []
        self._wrapped: list[tuple[Any, str]] = []
        self._ckpt_best: dict[int, float] = {}
        self._fit_info: DataInfo | None = None  # set by autolog just before fit
        self._eval_info: DataInfo | None = None  # set by autolog just before evaluate
        self._iter = 0
        self._epoch = 0
        self._epoch_t0 = 0.0
        self._fit_t0 = 0.0
        self._n_samples: int | None = None
        self._last_step: int | None = None
        self._last_epoch: int | None = None
        _install_sibling_hook()
        # the core modules the first recorded fit loads, imported in the user's set-up (collector paused)
        prepare_runs(media=bool(self._hist_every))

    # ---- run handling -------------------------------------------------------------------------
    @property
    def run(self) -> "trackhooks.Run | None":
        """The run of the current (or last) fit, or None before the first fit."""
        return self._run

    def _open_run(self) -> "trackhooks.Run | None":
        given = self._given_run
        if given is not None and given.status != "running":
            warn_once(("keras", "run-finished"), f"keras: run {given.id[:8]} is {given.status}; nothing recorded")
            return None
        if self._opened is not None:  # an earlier fit whose end Keras never reported (it raised)
            self._opened.detach()
        opened = self._opened = open_run("keras", run=given, options=self._run_kwargs, user_run="into")
        if opened is None:  # an inner fit of another integration's fit: only the outer one records
            self._owned = False
            return None
        self._owned = opened.owned
        return opened.run

    def _end_fit(self, status: str | None) -> None:
        """The fit is over: pop its nesting frame; ``status``: also finish an owned run with it."""
        opened, self._opened = self._opened, None
        if opened is None:
            return
        if status is None:
            opened.detach()
        else:
            opened.close(status)

    def _iterations(self) -> int | None:
        opt = getattr(self.model, "optimizer", None)
        if opt is None:
            return None
        return int(keras.ops.convert_to_numpy(opt.iterations))

    def _model_params(self) -> dict[str, Any]:
        model = self.model
        p: dict[str, Any] = {"model.class": type(model).__name__, "model.name": model.name}
        if model.built:
            p["model.params_total"] = int(model.count_params())
            p["model.params_trainable"] = int(sum(math.prod(w.shape) for w in model.trainable_weights))
        opt = getattr(model, "optimizer", None)
        if opt is not None:
            p["optimizer"] = {"class": type(opt).__name__, **_clean(opt.get_config())}
        cc = model.get_compile_config() if getattr(model, "compiled", False) else {}
        p["loss"] = _name_of(getattr(model, "loss", None))
        p["compile"] = {k: _clean(v) for k, v in cc.items() if k != "optimizer"}
        return p

    def _describe_model(self, run: "trackhooks.Run") -> None:
        tags = {"framework": "keras", "keras.backend": keras.backend.backend(), "keras.version": keras.__version__}
        (self._opened or run).set_tags(tags)
        _log_params(run, self._model_params())
        lines: list[str] = []
        try:
            self.model.summary(print_fn=lambda text, *a, **k: lines.append(str(text)))
        except Exception:  # an unbuilt subclassed model has no summary; nothing to record
            lines = []
        if lines:
            run.log_text("model_summary.txt", "\n".join(lines) + "\n")
        try:
            arch = self.model.to_json()
        except Exception:  # subclassed models without get_config cannot be serialized
            arch = None
        if arch:
            run.log_text("model_architecture.json", arch)

    def _log_data(self, run: "trackhooks.Run", info: DataInfo) -> None:
        if info.params:
            _log_params(run, info.params)
        for context, name, arr in info.arrays:
            try:
                run.log_dataset(arr, name=name, context=context)
            except trackhooks.TrackhooksError:
                try:  # a container the core cannot fingerprint yet: its numpy view (same content)
                    run.log_dataset(np.asarray(arr), name=name, context=context)
                except Exception as exc:
                    _warn(f"recording dataset {name!r} ({type(arr).__name__})", exc)

    # ---- fit ------------------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        self._in_fit = True
        info, self._fit_info = self._fit_info, None
        self._ckpt_best = {}
        self._last_step = self._last_epoch = None
        self._fit_t0 = time.perf_counter()
        try:
            self._run = run = self._open_run()
        except Exception as exc:
            self._run = None
            _warn("starting the run", exc)
            return
        if run is None:
            return
        try:
            self._iter = self._iterations() or 0
            params = self.params or {}
            fit: dict[str, Any] = {}
            if "epochs" in params:
                fit["epochs"] = params["epochs"]
            if params.get("steps") is not None:
                fit["steps_per_epoch"] = params["steps"]
            _log_params(run, {"fit": fit})
            self._describe_model(run)
        except Exception as exc:
            _warn("recording params", exc)
        self._n_samples = info.n_samples if info is not None else None
        if info is not None:
            try:
                self._log_data(run, info)
            except Exception as exc:
                _warn("recording fit arguments", exc)
        try:
            self._watch_checkpoints()
        except Exception as exc:
            _warn("watching ModelCheckpoint", exc)
        try:
            settle_run(run)  # the writer's start-up now, not beside the training loop (docs/plugins.md)
        except Exception as exc:
            _warn("starting the run", exc)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        self._epoch_t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        run = self._run
        if run is None:
            return
        try:
            duration = time.perf_counter() - self._epoch_t0
            step = self._iterations()
            metrics = _scalars(logs)
            lr = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
            if lr is not None:  # schedules are evaluated at the current step by the property
                metrics["lr"] = float(keras.ops.convert_to_numpy(lr))
            metrics["epoch_duration_s"] = duration
            if self._n_samples and duration > 0:
                metrics["samples_per_s"] = self._n_samples / duration
            run.log_metrics(metrics, step=step, epoch=epoch)
            self._iter = step or 0
            self._last_step, self._last_epoch = step, epoch
        except Exception as exc:
            _warn("recording epoch metrics", exc)
        if self._hist_every and epoch % self._hist_every == 0:
            try:
                from .histograms import log_weight_histograms

                log_weight_histograms(run, self.model, self._last_step, epoch)
            except Exception as exc:
                _warn("recording weight histograms", exc)

    def _log_batch(self, batch: int, logs: dict | None = None) -> None:
        # may run on Keras' callback thread pool: only reads state set at epoch begin/end
        try:
            run = self._run
            step = self._iter + batch + 1
            if run is None or step % self._every:  # type: ignore[operator]
                return
            metrics = {"batch_" + k: v for k, v in (logs or {}).items() if type(v) is float or type(v) is int}
            if metrics:
                run.log_metrics(metrics, step=step, epoch=self._epoch)
        except Exception as exc:
            _warn("recording batch metrics", exc)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._in_fit = False
        self._unwatch_checkpoints()
        run = self._run
        if run is None:
            return
        try:
            run.log_metrics({"fit_time_s": time.perf_counter() - self._fit_t0}, step=self._last_step,
                            epoch=self._last_epoch)
            self._log_early_stopping(run)
        except Exception as exc:
            _warn("recording the end of fit", exc)
        if self._log_model:
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, "model.keras")
                    self.model.save(path)
                    with open(path, "rb") as f:
                        run.log_text("model.keras", f.read())
            except Exception as exc:
                _warn("saving the model (log_model=True)", exc)
        try:
            self._end_fit("finished")
        except Exception as exc:
            _warn("finishing the run", exc)

    def _on_fit_error(self, exc: BaseException) -> None:
        """Called by autolog when ``fit`` raised: the run this callback owns is failed (or killed)."""
        self._in_fit = False
        try:
            self._unwatch_checkpoints()
            self._end_fit("killed" if isinstance(exc, KeyboardInterrupt) else "failed")
        except Exception as err:
            _warn("marking the run failed", err)

    # ---- EarlyStopping, ModelCheckpoint -------------------------------------------------------
    def _log_early_stopping(self, run: "trackhooks.Run") -> None:
        for i, es in enumerate(cb for cb in self._siblings if isinstance(cb, keras.callbacks.EarlyStopping)):
            prefix = "early_stopping" if i == 0 else f"early_stopping.{i}"
            _log_params(run, {prefix: {"monitor": es.monitor, "patience": es.patience, "min_delta": abs(es.min_delta),
                                     "mode": es.mode, "restore_best_weights": bool(es.restore_best_weights),
                                     "start_from_epoch": es.start_from_epoch}})
            facts: dict[str, float] = {f"{prefix}.stopped": float(es.stopped_epoch > 0),
                                       f"{prefix}.best_epoch": float(es.best_epoch),
                                       # Keras restores at its on_train_end whenever it kept weights
                                       f"{prefix}.restored_best_weights":
                                           float(bool(es.restore_best_weights) and es.best_weights is not None)}
            if es.stopped_epoch > 0:
                facts[f"{prefix}.stopped_epoch"] = float(es.stopped_epoch)
            if es.best is not None:
                facts[f"{prefix}.best"] = float(np.asarray(es.best))
            run.log_metrics(facts, step=self._last_step, epoch=self._last_epoch)

    def _watch_checkpoints(self) -> None:
        """Wrap each sibling ModelCheckpoint's save hooks (per instance) to see which files it writes."""
        for ckpt in self._siblings:
            if not isinstance(ckpt, keras.callbacks.ModelCheckpoint):
                continue
            cls = type(ckpt)
            ckpt.on_epoch_end = self._checkpoint_hook(ckpt, cls.on_epoch_end, per_batch=False)
            self._wrapped.append((ckpt, "on_epoch_end"))
            if getattr(ckpt, "save_freq", "epoch") != "epoch":  # it already overrides the batch hook
                ckpt.on_train_batch_end = self._checkpoint_hook(ckpt, cls.on_train_batch_end, per_batch=True)
                self._wrapped.append((ckpt, "on_train_batch_end"))

    def _unwatch_checkpoints(self) -> None:
        for ckpt, name in self._wrapped:
            ckpt.__dict__.pop(name, None)
        self._wrapped = []

    def _checkpoint_hook(self, ckpt: Any, original: Any, per_batch: bool) -> Any:
        @functools.wraps(original)
        def hook(index: int, logs: dict | None = None) -> None:
            epoch = getattr(ckpt, "_current_epoch", self._epoch) if per_batch else index
            path = before = None
            try:
                get = getattr(ckpt, "_get_file_path", None)
                path = get(epoch, index if per_batch else None, logs) if get else ckpt.filepath.format(
                    epoch=epoch + 1, **(logs or {}))
                before = _stat(path)
            except Exception:  # a filepath Keras cannot format either: Keras raises about it itself
                path = None
            original(ckpt, index, logs)
            if path is not None:
                try:
                    self._checkpoint_written(ckpt, path, before, epoch, logs)
                except Exception as exc:
                    _warn("recording a ModelCheckpoint file", exc)
        return hook

    def _checkpoint_written(self, ckpt: Any, path: str, before: Any, epoch: int, logs: dict | None) -> None:
        after = _stat(path)
        run = self._run
        if after is None or after == before or run is None or run.status != "running":
            return
        monitor = getattr(ckpt, "monitor", None)
        current = (logs or {}).get(monitor) if monitor else None
        mode = _mode(ckpt)
        if current is None:
            best = False
        elif getattr(ckpt, "save_best_only", False):
            best = True  # Keras only writes on improvement
        else:
            prev = self._ckpt_best.get(id(ckpt))
            best = prev is None or (current < prev if mode == "min" else current > prev)
        if best and current is not None:
            self._ckpt_best[id(ckpt)] = float(current)
        run.log_checkpoint(path, step=self._iterations(), epoch=epoch, metrics=_scalars(logs), best=best,
                           monitor=monitor, mode=mode)

    # ---- evaluate -------------------------------------------------------------------------------
    def on_test_end(self, logs: dict | None = None) -> None:
        if self._in_fit:  # validation inside fit: its val_* values arrive with the epoch logs
            return
        info, self._eval_info = self._eval_info, None
        try:
            run, finish = self._run_for_evaluate()
        except Exception as exc:
            _warn("reopening the run for evaluate", exc)
            return
        if run is None:
            return
        try:
            metrics = {f"test_{k}": v for k, v in _scalars(logs).items()}
            step = self._last_step if self._last_step is not None else self._iterations()
            run.log_metrics(metrics, step=step, epoch=self._last_epoch)
            if info is not None:
                self._log_data(run, info)
        except Exception as exc:
            _warn("recording evaluate metrics", exc)
        try:
            self._end_fit(None)  # an evaluate without a fit before it opened a frame: it is over
        except Exception as exc:
            _warn("finishing the run", exc)
        if finish:
            try:
                run.finish("finished")
            except Exception as exc:
                _warn("finishing the run", exc)

    def _run_for_evaluate(self) -> "tuple[trackhooks.Run | None, bool]":
        """The run test metrics go to, and whether to finish it afterwards.

        After a fit whose run this callback owned (and finished), that run is resumed: evaluate's
        results belong to the run that trained the model.
        """
        run = self._run
        if run is not None and self._owned:
            if run.status == "running":
                return run, False
            self._run = trackhooks.start_run(resume=run.id, store=run.store,
                                             mirrors=self._run_kwargs.get("mirrors"))
            return self._run, True
        if run is not None:  # the user's run
            if run.status != "running":
                warn_once(("keras", "run-finished"), f"keras: run {run.id[:8]} is {run.status}; nothing recorded")
                return None, False
            return run, False
        run = self._run = self._open_run()  # evaluate without a fit before it
        if run is not None:
            self._describe_model(run)
        return run, self._owned


_hooked = False


def _install_sibling_hook() -> None:
    """Let each TrackhooksCallback see the other callbacks of its fit (ModelCheckpoint, EarlyStopping).

    Keras gives a callback no handle on its siblings; the only place that sees them all is
    ``CallbackList``. Its ``__init__`` is wrapped once per process; the wrapper does nothing unless
    a TrackhooksCallback is in the list.
    """
    global _hooked
    if _hooked:
        return
    _hooked = True
    try:
        cls = keras.callbacks.CallbackList
        original = cls.__init__

        @functools.wraps(original)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            try:
                siblings = list(self.callbacks)
                for cb in siblings:
                    if isinstance(cb, TrackhooksCallback):
                        cb._siblings = siblings
            except Exception as exc:
                _warn("finding ModelCheckpoint/EarlyStopping callbacks", exc)

        cls.__init__ = __init__
    except Exception as exc:
        _warn("finding ModelCheckpoint/EarlyStopping callbacks", exc)
