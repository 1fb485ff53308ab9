"""What the command line and the HTML report say about runs: metric summaries, the "which run is
best" rule, headline metrics, display formatting and JSON-safe conversion.

Pure Python on purpose (no numpy): the CLI must start fast and work in an environment that has
only the core installed.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Iterable

# A metric is lower-is-better when one of these appears in its key (as a word part: "val_loss",
# "test_rmse", "mean_absolute_error", "fit_time_s"); otherwise higher is better ("acc", "f1", "auc",
# "score", ...). Keys that describe the training schedule rather than quality are never ranked.
LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "rmsle", "logloss", "mape", "mphe",
                   "nloglik", "deviance", "perplexity", "rank", "time", "duration")
NOT_RANKED = ("lr", "learning_rate", "epoch", "step", "momentum", "weight_decay", "batch_size")
_WORDS = re.compile(r"[A-Za-z]+")
# keys that are bookkeeping: never headline metrics
_BOOKKEEPING = ("epoch_duration_s", "samples_per_s", "fit_time_s", "score_time_s", "epoch", "step")


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(key)]


def metric_direction(key: str) -> str | None:
    """"min" if lower is better for this metric key, "max" if higher is better, None if unranked.

    The rule (documented in docs/cli.md): learning rates, momentum, epoch and step counters and
    spreads are not ranked ("lr", "lr.0", "learning_rate", "std_test_score"); scikit-learn's negated scores ("neg_log_loss") are
    higher-is-better; keys with a word (or a word ending) from LOWER_IS_BETTER are lower-is-better
    ("val_loss", "test_rmse", "mlogloss", "merror", "fit_time_s"); every other key is
    higher-is-better ("acc", "f1", "auc", "score"). System samples (``system/...``: CPU, memory,
    GPU) describe the machine, not the model: not ranked.
    """
    if key.startswith("system/"):
        return None
    words = _words(key)
    joined = "_".join(words)
    if not words or joined in NOT_RANKED or "lr" in words or "std" in words or joined.endswith("learning_rate"):
        return None
    if "neg" in words:
        return "max"
    for w in words:
        if w in LOWER_IS_BETTER or any(w.endswith(t) and len(t) >= 4 for t in ("loss", "error")):
            return "min"
    return "max"


def finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if v == v]  # drops NaN, keeps ±inf (they were logged as such)


class Summary:
    """count/last/min/max and step/epoch ranges of one metric series."""

    __slots__ = ("key", "count", "last", "min", "max", "first_step", "last_step", "min_step", "max_step",
                 "min_epoch", "max_epoch")

    def __init__(self, key: str, steps: list[int], epochs: list[int | None], values: list[float]):
        self.key = key
        self.count = len(values)
        self.last = values[-1] if values else None
        vals = finite(values)
        self.min = min(vals) if vals else (math.nan if values else None)
        self.max = max(vals) if vals else (math.nan if values else None)
        self.first_step = steps[0] if steps else None
        self.last_step = steps[-1] if steps else None
        self.min_step = min(steps) if steps else None
        self.max_step = max(steps) if steps else None
        eps = [e for e in epochs if e is not None]
        self.min_epoch = min(eps) if eps else None
        self.max_epoch = max(eps) if eps else None

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "last": jsonable(self.last), "min": jsonable(self.min),
                "max": jsonable(self.max), "min_step": self.min_step, "max_step": self.max_step,
                "first_step": self.first_step, "last_step": self.last_step,
                "min_epoch": self.min_epoch, "max_epoch": self.max_epoch}


def summarize(rec: Any, key: str) -> Summary:
    s = rec.metric(key)
    return Summary(key, s.steps, s.epochs, s.values)


def last_value(rec: Any, key: str) -> float | None:
    # the store keeps per-key summaries: listing many runs must not read whole series
    summaries = getattr(rec, "metric_summaries", None)
    if summaries is not None:
        cache = rec.__dict__.setdefault("_summaries_cache", None) if hasattr(rec, "__dict__") else None
        if cache is None:
            cache = summaries()
            if hasattr(rec, "__dict__"):
                rec._summaries_cache = cache
        found = cache.get(key)
        if found is not None and found["last"] is not None:
            return found["last"]
    return rec.metric(key).last  # NaN last values are not summarised: read the series


def headline_rank(key: str) -> int:
    low = key.lower()
    if low.startswith("test"):
        return 0
    if low.startswith("val"):
        return 1
    if any(w in low for w in ("loss", "acc", "score", "auc", "f1", "rmse", "error", "mse", "mae")):
        return 2
    return 3


def headline_keys(keys: Iterable[str], limit: int = 3) -> list[str]:
    """The few metrics a one-line listing shows: test, then validation, then quality metrics."""
    cands = [k for k in keys if k not in _BOOKKEEPING and metric_direction(k) is not None
             and not {"time", "duration", "rank"} & set(_words(k))]
    return sorted(cands, key=lambda k: (headline_rank(k), k))[:limit]


def best_index(values: list[float | None], direction: str | None) -> int | None:
    """Index of the best value under ``direction`` ("min"/"max"), ignoring missing and NaN."""
    if direction is None:
        return None
    best: int | None = None
    for i, v in enumerate(values):
        if v is None or v != v:
            continue
        if best is None or (v < values[best] if direction == "min" else v > values[best]):  # type: ignore[operator]
            best = i
    return best


def training_data_warning(recs: list[Any]) -> str | None:
    """A warning when the runs saw different training data (dataset context "train"), else None.

    Runs that recorded no training data are named but do not by themselves trigger the warning:
    only a difference between recorded digests does.
    """
    digests: dict[str, frozenset[str]] = {}
    for r in recs:
        try:
            ds = r.datasets()
        except Exception:  # an older store without dataset records
            ds = []
        digests[r.id] = frozenset(d.digest for d in ds if d.context == "train")
    recorded = {rid: d for rid, d in digests.items() if d}
    if len(set(recorded.values())) <= 1:
        return None
    parts = [f"{r.id[:8]}: " + ", ".join(sorted(x[:12] for x in digests[r.id])) for r in recs if digests[r.id]]
    unknown = len(recs) - len(recorded)
    tail = f"; {unknown} other run{'s' if unknown != 1 else ''} recorded none" if unknown else ""
    return "these runs saw different training data (" + "; ".join(parts) + tail + ")"


# ---- formatting ------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """NaN/±inf as the strings "NaN"/"Infinity"/"-Infinity" so that output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def fmt_num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)


def fmt_value(value: Any) -> str:
    """A param/tag value for display: numbers short, strings as they are, others as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) or value is None:
        return fmt_num(value) if isinstance(value, float) else str(value)
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def fmt_size(n: int | None) -> str:
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def fmt_steps(lo: int | None, hi: int | None) -> str:
    if lo is None:
        return "—"
    return str(lo) if lo == hi else f"{lo}–{hi}"


def schema_text(schema: dict[str, Any], n_rows: int | None) -> str:
    """One line describing a dataset record's schema."""
    kind = schema.get("kind")
    parts: list[str] = []
    if kind:
        parts.append(str(kind))
    if "shape" in schema:
        parts.append("×".join(str(s) for s in schema["shape"]))
    if "dtype" in schema:
        parts.append(str(schema["dtype"]))
    if "columns" in schema and isinstance(schema["columns"], list):
        cols = [str(c) for c in schema["columns"]]
        parts.append(f"{len(cols)} columns: " + ", ".join(cols[:6]) + (", …" if len(cols) > 6 else ""))
    if kind in ("directory", "file") and isinstance(schema.get("files"), list):
        files = schema["files"]
        total = sum(int(f.get("size") or 0) for f in files if isinstance(f, dict))
        parts.append(f"{len(files)} file{'s' if len(files) != 1 else ''}, {fmt_size(total)}")
    if n_rows is not None and "shape" not in schema:
        parts.append(f"{n_rows} rows")
    return " ".join(parts) if parts else "—"


def clean(text: Any) -> str:
    """A user string made safe for a terminal: control characters (ESC included) shown escaped."""
    s = str(text)
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in s):
        s = "".join(c if (32 <= ord(c) < 127 or ord(c) >= 160) else repr(c)[1:-1] for c in s)
    return s


def some(keys: list[str], limit: int = 12) -> str:
    """A comma-separated list that stays one readable line."""
    head = ", ".join(keys[:limit])
    return head + (f", … (+{len(keys) - limit} more)" if len(keys) > limit else "")


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            out[key] = " ".join(v)
        else:
            out[key] = v
    return out


def short_ids(ids: Iterable[str], minimum: int = 8) -> dict[str, str]:
    """The shortest prefix (at least ``minimum`` characters) that is unique among ``ids``."""
    ids = list(dict.fromkeys(ids))
    n = minimum
    while n < 32 and len({i[:n] for i in ids}) < len(ids):
        n += 2
    return {i: i[:n] for i in ids}


def run_brief(rec: Any, *, with_metrics: bool = True) -> dict[str, Any]:
    """A run as JSON: identity, timing, params, tags and the last value of every metric."""
    out: dict[str, Any] = {
        "id": rec.id, "name": rec.name, "experiment": rec.experiment, "status": rec.status,
        "parent_id": rec.parent_id, "start_time": rec.start_time, "end_time": rec.end_time,
        "duration_s": rec.duration, "framework": rec.tags.get("framework"),
        "params": jsonable(rec.params), "tags": rec.tags,
    }
    if with_metrics:
        out["metrics"] = {k: jsonable(last_value(rec, k)) for k in rec.metric_keys()}
    return out


# ---- hyperparameter studies (trackhooks-optuna: a study run whose children are its trials) --------


def is_study(rec: Any) -> bool:
    """A study's run: recorded by an integration that sets ``optuna.study_name`` without a trial number."""
    tags = rec.tags
    return "optuna.study_name" in tags and "optuna.trial_number" not in tags


def study_directions(rec: Any) -> list[str]:
    params = rec.params
    if "direction" in params:
        return [str(params["direction"])]
    dirs = params.get("directions")
    return [str(d) for d in dirs] if isinstance(dirs, (list, tuple)) else ["minimize"]


_STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "FAIL": 3}


def study_view(rec: Any, *, curves: bool = False) -> dict[str, Any]:
    """A study's trials, read from its children through the read API, best first.

    Each trial: number, id, name, status, state, value (single objective) or values, the sampled
    params (those with a recorded distribution), duration, pruned, and with ``curves`` the
    intermediate ``objective`` values (steps, values). ``param_kinds``: linear, log or categorical
    (from the recorded distributions), for the axes of a parallel-coordinates view. Sorting: complete trials by value in the
    study's direction (the first objective for several), then pruned, running and failed ones.
    """
    directions = study_directions(rec)
    trials: list[dict[str, Any]] = []
    names: list[str] = []
    kinds: dict[str, str] = {}
    for c in rec.children():
        tags = c.tags
        try:
            number = int(tags.get("optuna.trial_number", ""))
        except ValueError:
            continue
        params = c.params
        sampled = sorted(k[len("distribution."):] for k in params if k.startswith("distribution."))
        for k in sampled:
            if k not in names:
                names.append(k)
                dist = str(params.get(f"distribution.{k}", ""))
                kinds[k] = "categorical" if dist.startswith("Categorical") else "log" if "log=True" in dist \
                    else "linear"
        keys = c.metric_keys()
        if len(directions) == 1:
            values = [last_value(c, "value")] if "value" in keys else None
        else:
            values = [last_value(c, f"values/{i}") for i in range(len(directions))] \
                if all(f"values/{i}" in keys for i in range(len(directions))) else None
        trial = {"number": number, "id": c.id, "name": c.name, "status": c.status,
                 "state": tags.get("optuna.state", "RUNNING" if c.status == "running" else c.status.upper()),
                 "value": values[0] if values else None, "values": values,
                 "params": {k: params.get(k) for k in sampled}, "duration": last_value(c, "duration_s"),
                 "pruned": tags.get("pruned") == "true"}
        if curves and "objective" in keys:
            s = c.metric("objective")
            trial["objective"] = {"steps": list(s.steps), "values": list(s.values)}
        trials.append(trial)
    sign = -1.0 if directions[0] == "maximize" else 1.0

    def order(t: dict[str, Any]) -> tuple:
        v = t["value"]
        finite_v = v is not None and not math.isnan(v)
        return (_STATE_ORDER.get(t["state"], 4), 0 if finite_v else 1, sign * v if finite_v else 0.0, t["number"])

    trials.sort(key=order)
    best = [t["number"] for t in trials if t["state"] == "COMPLETE"][:1] if len(directions) == 1 else []
    if len(directions) > 1:
        best = sorted(int(n) for n in rec.tags.get("optuna.best_trials", "").split(",") if n.strip().isdigit())
    return {"directions": directions, "param_names": names, "param_kinds": kinds, "trials": trials, "best": best}
