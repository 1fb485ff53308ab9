"""First-party plugins import only the public names and the documented plugin surface."""

import ast
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
ALLOWED = {"trackhooks", "trackhooks.plugin"}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


def test_plugins_import_only_the_plugin_surface():
    bad = []
    files = sorted(ROOT.glob("integrations/*/src/*/*.py"))
    assert files
    for path in files:
        for mod in _imports(path):
            if (mod == "trackhooks" or mod.startswith("trackhooks.")) and mod not in ALLOWED:
                bad.append(f"{path.relative_to(ROOT)}: {mod}")
    assert not bad, bad


def test_plugin_surface_names():
    import trackhooks.plugin as surface

    for name in surface.__all__:
        assert getattr(surface, name) is not None, name
    assert "experiment" in surface.START_RUN_OPTIONS and "resume" not in surface.START_RUN_OPTIONS
    assert isinstance(surface.ReplaySink, type)


def test_start_run_leaves_the_writer_asleep_and_wake_writer_wakes_it(tmp_path):
    # start_run does not wake the writer (its start-up would run beside a GIL-holding training loop);
    # wake_writer() runs its cycle at once, for frameworks that train without the GIL (XGBoost)
    import os
    import subprocess
    import sys

    code = """if True:
        import time, trackhooks
        from trackhooks.plugin import wake_writer
        wake_writer()  # no writer yet in this process: nothing to do, no error
        run = trackhooks.start_run()
        run.log_metric("loss", 1.0)
        time.sleep(0.5)
        before = trackhooks.open_store().run(run.id).system.get("python")
        wake_writer()
        deadline = time.monotonic() + 10
        while trackhooks.open_store().run(run.id).system.get("python") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        after = trackhooks.open_store().run(run.id).system.get("python")
        print(before is None, after is not None, time.monotonic() < deadline)
        run.finish()
    """
    env = {**os.environ, "TRACKHOOKS_URI": str(tmp_path / "store"), "TRACKHOOKS_FLUSH_INTERVAL": "60",
           "TRACKHOOKS_CAPTURE_OUTPUT": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]


def test_log_step_metrics_records_checked_values_and_checks_new_keys(store_path):
    import math
    import warnings

    import pytest
    import torch

    import trackhooks
    from trackhooks import InvalidKeyError, RunFinishedError
    from trackhooks.plugin import log_step_metrics

    run = trackhooks.start_run(system_metrics=False, capture_output=False)
    for step in range(3):
        log_step_metrics(run, {"train_loss": torch.tensor(0.5 + step), "lr-SGD": 0.1}, step, 0)
    with pytest.raises(InvalidKeyError):  # a key not seen before is checked like log_metrics checks it
        log_step_metrics(run, {"": torch.tensor(1.0)}, 3, 0)
    with pytest.raises(TypeError):
        log_step_metrics(run, {"train_loss": 1.0}, "four", 0)
    with warnings.catch_warnings(record=True) as caught:  # a value the framework got wrong after all: NaN
        warnings.simplefilter("always")
        log_step_metrics(run, {"train_loss": torch.tensor([1.0, 2.0])}, 4, 0)
        run.flush()
    assert any("train_loss" in str(w.message) and "NaN" in str(w.message) for w in caught)
    run.finish()
    with pytest.raises(RunFinishedError):
        log_step_metrics(run, {"train_loss": 1.0}, 5, 0)
    rec = trackhooks.open_store(store_path).run(run.id)
    loss = rec.metric("train_loss")
    assert loss.steps == [0, 1, 2, 4] and loss.values[:3] == [0.5, 1.5, 2.5] and math.isnan(loss.values[3])
    assert rec.metric("lr-SGD").values == [0.1, 0.1, 0.1] and loss.epochs == [0, 0, 0, 0]


def test_settle_run_describes_the_environment_now(tmp_path):
    # before a GIL-holding training loop: the writer's start-up while the caller waits, not beside it
    import os
    import subprocess
    import sys

    code = """if True:
        import time, trackhooks
        from trackhooks.plugin import settle_run, start_child_run
        run = trackhooks.start_run()
        pending_before = run._sysinfo_pending
        t = time.monotonic()
        settle_run(run)
        waited = time.monotonic() - t
        t = time.monotonic()
        settle_run(run)  # done already: returns at once
        again = time.monotonic() - t
        kid = start_child_run(run, "kid")
        settle_run(kid)  # a child has its parent's record: nothing to wait for
        print(pending_before, run._sysinfo_pending, waited < 30, again < 0.01, run._system.get("python") is not None)
        kid.finish(timeout=0)
        run.finish()
    """
    env = {**os.environ, "TRACKHOOKS_URI": str(tmp_path / "store"), "TRACKHOOKS_FLUSH_INTERVAL": "60"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "True", "True", "True"]


def test_prepare_runs_imports_what_a_first_run_loads_with_the_collector_as_found():
    # an integration's set-up call pays for the core modules its first recorded fit would import
    import subprocess
    import sys

    code = """if True:
        import gc, sys
        from trackhooks.plugin import prepare_runs
        mods = ("trackhooks.console", "trackhooks.sysmetrics", "trackhooks.datasets", "trackhooks.media")
        before = [m in sys.modules for m in mods]
        prepare_runs(data=False, media=False)
        some = [m in sys.modules for m in mods]
        gc.disable()
        prepare_runs()
        print(before, some, [m in sys.modules for m in mods], gc.isenabled())
        gc.enable()
        prepare_runs()  # loaded already: nothing to do
        print(gc.isenabled())
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["[False, False, False, False] [True, True, False, False] "
                                       "[True, True, True, True] False", "True"]


@pytest.mark.parametrize("integration, options, media", [
    ("trackhooks_lightning", "", False), ("trackhooks_lightning", "log_histograms=1", True),
    ("trackhooks_keras", "", False), ("trackhooks_keras", "log_histograms=1", True),
    ("trackhooks_xgboost", "", True), ("trackhooks_xgboost", "log_importance=False, log_datasets=False", False),
])
def test_framework_callbacks_prepare_runs_when_constructed(integration, options, media):
    # the Lightning, Keras and XGBoost callbacks are made in the user's set-up: the core modules their
    # first recorded fit loads are imported there (prepare_runs), not inside that fit
    import subprocess
    import sys

    code = f"""if True:
        import sys
        from {integration} import TrackhooksCallback
        mods = ("trackhooks.console", "trackhooks.sysmetrics", "trackhooks.datasets", "trackhooks.media")
        before = [m in sys.modules for m in mods]
        TrackhooksCallback({options})
        print(before, [m in sys.modules for m in mods])
    """
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    data = "datasets=False" not in options and "log_datasets=False" not in options
    assert out.stdout.strip() == f"[False, False, False, False] [True, True, {data}, {media}]"


def test_flatten_params_leaves_no_abc_cache_entries_for_builtin_values():
    # a first isinstance(value, Mapping) per type adds weak references to the ABC caches (lasting
    # objects that push a fresh process toward a full collection inside the fit being recorded)
    import subprocess
    import sys

    code = """if True:
        import abc, collections.abc
        from trackhooks.plugin import flatten_params
        def cached():
            return {r() for c in (collections.abc.Mapping, collections.abc.MutableMapping)
                    for r in abc._get_dump(c)[2]}
        n = cached()
        out = flatten_params({"a": None, "b": 1, "c": 2.5, "d": True, "e": "x", "f": [1, 2], "g": (3,), "h": b"y",
                              "nested": {"i": 1}})
        print(len(cached() - n), sorted(out.items()))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    grown, _, items = out.stdout.partition(" ")
    assert grown == "0", out.stdout
    assert "('nested.i', 1)" in items and "('a', None)" in items
