#!/usr/bin/env python
"""Where the core's time goes: phase breakdowns of start_run, ingest and reading a series.

    python benchmarks/profile_core.py [start_run|ingest|read] [--points N]

Not a benchmark (no repeats, no report file): a diagnostic to run when RESULTS.md marks a core
target MISSED. Each part runs in its own fresh interpreter so that nothing is warm.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

_START = r'''
import sys, time
T = time.perf_counter
t0 = T(); import trackhooks; t_import = T() - t0
t0 = T(); import trackhooks.run as R; t_run_mod = T() - t0
import importlib.metadata as md, trackhooks.plugins as P, trackhooks.writer as W
spent = {}
def wrap(owner, name, label):
    f = getattr(owner, name)
    def timed(*a, **k):
        t = T()
        try:
            return f(*a, **k)
        finally:
            spent[label] = spent.get(label, 0.0) + T() - t
    setattr(owner, name, timed)
wrap(P, "make_plugin_manager", "plugin manager (entry points + plugin imports)")
wrap(md, "entry_points", "  of which: entry point scan")
wrap(md.EntryPoint, "load", "  of which: importing plugin modules")
wrap(R, "_channel", "store open (LocalStoreSink, schema check)")
wrap(R, "_collect_system_info", "system info hooks (includes the plugin manager on first use)")
wrap(W.Writer, "flush", "start-up flush (run row durable before training)")
t0 = T(); run = trackhooks.start_run(experiment="profile", store=sys.argv[1]); total = T() - t0
t0 = T(); run2 = trackhooks.start_run(experiment="profile", store=sys.argv[1]); second = T() - t0
print(f"import trackhooks                 {1e3 * t_import:8.1f} ms")
print(f"import trackhooks.run (+ stdlib)  {1e3 * t_run_mod:8.1f} ms  (paid by the first start_run)")
print(f"first start_run                   {1e3 * total:8.1f} ms")
for k, v in spent.items():
    print(f"  {k:<62} {1e3 * v:8.1f} ms")
print(f"second start_run in the process   {1e3 * second:8.1f} ms")
run2.finish(); run.finish()
'''

_INGEST = r'''
import sys, time
T = time.perf_counter
import trackhooks
from trackhooks import writer as W
from trackhooks.store.sqlite import LocalStoreSink
W.WAKE_AT = W.MAX_BUFFERED = 10 ** 9  # the writer stays asleep (interval set by the environment)
run = trackhooks.start_run(experiment="profile", store=sys.argv[1]); run.flush()
n_calls = int(sys.argv[2]) // 4
ds = [{k: float(i) + j for j, k in enumerate(("loss", "acc", "lr", "grad_norm"))} for i in range(1000)]
log = run.log_metrics
t = T()
for i in range(n_calls):
    log(ds[i % 1000], step=i)
caller = T() - t
sink_s = [0.0]
orig = LocalStoreSink.write
def write(self, batch):
    t = T()
    try:
        return orig(self, batch)
    finally:
        sink_s[0] += T() - t
LocalStoreSink.write = write
w = W.get_writer()
t = T(); w._drain(); drain = T() - t
pts = n_calls * 4
print(f"{pts} points, 4 keys per call, all on one thread (no GIL sharing):")
print(f"  caller: log_metrics              {caller:6.2f} s  {1e6 * caller / n_calls:6.2f} µs/call  {pts / caller / 1e6:5.2f} M points/s")
print(f"  writer: buffer -> batch columns  {drain - sink_s[0]:6.2f} s  {pts / (drain - sink_s[0]) / 1e6:5.2f} M points/s")
print(f"  sink: pack + SQLite commit       {sink_s[0]:6.2f} s  {pts / sink_s[0] / 1e6:5.2f} M points/s")
print(f"  serial total                     {caller + drain:6.2f} s  {pts / (caller + drain) / 1e6:5.2f} M points/s")
run.finish()
'''

_READ = r'''
import sys, time
T = time.perf_counter
import trackhooks
n = int(sys.argv[2])
run = trackhooks.start_run(experiment="profile", store=sys.argv[1])
for i in range(n):
    run.log_metric("loss", i * 1e-6, step=i)
run.finish()
t = T(); store = trackhooks.open_store(sys.argv[1]); rec = store.run(run.id); t_open = T() - t
t = T(); s = rec.metric("loss"); t_metric = T() - t
t = T(); v = s.values; st = s.steps; t_lists = T() - t
t = T(); e = s.epochs; t_epochs = T() - t
print(f"open_store + run(id)   {1e3 * t_open:7.1f} ms")
print(f"metric('loss') {n} pts {1e3 * t_metric:7.1f} ms  (SQL fetch of the key's blocks + unpack)")
print(f".values + .steps lists {1e3 * t_lists:7.1f} ms")
print(f".epochs list           {1e3 * t_epochs:7.1f} ms")
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("parts", nargs="*", default=["start_run", "ingest", "read"])
    ap.add_argument("--points", type=int, default=1_000_000)
    a = ap.parse_args()
    env = dict(os.environ, TRACKHOOKS_FLUSH_INTERVAL="3600")
    env.pop("TRACKHOOKS_MIRRORS", None)
    for part in a.parts:
        with tempfile.TemporaryDirectory() as tmp:
            store = os.path.join(tmp, "store")
            print(f"== {part}", flush=True)
            if part == "start_run":
                # the usual case: the store exists already (a first process created it)
                subprocess.run([sys.executable, "-c", _START, store], env=env, check=True, capture_output=True)
                subprocess.run([sys.executable, "-c", _START, store], env=env, check=True)
            elif part == "ingest":
                subprocess.run([sys.executable, "-c", _INGEST, store, str(a.points)], env=env, check=True)
            elif part == "read":
                subprocess.run([sys.executable, "-c", _READ, store, str(a.points)], env=env, check=True)
            else:
                ap.error(f"unknown part {part!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
