"""Shared plumbing of the workload scripts: argument parsing, the clock, fresh processes, JSON lines.

A workload script defines ``CONFIGS`` (name -> modules it needs), ``SIZES`` (size -> parameters),
``preload(configs)`` (imports the framework and peers outside the timed region) and
``run(config, p, tmp, clock)`` (builds everything, calls ``clock.setup_done()``, trains and
finalizes, calls ``clock.fit_done()``; may return extra numbers), and optionally
``prepare(config, tmp)`` (the measurement's surroundings, such as a git work tree in its folder,
made before the clock starts). ``main()`` here does the rest.

Every measurement runs in a fresh process:
- ``--config A`` (one config, no ``--fork``): this process is the fresh one; it prints one JSON line.
- ``--config A,B,C --repeats R --fork``: this process imports the framework and every peer once and
  then forks one child per measurement, interleaved A B C A B C ...; each child builds, trains and
  exits, and this process prints one JSON line per child. A forked child is a fresh process for
  everything the benchmark times (no run, logger, store or model survives from an earlier
  measurement); it only skips re-importing modules, which costs 5-12 s per process for Lightning or
  Keras on this machine and is not part of setup or fit in either mode.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

# set before any framework import; the harness sets them too, this covers direct runs of a script
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_CODE", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 refuses the file store without it
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see child_env() in run.py: spinning OpenMP threads on shared cores
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

CHILD_TIMEOUT_S = float(os.environ.get("BENCH_CHILD_TIMEOUT", "600"))


class Clock:
    """Marks the end of setup and of fit; times are perf_counter seconds from the start."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.t_setup: float | None = None
        self.t_fit: float | None = None

    def setup_done(self) -> None:
        self.u_setup = _usage()
        self.t_setup = time.perf_counter()

    def fit_done(self) -> None:
        self.t_fit = time.perf_counter()
        self.u_fit = _usage()

    def result(self) -> dict[str, float]:
        if self.t_setup is None or self.t_fit is None:
            raise RuntimeError("workload did not mark setup_done() and fit_done()")
        row = {"setup_s": self.t_setup - self.t0, "fit_s": self.t_fit - self.t_setup}
        # what wall time alone hides (all threads of the process, during the fit): CPU time in user
        # space and in the kernel, page faults, and waits (voluntary) or preemptions (involuntary)
        row.update({f"fit_{k}": round(b - a, 6) for k, a, b in zip(_USAGE, self.u_setup, self.u_fit)})
        return row


_USAGE = ("user_s", "sys_s", "minflt", "vcsw", "ivcsw")


def _usage() -> tuple[float, ...]:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return (u.ru_utime, u.ru_stime, u.ru_minflt, u.ru_nvcsw, u.ru_nivcsw)


def missing_modules(modules: list[str]) -> list[str]:
    out = []
    for m in modules:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


def import_modules(modules: list[str]) -> None:
    for m in modules:
        importlib.import_module(m)


def preload_trackhooks(module: str, *names: str) -> None:
    """Import an integration's public names and the core's run module, as preload() imports the peers:
    no configuration's measured time includes importing its tracker. (The cold cost of the first
    start_run, imports included, is measured on its own by core_micro.py.)"""
    mod = importlib.import_module(module)
    for n in names:
        getattr(mod, n)
    importlib.import_module("trackhooks.run")


def _quiet_frameworks() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning.fabric", "mlflow", "alembic",
                 "wandb", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)


TEMPLATES_ENV = "BENCH_TEMPLATES"


def make_templates(directory: str, with_mlflow: bool = True) -> None:
    """An empty trackhooks store and an empty MLflow sqlite database to start each measurement from.

    Users log into a store or database that exists already; creating one (MLflow runs its schema
    migrations: seconds) is a one-time cost that would otherwise dominate short workloads.
    """
    os.makedirs(directory, exist_ok=True)
    if importlib.util.find_spec("trackhooks") is not None:
        from trackhooks.store.sqlite import init_store

        init_store(os.path.join(directory, "store"))
    if with_mlflow and importlib.util.find_spec("mlflow") is not None:
        _quiet_frameworks()
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{os.path.join(directory, 'mlflow.db')}")
        mlflow.search_experiments()


def _from_templates(tmp: str) -> None:
    src = os.environ.get(TEMPLATES_ENV)
    if not src or not os.path.isdir(src):
        return
    if os.path.isdir(os.path.join(src, "store")):
        shutil.copytree(os.path.join(src, "store"), os.path.join(tmp, "store"))
    if os.path.isfile(os.path.join(src, "mlflow.db")):
        shutil.copyfile(os.path.join(src, "mlflow.db"), os.path.join(tmp, "mlflow.db"))


def measure(workload: Any, config: str, p: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process and return its result row."""
    tmp = tempfile.mkdtemp(prefix=f"bench-{config}-")
    _from_templates(tmp)
    os.environ["TRACKHOOKS_URI"] = os.path.join(tmp, "store")
    os.environ.pop("TRACKHOOKS_MIRRORS", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["WANDB_DIR"] = tmp
    cwd = os.getcwd()
    os.chdir(tmp)  # peers that write next to the working directory (./mlruns, ./lightning_logs) write here
    full: list[float] = []  # durations of the full (generation-2) collections in the measured window

    def on_gc(phase: str, info: dict[str, Any], _t: list[float] = [0.0]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                _t[0] = time.perf_counter()
            else:
                full.append(time.perf_counter() - _t[0])

    import gc

    gc.callbacks.append(on_gc)
    try:
        prepare = getattr(workload, "prepare", None)
        if prepare is not None:  # the measurement's surroundings (a git work tree): before the clock starts
            prepare(config, tmp)
        clock = Clock()
        extra = workload.run(config, p, tmp, clock) or {}
        gc.callbacks.remove(on_gc)
        row = {"status": "ok", **clock.result(), **extra, "gc_full": len(full), "gc_full_s": sum(full)}
    except Exception as exc:
        row = {"status": "error", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        traceback.print_exc(file=sys.stderr)
    finally:
        if on_gc in gc.callbacks:
            gc.callbacks.remove(on_gc)
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def _forked(workload: Any, config: str, p: dict[str, Any]) -> dict[str, Any]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fresh child: measure, report, run exit handlers (peers flush there), leave
        os.close(r)
        code = 0
        try:
            row = measure(workload, config, p)
            os.write(w, json.dumps(row).encode())
            try:
                import atexit

                atexit._run_exitfuncs()
            except BaseException:
                pass
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            continue
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    if timed_out:
        return {"status": "error", "detail": f"timed out after {CHILD_TIMEOUT_S:.0f} s"}
    try:
        return json.loads(b"".join(chunks).decode())
    except ValueError:
        return {"status": "error", "detail": "child process died without a result"}


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def main(workload: Any, argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(workload.__doc__ or "").strip().splitlines()[0])
    ap.add_argument("--config", required=False, help="comma-separated configuration names (default: all)")
    ap.add_argument("--size", default="full", choices=sorted(workload.SIZES), help="workload size")
    ap.add_argument("--repeats", type=int, default=1, help="measurements per config (interleaved; needs --fork if >1)")
    ap.add_argument("--fork", action="store_true", help="import once, fork a fresh child per measurement")
    ap.add_argument("--list", action="store_true", help="print the configuration names and exit")
    for args, kwargs in getattr(workload, "EXTRA_ARGS", []):
        ap.add_argument(*args, **kwargs)
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(workload.CONFIGS))
        return 0
    configs = a.config.split(",") if a.config else list(workload.CONFIGS)
    unknown = [c for c in configs if c not in workload.CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {', '.join(unknown)}; known: {', '.join(workload.CONFIGS)}")
    if (len(configs) > 1 or a.repeats > 1) and not a.fork:
        ap.error("several measurements in one call need --fork (each measurement needs a fresh process)")
    p = dict(workload.SIZES[a.size])
    for args, _ in getattr(workload, "EXTRA_ARGS", []):
        key = args[0].lstrip("-").replace("-", "_")
        p[key] = getattr(a, key)
    base = {"workload": workload.NAME, "size": a.size, **{k: v for k, v in p.items() if k in workload.LABEL_KEYS}}
    _quiet_frameworks()

    runnable = []
    for c in configs:
        missing = missing_modules(workload.CONFIGS[c])
        if missing:
            for rep in range(a.repeats):
                emit({**base, "config": c, "repeat": rep, "status": "not installed",
                      "detail": "missing " + ", ".join(missing)})
        else:
            runnable.append(c)
    if not runnable:
        return 0
    t = time.perf_counter()
    try:
        workload.preload(runnable)
    except Exception as exc:  # a peer that is installed but does not import: report, do not crash
        for c in runnable:
            emit({**base, "config": c, "repeat": 0, "status": "error", "detail": f"import failed: {exc}"[:300]})
        return 0
    import_s = time.perf_counter() - t
    if a.fork:
        # Every forked child starts from this process's collector state. After the imports a full
        # collection is often overdue (survivors of the young generations exceed a quarter of the
        # old one): the first child to allocate a few thousand objects pays it, 70-100 ms in a
        # forked child (each object header written copies its page), and which configuration that is
        # depends on how much it allocates, not on what it costs. Collected here, no child inherits
        # that debt; a fresh interpreter (--spawn, full mode) keeps the one its imports leave, and the
        # rows say how many full collections ran in the measured window (gc_full, gc_full_s).
        import gc

        gc.collect()
    for rep in range(a.repeats):
        for c in runnable:
            row = _forked(workload, c, p) if a.fork else measure(workload, c, p)
            if not a.fork:
                row["import_s"] = import_s
            emit({**base, "config": c, "repeat": rep, **row})
    return 0


def _templates_main() -> None:
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--make-templates":
        make_templates(sys.argv[2], with_mlflow=sys.argv[3:] == ["--mlflow"])
        sys.exit(0)
    sys.exit("usage: _bench.py --make-templates DIR [--mlflow]")


def run_script(module_name: str) -> None:
    """Entry point of a workload script: ``run_script(__name__)`` at the bottom of the module."""
    sys.exit(main(sys.modules[module_name]))


def seed_all(seed: int = 0) -> None:
    import random

    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


if __name__ == "__main__":
    _templates_main()
