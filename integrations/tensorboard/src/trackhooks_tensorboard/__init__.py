"""trackhooks mirror for TensorBoard: ``mirrors=["tensorboard:runs"]`` (see docs/mirrors.md)."""

from __future__ import annotations

from .mirror import TensorBoardMirror, parse_uri, run_dir_name

__all__ = ["TensorBoardMirror", "parse_uri", "run_dir_name"]
