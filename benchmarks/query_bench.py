#!/usr/bin/env python
"""Finding and tidying runs (issue 18): the where language, runs_frame and gc, each next to the
same work written by hand, side by side in one invocation, every measurement in a fresh process.

    python benchmarks/query_bench.py [--runs 10000] [--repeats 5] [--gc-files 100000] [--out PATH]
                                     [--only where,frame,gc] [--baseline-src DIR]

- ``where``: ``store.runs(where=<two conditions>)`` vs the same rows fetched with hand-written SQL
  (a join on params and metric_keys, then the params and tags of the matching runs, decoded into
  dicts): target <= 2x. Also ``store.run_ids(where=...)`` vs the bare hand-written id query.
- ``frame``: ``store.runs_frame()`` of every run (20 params, 10 metrics each) vs a hand-written
  SQL + pandas pivot building the same columns: target < 1 s and <= 3x. With ``--baseline-src``
  also the same call with another version of trackhooks, in the same interleaved rounds.
- ``gc``: ``store.gc()`` on stores with N/10, N/3 and N artifact files (half unreferenced): time
  per file should stay flat (one query per 500 candidates, never one per file).

Configurations run interleaved (A B A B ...); medians of the repeats are reported, with ratios of
medians measured in this invocation (a shared machine drifts between invocations).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WHERE = "params.p0 < 0.3 and metrics.m0 > 0.5"
N_PARAMS, N_METRICS, N_POINTS = 20, 10, 5

# ---------------------------------------------------------------------------------------------
# building the stores (once per invocation, not measured)


def build_store(path: str, n_runs: int) -> None:
    from trackhooks.sink import Batch, MetricColumns, RunStart, StatusEvent
    from trackhooks.store.sqlite import LocalStoreSink

    rnd = random.Random(18)
    sink = LocalStoreSink(path)
    t0 = time.time() - n_runs
    for lo in range(0, n_runs, 500):
        b = Batch()
        for i in range(lo, min(n_runs, lo + 500)):
            rid = f"{i:08d}" + "%024x" % rnd.getrandbits(96)
            b.runs.append(RunStart(rid, f"exp{i % 5}", f"run-{i}", None, t0 + i, 1, "bench-host", None))
            params = {f"p{k}": rnd.random() for k in range(N_PARAMS - 4)}
            params.update({"optimizer": rnd.choice(["adam", "sgd", "rmsprop"]), "layers": rnd.randint(1, 8),
                           "model": f"m{rnd.randint(0, 20)}", "seed": i})
            b.params[rid] = params
            b.tags[rid] = {"framework": "bench", "host": f"h{i % 7}"}
            b.metrics[rid] = {f"m{k}": MetricColumns(list(range(N_POINTS)), [None] * N_POINTS,
                                                     [rnd.random() for _ in range(N_POINTS)], [t0 + i] * N_POINTS)
                              for k in range(N_METRICS)}
            b.status.append(StatusEvent(rid, "finished", t0 + i + 1))
        sink.write(b)
    sink.close()


def build_gc_store(path: str, n_files: int) -> None:
    """A store whose artifacts/ holds n_files files, half of them referenced by artifact rows."""
    import hashlib

    from trackhooks.sink import Batch, RunStart, StatusEvent
    from trackhooks.store.sqlite import LocalStoreSink

    sink = LocalStoreSink(path)
    sink.write(Batch(runs=[RunStart("r" * 32, "e", "files", None, time.time(), 1, "bench-host", None)],
                     status=[StatusEvent("r" * 32, "finished", time.time())]))
    conn = sink._db()
    rows = []
    root = os.path.join(path, "artifacts")
    for i in range(n_files):
        data = b"file %d" % i
        sha = hashlib.sha256(data).hexdigest()
        d = os.path.join(root, sha[:2])
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, sha), "wb") as f:
            f.write(data)
        if i % 2 == 0:
            rows.append(("r" * 32, f"f{i}", sha, len(data), 0.0))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO artifacts (run_id, name, sha256, size, time) VALUES (?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    sink.close()


# ---------------------------------------------------------------------------------------------
# the measured code (run in a fresh process: `query_bench.py --measure NAME STORE`)

HAND_WHERE_IDS = ("SELECT r.id FROM runs r JOIN params p ON p.run_id = r.id AND p.key = 'p0' "
                  "JOIN metric_keys m ON m.run_id = r.id AND m.key = 'm0' "
                  "WHERE r.archived = 0 AND CAST(p.value AS REAL) < 0.3 AND m.last_value > 0.5 "
                  "ORDER BY r.start_time, r.rowid")


def measure(name: str, store_path: str) -> dict:
    # imports are not part of any measurement (both sides pay theirs before the clock starts)
    import sqlite3  # noqa: F401

    import trackhooks
    import trackhooks.store.querying  # noqa: F401
    import trackhooks.store.sqlite  # noqa: F401

    if "frame" in name:
        import pandas  # noqa: F401
    if name in ("where", "where_ids", "frame", "gc"):
        t0 = time.perf_counter()
        store = trackhooks.open_store(store_path)
        if name == "where":
            n = len(store.runs(where=WHERE))
        elif name == "where_ids":
            n = len(store.run_ids(where=WHERE))
        elif name == "frame":
            df = store.runs_frame()
            n = df.shape[0] * 1000 + df.shape[1]
        else:
            statements = []
            store._db().set_trace_callback(statements.append)  # to show: no query per file
            n = store.gc().count
            return {"seconds": time.perf_counter() - t0, "n": n, "queries": len(statements)}
        return {"seconds": time.perf_counter() - t0, "n": n}
    import sqlite3

    t0 = time.perf_counter()
    conn = sqlite3.connect(os.path.join(store_path, "trackhooks.db"))
    if name == "hand_where_ids":
        n = len(conn.execute(HAND_WHERE_IDS).fetchall())
    elif name == "hand_where":
        cols = "id, experiment, name, status, parent_id, start_time, end_time, pid, host, pid_start, heartbeat, system"
        rows = conn.execute(HAND_WHERE_IDS.replace("SELECT r.id", "SELECT " + ", ".join(
            "r." + c.strip() for c in cols.split(",")))).fetchall()
        ids = json.dumps([r[0] for r in rows])
        params: dict = {}
        for rid, k, v in conn.execute("SELECT run_id, key, value FROM params WHERE run_id IN "
                                      "(SELECT value FROM json_each(?))", (ids,)):
            params.setdefault(rid, {})[k] = json.loads(v)
        tags: dict = {}
        for rid, k, v in conn.execute("SELECT run_id, key, value FROM tags WHERE run_id IN "
                                      "(SELECT value FROM json_each(?))", (ids,)):
            tags.setdefault(rid, {})[k] = v
        recs = [dict(zip([c.strip() for c in cols.split(",")], r), params=params.get(r[0], {}),
                     tags=tags.get(r[0], {}), system=json.loads(r[11])) for r in rows]
        n = len(recs)
    elif name == "hand_frame":
        import pandas as pd

        runs = pd.DataFrame(conn.execute(
            "SELECT id, name, experiment, status, parent_id, start_time, end_time, "
            "COALESCE(end_time, heartbeat) - start_time AS duration FROM runs WHERE archived = 0 "
            "ORDER BY start_time, rowid").fetchall(),
            columns=["id", "name", "experiment", "status", "parent_id", "start_time", "end_time", "duration"])
        for c in ("start_time", "end_time"):
            runs[c] = pd.to_datetime(runs[c], unit="s", utc=True)
        parts = [runs.set_index("id")]
        for prefix, sql in (("params", "SELECT run_id, key, value FROM params"),
                            ("tags", "SELECT run_id, key, value FROM tags"),
                            ("metrics", "SELECT run_id, key, last_value FROM metric_keys WHERE n > 0")):
            long = pd.DataFrame(conn.execute(sql).fetchall(), columns=["run_id", "key", "value"])
            if prefix == "params":
                long["value"] = [json.loads(v) for v in long["value"]]
            wide = long.pivot(index="run_id", columns="key", values="value")
            wide.columns = [f"{prefix}.{k}" for k in wide.columns]
            parts.append(wide)
        df = parts[0].join(parts[1:]).reset_index()
        n = df.shape[0] * 1000 + df.shape[1]
    else:
        raise SystemExit(f"unknown measurement {name}")
    return {"seconds": time.perf_counter() - t0, "n": n}


def run_fresh(name: str, store_path: str, src: str | None = None) -> dict:
    env = dict(os.environ)
    src = src or os.path.join(ROOT, "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = subprocess.run([sys.executable, __file__, "--measure", name, store_path], capture_output=True, text=True,
                         env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{name}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gc-files", type=int, default=100_000)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-query.md"))
    ap.add_argument("--only", default="where,frame,gc", help="comma-separated: where, frame, gc")
    ap.add_argument("--baseline-src", metavar="DIR",
                    help="also measure runs_frame() with the trackhooks of this src/ directory (another "
                         "checkout, e.g. `git archive COMMIT src | tar -x -C /tmp/base`), interleaved")
    ap.add_argument("--measure", nargs=2, metavar=("NAME", "STORE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    sys.path.insert(0, os.path.join(ROOT, "src"))
    tmp = tempfile.mkdtemp(prefix="th-query-bench-")
    lines = [f"# Query benchmarks (issue 18)", "",
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
             f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores; every measurement in a "
             "fresh process, imports excluded, opening the store and its connection included.", ""]
    only = set(args.only.split(","))
    try:
        if only & {"where", "frame"}:
            store = os.path.join(tmp, "store")
            t = time.perf_counter()
            build_store(store, args.runs)
            print(f"built {args.runs} runs x {N_PARAMS} params x {N_METRICS} metrics in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
            pairs = [p for p in [("where", "hand_where"), ("where_ids", "hand_where_ids"), ("frame", "hand_frame")]
                     if p[0].split("_")[0] in only]
            base = args.baseline_src and "frame" in only
            results: dict[str, list[float]] = {n: [] for p in pairs for n in p}
            if base:
                results["frame@baseline"] = []
            counts: dict[str, int] = {}
            for _ in range(args.repeats):
                for a, b in pairs:
                    for name in (a, b) + (("frame@baseline",) if base and a == "frame" else ()):
                        if name == "frame@baseline":
                            r = run_fresh("frame", store, os.path.abspath(args.baseline_src))
                        else:
                            r = run_fresh(name, store)
                        results[name].append(r["seconds"])
                        counts[name] = r["n"]
            for a, b in pairs + ([("frame@baseline", "hand_frame")] if base else []):
                if counts[a] != counts[b]:
                    raise SystemExit(f"{a} and {b} disagree: {counts[a]} vs {counts[b]}")
            med = {k: statistics.median(v) for k, v in results.items() if v}
            lines += [f"{args.runs} runs x {N_PARAMS} params x {N_METRICS} metrics ({N_POINTS} points each), "
                      f"{args.repeats} repeats interleaved, medians in seconds (min-max in brackets).", "",
                      "| measurement | trackhooks | by hand | ratio | target |", "|---|---|---|---|---|"]
            targets = {"where": "<= 2x", "where_ids": "(info)", "frame": "< 1 s, <= 3x"}
            def cell(k: str) -> str:
                return f"{med[k]:.3f} ({min(results[k]):.3f}-{max(results[k]):.3f})"

            for a, b in pairs:
                what = (f"`runs(where=\"{WHERE}\")` -> {counts[a]} runs" if a == "where" else
                        f"`run_ids(where=...)` -> {counts[a]} ids" if a == "where_ids" else
                        f"`runs_frame()` -> {counts[a] // 1000} rows x {counts[a] % 1000} columns")
                lines.append(f"| {what} | {cell(a)} | {cell(b)} | {med[a] / med[b]:.2f}x | {targets[a]} |")
                if a == "frame" and base:
                    lines.append(f"| the same `runs_frame()` with `{args.baseline_src}` | {cell('frame@baseline')} | "
                                 f"{cell(b)} | {med['frame@baseline'] / med[b]:.2f}x | (baseline) |")
        if "gc" in only:
            # gc: linear in the number of files, a fixed number of queries per 500 candidates
            lines += ["", "| gc: files in artifacts/ (half unreferenced) | seconds | microseconds per file | SQL statements |",
                      "|---|---|---|---|"]
            for n in sorted({max(1, args.gc_files // 10), max(1, args.gc_files // 3), args.gc_files}):
                gstore = os.path.join(tmp, f"gc{n}")
                build_gc_store(gstore, n)
                os.sync()  # the files just written are not the measurement's to flush
                r = run_fresh("gc", gstore)
                assert r["n"] == n // 2, r
                lines.append(f"| {n} | {r['seconds']:.2f} | {r['seconds'] / n * 1e6:.1f} | {r['queries']} |")
                shutil.rmtree(gstore)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "a" if os.path.exists(args.out) and args.only != "where,frame,gc" else "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
