"""Several processes, SIGKILL: the store stays valid and keeps everything flushed."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

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



FIRST_START = r"""
import sys, threading
watched = {"typing", "re", "json", "socket", "numbers", "inspect", "enum"}
before = sorted(watched & set(sys.modules))
main, seen = threading.get_ident(), set()


class Spy:  # imports made on the caller's thread; the writer's own start-up is beside the training
    def find_spec(self, name, path=None, target=None):
        if name in watched and threading.get_ident() == main:
            seen.add(name)
        return None


import trackhooks
sys.meta_path.insert(0, Spy())
run = trackhooks.start_run(experiment="imports", store=sys.argv[1])
sys.meta_path.pop(0)
run.finish()
print(",".join(before) + "|" + ",".join(sorted(seen)))
"""


def test_first_start_run_leaves_the_stdlib_parsers_unimported(tmp_path):
    # typing, json, re, socket...: ~9 ms of the first start_run of a bare process on this machine
    # when a store module imported them at module level (benchmarks/README.md, seventh pass)
    store = str(tmp_path / "s")
    for case in ("new store", "existing store"):
        out = subprocess.run([sys.executable, "-c", FIRST_START, store], capture_output=True, text=True,
                             check=True, timeout=120, env={**os.environ, "TRACKHOOKS_CAPTURE_OUTPUT": "on"})
        before, seen = out.stdout.strip().splitlines()[-1].split("|")
        if before:
            pytest.skip(f"this interpreter imports {before} at start-up (a .pth or sitecustomize): unobservable here")
        assert seen == "", f"{case}: the first start_run imported {seen} on the caller's thread"
