"""``TrackhooksCallback``: an ``xgboost.callback.TrainingCallback`` that records one run per training."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import xgboost
from xgboost.callback import TrainingCallback

from trackhooks.plugin import open_run, prepare_runs, split_options, wake_writer, warn_once

from . import patch
from .data import log_data, log_dmatrix

# the metrics XGBoost's EarlyStopping maximizes (same rule, so that "best" agrees with it)
_MAXIMIZE_PREFIXES = ("auc", "aucpr", "pre", "map", "ndcg")
#: per importance type, at most this many features (the largest) also become metrics
IMPORTANCE_METRICS_MAX = 50


def _maximize(metric: str) -> bool:
    return metric != "mape" and metric.startswith(_MAXIMIZE_PREFIXES)


def _user_params(params: Any) -> dict[str, Any]:
    if isinstance(params, dict):
        items = list(params.items())
    else:  # xgboost also takes a list of pairs, with repeated keys (several eval_metric)
        items = list(params or ())
    out: dict[str, Any] = {}
    for k, v in items:
        if v is None:
            continue
        k = str(k)
        if k in out:
            out[k] = [*(out[k] if isinstance(out[k], list) else [out[k]]), v]
        else:
            out[k] = v
    return out


def _drop_counters(cfg: Any) -> Any:
    # the tree count is a running counter, not a setting: it would freeze at 1 in the params
    if isinstance(cfg, dict):
        return {k: _drop_counters(v) for k, v in cfg.items() if k not in ("num_trees", "version")}
    return cfg


class TrackhooksCallback(TrainingCallback):
    """Record an XGBoost training (``xgb.train``, ``xgb.cv``, ``XGBClassifier/XGBRegressor/XGBRanker``).

    ``run``: log into this run (it is not finished here); otherwise each training opens its own run
    with the ``start_run`` keyword arguments (``experiment``, ``name``, ``params``, ``tags``,
    ``store``, ``mirrors``, ``parent``) and finishes it. Where it records follows the core nesting rule
    (docs/plugins.md, "Nesting"): inside an Optuna trial into the trial's run, inside another
    integration's fit (a scikit-learn search or ``cross_val_score``) nothing, inside a run the user
    started a child of it.
    ``checkpoint_every=N``: save the booster as UBJSON every N rounds into ``checkpoint_dir``
    (default ``./xgboost_checkpoints/<run id>``) and record each file. ``log_model``: store the
    final model as the artifact ``model.ubj``. ``log_importance``: feature importance (weight, gain,
    cover) as ``feature_importance.json`` and as metrics, and every importance type (also total_gain,
    total_cover) as the table ``feature_importance``. ``log_datasets``: record the training and
    evaluation data (``run.log_dataset``).
    """

    def __init__(self, run: Any = None, *, checkpoint_every: int | None = None,
                 checkpoint_dir: str | os.PathLike | None = None, log_model: bool = False,
                 log_importance: bool = True, log_datasets: bool = True, **start_run_kwargs: Any) -> None:
        super().__init__()
        split_options(start_run_kwargs, (), "TrackhooksCallback")
        if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or
                                             not isinstance(checkpoint_every, int) or checkpoint_every < 1):
            raise ValueError(f"checkpoint_every must be a positive int or None, got {checkpoint_every!r}")
        self._given_run = run
        self._options: dict[str, Any] = dict(checkpoint_every=checkpoint_every, checkpoint_dir=checkpoint_dir,
                                             log_model=log_model, log_importance=log_importance,
                                             log_datasets=log_datasets, **start_run_kwargs)
        self._start_kwargs = start_run_kwargs
        self._every = checkpoint_every
        self._ckpt_root = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self._log_model = bool(log_model)
        self._log_importance = bool(log_importance)
        self._log_datasets = bool(log_datasets)
        self._run: Any = None
        self._reset()
        patch.mark_explicit()
        # the core modules the first recorded fit loads, imported in the user's set-up (collector paused)
        prepare_runs(data=self._log_datasets, media=self._log_importance)

    def _reset(self) -> None:
        self._owned = False
        self._opened: Any = None
        self._ctx: patch.CallContext | None = None
        self._is_cv = False
        self._offset = 0
        self._best0: str | None = None
        self._t0 = 0.0
        self._last_step: int | None = None
        self._log_ref: Any = None
        self._series: list[tuple] = []
        self._config_logged = False
        self._logging = False
        self._broken = False
        self._monitor: str | None = None
        self._mode = "min"
        self._best_value: float | None = None
        self._ckpt_dir: str | None = None

    @property
    def run(self) -> Any:
        """The run of the latest (or current) training, or None before the first one."""
        return self._run

    def __repr__(self) -> str:
        return f"TrackhooksCallback(run={self._run!r})"

    # a callback travels through sklearn's clone (deepcopy) and joblib (pickle): the copy shares the
    # given run (a Run cannot be copied) and starts with fresh training state
    def __deepcopy__(self, memo: dict) -> "TrackhooksCallback":
        return type(self)(self._given_run, **self._options)

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None, **state["options"])  # type: ignore[misc]

    # ---- training hooks ---------------------------------------------------------------------
    def before_training(self, model: Any) -> Any:
        try:
            self._begin(model)
            if self._logging:
                wake_writer()  # the rounds run in C++ without the GIL: the writer's start-up is free beside them
        except Exception as exc:
            self._logging = False
            self._broken = True  # one warning for this training, not one per hook
            self._internal("start", exc)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        if not self._logging:
            return False
        try:
            if evals_log is not self._log_ref:
                self._index(evals_log)
            values: dict[str, float] = {}
            if self._is_cv:
                for hist, key_mean, key_std in self._series:
                    mean, std = hist[-1]
                    values[key_mean] = float(mean)
                    values[key_std] = float(std)
            else:
                for hist, key in self._series:
                    values[key] = hist[-1]
            if self._offset is None:
                self._offset = int(model.num_boosted_rounds()) - epoch - 1
            step = epoch + self._offset
            self._last_step = step
            if values:
                self._run.log_metrics(values, step=step)
            if not self._config_logged:
                self._config_logged = True
                self._log_config(model)
            if self._every is not None and not self._is_cv and (epoch + 1) % self._every == 0:
                self._checkpoint(model, step, values)
        except Exception as exc:
            self._logging = False
            self._broken = True  # one warning, then the training runs untouched
            self._internal("iteration", exc)
        return False

    def after_training(self, model: Any) -> Any:
        if self._run is None or self._broken:
            if patch.current_call(self) is None:
                self._complete()
            return model
        try:
            self._end(model)
        except Exception as exc:
            self._internal("end", exc)
        if patch.current_call(self) is None:  # nobody will tell us how the call ended: it ended well
            self._complete()
        return model

    # ---- called by the wrappers in patch.py ------------------------------------------------------
    def _complete(self) -> None:
        self._finish("finished")

    def _abort(self, exc: BaseException) -> None:
        self._finish("killed" if isinstance(exc, KeyboardInterrupt) else "failed")

    def _finish(self, status: str) -> None:
        self._logging = False
        # drop what pins the user's data and XGBoost's history; the callback may live on in an estimator
        self._ctx, self._log_ref, self._series = None, None, []
        opened, self._opened = self._opened, None
        if opened is None:
            return
        try:
            opened.close(status)
        except Exception as exc:
            self._internal("finish", exc)

    # ---- internals -----------------------------------------------------------------------------
    def _internal(self, where: str, exc: Exception) -> None:
        warn_once(("xgboost", where, type(exc).__name__),
                  f"TrackhooksCallback failed at {where} ({type(exc).__name__}: {exc}); training continues")

    def _begin(self, model: Any) -> None:
        if self._opened is not None:
            # the previous training with this callback ended without after_training and no wrapper saw
            # it end: an exception we could not see (e.g. ``from xgboost import train`` before import)
            self._opened.close("failed")
        self._reset()
        self._run = None
        ctx = self._ctx = patch.current_call(self)
        self._is_cv = not isinstance(model, xgboost.Booster)
        api = ctx.api if ctx is not None else ("cv" if self._is_cv else "train")
        opened = self._opened = open_run("xgboost", run=self._given_run, options=self._start_kwargs)
        if opened is None:  # an inner fit of another integration's fit: only the outer one records
            return
        self._run, self._owned = opened.run, opened.owned
        self._logging = True
        run = self._run
        # the rounds of a model trained further (xgb_model=) are read after XGBoost's first update:
        # num_boosted_rounds() here would configure the booster from inside our callback, and XGBoost's
        # own configuration warnings ("Parameters: {...} are not used") would then point at this file
        self._offset = None
        self._best0 = model.attr("best_iteration")
        tags = {"framework": "xgboost", "xgboost.api": api, "xgboost.version": xgboost.__version__}
        opened.set_tags(tags)
        if self._every is not None and not self._is_cv:
            self._ckpt_dir = os.path.abspath(self._ckpt_root or os.path.join("xgboost_checkpoints", run.id))
        args = ctx.arguments if ctx is not None else {}
        skl = ctx.sklearn if ctx is not None else None
        params: dict[str, Any] = _user_params(args.get("params"))
        params["model.class"] = type(skl.estimator).__name__ if skl is not None else "Booster"
        for key in ("num_boost_round", "early_stopping_rounds", "nfold", "stratified", "seed", "metrics"):
            if key in args and (key == "num_boost_round" or key == "early_stopping_rounds" or self._is_cv):
                value = args[key]
                if key == "metrics":  # a str or a sequence of str
                    value = [value] if isinstance(value, str) else list(value)
                params[key] = value
        dtrain = args.get("dtrain")
        evals = [(d, n) for d, n in (args.get("evals") or ())]
        if dtrain is not None:
            params.update(self._shape("train", dtrain))
        if evals:
            params["evals"] = [n for _, n in evals]
            for d, n in evals:
                params.update(self._shape(f"evals.{n}", d))
        try:
            opened.log_params(params)
        except Exception as exc:
            self._internal("params", exc)
        if self._log_datasets:
            self._record_data(dtrain, evals, skl)
        self._t0 = time.perf_counter()

    @staticmethod
    def _shape(prefix: str, dmatrix: Any) -> dict[str, int]:
        try:
            return {f"{prefix}.rows": int(dmatrix.num_row()), f"{prefix}.cols": int(dmatrix.num_col())}
        except Exception:
            return {}

    def _record_data(self, dtrain: Any, evals: list, skl: patch.SklearnFit | None) -> None:
        run = self._run
        if skl is not None and skl.X is not None:
            log_data(run, skl.X, name="train", context="train")
            if skl.y is not None:
                log_data(run, skl.y, name="train.label", context="train")
            for i, pair in enumerate(skl.eval_set or ()):
                try:
                    X, y = pair
                except Exception:
                    continue
                if X is skl.X and y is skl.y:
                    continue  # the training data evaluated again
                log_data(run, X, name=f"validation_{i}", context="validation")
                log_data(run, y, name=f"validation_{i}.label", context="validation")
            return
        if dtrain is not None:
            log_dmatrix(run, dtrain, name="train", context="train")
        for d, n in evals:
            if d is not dtrain:
                log_dmatrix(run, d, name=str(n), context="validation")

    def _index(self, evals_log: dict) -> None:
        # keep references to XGBoost's own history lists: each round then reads one [-1] per series
        self._log_ref = evals_log
        series: list[tuple] = []
        for data, metrics in evals_log.items():
            for metric, hist in metrics.items():
                key = f"{data}-{metric}"
                series.append((hist, f"{key}-mean", f"{key}-std") if self._is_cv else (hist, key))
                self._monitor, mode_metric = (f"{key}-mean" if self._is_cv else key), metric
        self._series = series
        if series:
            self._mode = "max" if _maximize(mode_metric) else "min"

    def _log_config(self, model: Any) -> None:
        booster = model if not self._is_cv else model.cvfolds[0].bst
        try:
            self._opened.log_params({"config": _drop_counters(json.loads(booster.save_config()))})
        except Exception as exc:
            self._internal("config", exc)

    def _checkpoint(self, model: Any, step: int, values: dict[str, float]) -> None:
        os.makedirs(self._ckpt_dir, exist_ok=True)  # type: ignore[arg-type]
        path = os.path.join(self._ckpt_dir, f"round-{step:06d}.ubj")  # type: ignore[arg-type]
        model.save_model(path)
        best = False
        monitor = self._monitor
        if monitor is not None and monitor in values:
            v = values[monitor]
            prev = self._best_value
            if prev is None or (v > prev if self._mode == "max" else v < prev):
                self._best_value, best = v, True
        self._run.log_checkpoint(path, step=step, metrics=values, best=best, monitor=monitor,
                                 mode=self._mode if monitor is not None else None)

    def _end(self, model: Any) -> None:
        run = self._run
        metrics: dict[str, float] = {"fit_time_s": time.perf_counter() - self._t0}
        args = self._ctx.arguments if self._ctx is not None else {}
        best = model.attr("best_iteration")
        if best is not None and (best != self._best0 or args.get("early_stopping_rounds")):
            metrics["best_iteration"] = int(best)
            score = model.attr("best_score")
            if score is not None:
                metrics["best_score"] = float(score)
        if self._last_step is not None:
            metrics["stopped_round"] = self._last_step
            rounds = args.get("num_boost_round")
            if isinstance(rounds, int):
                run.set_tags({"early_stopped": str(self._last_step - (self._offset or 0) + 1 < rounds).lower()})
        if not self._is_cv and self._log_importance:
            metrics.update(self._importance(model))
        run.log_metrics(metrics, step=self._last_step if self._last_step is not None else 0)
        if not self._is_cv and self._log_model:
            run.log_text("model.ubj", bytes(model.save_raw(raw_format="ubj")))

    def _importance(self, model: Any) -> dict[str, float]:
        from .media import importance_scores, log_importance_table

        every = importance_scores(model)
        log_importance_table(self._run, every)
        scores = {k: v for k, v in every.items() if k in ("weight", "gain", "cover")}
        if not any(scores.values()):
            return {}
        self._run.log_text("feature_importance.json", json.dumps(scores, indent=1, sort_keys=True))
        out: dict[str, float] = {}
        for kind, per_feature in scores.items():
            top = sorted(per_feature.items(), key=lambda kv: -kv[1])[:IMPORTANCE_METRICS_MAX]
            out.update({f"importance.{kind}.{feature}": value for feature, value in top})
        return out


patch.mark_explicit()  # importing the class is explicit use (unless autolog imports it)
