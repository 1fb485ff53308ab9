"""Dataset records for the data an XGBoost training saw (issue 11).

Preference order per data set: the arrays given to the sklearn API (their digest equals what any
other integration records for the same arrays); a DMatrix through ``run.log_dataset`` if the core
supports it; else the DMatrix's features rebuilt from ``get_data()`` as a float32 matrix with NaN
where a value is missing, plus its labels; else its labels alone (the shape is always in the params).
Nothing here raises: a data set that cannot be fingerprinted is reported in one warning.
"""

from __future__ import annotations

from typing import Any

from trackhooks.plugin import warn_once

#: above this many cells a DMatrix is not densified to fingerprint it; its labels are recorded alone
MAX_DENSE_CELLS = 25_000_000


def log_data(run: Any, data: Any, *, name: str, context: str) -> bool:
    """``run.log_dataset`` that converts what the core rejects and only warns if nothing works."""
    try:
        run.log_dataset(data, name=name, context=context)
        return True
    except Exception as first:
        to_numpy = getattr(data, "to_numpy", None)  # pandas / polars until the core knows them
        if callable(to_numpy):
            try:
                run.log_dataset(to_numpy(), name=name, context=context)
                return True
            except Exception:
                pass
        warn_once(("xgboost", "dataset", type(data)),
                  f"could not record dataset {name!r} of type {type(data).__module__}.{type(data).__name__}: "
                  f"{type(first).__name__}: {first}")
        return False


def log_dmatrix(run: Any, dmatrix: Any, *, name: str, context: str) -> None:
    """Record a DMatrix by its content where reachable, else by its labels."""
    try:
        run.log_dataset(dmatrix, name=name, context=context)
        return  # the core understands DMatrix
    except Exception:
        pass
    features = None
    try:
        n, m = int(dmatrix.num_row()), int(dmatrix.num_col())
        if n * m <= MAX_DENSE_CELLS:
            features = _dense(dmatrix.get_data(), n, m)
    except Exception as exc:
        warn_once(("xgboost", "dmatrix-data", type(dmatrix)),
                  f"cannot read the features of {type(dmatrix).__name__} {name!r} ({type(exc).__name__}: {exc}); "
                  "recording its shape and labels only")
    if features is not None:
        log_data(run, features, name=name, context=context)
    try:
        label = dmatrix.get_label()
    except Exception:
        label = None
    if label is not None and len(label):
        log_data(run, label, name=f"{name}.label", context=context)


def _dense(csr: Any, n: int, m: int) -> Any:
    import numpy as np

    # XGBoost drops missing values from its CSR view; NaN restores them, so a dense numpy input with
    # NaN for missing comes back exactly as float32
    out = np.full((n, m), np.nan, dtype=np.float32)
    rows = np.repeat(np.arange(n), np.diff(csr.indptr))
    out[rows, csr.indices] = csr.data
    return out
