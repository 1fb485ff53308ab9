"""trackhooks mirror for MLflow: ``mirrors=["mlflow+http://127.0.0.1:5000"]`` (see docs/mirrors.md)."""

from __future__ import annotations

from .mirror import MlflowMirror, decode_key, encode_key, param_value, parse_uri

__all__ = ["MlflowMirror", "decode_key", "encode_key", "param_value", "parse_uri"]
