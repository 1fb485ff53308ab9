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
