"""Concurrency: many processes into one store with readers meanwhile, many threads into one run."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

import trackhooks

from ._util import child_env, integrity, spawn

N_PROC, N_POINTS, N_KEYS = 8, 50_000, 5

WRITER = """
import sys, warnings, trackhooks
warnings.simplefilter("error")  # any trackhooks warning (a failed write, a lock) fails the writer
run = trackhooks.start_run(experiment="many", name=sys.argv[1])
n, keys = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    run.log_metric(f"k{i % keys}", float(i), step=i // keys)
    if i % 20_000 == 0:
        run.flush()
run.finish()
"""


@pytest.mark.timeout(170)
def test_eight_processes_into_one_store_with_readers(store_path):
    trackhooks.start_run(experiment="setup").finish()  # the store exists before the writers race
    env = child_env(store_path, TRACKHOOKS_FLUSH_INTERVAL="0.2")
    procs = [spawn(WRITER, store_path, f"w{i}", str(N_POINTS), str(N_KEYS), env=env) for i in range(N_PROC)]
    errors: list[BaseException] = []
    reads = [0]
    stop = threading.Event()

    def reader() -> None:
        store = trackhooks.open_store(store_path)
        try:
            while not stop.is_set():
                for r in store.runs(experiment="many"):
                    for key in r.metric_keys():
                        s = r.metric(key)
                        assert s.steps == list(range(len(s)))  # a reader never sees a half-written block
                    reads[0] += 1
                store.runs_using("ab")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    cli_runs = 0
    while any(p.poll() is None for p in procs):  # a third reader: the CLI in its own process
        out = subprocess.run([sys.executable, "-m", "trackhooks", "runs", "--store", store_path, "--json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        cli_runs += 1
    stop.set()
    for t in readers:
        t.join(60)
    for i, p in enumerate(procs):
        err = p.stderr.read()
        assert p.returncode == 0 and "locked" not in err and "Warning" not in err, f"writer {i}: {err}"
    assert not errors, errors
    assert reads[0] > 0 and cli_runs > 0

    store = trackhooks.open_store(store_path)
    runs = store.runs(experiment="many")
    assert sorted(r.name for r in runs) == [f"w{i}" for i in range(N_PROC)]
    total = 0
    for r in runs:
        assert r.status == "finished"
        for k in range(N_KEYS):
            s = r.metric(f"k{k}")
            assert s.steps == list(range(N_POINTS // N_KEYS))
            assert s.values == [float(i * N_KEYS + k) for i in range(N_POINTS // N_KEYS)]
            total += len(s)
    assert total == N_PROC * N_POINTS == 400_000
    assert integrity(store_path) == "ok"


@pytest.mark.timeout(60)
def test_threads_logging_into_one_run(store_path):
    """Auto-steps from 8 threads on one key: no point lost or duplicated, steps 0..N-1."""
    n_threads, n = 8, 5000
    barrier = threading.Barrier(n_threads)
    with trackhooks.start_run() as run:
        def work(t: int) -> None:
            barrier.wait()
            for i in range(n):
                run.log_metric("shared", float(t * n + i))  # step=None: the writer numbers them
                run.log_metrics({f"own{t}": float(i), "pair": float(t)}, step=i)
                if i % 1000 == 0:
                    run.log_params({f"p{t}.{i}": i, "common": "same"})  # same value from every thread
                    run.set_tags({f"t{t}": str(i)})

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    rec = trackhooks.open_store(store_path).run(run.id)
    shared = rec.metric("shared")
    assert shared.steps == list(range(n_threads * n))
    assert sorted(shared.values) == [float(v) for v in range(n_threads * n)]
    for t in range(n_threads):
        assert rec.metric(f"own{t}").values == [float(i) for i in range(n)]
        assert rec.tags[f"t{t}"] == str(n - 1000)
    pair = rec.metric("pair")
    assert len(pair) == n_threads * n and sorted(pair.values) == sorted(float(t) for t in range(n_threads)
                                                                      for _ in range(n))
    assert rec.params["common"] == "same" and len(rec.params) == 1 + n_threads * (n // 1000)


@pytest.mark.timeout(60)
def test_fork_child_logs_its_own_run(store_path):
    """A forked worker (DataLoader workers, multiprocessing) logs its own run; the parent's is intact."""
    import multiprocessing as mp

    parent = trackhooks.start_run(name="parent")
    parent.log_metric("m", 1.0)
    parent.flush()
    ctx = mp.get_context("fork")
    q = ctx.Queue()

    def child() -> None:
        r = trackhooks.start_run(name="child")
        for i in range(100):
            r.log_metric("c", float(i))
        r.finish()
        q.put(r.id)

    p = ctx.Process(target=child)
    p.start()
    child_id = q.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    parent.log_metric("m", 2.0)
    parent.finish()
    store = trackhooks.open_store(store_path)
    assert store.run(child_id).metric("c").values == [float(i) for i in range(100)]
    assert store.run(parent.id).metric("m").values == [1.0, 2.0]
    assert store.run(parent.id).status == "finished" and store.run(child_id).status == "finished"
