"""Core micro-benchmarks: caller-thread cost of log_metrics next to the floor and the peers, store
ingest, series read, import and start_run time, dataset hashing throughput.

Each config prints one JSON line whose ``value`` is the headline number in ``unit`` (plus details);
``setup_s``/``fit_s`` are the wall time of preparing and measuring, kept for the harness's row format.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import deque
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

NAME = "core"
LABEL_KEYS = ()
CONFIGS: dict[str, list[str]] = {
    "floor: dict copy + deque append": [],
    "trackhooks log_metrics (writer idle)": ["trackhooks"],
    "trackhooks log_metrics (sustained)": ["trackhooks"],
    "trackhooks log_metric (writer idle)": ["trackhooks"],
    "mlflow.log_metrics (sqlite)": ["mlflow"],
    "TensorBoard add_scalar x4": ["torch", "tensorboard"],
    "wandb.log (offline)": ["wandb"],
    "ingest": ["trackhooks"],
    "ingest: writer + store only": ["trackhooks"],
    "store write only": ["trackhooks"],
    "read 1M-point series": ["trackhooks"],
    "import trackhooks": ["trackhooks"],
    "start_run": ["trackhooks"],
    "start_run (new store)": ["trackhooks"],
    "finish() of a 10 000-point run": ["trackhooks"],
    "search child run (caller)": ["trackhooks"],
    "dataset hash: hashlib.sha256 floor": ["numpy"],
    "dataset hash: fingerprint": ["trackhooks", "numpy"],
    "dataset hash: log_dataset + flush": ["trackhooks", "numpy"],
}

SIZES = {
    # calls: hot-path calls (4 scalars each); peer_calls for the slow peers; points for ingest/read
    "full": {"calls": 200_000, "chunk": 1000, "peer_calls": 2000, "mlflow_calls": 300, "points": 2_000_000,
             "read_points": 1_000_000, "procs": 5, "dataset_mb": 200},
    "quick": {"calls": 100_000, "chunk": 1000, "peer_calls": 1000, "mlflow_calls": 50, "points": 1_000_000,
              "read_points": 1_000_000, "procs": 3, "dataset_mb": 200},
    "tiny": {"calls": 2000, "chunk": 100, "peer_calls": 50, "mlflow_calls": 5, "points": 20_000,
             "read_points": 20_000, "procs": 1, "dataset_mb": 2},
}

KEYS = ("loss", "acc", "lr", "grad_norm")


def preload(configs: list[str]) -> None:
    # the peers and numpy only: trackhooks itself stays cold (import and start_run are measured in
    # fresh interpreters anyway, and the hot-path rows start their own run)
    mods = {m for c in configs for m in CONFIGS[c]} - {"trackhooks"}
    if "tensorboard" in mods:
        mods = (mods - {"tensorboard", "torch"}) | {"torch.utils.tensorboard"}
    _bench.import_modules(sorted(mods))


def _metric_dicts(n: int) -> list[dict[str, float]]:
    return [{k: float(i) + j * 0.25 for j, k in enumerate(KEYS)} for i in range(min(n, 1000))]


def _chunked_us(call, calls: int, chunk: int) -> dict[str, Any]:
    """Run ``call(i)`` ``calls`` times; µs per call of each chunk of ``chunk`` calls -> median, min, max."""
    per_chunk = []
    i = 0
    clock = time.perf_counter_ns
    while i < calls:
        t = clock()
        for j in range(i, i + chunk):
            call(j)
        per_chunk.append((clock() - t) / chunk / 1000)
        i += chunk
    return {"value": statistics.median(per_chunk), "unit": "µs/call", "min": min(per_chunk),
            "max": max(per_chunk), "mean": statistics.fmean(per_chunk), "calls": calls}


def _hot_floor(p, tmp, clock):
    ds = _metric_dicts(p["calls"])
    buf: deque = deque()
    state = object()
    clock.setup_done()

    def call(i):
        buf.append((0, state, dict(ds[i % 1000]), i, None, time.time()))

    out = _chunked_us(call, p["calls"], p["chunk"])
    clock.fit_done()
    return out


def _hot_trackhooks(p, tmp, clock, sustained: bool, one: bool = False):
    """``log_metrics`` of 4 floats, or with ``one`` ``log_metric`` of one float (issue 19: ≤ 3× and
    ≤ 2× the same floor), with a step."""
    import trackhooks
    from trackhooks import writer

    ds = _metric_dicts(p["calls"])
    run = trackhooks.start_run(experiment="bench")
    run.flush()
    calls = p["calls"] if sustained else min(p["calls"], writer.WAKE_AT - 1000)
    clock.setup_done()
    log = run.log_metric if one else run.log_metrics
    if not sustained:
        # the writer sleeps for its whole interval unless the buffer reaches WAKE_AT: pure caller cost
        writer.get_writer().interval = 3600.0
        run.flush()

    def call(i):
        log(ds[i % 1000], step=i)

    def call_one(i):
        log("loss", i * 0.25, step=i)

    out = _chunked_us(call_one if one else call, calls, p["chunk"])
    run.finish()
    clock.fit_done()
    return out


def _hot_mlflow(p, tmp, clock):
    import mlflow

    ds = _metric_dicts(p["mlflow_calls"])
    mlflow.set_tracking_uri(f"sqlite:///{os.path.join(tmp, 'mlflow.db')}")
    mlflow.set_experiment("bench")
    mlflow.start_run()
    clock.setup_done()
    out = _chunked_us(lambda i: mlflow.log_metrics(ds[i % 1000], step=i), p["mlflow_calls"],
                      max(1, p["mlflow_calls"] // 20))
    mlflow.end_run()
    clock.fit_done()
    return out


def _hot_tensorboard(p, tmp, clock):
    from torch.utils.tensorboard import SummaryWriter

    ds = _metric_dicts(p["peer_calls"])
    w = SummaryWriter(log_dir=os.path.join(tmp, "tb"))
    clock.setup_done()

    def call(i):
        for k, v in ds[i % 1000].items():
            w.add_scalar(k, v, i)

    out = _chunked_us(call, p["peer_calls"], max(1, p["peer_calls"] // 50))
    w.close()
    clock.fit_done()
    return out


def _hot_wandb(p, tmp, clock):
    import wandb

    ds = _metric_dicts(p["peer_calls"])
    wb = wandb.init(project="bench", dir=tmp, mode="offline")
    clock.setup_done()
    out = _chunked_us(lambda i: wb.log(ds[i % 1000], step=i), p["peer_calls"], max(1, p["peer_calls"] // 50))
    wb.finish()
    clock.fit_done()
    return out


def _ingest(p, tmp, clock):
    """Points/s from the first log_metrics call until flush() returns (the caller and the writer share the GIL)."""
    import trackhooks

    calls = p["points"] // len(KEYS)
    ds = _metric_dicts(calls)
    run = trackhooks.start_run(experiment="bench")
    run.flush()
    clock.setup_done()
    t = time.perf_counter()
    log = run.log_metrics
    for i in range(calls):
        log(ds[i % 1000], step=i)
    t_logged = time.perf_counter()
    run.flush()
    t_end = time.perf_counter()
    clock.fit_done()
    run.finish()
    n = calls * len(KEYS)
    return {"value": n / (t_end - t), "unit": "points/s", "points": n, "log_s": t_logged - t,
            "drain_after_last_call_s": t_end - t_logged}


def _ingest_drain(p, tmp, clock):
    """Points/s of the writer thread and the store alone: the calls fill the buffer while the writer
    sleeps, then the clock runs from flush() until it returns (conversion to columns, packing,
    SQLite commit). The store's ingest rate with the caller's own cost taken out."""
    os.environ["TRACKHOOKS_FLUSH_INTERVAL"] = "3600"  # read when the writer is created: this process only
    import trackhooks
    from trackhooks import writer

    writer.WAKE_AT = writer.MAX_BUFFERED = 10 ** 9
    calls = p["points"] // len(KEYS)
    ds = _metric_dicts(calls)
    run = trackhooks.start_run(experiment="bench")
    run.flush()
    log = run.log_metrics
    for i in range(calls):
        log(ds[i % 1000], step=i)
    clock.setup_done()
    t = time.perf_counter()
    run.flush()
    dt = time.perf_counter() - t
    clock.fit_done()
    run.finish()
    n = calls * len(KEYS)
    return {"value": n / dt, "unit": "points/s", "points": n}


def _store_write_only(p, tmp, clock):
    """Points/s of LocalStoreSink.write on a prepared batch: SQLite + packing only, no writer thread."""
    from trackhooks.store.sqlite import LocalStoreSink
    from trackhooks.sink import Batch, MetricColumns

    import trackhooks

    run = trackhooks.start_run(experiment="bench")
    run.flush()
    sink = LocalStoreSink(run.store)
    per_key = p["points"] // len(KEYS)
    batches = []
    block = 20_000  # points per key per batch, as a writer cycle under load would collect
    for start in range(0, per_key, block):
        b = Batch()
        cols = {}
        for j, k in enumerate(KEYS):
            c = MetricColumns()
            c.steps = list(range(start, min(start + block, per_key)))
            c.epochs = [None] * len(c.steps)
            c.values = [float(s) + j for s in c.steps]
            c.timestamps = [time.time()] * len(c.steps)
            cols[k] = c
        b.metrics[run.id] = cols
        if hasattr(b, "store"):
            b.store = run.store
        batches.append(b)
    clock.setup_done()
    t = time.perf_counter()
    for b in batches:
        sink.write(b)
    sink.flush()
    dt = time.perf_counter() - t
    clock.fit_done()
    sink.close()
    run.finish()
    return {"value": per_key * len(KEYS) / dt, "unit": "points/s", "points": per_key * len(KEYS)}


READ_BLOCK = 1000  # points per stored block: one writer cycle a second at 1000 steps/s


def _read(p, tmp, clock):
    """The series is written straight through the store's sink in blocks of READ_BLOCK points: a
    layout with more blocks than a tight logging loop produces (its writer cycles drain ~20 k points)."""
    import trackhooks
    from trackhooks.store.sqlite import LocalStoreSink
    from trackhooks.sink import Batch, MetricColumns

    n = p["read_points"]
    run = trackhooks.start_run(experiment="bench")
    run.flush()
    sink = LocalStoreSink(run.store)
    now = time.time()
    for start in range(0, n, READ_BLOCK):
        b = Batch()
        c = MetricColumns()
        c.steps = list(range(start, min(start + READ_BLOCK, n)))
        c.epochs = [s // 10_000 for s in c.steps]
        c.values = [s * 1e-6 for s in c.steps]
        c.timestamps = [now + s * 1e-3 for s in c.steps]
        b.metrics[run.id] = {"loss": c}
        if hasattr(b, "store"):
            b.store = run.store
        sink.write(b)
    sink.close()
    run.finish()
    store_path = run.store
    clock.setup_done()
    fetch, full = [], []
    for _ in range(5):
        t = time.perf_counter()
        rec = trackhooks.open_store(store_path).run(run.id)
        series = rec.metric("loss")
        t1 = time.perf_counter()
        steps, values = series.steps, series.values
        t2 = time.perf_counter()
        assert len(values) == n and steps[-1] == n - 1
        fetch.append(t1 - t)
        full.append(t2 - t)
    clock.fit_done()
    return {"value": statistics.median(full), "unit": "s", "fetch_s": statistics.median(fetch), "points": n,
            "note": f"open_store + run + metric + .steps/.values lists; {n // READ_BLOCK} blocks"}


_IMPORT_SNIPPET = r"""
import sys, time, json
t = time.perf_counter()
import trackhooks
dt = time.perf_counter() - t
heavy = sorted(m for m in ("torch", "lightning", "keras", "sklearn", "xgboost", "numpy", "pandas", "mlflow")
               if m in sys.modules)
print(json.dumps({"import_s": dt, "heavy": heavy}))
"""

_START_SNIPPET = r"""
import sys, time, json, os
import trackhooks
store = sys.argv[1]
t = time.perf_counter()
run = trackhooks.start_run(experiment="bench", store=store)
t1 = time.perf_counter()
run2 = trackhooks.start_run(experiment="bench", store=store)
t2 = time.perf_counter()
run2.finish(); run.finish()
print(json.dumps({"first_s": t1 - t, "second_s": t2 - t1}))
"""


def _fresh(snippet: str, *args: str) -> dict[str, Any]:
    import json

    out = subprocess.run([sys.executable, "-c", snippet, *args], capture_output=True, text=True, check=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _import(p, tmp, clock):
    clock.setup_done()
    rows = [_fresh(_IMPORT_SNIPPET) for _ in range(p["procs"])]
    clock.fit_done()
    return {"value": statistics.median(r["import_s"] for r in rows) * 1000, "unit": "ms",
            "min": min(r["import_s"] for r in rows) * 1000, "max": max(r["import_s"] for r in rows) * 1000,
            "heavy_modules_imported": rows[0]["heavy"], "procs": len(rows)}


def _start_run(p, tmp, clock):
    clock.setup_done()
    # a new store in each process, then the same store again (the usual case: the store exists)
    new = [_fresh(_START_SNIPPET, os.path.join(tmp, f"s{i}")) for i in range(p["procs"])]
    existing = [_fresh(_START_SNIPPET, os.path.join(tmp, "s0")) for _ in range(p["procs"])]
    clock.fit_done()
    return {"value": statistics.median(r["first_s"] for r in existing) * 1000, "unit": "ms",
            "first_new_store_ms": statistics.median(r["first_s"] for r in new) * 1000,
            "second_in_process_ms": statistics.median(r["second_s"] for r in existing) * 1000,
            "note": "first start_run of a fresh process on an existing store"}


def _start_run_new(p, tmp, clock):
    clock.setup_done()
    rows = [_fresh(_START_SNIPPET, os.path.join(tmp, f"new{i}")) for i in range(p["procs"])]
    clock.fit_done()
    return {"value": statistics.median(r["first_s"] for r in rows) * 1000, "unit": "ms", "procs": len(rows),
            "note": "first start_run of a fresh process, creating the store"}


_FINISH_SNIPPET = r"""
import sys, time, json
import trackhooks
store, warm = sys.argv[1], sys.argv[2] == "warm"
run = trackhooks.start_run(experiment="bench", store=store)
if warm:
    run.flush()  # a run that trained a while: the writer is up and has described the environment
for i in range(2500):
    run.log_metrics({"loss": 1.0 / (i + 1), "acc": i / 2500, "lr": 0.1, "grad_norm": 2.0}, step=i)
t = time.perf_counter()
run.finish()
print(json.dumps({"finish_s": time.perf_counter() - t}))
"""


def _finish(p, tmp, clock):
    clock.setup_done()
    warm = [_fresh(_FINISH_SNIPPET, os.path.join(tmp, "f"), "warm") for _ in range(p["procs"])]
    cold = [_fresh(_FINISH_SNIPPET, os.path.join(tmp, "f"), "cold") for _ in range(p["procs"])]
    clock.fit_done()
    return {"value": statistics.median(r["finish_s"] for r in warm) * 1000, "unit": "ms", "procs": len(warm),
            "run_ending_at_once_ms": statistics.median(r["finish_s"] for r in cold) * 1000,
            "note": "fresh process, 2 500 steps x 4 keys logged, then finish(); run_ending_at_once: finish "
                    "right after start_run, the writer's start-up lands in it"}


def _child_runs(p, tmp, clock):
    import trackhooks
    from trackhooks.plugin import start_child_run

    n = 200
    parent = trackhooks.start_run(experiment="bench")
    parent.flush()
    clock.setup_done()
    t = time.perf_counter()
    for i in range(n):
        child = start_child_run(parent, f"c{i}", params={"max_depth": i % 8, "criterion": "gini", "index": i},
                                tags={"role": "candidate"})
        child.log_metrics({"mean_test_score": 0.5, "std_test_score": 0.1, "rank_test_score": float(i),
                           "mean_fit_time": 0.01})
        child.finish(timeout=0)
    caller = time.perf_counter() - t
    t = time.perf_counter()
    parent.finish()
    drain = time.perf_counter() - t
    clock.fit_done()
    runs = trackhooks.open_store(parent.store).runs(experiment="bench")
    return {"value": caller / n * 1000, "unit": "ms/child", "children": n, "parent_finish_s": drain,
            "runs_stored": len(runs), "note": "start_child_run + log_metrics (4) + finish(timeout=0), the "
                                              "way a search records a candidate; then the parent's finish drains"}


def _array(p):
    import numpy as np

    n = p["dataset_mb"] * 1_000_000 // 4
    arr = np.random.default_rng(0).standard_normal(n, dtype=np.float32).reshape(-1, 50)
    return arr, arr.nbytes / 1e6


def _hash_floor(p, tmp, clock):
    import hashlib

    arr, mb = _array(p)
    clock.setup_done()
    t = time.perf_counter()
    hashlib.sha256(memoryview(arr).cast("B")).hexdigest()
    dt = time.perf_counter() - t
    clock.fit_done()
    return {"value": mb / dt, "unit": "MB/s", "mb": mb}


def _hash_fingerprint(p, tmp, clock):
    from trackhooks import datasets

    arr, mb = _array(p)
    fn = getattr(datasets, "fingerprint", None)
    if fn is None:
        raise RuntimeError("trackhooks.datasets.fingerprint is gone; update this workload")
    clock.setup_done()
    t = time.perf_counter()
    out = fn(arr)
    dt = time.perf_counter() - t
    clock.fit_done()
    sampled = getattr(out, "sampled", None)
    if sampled is None and isinstance(out, tuple) and len(out) >= 5:
        sampled = out[4]
    return {"value": mb / dt, "unit": "MB/s", "mb": mb, "sampled": sampled}


def _hash_log_dataset(p, tmp, clock):
    import trackhooks

    arr, mb = _array(p)
    run = trackhooks.start_run(experiment="bench")
    run.flush()
    clock.setup_done()
    t = time.perf_counter()
    rec = run.log_dataset(arr, name="bench-array")
    t_call = time.perf_counter()
    run.flush()
    dt = time.perf_counter() - t
    clock.fit_done()
    run.finish()
    stored = trackhooks.open_store(run.store).run(run.id).datasets()
    return {"value": mb / dt, "unit": "MB/s", "mb": mb, "caller_s": t_call - t, "total_s": dt,
            "sampled": bool(getattr(rec, "sampled", False)), "records": len(stored)}


_RUNNERS = {
    "floor: dict copy + deque append": _hot_floor,
    "trackhooks log_metrics (writer idle)": lambda p, t, c: _hot_trackhooks(p, t, c, sustained=False),
    "trackhooks log_metrics (sustained)": lambda p, t, c: _hot_trackhooks(p, t, c, sustained=True),
    "trackhooks log_metric (writer idle)": lambda p, t, c: _hot_trackhooks(p, t, c, sustained=False, one=True),
    "mlflow.log_metrics (sqlite)": _hot_mlflow,
    "TensorBoard add_scalar x4": _hot_tensorboard,
    "wandb.log (offline)": _hot_wandb,
    "ingest": _ingest,
    "ingest: writer + store only": _ingest_drain,
    "store write only": _store_write_only,
    "read 1M-point series": _read,
    "import trackhooks": _import,
    "start_run": _start_run,
    "start_run (new store)": _start_run_new,
    "finish() of a 10 000-point run": _finish,
    "search child run (caller)": _child_runs,
    "dataset hash: hashlib.sha256 floor": _hash_floor,
    "dataset hash: fingerprint": _hash_fingerprint,
    "dataset hash: log_dataset + flush": _hash_log_dataset,
}


def run(config: str, p: dict[str, Any], tmp: str, clock: _bench.Clock) -> dict[str, Any]:
    return _RUNNERS[config](p, tmp, clock)


if __name__ == "__main__":
    _bench.run_script(__name__)
