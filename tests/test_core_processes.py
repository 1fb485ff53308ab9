"""Several processes, SIGKILL: the store stays valid and keeps everything flushed."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import trackhooks

WRITER = """
import sys, trackhooks
run = trackhooks.start_run(experiment="concurrent", name=sys.argv[1])
for i in range(int(sys.argv[2])):
    run.log_metrics({"a": float(i), "b": -float(i)}, step=i)
run.finish()
"""


def test_concurrent_writer_processes(store_path):
    n_proc, n_points = 4, 20000
    env = {**os.environ, "TRACKHOOKS_URI": store_path}
    trackhooks.start_run().finish()  # create the store first so every writer opens an existing one
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, f"w{i}", str(n_points)], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(n_proc)]
    store = trackhooks.open_store(store_path)
    while any(p.poll() is None for p in procs):
        store.runs(experiment="concurrent")  # readers run while writers write
        time.sleep(0.05)
    for p in procs:
        assert p.returncode == 0, p.stderr.read()
    runs = store.runs(experiment="concurrent")
    assert sorted(r.name for r in runs) == [f"w{i}" for i in range(n_proc)]
    for r in runs:
        assert r.status == "finished"
        a = r.metric("a")
        assert a.steps == list(range(n_points)) and a.values == [float(i) for i in range(n_points)]


KILLED = """
import sys, trackhooks, time
run = trackhooks.start_run(name="victim")
i = 0
while True:
    run.log_metric("m", float(i), step=i)
    i += 1
    if i % 500 == 0:
        run.flush()
        print(i, flush=True)
"""


def test_sigkill_keeps_flushed_points_and_store_valid(store_path):
    env = {**os.environ, "TRACKHOOKS_URI": store_path, "TRACKHOOKS_FLUSH_INTERVAL": "0.05"}
    for trial in range(3):
        proc = subprocess.Popen([sys.executable, "-c", KILLED], env=env, stdout=subprocess.PIPE, text=True)
        flushed = 0
        for _ in range(3 + trial * 2):
            flushed = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        conn = sqlite3.connect(os.path.join(store_path, "trackhooks.db"))
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        rec = trackhooks.open_store(store_path).runs()[-1]
        assert rec.status == "killed"
        values = rec.metric("m").values
        assert len(values) >= flushed
        assert values == [float(i) for i in range(len(values))]

