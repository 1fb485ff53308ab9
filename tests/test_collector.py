"""trackhooks.collector.paused: the cyclic collector held off during bursts of lasting allocations."""

import gc
import threading

from trackhooks.collector import paused


def _young_collections(fn):
    seen = []

    def cb(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(cb)
    try:
        fn()
    finally:
        gc.callbacks.remove(cb)
    return seen


def test_a_burst_inside_costs_at_most_one_collection():
    kept = []

    def burst():
        for _ in range(20_000):
            kept.append([])

    assert gc.isenabled()
    outside = _young_collections(burst)

    def inside():
        with paused():
            assert not gc.isenabled()
            burst()
        assert gc.isenabled()
        kept.append([])  # the first allocation after the window runs the one deferred collection

    assert len(outside) >= 20  # every ~700 allocations
    assert len(_young_collections(inside)) <= 1


def test_nested_and_concurrent_windows_restore_the_collector_once():
    entered, leave = threading.Event(), threading.Event()

    def other():
        with paused():
            entered.set()
            leave.wait(5)

    with paused():
        t = threading.Thread(target=other)
        t.start()
        assert entered.wait(5)
        with paused():
            assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's window is still open
    leave.set()
    t.join(5)
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_program_stays_off():
    gc.disable()
    try:
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_writers_first_drain_runs_with_the_collector_off(tmp_path):
    # the system-info hook runs inside the drain: it sees the collector off in the first drain of
    # the process only, and the collector is on again once the run is written
    import os
    import subprocess
    import sys

    code = (
        "import gc, trackhooks\n"
        "class P:\n"
        "    @trackhooks.hookimpl\n"
        "    def trackhooks_collect_system_info(self, run):\n"
        "        return {'gc_on': gc.isenabled()}\n"
        "trackhooks.plugin_manager().register(P())\n"
        "a = trackhooks.start_run(); a.finish(); b = trackhooks.start_run(); b.finish()\n"
        "s = trackhooks.open_store()\n"
        "print(s.run(a.id).system['gc_on'], s.run(b.id).system['gc_on'], gc.isenabled())\n")
    env = {**os.environ, "TRACKHOOKS_URI": str(tmp_path / "store")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "True", "True"], out.stderr
