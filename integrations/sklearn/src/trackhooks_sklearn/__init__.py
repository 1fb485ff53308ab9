"""trackhooks for scikit-learn: ``track(estimator)`` and ``autolog()``.

The package is imported by the plugin manager at entry-point load time, so it stays light: scikit-learn
is only imported when one of the names below is first used (PEP 562).
"""

from __future__ import annotations

_LAZY = {
    "track": "estimator", "TrackedEstimator": "estimator",
    "autolog": "autolog",
    "log_eval": "recording",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trackhooks_sklearn' has no attribute {name!r}")
    import importlib

    from trackhooks.plugin import collector_paused

    # the integration and the core's write path, imported once: objects that all stay, whose young
    # collections would bring a full one of the whole process closer (see trackhooks/collector.py)
    with collector_paused():
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["TrackedEstimator", "autolog", "log_eval", "track"]
