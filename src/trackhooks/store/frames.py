"""pandas DataFrames of runs and metric points. pandas (and numpy) are imported only here, when a
frame is asked for; without pandas the call raises ImportError naming the package to install.

``runs_frame``: one row per run, columns id, name, experiment, status, parent_id, start_time,
end_time (pandas UTC timestamps, like MLflow's search_runs), duration (seconds), then
``params.<key>`` (numbers and strings as logged), ``tags.<key>`` and ``metrics.<key>`` (the last
value). Two queries, whatever the number of runs: the runs with their params and tags
aggregated per run, then the metric summaries of those runs.

``metrics_frame``: one row per point in logging order per key (and per run, in the order given):
columns ``run_id`` (many runs only), key, step, epoch (nullable Int64), value, timestamp (seconds).
One query reads the packed point blocks of all the keys and runs.
"""

from __future__ import annotations

import json
from typing import Any, Sequence


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


def frame_columns(d: dict[str, str]) -> str:
    """The SQL columns ``runs_frame`` selects from ``runs r`` (dialect ``d``) after the run columns:
    one run's params, then its tags, each as the text ``["k1","k2",...],[v1,v2,...]`` (NULL if none).

    Aggregating in the database sends one row per run instead of one per cell (300 000 rows for
    10 000 runs x 30 keys), in the run order (no id lookups), and one C-speed ``json.loads`` decodes
    every value. The subqueries read the (run_id, key) primary keys, and the run filter is
    evaluated once, in this one query. Param values are stored as JSON text, so they are pasted as
    they are (a list or dict as its JSON text in a string: a cell holds a scalar).
    """
    q, arr, cat = d["json_quote"], d["json_agg"], d["group_concat"]
    pval = f"CASE WHEN substr(p.value, 1, 1) IN ('[', '{{') THEN {q.format(x='p.value')} ELSE p.value END"
    params = f"{arr.format(x='p.key', order='p.key')} || ',[' || {cat.format(x=pval, order='p.key')} || ']'"
    tags = f"{arr.format(x='t.key', order='t.key')} || ',' || {arr.format(x='t.value', order='t.key')}"
    return (f"(SELECT {params} FROM params p WHERE p.run_id = r.id), "
            f"(SELECT {tags} FROM tags t WHERE t.run_id = r.id)")


def _pairs(texts: Sequence[str | None]) -> list[list[list[Any]]]:
    """[keys, values] per run from the texts of ``frame_columns``, by one ``json.loads``."""
    if not texts:
        return []
    return json.loads("[[" + "],[".join([t or "[],[]" for t in texts]) + "]]")


def _param_pairs(store: Any, ids: Sequence[str], texts: Sequence[str | None]) -> list[list[list[Any]]]:
    try:
        return _pairs(texts)
    except ValueError:
        pass
    # a value that is not JSON (never written by trackhooks) spoils its run's text: those runs
    # are read key by key and keep such a value as its text
    out = []
    for rid, text in zip(ids, texts):
        try:
            out.append(_pairs([text])[0])
        except ValueError:
            rows = store._rows("SELECT key, value FROM params WHERE run_id = ?", (rid,))
            vals = decode_params([r[1] for r in rows])
            out.append([[k for k, _ in rows], [v if not isinstance(v, (list, dict)) else t
                                                for (_, t), v in zip(rows, vals)]])
    return out


def _wide(prefix: str, pairs: list[list[list[Any]]]) -> dict[str, list[Any]]:
    """``prefix.<key>`` columns (sorted by key, None where a run lacks the key) from [keys, values]
    per run. Runs with the same keys (most of a sweep) are transposed together by ``zip``, so the
    cost is per group of runs, not per cell."""
    import numpy as np

    n = len(pairs)
    groups: dict[tuple[str, ...], tuple[list[int], list[list[Any]]]] = {}
    for i, (keys, values) in enumerate(pairs):
        g = groups.get(tuple(keys))
        if g is None:
            g = groups[tuple(keys)] = ([], [])
        g[0].append(i)
        g[1].append(values)
    if len(groups) == 1:
        (keys, (_, rows)), = groups.items()
        cols: dict[str, Any] = dict(zip(keys, map(list, zip(*rows))))
    else:
        cols = {}
        for keys, (idx, rows) in groups.items():
            for key, col in zip(keys, zip(*rows)):
                c = cols.get(key)
                if c is None:
                    c = cols[key] = np.full(n, None, dtype=object)
                c[idx] = col
        # as lists, so that pandas infers each column's dtype as it does for the single-group case
        cols = {k: c.tolist() for k, c in cols.items()}
    return {f"{prefix}.{k}": cols[k] for k in sorted(cols)}


def _metric_columns(store: Any, d: dict[str, str], ids: Sequence[str]) -> dict[str, Any]:
    """``metrics.<key>``: the last values, NaN where missing, as float64 arrays.

    The values come as the engine's own floats, not aggregated into text like params: SQLite
    (3.40 here) prints some doubles inexactly, even in quote() (0.23426122710702801 comes back as
    0.234261227107028). One row per run and key with the run's position in the frame, put in
    place by one numpy assignment.
    """
    from operator import itemgetter

    import numpy as np

    pd = _pandas("runs_frame()")
    if not ids:
        return {}
    sql = (f"SELECT j.pos, m.key, m.last_value FROM {d['json_list_pos'].format(list='?')} j "
           "JOIN metric_keys m ON m.run_id = j.id WHERE m.n > 0")
    rows = store._rows(sql, (json.dumps(list(ids)),))
    if not rows:
        return {}
    m = len(rows)
    pos = np.fromiter(map(itemgetter(0), rows), dtype=np.intp, count=m)
    codes, keys = pd.factorize(np.fromiter(map(itemgetter(1), rows), dtype=object, count=m))
    table = np.full((len(keys), len(ids)), np.nan)
    # a NaN last value is stored as NULL: None -> NaN
    table[codes, pos] = np.array(list(map(itemgetter(2), rows)), dtype=np.float64)
    return {f"metrics.{keys[j]}": table[j] for j in sorted(range(len(keys)), key=keys.__getitem__)}


def runs_frame(store: Any, d: dict[str, str], rows: list[tuple], now: float) -> Any:
    """Build the frame from the rows of ``SELECT <_LIST_COLUMNS>, <frame_columns> FROM runs r ...``."""
    pd = _pandas("runs_frame()")
    import numpy as np

    from .status import effective_status

    if rows:
        ids, names, exps, stored, parents, starts, ends, pids, hosts, pstarts, beats, pbodies, tbodies = zip(*rows)
    else:
        ids = names = exps = stored = parents = starts = ends = pids = hosts = pstarts = beats = ()
        pbodies = tbodies = ()
    # only the stored-'running' runs need a liveness check (a few, in a large store)
    status = list(stored)
    for i, st in enumerate(stored):
        if st == "running":
            status[i] = effective_status(st, hosts[i], pids[i], pstarts[i], beats[i])
    start = np.array(starts, dtype="float64")
    end = np.array(ends, dtype="float64")  # None -> NaN
    # RunRecord.duration for every row at once: a live run up to now, a dead one up to its last heartbeat
    live = np.array([s == "running" for s in status], dtype=bool)
    upto = np.where(np.isnan(end), np.where(live, now, np.array(beats, dtype="float64")), end)
    cols: dict[str, Any] = {
        "id": list(ids), "name": list(names), "experiment": list(exps), "status": status,
        "parent_id": list(parents),
        "start_time": pd.to_datetime(start, unit="s", utc=True),
        "end_time": pd.to_datetime(end, unit="s", utc=True),
        "duration": np.maximum(upto - start, 0.0),  # NaN (no end, no heartbeat) stays NaN
    }
    cols.update(_wide("params", _param_pairs(store, ids, pbodies)))
    cols.update(_wide("tags", _pairs(tbodies)))
    cols.update(_metric_columns(store, d, ids))
    return pd.DataFrame(cols)


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
