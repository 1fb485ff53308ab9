"""What a study is, in params and tags: directions, sampler and pruner settings, the storage URL."""

from __future__ import annotations

import inspect
from typing import Any

from trackhooks.plugin import redact_uri

_SIMPLE = (bool, int, float, str, type(None))


def settings(obj: Any, depth: int = 0) -> dict[str, Any]:
    """The constructor arguments an object kept as attributes (``x`` or ``_x``), when readable.

    Optuna's samplers and pruners keep their settings as ``self._<argument>``; only plain values
    (and nested samplers/pruners, one level down) are recorded, never RNG states or callables.
    """
    out: dict[str, Any] = {}
    try:
        names = [p for p in inspect.signature(type(obj).__init__).parameters if p not in ("self", "args", "kwargs")]
    except (TypeError, ValueError):
        return out
    for name in names:
        for attr in (f"_{name}", name):
            if attr not in getattr(obj, "__dict__", {}):
                continue
            value = obj.__dict__[attr]
            if isinstance(value, _SIMPLE):
                out[name] = value
            elif isinstance(value, (list, tuple)) and all(isinstance(v, _SIMPLE) for v in value) and len(value) <= 20:
                out[name] = list(value)
            elif depth == 0 and _is_optuna_component(value):
                out[name] = {"class": type(value).__name__, **settings(value, depth + 1)}
            break
    return out


def _is_optuna_component(value: Any) -> bool:
    mod = type(value).__module__ or ""
    return mod.startswith("optuna.") and (type(value).__name__.endswith(("Sampler", "Pruner")))


def storage_url(study: Any) -> str:
    """A readable name of the study's storage, its password redacted (the core's ``redact_uri``)."""
    storage = getattr(study, "_storage", None)
    inner = getattr(storage, "_backend", storage)  # _CachedStorage wraps the RDB storage
    url = getattr(inner, "url", None)
    if isinstance(url, str):
        return redact_uri(url)
    backend = getattr(inner, "_backend", None)  # JournalStorage(JournalFileBackend(path))
    path = getattr(backend, "_file_path", None) or getattr(backend, "file_path", None)
    if isinstance(path, str):
        return f"journal:{path}"
    name = type(inner).__name__
    return "in-memory" if name == "InMemoryStorage" else name


def study_params(study: Any, n_trials: Any, timeout: Any, n_jobs: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    directions = [d.name.lower() for d in study.directions]
    if len(directions) == 1:
        params["direction"] = directions[0]
    else:
        params["directions"] = directions
    sampler = study.sampler
    params["sampler"] = {"class": type(sampler).__name__, **settings(sampler)}
    pruner = getattr(study, "pruner", None)
    if pruner is not None:
        params["pruner"] = {"class": type(pruner).__name__, **settings(pruner)}
    params["n_trials"] = n_trials
    params["timeout"] = timeout
    params["n_jobs"] = n_jobs
    return params


def distribution_text(dist: Any) -> str:
    """``FloatDistribution(high=1.0, log=True, low=1e-05, step=None)``: the class and its settings."""
    try:
        return repr(dist)
    except Exception:
        return type(dist).__name__
