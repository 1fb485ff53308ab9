"""Choose a Keras backend that can load when the user did not choose one.

Keras 3 defaults to the TensorFlow backend (and writes that default into ``~/.keras/keras.json`` on
its first import). Where the backend named by ``KERAS_BACKEND``, ``keras.json`` or that default is
not installed (a torch- or jax-only environment, as here), ``import keras`` fails. Before trackhooks
imports Keras for the first time, it sets ``KERAS_BACKEND`` to the first installed of torch and jax
in that case only: a backend that is configured and installed is never overridden, and
nothing changes once Keras is imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys


_MODULES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax", "numpy": "numpy", "openvino": "openvino"}


def _configured_backend() -> str | None:
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend") or None
    except (OSError, ValueError, AttributeError):
        return None


def ensure_loadable_backend() -> str | None:
    """Set KERAS_BACKEND when Keras would otherwise fail on a missing TensorFlow; return the choice."""
    if "keras" in sys.modules:
        return None
    configured = _configured_backend() or "tensorflow"
    # Keras writes {"backend": "tensorflow"} into ~/.keras/keras.json on its first import, so a
    # configured backend only counts when its package is installed
    if importlib.util.find_spec(_MODULES.get(configured, configured)) is not None:
        return None
    for backend, module in (("torch", "torch"), ("jax", "jax")):  # Keras' numpy backend needs jax too
        if importlib.util.find_spec(module) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return backend
    return None
