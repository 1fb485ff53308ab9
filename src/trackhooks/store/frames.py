"""pandas DataFrames of runs and metric points. pandas (and numpy) are imported only here, when a
frame is asked for; without pandas the call raises ImportError naming the package to install.

``runs_frame``: one row per run, columns id, name, experiment, status, parent_id, start_time,
end_time (pandas UTC timestamps, like MLflow's search_runs), duration (seconds), then
``params.<key>`` (numbers and strings as logged), ``tags.<key>`` and ``metrics.<key>`` (the last
value). Four queries in all, whatever the number of runs (runs, then params, tags and metric
summaries of those runs).

``metrics_frame``: one row per point in logging order per key (and per run, in the order given):
columns ``run_id`` (many runs only), key, step, epoch (nullable Int64), value, timestamp (seconds).
One query reads the packed point blocks of all the keys and runs.
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

_RUN_COLUMNS = ["id", "name", "experiment", "status", "parent_id", "start_time", "end_time", "duration"]


def _pandas(what: str):
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(f"{what} needs pandas: pip install pandas") from exc
    return pandas


def decode_params(texts: list[str]) -> list[Any]:
    """The stored JSON texts of many params, decoded by one C-speed ``json.loads`` of them all
    (one call per value costs ~1 us each, most of a 10 000-run frame)."""
    try:
        return json.loads("[" + ",".join(texts) + "]")
    except ValueError:  # a value that is not JSON (never written by trackhooks): one at a time
        out = []
        for t in texts:
            try:
                out.append(json.loads(t))
            except ValueError:
                out.append(t)
        return out


def runs_frame(store: Any, records: list[tuple], ids: list[str]) -> Any:
    """Build the frame from the run rows the engine selected (``records``: id, name, experiment,
    status, parent_id, start_time, end_time, duration, in order) and ``store._rows``."""
    pd = _pandas("runs_frame()")
    n = len(ids)
    index = {rid: i for i, rid in enumerate(ids)}
    cols: dict[str, list[Any]] = {c: [r[i] for r in records] for i, c in enumerate(_RUN_COLUMNS)}
    id_list = json.dumps(ids)
    extra: dict[str, list[Any]] = {}

    def put(prefix: str, rows: Any, values: Any) -> None:
        block: dict[str, list[Any]] = {}
        for (run_id, key, _), value in zip(rows, values):
            col = block.get(key)
            if col is None:
                col = block[key] = [None] * n
            col[index[run_id]] = value
        for key in sorted(block):
            extra[f"{prefix}.{key}"] = block[key]

    prows = store._rows_in("SELECT run_id, key, value FROM params WHERE run_id IN {ids}", id_list)
    pvals = decode_params([r[2] for r in prows])
    # a cell holds a scalar: a list or dict param keeps its JSON text
    pvals = [v if not isinstance(v, (list, dict)) else r[2] for r, v in zip(prows, pvals)]
    put("params", prows, pvals)
    trows = store._rows_in("SELECT run_id, key, value FROM tags WHERE run_id IN {ids}", id_list)
    put("tags", trows, [r[2] for r in trows])
    metric_rows = store._rows_in("SELECT run_id, key, last_value FROM metric_keys WHERE n > 0 AND run_id IN {ids}",
                                 id_list)
    block: dict[str, list[Any]] = {}
    nan = float("nan")
    for run_id, key, value in metric_rows:
        col = block.get(key)
        if col is None:
            col = block[key] = [nan] * n
        col[index[run_id]] = nan if value is None else value
    for key in sorted(block):
        extra[f"metrics.{key}"] = block[key]
    frame = pd.DataFrame(cols)
    for c in ("start_time", "end_time"):
        frame[c] = pd.to_datetime(frame[c].astype("float64"), unit="s", utc=True)
    frame["duration"] = frame["duration"].astype("float64")
    if extra:
        frame = pd.concat([frame, pd.DataFrame(extra)], axis=1)
    return frame


def duration_of(status: str, start: float, end: float | None, heartbeat: float | None,
                now: float | None = None) -> float | None:
    """The same rule as RunRecord.duration: a live run up to now, a dead one up to its last heartbeat."""
    if end is None:
        end = heartbeat if status != "running" else (time.time() if now is None else now)
    return None if end is None else max(0.0, end - start)


def points_frame(parts: Sequence[tuple[Any, str, Any]], with_run_id: bool) -> Any:
    """``parts``: (run_id, key, Series) in the order the rows should appear."""
    pd = _pandas("metrics_frame()")
    import numpy as np

    from .records import NO_EPOCH

    steps, epochs, values, times, keys, runs = [], [], [], [], [], []
    for run_id, key, series in parts:
        s, e, v, t = series.arrays()
        m = len(v)
        if not m:
            continue
        steps.append(np.frombuffer(s, dtype=np.int64) if len(s) else np.zeros(0, np.int64))
        epochs.append(np.frombuffer(e, dtype=np.int64) if len(e) else np.zeros(0, np.int64))
        values.append(np.frombuffer(v, dtype=np.float64))
        times.append(np.frombuffer(t, dtype=np.float64))
        keys.append(np.full(m, key, dtype=object))
        if with_run_id:
            runs.append(np.full(m, run_id, dtype=object))

    def cat(arrs: list, dtype: Any) -> Any:
        return np.concatenate(arrs) if arrs else np.zeros(0, dtype=dtype)

    epoch_arr = cat(epochs, np.int64)
    data: dict[str, Any] = {}
    if with_run_id:
        data["run_id"] = cat(runs, object)
    data["key"] = cat(keys, object)
    data["step"] = cat(steps, np.int64)
    data["epoch"] = pd.arrays.IntegerArray(epoch_arr.copy(), epoch_arr == NO_EPOCH)
    data["value"] = cat(values, np.float64)
    data["timestamp"] = cat(times, np.float64)
    return pd.DataFrame(data)
