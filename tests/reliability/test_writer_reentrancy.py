"""Calls that wait for the writer, made on a thread that is inside a drain (issue 21, item 7).

The cyclic collector can run a finalizer anywhere, on the writer thread inside a sink's write too:
``weakref.finalize`` finishing a ``partial_fit`` run when its estimator is freed is the real case.
Each scenario runs in a child process because the bug is a hang: a deadlocked writer thread would
stay stuck in the test process and take every later test with it.
"""

from __future__ import annotations

import json

import trackhooks

from ._util import run_child

FINALIZER_ON_WRITER = """
import gc, json, threading, weakref
import trackhooks

class Collecting(trackhooks.Sink):
    name = "collecting mirror"
    armed = False
    def write(self, batch):
        if Collecting.armed:
            Collecting.armed = False
            gc.collect()  # frees the cycle below here, on the writer thread, inside the drain

seen = {}
victim = trackhooks.start_run(name="freed-with-its-estimator")
victim.log_metric("loss", 1.0)

class Estimator:
    pass

def finish_victim():
    seen["thread"] = threading.current_thread().name
    victim.finish()  # flushes: before the fix the writer waited for itself here
    seen["finished"] = True

est = Estimator()
est.self_ref = est  # a reference cycle: only the cyclic collector frees it
weakref.finalize(est, finish_victim)
gc.disable()  # nobody but the sink's write may collect it
del est

other = trackhooks.start_run(name="other", mirrors=[Collecting()])
Collecting.armed = True
other.log_metric("x", 1.0)
flushed = other.flush(timeout=60)
later = trackhooks.start_run(name="later")
later.log_metric("y", 2.0)
later.finish()
other.finish()
print(json.dumps({"flushed": flushed, **seen}))
"""


def test_finish_from_a_finalizer_on_the_writer_thread_does_not_deadlock(store_path):
    proc = run_child(FINALIZER_ON_WRITER, store_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"flushed": True, "thread": "trackhooks-writer", "finished": True}
    store = trackhooks.open_store(store_path)
    runs = {r.name: r for r in store.runs()}
    assert {n: r.status for n, r in runs.items()} == {"freed-with-its-estimator": "finished", "other": "finished",
                                                      "later": "finished"}
    assert runs["freed-with-its-estimator"].metric("loss").values == [1.0]
    assert runs["later"].metric("y").values == [2.0]


SIGNAL_DURING_EXIT_DRAIN = """
import signal, threading
import trackhooks

def on_signal(signum, frame):
    # a run started and finished by a signal handler that interrupted the exit drain: finish waits
    # forever if it waits for the drain it interrupted
    with trackhooks.start_run(name="started-in-a-signal-handler") as r:
        r.log_metric("z", 3.0)

signal.signal(signal.SIGUSR1, on_signal)

class Signalling(trackhooks.Sink):
    name = "signalling mirror"
    fired = False
    def write(self, batch):
        pass
    def flush(self):
        # only the exit drain flushes sinks on the main thread, holding the write lock
        if threading.current_thread() is threading.main_thread() and not Signalling.fired:
            Signalling.fired = True
            signal.raise_signal(signal.SIGUSR1)

run = trackhooks.start_run(name="ends-at-exit", mirrors=[Signalling()])
run.log_metric("x", 1.0)
print("exiting")
"""


def test_finish_from_a_signal_handler_during_the_exit_drain(store_path):
    proc = run_child(SIGNAL_DURING_EXIT_DRAIN, store_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "exiting"
    runs = {r.name: r for r in trackhooks.open_store(store_path).runs()}
    assert {n: r.status for n, r in runs.items()} == {"started-in-a-signal-handler": "finished",
                                                      "ends-at-exit": "finished"}
    assert runs["started-in-a-signal-handler"].metric("z").values == [3.0]
