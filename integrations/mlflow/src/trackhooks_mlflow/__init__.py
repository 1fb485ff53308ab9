"""trackhooks mirror for MLflow: ``mirrors=["mlflow+http://127.0.0.1:5000"]`` (see docs/mirrors.md)."""

from __future__ import annotations

__all__ = ["MlflowMirror", "decode_key", "encode_key", "param_value", "parse_uri"]


def __getattr__(name: str):
    # lazy: the plugin manager imports this package (for the entry point ``.plugin``) in every process
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import mirror

    value = getattr(mirror, name)
    globals()[name] = value
    return value
