"""Instruction counts of one workload configuration: what a change costs, whatever the machine's load.

    .venv/bin/python benchmarks/instructions.py sklearn_bench "trackhooks autolog" none
    .venv/bin/python benchmarks/instructions.py console_bench "capture on" "capture off" --params '{"destination": "file"}'
    .venv/bin/python benchmarks/instructions.py xgboost_bench trackhooks none --params '{"one_fit": true}' --code /tmp/old

Each configuration runs in its own process under ``valgrind --tool=callgrind`` (all threads), as
the workload script's ``preload`` of every trackhooks configuration, a collection, then ``run``;
a process stopped right after the preload is counted too and subtracted, so each figure is the
instructions of that configuration's setup and fit (plus the writer's work). ``--code DIR`` runs
the trackhooks of another checkout (its ``src`` and ``integrations/*/src`` first on the path), e.g.
a ``git worktree`` of the commit before a change. Used for benchmarks/README.md "Third pass".
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "workloads"))


def _child(module: str, config: str, params: dict) -> None:
    import gc
    import importlib
    import tempfile

    import _bench

    w = importlib.import_module(module)
    w.preload([c for c in w.CONFIGS if c == config or c.startswith(("none", "trackhooks", "capture"))])
    tmp = tempfile.mkdtemp()
    _bench.make_templates(os.path.join(tmp, "t"), with_mlflow=False)
    os.environ["TRACKHOOKS_URI"] = os.path.join(tmp, "t", "store")
    p = {**w.SIZES[params.pop("size", "quick")], **params}
    gc.collect()
    if config != "stop":
        w.run(config, p, tmp, _bench.Clock())
    os._exit(0)


def code_env(code: str | None) -> dict[str, str]:
    """The environment of a measured child: quiet thread pools, and ``code``'s trackhooks first on the
    path when given (a checkout: its ``src`` and ``integrations/*/src``)."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "KERAS_BACKEND": "torch", "TRACKHOOKS_GIT_DIFF": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if code:
        paths = [os.path.join(code, "src"), *sorted(glob.glob(os.path.join(code, "integrations", "*", "src")))]
        env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return env


def count(module: str, config: str, params: dict, code: str | None) -> int:
    env = code_env(code)
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                          os.path.abspath(__file__), "--child", module, config, json.dumps(params)],
                         capture_output=True, text=True, env=env)
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"valgrind gave no count for {config!r}:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("module", help="a script of benchmarks/workloads, without .py (sklearn_bench, console_bench, ...)")
    ap.add_argument("configs", nargs="+", help="configuration names of that script")
    ap.add_argument("--params", default="{}", help="JSON: workload parameters over the quick size (size: tiny|quick|full)")
    ap.add_argument("--code", help="another checkout whose trackhooks to count")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (apt-get install valgrind)")
    params = json.loads(a.params)
    stop = count(a.module, "stop", dict(params), a.code)
    print(json.dumps({"config": "stop (preload only)", "instructions": stop}))
    for c in a.configs:
        n = count(a.module, c, dict(params), a.code)
        print(json.dumps({"config": c, "instructions": n, "minus_stop": n - stop}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
