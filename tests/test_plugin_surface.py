"""First-party plugins import only the public names and the documented plugin surface."""

import ast
import pathlib

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
