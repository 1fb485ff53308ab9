"""How fast the HTML report with rich records opens in headless Chromium.

Logs 3 image keys × 50 steps (128×128 RGB noise, which PNG cannot compress: the heaviest case per
pixel) plus one metric with the real API, writes the report, and a second report of the same runs
without the images; then opens each in a fresh Debian chromium (tests/browser/paint.mjs,
playwright-core), interleaved, and prints the medians of first contentful paint, the load event and
when the page's script had drawn everything, and their ratio to the report no images embedded.
Target: first paint < 1 s. Usage: python benchmarks/report_media.py [--repeats 5] [--size 128]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import trackhooks
from trackhooks.report import write_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")


def _open(path: str, chromium: str) -> dict:
    out = subprocess.run(["node", "paint.mjs", "file://" + path, chromium], cwd=BROWSER_DIR, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=128, help="image side in pixels")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--keys", type=int, default=3)
    args = ap.parse_args()
    chromium = os.environ.get("TRACKHOOKS_CHROMIUM") or shutil.which("chromium")
    if not chromium or not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        sys.exit("needs chromium and `npm ci` in tests/browser")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        store = os.path.join(d, "store")
        with trackhooks.start_run("bench", "media", store=store) as run:
            for s in range(args.steps):
                run.log_metric("loss", 1 / (s + 1), step=s)
                for k in range(args.keys):
                    run.log_image(f"samples/{k}", rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8), step=s)
        recs = trackhooks.open_store(store).runs()
        with_media, without = os.path.join(d, "media.html"), os.path.join(d, "plain.html")
        t0 = time.perf_counter()
        info = write_report(recs, with_media, store_path=store)
        build_s = time.perf_counter() - t0
        write_report(recs, without, store_path=store, media_steps={k: 0 for k in ("image", "figure")},
                     max_image_bytes=0)
        print(f"report: {info['media']['images_embedded']} images embedded, {info['media']['image_bytes'] / 2**20:.1f} MiB "
              f"of PNG, file {os.path.getsize(with_media) / 2**20:.1f} MiB, built in {build_s:.2f} s; "
              f"no images embedded {os.path.getsize(without) / 2**20:.2f} MiB")
        rows = {"media": [], "plain": []}
        for _ in range(args.repeats):
            rows["media"].append(_open(with_media, chromium))
            rows["plain"].append(_open(without, chromium))
        print(f"| {args.keys} keys × {args.steps} images ({args.size}×{args.size}) | median ms ({args.repeats} tries, "
              "fresh browser each) | same report, no image embedded | ratio |\n|---|---|---|---|")
        for label, field in (("first contentful paint", "fcp"), ("charts and panels drawn", "ready"),
                             ("images attached", "images"), ("load event", "load")):
            m = statistics.median(r[field] for r in rows["media"])
            p = statistics.median(r[field] for r in rows["plain"])
            print(f"| {label} | {m:.0f} | {p:.0f} | {m / p:.2f} |")
        fcp = statistics.median(r["fcp"] for r in rows["media"])
        print(f"target first paint < 1000 ms: {'MET' if fcp < 1000 else 'MISSED'} ({fcp:.0f} ms)")


if __name__ == "__main__":
    main()
