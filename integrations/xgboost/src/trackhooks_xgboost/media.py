"""Feature importance as a table (a rich record): one row per feature, one column per importance type."""

from __future__ import annotations

from typing import Any

from trackhooks.plugin import warn_once

IMPORTANCE_TYPES = ("weight", "gain", "cover", "total_gain", "total_cover")
TABLE_KEY = "feature_importance"


def importance_scores(model: Any) -> dict[str, dict[str, float]]:
    """importance type -> feature -> score, for every type the booster supports.

    Three walks of the trees instead of five: XGBoost defines ``gain`` and ``cover`` as
    ``total_gain`` and ``total_cover`` over ``weight`` (the number of splits), divided in float32;
    the same division here gives the same numbers, bit for bit (tested against ``get_score``).
    """
    scores: dict[str, dict[str, float]] = {}
    for kind in ("weight", "total_gain", "total_cover"):
        try:
            raw = model.get_score(importance_type=kind)
            scores[kind] = {str(k): float(v) for k, v in raw.items()}
        except Exception:
            continue  # gblinear has only weight, and multi-class linear weights are lists
    weight = scores.get("weight")
    if weight:
        import numpy as np

        for total, mean in (("total_gain", "gain"), ("total_cover", "cover")):
            per = scores.get(total)
            if per and per.keys() == weight.keys():
                names = list(per)
                q = (np.array([per[f] for f in names], dtype=np.float32)
                     / np.array([weight[f] for f in names], dtype=np.float32))
                scores[mean] = dict(zip(names, q.tolist()))
            elif per:  # not the split counts it was summed over: ask XGBoost
                try:
                    scores[mean] = {str(k): float(v) for k, v in model.get_score(importance_type=mean).items()}
                except Exception:
                    pass
    return {k: scores[k] for k in IMPORTANCE_TYPES if scores.get(k)}


def log_importance_table(run: Any, scores: dict[str, dict[str, float]], step: int | None = None) -> None:
    """The table ``feature_importance``: columns feature + one per type (None where a feature has no
    score of that type), rows ordered by gain (else weight), largest first."""
    if not scores:
        return
    kinds = [k for k in IMPORTANCE_TYPES if k in scores]
    order = scores.get("gain") or scores[kinds[0]]
    features = sorted({f for per in scores.values() for f in per}, key=lambda f: (-order.get(f, 0.0), f))
    rows = [{"feature": f, **{k: scores[k].get(f) for k in kinds}} for f in features]
    try:
        run.log_table(TABLE_KEY, rows, step=step)
    except Exception as exc:
        warn_once(("xgboost", "importance-table", type(exc).__name__),
                  f"xgboost integration: the feature importance table failed ({type(exc).__name__}: {exc})")
