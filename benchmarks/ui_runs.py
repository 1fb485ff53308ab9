"""How fast `trackhooks ui` lists, sorts and filters a store with many runs.

Writes N runs (3 params, 2 metrics of 50 points each) with the real API, then times the runs
endpoint through Starlette's test client: default order, sort by a metric, text filter, one page
deep. Usage: python benchmarks/ui_runs.py [--runs 10000]
"""

import argparse
import os
import statistics
import tempfile
import time

import trackhooks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    args = ap.parse_args()
    from starlette.testclient import TestClient

    from trackhooks.ui.server import create_app

    with tempfile.TemporaryDirectory() as d:
        store = os.path.join(d, "store")
        t0 = time.perf_counter()
        parent = trackhooks.start_run(store=store, name="writer")
        for i in range(args.runs):
            run = trackhooks.start_run(store=store, experiment=f"exp{i % 10}", name=f"run-{i}",
                                       params={"lr": 10 ** -(i % 5), "depth": i % 7, "seed": i})
            for s in range(50):
                run.log_metrics({"loss": 1 / (s + 1 + i % 13), "acc": s / 50}, step=s)
            run.finish()
        parent.finish()
        write_s = time.perf_counter() - t0
        client = TestClient(create_app(store))
        cases = {"default order": "/api/runs", "sort by metric": "/api/runs?sort=metric:loss&order=asc",
                 "text filter": "/api/runs?q=run-99", "page 100": "/api/runs?offset=5000",
                 "one experiment": "/api/runs?experiment=exp3"}
        print(f"{args.runs} runs written in {write_s:.1f} s")
        print("| query | median ms (5 tries) |\n|---|---|")
        for label, url in cases.items():
            times = []
            for _ in range(5):
                t = time.perf_counter()
                r = client.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
            print(f"| {label} | {statistics.median(times):.0f} |")


if __name__ == "__main__":
    main()
