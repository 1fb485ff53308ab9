"""TrackhooksCallback: a study is one parent run, every trial one child run opened when the trial starts.

The Optuna callback protocol is called only after a trial has ended, too late to hand a run to the
framework integrations inside the objective. So ``Study.optimize`` is wrapped (``patch.py``): when
one of its callbacks is a ``TrackhooksCallback`` (or ``autolog()`` is on) the wrapper opens the
study's run, wraps the objective so that each trial's run is opened on the thread that runs the
trial, before the objective, and marked as a container (the core nesting rule: fits inside record
into it), and the callback then finishes the trial's run from Optuna's final record of the trial.

Every step here is guarded: a failure of trackhooks becomes one warning and Optuna goes on exactly
as it would without it; the objective's own exceptions pass through untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

import trackhooks
from trackhooks.plugin import mark_owned, split_options, start_child_run, warn_once

from . import describe

#: the study system attribute that names the study's run (shared by every process of the study)
RUN_ID_ATTR = "trackhooks:run_id"
#: TrackhooksCallback's own keyword arguments (the rest are start_run's, for the study's run)
OWN_OPTIONS = ("run", "trial_name")

_SAFE_LOCK = threading.Lock()


def _warn(where: str, exc: BaseException) -> None:
    warn_once(("optuna", where, type(exc).__name__),
              f"optuna: {where} failed; the study goes on, that part is not recorded ({type(exc).__name__}: {exc})")


class _Trial:
    """What the callback knows about one trial in progress."""

    __slots__ = ("run", "number", "trial", "logged", "steps", "lock")

    def __init__(self, run: trackhooks.Run, number: int, trial: Any):
        self.run, self.number, self.trial = run, number, trial
        self.logged: dict[str, Any] = {}  # params logged as sampled
        self.steps: set[int] = set()  # steps reported (Optuna ignores a repeated step; so do we)
        self.lock = threading.Lock()


class TrackhooksCallback:
    """Record an Optuna study: ``study.optimize(objective, callbacks=[TrackhooksCallback()])``.

    ``run``: record the study into this run (left open). Otherwise the study's run is opened with
    the ``start_run`` keyword arguments (``experiment`` defaults to the study name, ``name`` to the
    study name; ``params``, ``tags``, ``store``, ``mirrors``, ``parent``) and finished when
    ``optimize`` returns; a later ``optimize`` of the same study (this process or another, through
    the study's storage) continues it. ``trial_name``: the child runs' names, a format string with
    ``{number}`` and ``{study}`` (default ``"trial-{number}"``).
    """

    def __init__(self, run: trackhooks.Run | None = None, *, trial_name: str = "trial-{number}",
                 **start_run_kwargs: Any) -> None:
        split_options(start_run_kwargs, OWN_OPTIONS, "TrackhooksCallback")
        if not isinstance(trial_name, str):
            raise TypeError(f"trial_name must be a format string such as 'trial-{{number}}', got {trial_name!r}")
        self._given = run
        self._trial_name = trial_name
        self._kwargs = dict(start_run_kwargs)
        self._run: trackhooks.Run | None = run
        self._owned = False
        self._depth = 0  # optimize calls in progress that this callback records (nested: the outer one)
        self._lock = threading.Lock()
        self._trials: dict[int, _Trial] = {}  # trial id -> trial in progress
        self._best: list[tuple[int, list[float]]] = []  # (number, values): the best trial(s) seen
        self._directions: list[str] = []
        self._study_name = ""
        self._catch: tuple[type[BaseException], ...] = ()
        from . import patch

        patch.mark_explicit()

    @property
    def run(self) -> trackhooks.Run | None:
        """The study's run (during and after ``optimize``)."""
        return self._run

    def __repr__(self) -> str:
        return f"TrackhooksCallback(run={self._run!r})"

    # ---- ask-and-tell loops (optimize does all of this itself) ------------------------------------
    def start(self, study: optuna.Study) -> None:
        """Open (or continue) the study's run for a loop of your own: ``study.ask()``, run the
        objective through ``wrap_objective``, ``study.tell(...)``, then call the callback with the
        FrozenTrial ``tell`` returned; ``end()`` when the loop is over."""
        from . import patch

        # the loop tells Optuna about every exception and then calls us: nothing ends a trial early
        if self._begin_optimize(study, None, None, 1, (Exception,)):
            patch.add_live(self)

    def end(self, exc: BaseException | None = None) -> None:
        """End the study's run started by ``start`` (``exc``: the loop failed with it)."""
        from . import patch

        patch.remove_live(self)
        self._end_optimize(exc)

    # ---- called by the optimize wrapper --------------------------------------------------------
    def _begin_optimize(self, study: optuna.Study, n_trials: Any, timeout: Any, n_jobs: Any, catch: Any) -> bool:
        """Open (or continue) the study's run. False: this optimize is not recorded by this callback."""
        with self._lock:
            if self._depth >= 1:  # optimize inside an objective (a nested study): the outer call records
                return False
            self._depth += 1
        try:
            self._catch = _catch_tuple(catch)
            self._study_name = study.study_name
            self._directions = [d.name.lower() for d in study.directions]
            self._run, self._owned = self._open_study_run(study)
            run = self._run
            params = describe.study_params(study, n_trials, timeout, n_jobs)
            _log_params_kept(run, params)
            run.set_tags({"framework": "optuna", "optuna.version": optuna.__version__,
                          "optuna.study_name": study.study_name, "optuna.storage": describe.storage_url(study)})
            self._best = []
            self._seed_best(study)
            return True
        except Exception as exc:
            _warn("opening the study's run", exc)
            with self._lock:
                self._depth -= 1
            self._run = self._given
            return False

    def _end_optimize(self, exc: BaseException | None) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth > 0:
                return
            leftover = list(self._trials.values())
            self._trials.clear()
        for t in leftover:  # trials whose end Optuna never reported to callbacks (optimize raised)
            with contextlib.suppress(Exception):
                t.run.set_tags({"optuna.state": "FAIL"})
                t.run.finish("killed" if isinstance(exc, KeyboardInterrupt) else "failed", timeout=0)
        run = self._run
        if run is None or run.status != "running":
            return
        try:
            if len(self._directions) > 1 and self._best:
                front = [{"number": n, "values": v} for n, v in sorted(self._best)]
                run.log_text("pareto_front.json", json.dumps(front, indent=1))
            if self._owned:
                status = "finished" if exc is None else "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
                run.finish(status)
            else:
                run.flush()
        except Exception as err:
            _warn("finishing the study's run", err)

    def _open_study_run(self, study: optuna.Study) -> tuple[trackhooks.Run, bool]:
        if self._given is not None:
            return self._given, False
        kwargs = dict(self._kwargs)
        kwargs.setdefault("experiment", study.study_name)
        kwargs.setdefault("name", study.study_name)
        # one parent per study, whichever process starts first: its id lives in the study's storage
        with _study_lock(study):
            run_id = _study_attr(study)
            if run_id is not None:
                try:
                    run = trackhooks.start_run(resume=run_id, store=kwargs.get("store"), mirrors=kwargs.get("mirrors"))
                    mark_owned(run, "optuna")
                    return run, True
                except trackhooks.RunNotFoundError:
                    pass  # the study's run lives in another store (another host): this store gets its own
            run = trackhooks.start_run(**kwargs)
            mark_owned(run, "optuna")
            if run_id is None:
                study._storage.set_study_system_attr(study._study_id, RUN_ID_ATTR, run.id)
        return run, True

    def _seed_best(self, study: optuna.Study) -> None:
        """The best trial(s) so far (a resumed study, or other processes' trials)."""
        try:
            if len(self._directions) == 1:
                best = study.best_trial
                self._best = [(best.number, [float(best.value)])]
            else:
                self._best = [(t.number, [float(v) for v in t.values]) for t in study.best_trials]
        except Exception:  # no completed trial yet
            self._best = []

    def wrap_objective(self, func: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        """The objective with this callback's trial runs around it (``optimize`` does this itself;
        call it for a loop of your own that calls the objective)."""

        def objective(trial: optuna.Trial) -> Any:
            t = self._begin_trial(trial)
            if t is None:
                return func(trial)
            try:
                return func(trial)
            except BaseException as exc:
                self._trial_raised(trial, t, exc)
                raise

        objective.__wrapped__ = func  # type: ignore[attr-defined]
        return objective

    # ---- a trial ---------------------------------------------------------------------------------
    def _begin_trial(self, trial: optuna.Trial) -> _Trial | None:
        parent = self._run
        if parent is None or parent.status != "running" or self._depth < 1:
            return None
        try:
            number = trial.number
            name = self._trial_name.format(number=number, study=self._study_name)
            # no store transaction on the trial's thread: the writer records the row with its next batch
            # a container from the start: fits on this thread record into it (the core nesting rule)
            run = start_child_run(parent, name, tags={"optuna.trial_number": number,
                                                      "optuna.study_name": self._study_name}, container="optuna")
            t = _Trial(run, number, trial)
            fixed = getattr(trial, "_fixed_params", None) or {}
            with self._lock:
                self._trials[trial._trial_id] = t
            if fixed:
                run.set_tags({"optuna.fixed_params": ",".join(sorted(map(str, fixed)))})
            return t
        except Exception as exc:
            _warn("opening the trial's run", exc)
            return None

    def _trial(self, trial: Any) -> _Trial | None:
        t = self._trials.get(getattr(trial, "_trial_id", None))  # type: ignore[arg-type]
        return t if t is not None and t.trial is trial else None

    def _param_sampled(self, trial: Any, name: str, value: Any, distribution: Any) -> None:
        t = self._trial(trial)
        if t is None or name in t.logged:
            return
        try:
            with t.lock:
                t.logged[name] = value
            t.run.log_params({name: value})
        except trackhooks.ParamConflictError:
            pass  # a framework inside the objective logged that key first: its value stays
        except Exception as exc:
            _warn("recording a sampled param", exc)

    def _reported(self, trial: Any, value: Any, step: int) -> None:
        t = self._trial(trial)
        if t is None:
            return
        try:
            with t.lock:
                if step in t.steps:
                    return
                t.steps.add(step)
            t.run.log_metric("objective", float(value), step=int(step))
        except Exception as exc:
            _warn("recording trial.report", exc)

    def _trial_raised(self, trial: Any, t: _Trial, exc: BaseException) -> None:
        """The objective raised. Optuna reports a pruned or caught failure to the callbacks later;
        any other exception ends ``optimize`` without that, so the run ends here."""
        try:
            if isinstance(exc, optuna.TrialPruned):
                return
            t.run.set_tags({"optuna.fail_reason": f"{type(exc).__name__}: {exc}"[:500]})
            if isinstance(exc, Exception) and isinstance(exc, self._catch):
                return
            with self._lock:
                self._trials.pop(trial._trial_id, None)
            t.run.set_tags({"optuna.state": "FAIL"})
            t.run.finish("killed" if isinstance(exc, KeyboardInterrupt) else "failed", timeout=0)
        except Exception as err:
            _warn("recording the trial's failure", err)

    # ---- the Optuna callback: after each trial -----------------------------------------------------
    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            with self._lock:
                t = self._trials.pop(trial._trial_id, None)
            if t is not None:
                self._end_trial(t, trial)
            if study.study_name == self._study_name:
                self._study_progress(trial)
        except Exception as exc:
            _warn("recording the trial", exc)

    def _end_trial(self, t: _Trial, frozen: optuna.trial.FrozenTrial) -> None:
        run = t.run
        state = frozen.state
        params = {k: v for k, v in frozen.params.items() if k not in t.logged and k not in run.params}
        params.update({f"distribution.{k}": describe.distribution_text(d) for k, d in frozen.distributions.items()})
        if frozen.user_attrs:
            params["user_attrs"] = {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v, default=str)
                                    for k, v in frozen.user_attrs.items()}
        _log_params_kept(run, params)
        # intermediate values this process did not see reported (a trial re-run from storage)
        for step, value in sorted(frozen.intermediate_values.items()):
            if step not in t.steps:
                run.log_metric("objective", float(value), step=int(step))
        metrics: dict[str, float] = {}
        if frozen.values is not None:
            if len(frozen.values) == 1:
                metrics["value"] = float(frozen.values[0])
            else:
                metrics.update({f"values/{i}": float(v) for i, v in enumerate(frozen.values)})
        if frozen.datetime_start is not None and frozen.datetime_complete is not None:
            metrics["duration_s"] = (frozen.datetime_complete - frozen.datetime_start).total_seconds()
        if metrics:
            run.log_metrics(metrics, step=0)
        tags = {"optuna.state": state.name}
        if state == TrialState.PRUNED:
            tags["pruned"] = "true"
            if frozen.last_step is not None:
                tags["optuna.pruned_at_step"] = str(frozen.last_step)
        run.set_tags(tags)
        # finished without waiting for the writer: a trial must not wait for I/O (optimize's end flushes)
        run.finish("failed" if state == TrialState.FAIL else "finished", timeout=0)

    def _study_progress(self, frozen: optuna.trial.FrozenTrial) -> None:
        """Best value(s), trial and params on the study's run, step = trial number."""
        run = self._run
        if run is None or run.status != "running" or frozen.state != TrialState.COMPLETE or frozen.values is None:
            return
        values = [float(v) for v in frozen.values]
        number = frozen.number
        with self._lock:
            if len(self._directions) == 1:
                value = values[0]
                maximize = self._directions[0] == "maximize"
                improved = not self._best or (value > self._best[0][1][0] if maximize else value < self._best[0][1][0])
                if improved:
                    self._best = [(number, values)]
                best_number, best_values = self._best[0]
            else:
                improved = _update_front(self._best, number, values, self._directions)
        if len(self._directions) == 1:
            run.log_metrics({"trial_value": values[0], "best_value": best_values[0]}, step=number)
            if improved:
                run.log_metric("best_trial", float(best_number), step=number)
                run.set_tags({"optuna.best_trial": str(best_number),
                              "optuna.best_params": json.dumps(frozen.params, default=str, sort_keys=True)})
        else:
            run.log_metrics({f"trial_values/{i}": v for i, v in enumerate(values)}, step=number)
            run.log_metric("pareto_front_size", float(len(self._best)), step=number)
            if improved:
                run.set_tags({"optuna.best_trials": ",".join(str(n) for n, _ in sorted(self._best))})


# ---- helpers ----------------------------------------------------------------------------------


def _catch_tuple(catch: Any) -> tuple[type[BaseException], ...]:
    if isinstance(catch, type):
        return (catch,)
    try:
        return tuple(catch or ())
    except TypeError:
        return ()


def _log_params_kept(run: trackhooks.Run, params: dict[str, Any]) -> None:
    """log_params keeping values the run already holds (a resumed study, another process)."""
    from trackhooks.plugin import flatten_params

    have = run.params
    new = {k: v for k, v in flatten_params(params).items() if k not in have}
    if new:
        run.log_params(new)


def _dominates(a: list[float], b: list[float], directions: list[str]) -> bool:
    better = False
    for x, y, d in zip(a, b, directions):
        if (x < y) if d == "maximize" else (x > y):
            return False
        if x != y:
            better = True
    return better


def _update_front(front: list[tuple[int, list[float]]], number: int, values: list[float],
                  directions: list[str]) -> bool:
    """Add a trial to the Pareto front in place if nothing there dominates it; True if added."""
    if any(_dominates(v, values, directions) or v == values and n != number for n, v in front):
        return False
    front[:] = [(n, v) for n, v in front if not _dominates(values, v, directions)]
    front.append((number, values))
    return True


def _study_attr(study: optuna.Study) -> str | None:
    value = study._storage.get_study_system_attrs(study._study_id).get(RUN_ID_ATTR)
    return value if isinstance(value, str) else None


@contextlib.contextmanager
def _study_lock(study: optuna.Study):
    """Serialise "find or create the study's run" between processes of this host (a file lock)."""
    import hashlib

    with _SAFE_LOCK:
        try:
            import fcntl
        except ImportError:  # no POSIX locks: processes racing on a new study may each open a run
            yield
            return
        key = hashlib.sha1(f"{describe.storage_url(study)}|{study.study_name}".encode()).hexdigest()[:16]
        path = os.path.join(tempfile.gettempdir(), f"trackhooks-optuna-{key}.lock")
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


__all__ = ["TrackhooksCallback", "RUN_ID_ATTR"]


def _install_at_import() -> None:
    # ``study.optimize(f, callbacks=[TrackhooksCallback()])`` looks ``optimize`` up before the callback
    # exists: the wrapper must already be in place when the class can first be named
    from . import patch

    patch.mark_explicit()


_install_at_import()
