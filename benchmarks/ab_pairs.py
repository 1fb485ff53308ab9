"""Interleaved fresh-process A/B of one workload: this checkout against another, round after round.

    .venv/bin/python benchmarks/ab_pairs.py media_bench "trackhooks autolog (with plots)" --code /tmp/old
    .venv/bin/python benchmarks/ab_pairs.py sklearn_bench "trackhooks autolog" --code /tmp/old --repeats 8
    .venv/bin/python benchmarks/ab_pairs.py console_bench "capture fd" --baseline "capture off" --code /tmp/old \
        --args "--destination unbuffered"

Each round runs, each in a new interpreter (``python benchmarks/workloads/<module>.py --config C``,
the way ``run.py --spawn`` measures): the first configuration (``--baseline``, default ``none``)
once, then every named configuration with this checkout's trackhooks and with ``--code``'s (a
checkout, e.g. a ``git worktree`` of the commit before a change; its ``src`` and
``integrations/*/src`` first on the path). On a machine whose speed drifts, only such interleaved
rounds compare; the medians of the fit (and of setup + fit), the minima and the count of full
collections in the measured window are printed as a Markdown table. Used for benchmarks/README.md "Sixth pass".

Every measured process starts from a copy of an existing, empty store (and MLflow database), made
once per checkout before the first round, as ``run.py`` does: a user's script logs into a store
that exists already, and creating one is not what a fit costs (before the tenth pass this script
let every process create its store inside the measured fit, 5-8 ms of a 0.12 s fit).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from instructions import code_env  # noqa: E402


def _templates(code: str | None, mlflow: bool) -> str:
    """An empty store (and MLflow database) made by ``code``'s trackhooks, for its processes to copy."""
    directory = tempfile.mkdtemp(prefix="ab-templates-")
    subprocess.run([sys.executable, os.path.join(HERE, "workloads", "_bench.py"), "--make-templates", directory,
                    *(["--mlflow"] if mlflow else [])], env=code_env(code), check=True, capture_output=True,
                   timeout=300)
    return directory


def _one(module: str, config: str, size: str, code: str | None, extra: list[str] = (),
         templates: str | None = None) -> dict:
    env = code_env(code)
    if templates:
        env["BENCH_TEMPLATES"] = templates
    out = subprocess.run([sys.executable, os.path.join(HERE, "workloads", f"{module}.py"), "--config", config,
                          "--size", size, *extra], capture_output=True, text=True, env=env, timeout=600)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not rows or rows[-1].get("status") != "ok":
        raise SystemExit(f"{module} {config!r} ({code or 'this checkout'}) failed:\n{out.stderr[-3000:]}")
    return rows[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("module", help="a script of benchmarks/workloads, without .py")
    ap.add_argument("configs", nargs="+", help="configurations measured with both checkouts")
    ap.add_argument("--code", required=True, help="the other checkout")
    ap.add_argument("--baseline", default="none", help="configuration measured once per round (default none)")
    ap.add_argument("--size", default="quick")
    ap.add_argument("--repeats", type=int, default=6, help="rounds (default 6)")
    ap.add_argument("--args", default="", help="more arguments of the workload script, e.g. '--destination unbuffered'")
    a = ap.parse_args()
    variants = [(a.baseline, None)] + [(c, code) for c in a.configs for code in (None, a.code)]
    rows: dict[tuple[str, str | None], list[dict]] = {v: [] for v in variants}
    mlflow = any("mlflow" in c.lower() for c, _ in variants)
    templates = {code: _templates(code, mlflow) for code in (None, a.code)}
    try:
        for _ in range(a.repeats):
            for config, code in variants:
                rows[(config, code)].append(_one(a.module, config, a.size, code, shlex.split(a.args), templates[code]))
    finally:
        for directory in templates.values():
            shutil.rmtree(directory, ignore_errors=True)
    def med(rs: list[dict], key: str) -> float:
        return statistics.median(r["fit_s"] + r["setup_s"] if key == "total" else r[key] for r in rs)

    base = {k: med(rows[(a.baseline, None)], k) for k in ("fit_s", "total")}
    # the fit's user CPU time (all threads) beside its wall time: when the two move together from one
    # process to the next, the machine's speed moved, not waits (benchmarks/README.md, "Ninth pass")
    print("| config | trackhooks | n | fit s (median) | min | fit × baseline | total × baseline | full GCs in the window "
          "| fit user CPU s (median) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (config, code), rs in rows.items():
        fit = med(rs, "fit_s")
        print(f"| {config} | {code or 'this checkout'} | {len(rs)} | {fit:.3f} | {min(r['fit_s'] for r in rs):.3f} | "
              f"{fit / base['fit_s']:.3f}× | {med(rs, 'total') / base['total']:.3f}× | "
              f"{sum(1 for r in rs if r.get('gc_full'))}/{len(rs)} | {med(rs, 'fit_user_s'):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
