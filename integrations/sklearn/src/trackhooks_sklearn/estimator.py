"""``track(estimator)``: a scikit-learn meta-estimator that records each fit as a run."""

from __future__ import annotations

import copy
from typing import Any

import trackhooks
from trackhooks.plugin import START_RUN_OPTIONS, prepare_runs
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from . import recording


def _inner_has(attr: str):
    """Available when the wrapped estimator (the fitted one once fitted) has ``attr``."""

    def check(self: "TrackedEstimator") -> bool:
        inner = self.__dict__.get("estimator_", self.estimator)
        getattr(inner, attr)  # AttributeError -> the method is unavailable, like the inner one
        return True

    return check


class TrackedEstimator(MetaEstimatorMixin, BaseEstimator):
    """Wraps ``estimator``; ``fit`` fits a clone (``estimator_``) and records it as a run.

    Everything else is delegated: predict, predict_proba, decision_function, transform, score, ...,
    and fitted attributes (``classes_``, ``feature_names_in_``, ``coef_``, ``best_params_``, ...).

    Parameters
    ----------
    estimator : the scikit-learn estimator to fit (never modified; ``estimator_`` is its fitted clone).
    run : a :class:`trackhooks.Run` to record into (left open), or None: each fit starts its own run
        with ``run_kwargs`` and finishes it (failed if the fit raises).
    log_model : save the fitted ``estimator_`` as the artifact ``model.joblib``.
    log_training_metrics : compute accuracy/R²/... on the training data after the fit (one predict).
    run_kwargs : keyword arguments of :func:`trackhooks.start_run` (experiment, name, tags, store, ...).
    """

    def __init__(self, estimator: Any, *, run: trackhooks.Run | None = None, log_model: bool = False,
                 log_training_metrics: bool = True, run_kwargs: dict[str, Any] | None = None):
        self.estimator = estimator
        self.run = run
        self.log_model = log_model
        self.log_training_metrics = log_training_metrics
        self.run_kwargs = run_kwargs

    # ---- fitting ---------------------------------------------------------------------------------
    def _record(self, method: str, X: Any, y: Any, params: dict[str, Any]) -> Any:
        est = clone(self.estimator)
        recording.end_partial(self)

        def call() -> Any:
            out = getattr(est, method)(X, y, **params)
            self.estimator_ = est
            return out

        if recording.depth():  # an inner fit (of a search, a Pipeline being recorded, ...): record nothing
            return call()
        out = recording.record_fit(self, call, X, y, run=self.run, run_kwargs=self.run_kwargs,
                                   model=lambda: self.estimator_, params_of=self.estimator,
                                   save_model=self.log_model, training_metrics=self.log_training_metrics,
                                   kind=method)
        ref = recording.fitted_runs.get(self)
        self.run_id_ = ref.id if ref is not None else None
        return out

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> "TrackedEstimator":
        """Fit a clone of ``estimator`` on (X, y) and record the run."""
        self._record("fit", X, y, fit_params)
        return self

    @available_if(_inner_has("fit_transform"))
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self._record("fit_transform", X, y, fit_params)

    @available_if(_inner_has("fit_predict"))
    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        return self._record("fit_predict", X, y, fit_params)

    @available_if(_inner_has("partial_fit"))
    def partial_fit(self, X: Any, y: Any = None, **fit_params: Any) -> "TrackedEstimator":
        """One incremental step; all partial_fit calls of this tracker are steps of one run."""
        if "estimator_" not in self.__dict__:
            self.estimator_ = clone(self.estimator)
        est = self.estimator_

        def call() -> Any:
            return est.partial_fit(X, y, **fit_params)

        if recording.depth():
            call()
            return self
        recording.record_partial_fit(self, call, X, y, run=self.run, run_kwargs=self.run_kwargs,
                                     model=lambda: est, params_of=self.estimator,
                                     training_metrics=self.log_training_metrics)
        ref = recording.fitted_runs.get(self)
        self.run_id_ = ref.id if ref is not None else None
        return self

    # ---- delegation ------------------------------------------------------------------------------
    @available_if(_inner_has("predict"))
    def predict(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict(X, **params)

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_proba(X, **params)

    @available_if(_inner_has("predict_log_proba"))
    def predict_log_proba(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.predict_log_proba(X, **params)

    @available_if(_inner_has("decision_function"))
    def decision_function(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.decision_function(X, **params)

    @available_if(_inner_has("score_samples"))
    def score_samples(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.score_samples(X, **params)

    @available_if(_inner_has("transform"))
    def transform(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.transform(X, **params)

    @available_if(_inner_has("inverse_transform"))
    def inverse_transform(self, X: Any, **params: Any) -> Any:
        check_is_fitted(self)
        return self.estimator_.inverse_transform(X, **params)

    @available_if(_inner_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features: Any = None) -> Any:
        check_is_fitted(self)
        return self.estimator_.get_feature_names_out(input_features)

    @available_if(_inner_has("score"))
    def score(self, X: Any, y: Any = None, **params: Any) -> float:
        check_is_fitted(self)
        return self.estimator_.score(X, y, **params)

    def __getattr__(self, name: str) -> Any:
        # fitted attributes (classes_, n_features_in_, feature_names_in_, coef_, best_params_, ...)
        if name.endswith("_") and not name.startswith("__"):
            inner = self.__dict__.get("estimator_")
            if inner is not None:
                return getattr(inner, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __sklearn_is_fitted__(self) -> bool:
        return "estimator_" in self.__dict__

    def __sklearn_tags__(self):
        # the tracker behaves exactly like what it wraps (classifier, regressor, transformer, ...)
        return copy.deepcopy(get_tags(self.estimator))

    # ---- copies: a Run is a live handle, shared by copies and never pickled ----------------------
    def __sklearn_clone__(self) -> "TrackedEstimator":
        params = self.get_params(deep=False)
        run, run_kwargs = params.pop("run"), params.pop("run_kwargs")
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, run=run,
                          run_kwargs=None if run_kwargs is None else dict(run_kwargs))

    def __deepcopy__(self, memo: dict) -> "TrackedEstimator":
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            if k == "run":
                new.__dict__[k] = v
            elif k == "run_kwargs" and v is not None:
                new.__dict__[k] = dict(v)  # may hold parent=Run: shared like run
            else:
                new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if state.get("run") is not None:
            state = dict(state, run=None)  # unpickled (e.g. in a joblib worker) it opens its own runs
        kwargs = state.get("run_kwargs")
        if kwargs and isinstance(kwargs.get("parent"), trackhooks.Run):
            state = dict(state, run_kwargs=dict(kwargs, parent=kwargs["parent"].id))  # an id names it as well
        return state


_START_RUN_ARGS = frozenset(START_RUN_OPTIONS)


def track(estimator: Any, run: trackhooks.Run | None = None, *, log_model: bool = False,
          log_training_metrics: bool = True, **start_run_kwargs: Any) -> TrackedEstimator:
    """Wrap ``estimator`` so that each fit records a run; use it anywhere an estimator goes.

    ``run``: record into this run (it is left open). Otherwise ``start_run_kwargs`` (experiment, name,
    tags, store, mirrors, parent, params) open one run per fit, started lazily when ``fit`` begins.
    """
    unknown = sorted(set(start_run_kwargs) - _START_RUN_ARGS)
    if unknown:
        raise TypeError(f"track() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                        f"it takes run=, log_model=, log_training_metrics= and {', '.join(sorted(_START_RUN_ARGS))}")
    if run is not None and start_run_kwargs:
        raise ValueError(f"track(): pass either run= or start_run arguments ({', '.join(start_run_kwargs)}), not both")
    prepare_runs()  # the core modules a recorded fit loads, imported here rather than in the first fit
    return TrackedEstimator(estimator, run=run, log_model=log_model, log_training_metrics=log_training_metrics,
                            run_kwargs=dict(start_run_kwargs) or None)
