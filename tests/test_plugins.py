"""The plugin manager and every hook in hookspecs.py (a meta-test checks that each hook has a test here)."""

import inspect
import os
import subprocess
import sys
import time

import pluggy
import pytest

import trackhooks
from trackhooks import hookspecs
from trackhooks.plugins import BUILTIN_PLUGINS, make_plugin_manager

TESTED_HOOKS = {
    "trackhooks_collect_system_info": "test_hook_collect_system_info",
    "trackhooks_make_sink": "test_hook_make_sink",
    "trackhooks_autolog": "test_hook_autolog",
    "trackhooks_autolog_modules": "test_hook_autolog_modules",
    "trackhooks_open_store": "test_hook_open_store",
}


def test_every_hook_has_a_test_and_docs():
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("trackhooks_")]
    assert sorted(hooks) == sorted(TESTED_HOOKS)
    module = sys.modules[__name__]
    docs = open(os.path.join(os.path.dirname(__file__), "..", "docs", "plugins.md")).read()
    for hook, test in TESTED_HOOKS.items():
        assert callable(getattr(module, test, None)), f"{hook} has no test {test}"
        spec = getattr(hookspecs, hook)
        assert "thread" in spec.__doc__ and ":return:" in spec.__doc__, f"{hook} docstring"
        assert hook in docs, f"{hook} is not documented in docs/plugins.md"
        for p in inspect.signature(spec).parameters.values():
            assert p.annotation is not inspect.Parameter.empty, f"{hook}({p.name}) is untyped"


def test_plugin_manager_is_pluggy_with_builtins():
    pm = trackhooks.plugin_manager()
    assert isinstance(pm, pluggy.PluginManager) and pm.project_name == "trackhooks"
    assert pm is trackhooks.plugin_manager()
    for name in BUILTIN_PLUGINS:
        assert pm.get_plugin(name) is not None


def test_disable_plugins_env(monkeypatch):
    monkeypatch.setenv("TRACKHOOKS_DISABLE_PLUGINS", "sysinfo, nonexistent")
    pm = make_plugin_manager()
    assert pm.get_plugin("sysinfo") is None and pm.is_blocked("sysinfo")
    assert pm.get_plugin("localstore") is not None


def test_entry_points_are_loaded_in_a_fresh_process(tmp_path):
    # a third-party plugin found only through its entry point, exactly like first-party ones
    dist = tmp_path / "thirdparty-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[trackhooks]\nthirdparty = thirdparty_plugin\n")
    (tmp_path / "thirdparty_plugin.py").write_text(
        "from trackhooks.hookspecs import hookimpl\n"
        "@hookimpl\n"
        "def trackhooks_collect_system_info(run):\n"
        "    return {'thirdparty': 'yes'}\n")
    code = ("import trackhooks; pm = trackhooks.plugin_manager(); print(pm.get_plugin('thirdparty') is not None); "
            "r = trackhooks.start_run(); r.finish(); "
            "print(trackhooks.open_store().run(r.id).system.get('thirdparty'))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TRACKHOOKS_URI": str(tmp_path / "store")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["True", "yes"]
    env["TRACKHOOKS_DISABLE_PLUGINS"] = "thirdparty"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "None"]


def test_system_info_plugins_without_the_plugin_manager(tmp_path):
    # a run that only needs trackhooks_collect_system_info reads the built-ins and the entry points
    # directly: pluggy is never imported, and every implementation is still called (a broken one warns)
    for name, body in {"sysone": "return {'sysone': 1, 'shared': 'one'}",
                       "systwo": "return {'systwo': 2, 'shared': 'two'}",
                       "sysbad": "raise RuntimeError('plugin bug')"}.items():
        dist = tmp_path / f"{name}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[trackhooks]\n{name} = {name}_plugin\n")
        (tmp_path / f"{name}_plugin.py").write_text(
            "from trackhooks.plugin import hookimpl\n@hookimpl\n"
            f"def trackhooks_collect_system_info(run):\n    {body}\n")
    code = ("import sys, warnings, trackhooks; warnings.simplefilter('always'); r = trackhooks.start_run(); r.finish(); "
            "s = trackhooks.open_store().run(r.id).system; "
            "print('pluggy' in sys.modules, s.get('sysone'), s.get('systwo'), s.get('python') is not None)")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TRACKHOOKS_URI": str(tmp_path / "store"),
           "TRACKHOOKS_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "1", "2", "True"], out.stderr
    assert "sysbad" in out.stderr and "plugin bug" in out.stderr
    env["TRACKHOOKS_DISABLE_PLUGINS"] = "sysone,sysinfo"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "None", "2", "False"], out.stderr


def test_plugins_without_the_hook_are_not_imported_once_known(tmp_path):
    # which hooks an entry-point module implements is remembered with the stamp of its files: a
    # module known not to implement trackhooks_collect_system_info is not imported for it, until it changes
    pkg = tmp_path / "lazyplug"
    clock = [time.time() - 100]

    def write(path, text):
        # date each change as made a while ago (a little later than the one before): a file changed
        # less than two seconds before it is stamped is looked at again, its mtime may not have ticked
        path.write_text(text)
        clock[0] += 1
        for p in (path, path.parent):
            os.utime(p, (clock[0], clock[0]))

    pkg.mkdir()
    write(pkg / "__init__.py", "")
    plugin = pkg / "plugin.py"
    write(plugin, "from trackhooks.plugin import hookimpl\n@hookimpl\ndef trackhooks_autolog(options):\n    pass\n")
    dist = tmp_path / "lazyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lazyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[trackhooks]\nlazyplug = lazyplug.plugin\n")
    code = ("import sys, trackhooks; r = trackhooks.start_run(); r.finish(); "
            "print('lazyplug.plugin' in sys.modules, trackhooks.open_store().run(r.id).system.get('lazy'))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TRACKHOOKS_URI": str(tmp_path / "store"),
           "TRACKHOOKS_CACHE_DIR": str(tmp_path / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}

    def run():
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              check=True).stdout.split()

    assert run() == ["True", "None"]  # not known yet: imported, and its hooks remembered
    assert run() == ["False", "None"]  # known not to have the hook
    write(plugin, "from trackhooks.plugin import hookimpl\n@hookimpl\n"
                  "def trackhooks_collect_system_info(run):\n    return {'lazy': 'yes'}\n")
    assert run() == ["True", "yes"]  # its file changed: imported again, and now it has the hook
    assert run() == ["True", "yes"]
    write(pkg / "extra.py", "x = 1\n")  # a new file beside it also counts as a change
    write(plugin, "from trackhooks.plugin import hookimpl\nfrom .extra import x\n")
    assert run() == ["True", "None"]
    assert run() == ["False", "None"]
    write(pkg / "extra.py", "x = 2\n")  # so does a change of a file beside it, made in place
    assert run() == ["True", "None"]
    write(plugin, "from trackhooks.plugin import hookimpl\nfrom .extra import x\n")
    plugin.write_text("from trackhooks.plugin import hookimpl\nfrom .extra import x\n")  # just now
    assert run() == ["True", "None"]
    assert run() == ["True", "None"]  # changed a moment before it was stamped: looked at again


def test_the_hook_index_is_one_file_per_installed_state(tmp_path):
    # two PYTHONPATHs are two installed states: each process parses the index of its own only
    import json

    cache = tmp_path / "cache"
    for name in ("sa", "sb"):
        site = tmp_path / name
        dist = site / f"plug{name}-0.1.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: plug{name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[trackhooks]\nplug{name} = plug_{name}\n")
        (site / f"plug_{name}.py").write_text("from trackhooks.plugin import hookimpl\n@hookimpl\n"
                                              "def trackhooks_autolog(options):\n    pass\n")
        env = {**os.environ, "PYTHONPATH": str(site), "TRACKHOOKS_URI": str(tmp_path / "store"),
               "TRACKHOOKS_CACHE_DIR": str(cache)}
        subprocess.run([sys.executable, "-c", "import trackhooks; trackhooks.start_run().finish()"], env=env,
                       check=True, capture_output=True)
    indexes = [json.loads(f.read_text()) for f in sorted(cache.glob("plugin-hooks-trackhooks-*.json"))]
    assert len(indexes) == 2
    assert sorted(sorted(k for k in index if k.startswith("plug_")) for index in indexes) == [["plug_sa"], ["plug_sb"]]
    assert [index[m]["hooks"] for index in indexes for m in index if m.startswith("plug_")] == \
        [["trackhooks_autolog"], ["trackhooks_autolog"]]


def test_hook_functions_order_is_pluggys(monkeypatch):
    # the light reading orders implementations exactly as the plugin manager calls them
    from trackhooks import plugins

    def impl(tag, **opts):
        @trackhooks.hookimpl(**opts)
        def trackhooks_collect_system_info(run):
            return {"order": tag}
        return type(sys)(f"mod_{tag}"), trackhooks_collect_system_info

    specs = [("a", {}), ("b", {"tryfirst": True}), ("c", {"trylast": True}), ("d", {}), ("e", {"tryfirst": True}),
             ("w", {"hookwrapper": True})]
    mods = {}
    for tag, opts in specs:
        mod, fn = impl(tag, **opts)
        if opts.get("hookwrapper"):
            def fn(run):  # noqa: F811 - a wrapper is never called as an implementation
                yield
            fn = trackhooks.hookimpl(hookwrapper=True)(fn)
            fn.__name__ = "trackhooks_collect_system_info"
        mod.trackhooks_collect_system_info = fn
        mods[tag] = mod
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", {})
    monkeypatch.setattr(plugins, "_entry_points",
                        lambda: [type("EP", (), {"name": t, "value": t, "load": lambda self, t=t: mods[t]})()
                                 for t in mods])
    monkeypatch.setattr(plugins, "_pm", None)
    monkeypatch.setattr(plugins, "_light_hooks", {})
    light = [name for name, _ in plugins.hook_functions("trackhooks_collect_system_info")]
    pm = plugins.make_plugin_manager()
    monkeypatch.setattr(plugins, "_pm", pm)
    heavy = [name for name, _ in plugins.hook_functions("trackhooks_collect_system_info")]
    assert light == heavy == ["e", "b", "d", "a", "c"]


def test_entry_point_cache_follows_installs_and_removals(tmp_path):
    # the scan is cached per installed state: a distribution added or removed later is seen at once
    site, cache = tmp_path / "site", tmp_path / "cache"
    site.mkdir()

    def install(name):
        dist = site / f"{name}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[trackhooks]\n{name} = {name}_mod:Plugin\n")
        (site / f"{name}_mod.py").write_text("class Plugin:\n    pass\n")

    code = ("import trackhooks; pm = trackhooks.plugin_manager(); "
            "print(','.join(sorted(n for n in ('one', 'two') if pm.get_plugin(n) is not None)) or '-')")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TRACKHOOKS_CACHE_DIR": str(cache)}

    def found():
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              check=True).stdout.strip()

    install("one")
    assert found() == "one"
    assert len(list(cache.glob("entry-points-*.json"))) == 1  # the scan was cached
    assert found() == "one"  # from the cache, loading the plugin the same way
    install("two")
    assert found() == "one,two"
    import shutil

    shutil.rmtree(site / "one-0.1.dist-info")
    assert found() == "two"


def test_autolog_scan_is_kept_until_a_folder_or_an_egg_info_changes(tmp_path):
    # autolog()'s own scan (no plugin manager): the folders after the script's are read once and
    # kept with their mtimes; the script's folder is read every time and its distributions win
    site, cache, work = tmp_path / "site", tmp_path / "cache", tmp_path / "work"
    site.mkdir(), work.mkdir()
    clock = [time.time() - 100]

    def dated(*paths):
        # a change made a while ago, one second after the one before (a folder changed less than two
        # seconds before the scan is not kept: a coarse mtime may not tick for the next change)
        clock[0] += 1
        for p in paths:
            os.utime(p, (clock[0], clock[0]))

    def install(name, entry, folder=site, kind="dist-info"):
        dist = folder / f"{name}-0.1.{kind}"
        dist.mkdir(exist_ok=True)
        (dist / "entry_points.txt").write_text(f"[trackhooks]\n{entry} = {entry}_mod\n")
        dated(dist / "entry_points.txt", folder)

    code = ("import sys; from trackhooks import autologging as a; "
            "print(','.join(sorted(n for n, v in a._entry_points('trackhooks') if n.startswith('thc'))) or '-'); "
            "print('json' in sys.modules)")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TRACKHOOKS_CACHE_DIR": str(cache)}

    def found():
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=work,
                             check=True).stdout.split()
        assert out[1] == "False"  # the cache is no reason to import json (and re)
        return out[0]

    install("one", "thcone")
    assert found() == "thcone"
    (kept,) = cache.glob("autolog-entry-points-*.txt")
    month_ago = time.time() - 40 * 86400
    os.utime(kept, (month_ago, month_ago))
    assert found() == "thcone"
    assert kept.stat().st_mtime > month_ago + 86400  # in use: not among the files a month unused
    # a .dist-info is never rewritten in place (pip writes a new one): the kept scan is what is read
    (site / "one-0.1.dist-info" / "entry_points.txt").write_text("[trackhooks]\nthcrenamed = x\n")
    assert found() == "thcone"
    install("two", "thctwo")  # a new folder in site: read again
    assert found() == "thcrenamed,thctwo"
    install("egg", "thcegg", kind="egg-info")
    assert found() == "thcegg,thcrenamed,thctwo"
    (site / "egg-0.1.egg-info" / "entry_points.txt").write_text("[trackhooks]\nthcegg2 = x\n")
    dated(site / "egg-0.1.egg-info" / "entry_points.txt")  # setup.py develop rewrites it in place
    assert found() == "thcegg2,thcrenamed,thctwo"
    import shutil

    shutil.rmtree(site / "two-0.1.dist-info")
    dated(site)
    assert found() == "thcegg2,thcrenamed"
    install("one", "thcshadow", folder=work)  # the script's folder: first, read every time
    assert found() == "thcegg2,thcshadow"
    (work / "one-0.1.dist-info" / "entry_points.txt").write_text("[trackhooks]\nthcnow = x\n")
    assert found() == "thcegg2,thcnow"
    before = kept.read_text()
    (site / "three-0.1.dist-info").mkdir()  # just now: read, and not kept
    assert found() == "thcegg2,thcnow"
    assert kept.read_text() == before


def test_broken_entry_point_only_warns(tmp_path):
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[trackhooks]\nbroken = no_such_module_xyz\n")
    code = "import trackhooks; pm = trackhooks.plugin_manager(); print(pm.get_plugin('localstore') is not None)"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True" and "broken" in out.stderr


class SysPlugin:
    @trackhooks.hookimpl
    def trackhooks_collect_system_info(self, run):
        return {"gpu": "none", "run_seen": run.id}


class FailingSysPlugin:
    @trackhooks.hookimpl
    def trackhooks_collect_system_info(self, run):
        raise RuntimeError("plugin bug")


def test_hook_collect_system_info(store_path):
    pm = trackhooks.plugin_manager()
    good, bad = SysPlugin(), FailingSysPlugin()
    pm.register(good, name="test-sys")
    pm.register(bad, name="test-sys-bad")
    try:
        with pytest.warns(RuntimeWarning, match="plugin bug"):
            run = trackhooks.start_run()
            run.flush()  # system info is collected on the writer thread
        run.finish()
    finally:
        pm.unregister(good)
        pm.unregister(bad)
    system = trackhooks.open_store().run(run.id).system
    assert system["gpu"] == "none" and system["run_seen"] == run.id
    # the built-in plugin still ran although another implementation failed
    assert system["python"] and "argv" in system and "packages" in system


class MemorySink(trackhooks.Sink):
    def __init__(self, uri):
        self.name = uri
        self.points = []
        self.status = []

    def write(self, batch):
        for run_id, per_key in batch.metrics.items():
            for key, cols in per_key.items():
                self.points.extend(zip([key] * len(cols.values), cols.steps, cols.values))
        self.status.extend(s.status for s in batch.status)


class MemoryScheme:
    def __init__(self):
        self.made = []

    @trackhooks.hookimpl
    def trackhooks_make_sink(self, uri, options):
        if not uri.startswith("memory:"):
            return None
        sink = MemorySink(uri)
        self.made.append(sink)
        return sink


def test_hook_make_sink(store_path):
    pm = trackhooks.plugin_manager()
    plugin = MemoryScheme()
    pm.register(plugin, name="test-memory")
    try:
        with trackhooks.start_run(mirrors=["memory:one"]) as run:
            run.log_metrics({"loss": 0.5}, step=3)
        with trackhooks.start_run(mirrors=["memory:one"]) as run2:
            run2.log_metric("loss", 0.25)
    finally:
        pm.unregister(plugin)
    assert len(plugin.made) == 1  # one sink per URI per process, shared by runs
    sink = plugin.made[0]
    assert sink.points == [("loss", 3, 0.5), ("loss", 0, 0.25)]
    assert sink.status == ["finished", "finished"]


def test_mirrors_from_env(store_path, monkeypatch):
    pm = trackhooks.plugin_manager()
    plugin = MemoryScheme()
    pm.register(plugin, name="test-memory-env")
    monkeypatch.setenv("TRACKHOOKS_MIRRORS", "memory:env")
    try:
        with trackhooks.start_run() as run:
            run.log_metric("m", 1.0)
    finally:
        pm.unregister(plugin)
    assert plugin.made[0].points == [("m", 0, 1.0)]


class AliasEngine:
    """A third-party store engine for ``alias:<dir>``: reads through the SQLite engine's read API,
    and receives writes as a mirror of the local spool (the way a team store does)."""

    @trackhooks.hookimpl
    def trackhooks_open_store(self, uri):
        if not uri.startswith("alias:"):
            return None
        from trackhooks.store.sqlite import SQLiteStore

        return SQLiteStore(uri[len("alias:"):])

    @trackhooks.hookimpl
    def trackhooks_make_sink(self, uri, options):
        if not uri.startswith("alias:"):
            return None
        from trackhooks.store.sqlite import LocalStoreSink

        return LocalStoreSink(uri[len("alias:"):])


def test_hook_open_store(store_path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKHOOKS_SPOOL", str(tmp_path / "spool"))
    pm = trackhooks.plugin_manager()
    plugin = AliasEngine()
    pm.register(plugin, name="test-alias-engine")
    uri = f"alias:{tmp_path / 'team'}"
    try:
        with trackhooks.start_run(store=uri, experiment="e") as run:
            run.log_metric("loss", 0.5)
        assert run.store == str(tmp_path / "spool") and run.store_uri == uri
        store = trackhooks.open_store(uri)
        assert isinstance(store, trackhooks.Store) and store.engine == "sqlite"
        assert store.run(run.id).metric("loss").values == [0.5]
        assert isinstance(trackhooks.Store(uri), trackhooks.Store)
        # written to the spool first, which is itself a local store
        assert trackhooks.open_store(str(tmp_path / "spool")).run(run.id).status == "finished"
    finally:
        pm.unregister(plugin)
    with pytest.raises(trackhooks.UnknownPluginError, match="trackhooks-postgres"):
        trackhooks.open_store(uri)


def test_unknown_store_scheme_names_the_uri_without_password():
    with pytest.raises(trackhooks.UnknownPluginError) as err:
        trackhooks.open_store("nosuch://bob:s3cret@db.example/x")
    assert "s3cret" not in str(err.value) and "bob:***@db.example" in str(err.value)


class FakeIntegration:
    def __init__(self):
        self.calls = []

    @trackhooks.hookimpl
    def trackhooks_autolog(self, options):
        self.calls.append(options)


def test_hook_autolog():
    pm = trackhooks.plugin_manager()
    a, b = FakeIntegration(), FakeIntegration()
    pm.register(a, name="fake-a")
    pm.register(b, name="fake-b")
    try:
        assert trackhooks.autolog("fake-a", log_every_n_steps=5) == ["fake-a"]
        assert a.calls == [{"log_every_n_steps": 5}] and b.calls == []
        called = trackhooks.autolog(disable=True)
        assert "fake-a" in called and "fake-b" in called
        assert b.calls == [{"disable": True}]
        with pytest.raises(trackhooks.UnknownPluginError) as err:
            trackhooks.autolog("tensorflow")
        assert "tensorflow" in str(err.value) and "fake-a" in str(err.value)
        assert isinstance(err.value, ValueError)
    finally:
        pm.unregister(a)
        pm.unregister(b)


class LazyIntegration(FakeIntegration):
    def __init__(self, modules):
        super().__init__()
        self.modules = modules
        self.saw_module = []

    @trackhooks.hookimpl
    def trackhooks_autolog_modules(self):
        return self.modules

    @trackhooks.hookimpl
    def trackhooks_autolog(self, options):
        # called right after the framework executed: its names are there already
        self.saw_module.append(sorted(m for m in self.modules if m in sys.modules and hasattr(sys.modules[m], "VALUE")))
        self.calls.append(options)


def test_hook_autolog_modules(tmp_path, monkeypatch):
    from trackhooks import autologging

    for name in ("thfake_fw_one", "thfake_fw_two"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = trackhooks.plugin_manager()
    lazy = LazyIntegration(["thfake_fw_one", "thfake_fw_two"])
    pm.register(lazy, name="fake-lazy")
    try:
        assert trackhooks.autolog("fake-lazy", experiment="x") == ["fake-lazy"]
        assert lazy.calls == [] and "thfake_fw_one" not in sys.modules  # nothing imported, nothing called
        assert autologging.pending() == {"fake-lazy": ("thfake_fw_one", "thfake_fw_two")}
        assert any(isinstance(f, autologging._PostImportFinder) for f in sys.meta_path)
        import thfake_fw_one

        assert lazy.calls == [{"experiment": "x"}] and lazy.saw_module == [["thfake_fw_one"]]
        # the module looks as if it had been imported without us
        assert type(thfake_fw_one.__loader__).__name__ == "SourceFileLoader"
        assert thfake_fw_one.__spec__.loader is thfake_fw_one.__loader__
        assert autologging.pending() == {"fake-lazy": ("thfake_fw_two",)}
        trackhooks.autolog("fake-lazy", disable=True)
        assert lazy.calls[-1] == {"disable": True}  # it was enabled: restoring reaches it
        assert autologging.pending() == {} and not any(isinstance(f, autologging._PostImportFinder)
                                                       for f in sys.meta_path)
        import thfake_fw_two  # noqa: F401 - after disable: no call

        assert len(lazy.calls) == 2
        # already imported: called at once; never imported and never enabled: disable does not call it
        other = LazyIntegration(["thfake_fw_never"])
        pm.register(other, name="fake-never")
        trackhooks.autolog("fake-lazy", "fake-never")
        assert lazy.calls[-1] == {} and other.calls == []
        trackhooks.autolog("fake-never", disable=True)
        assert other.calls == [] and autologging.pending() == {}
    finally:
        autologging._pending.clear()
        autologging._update_finder()
        for name in ("fake-lazy", "fake-never"):
            plugin = pm.get_plugin(name)
            if plugin is not None:
                pm.unregister(plugin)
        for name in ("thfake_fw_one", "thfake_fw_two"):
            sys.modules.pop(name, None)


class BrokenLazyIntegration:
    @trackhooks.hookimpl
    def trackhooks_autolog_modules(self):
        return ["thfake_fw_bad"]

    @trackhooks.hookimpl
    def trackhooks_autolog(self, options):
        raise RuntimeError("cannot patch")


def test_lazy_autolog_failure_warns_and_the_import_succeeds(tmp_path, monkeypatch):
    (tmp_path / "thfake_fw_bad.py").write_text("VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = trackhooks.plugin_manager()
    pm.register(BrokenLazyIntegration(), name="fake-broken")
    try:
        trackhooks.autolog("fake-broken")
        with pytest.warns(RuntimeWarning, match="fake-broken.*thfake_fw_bad.*cannot patch") as caught:
            import thfake_fw_bad
        assert thfake_fw_bad.VALUE == 2
        assert caught[0].filename == __file__  # at the import statement
    finally:
        pm.unregister(name="fake-broken")
        sys.modules.pop("thfake_fw_bad", None)


@pytest.mark.parametrize("options", [{}, {"tryfirst": True}, {"trylast": True, "specname": "x"},
                                     {"hookwrapper": True}, {"wrapper": True, "optionalhook": True}])
def test_plugin_surface_hookimpl_marks_like_pluggy(options):
    from trackhooks.plugin import hookimpl

    def ours():
        pass

    def theirs():
        pass

    (hookimpl(**options) if options else hookimpl)(ours)
    pluggy.HookimplMarker("trackhooks")(**options)(theirs)
    assert ours.trackhooks_impl == theirs.trackhooks_impl


def test_sysinfo_redacts_secrets_and_reads_git():
    from trackhooks.builtin.sysinfo import git_info, redact_argv

    argv = ["train.py", "--password", "hunter2", "--api-key=abc", "--token", "t", "--lr", "0.1",
            "mlflow+http://user:pw@host/x", "--db-pass=s3"]
    out = redact_argv(argv)
    assert "hunter2" not in out and "--api-key=***" in out and "t" not in out[5:7] and "0.1" in out
    assert "http://user:***@host/x" in out[-2] and out[-1] == "--db-pass=***"
    info = git_info(os.path.dirname(__file__))
    if info:
        assert len(info["git.commit"]) == 40


def test_secret_flags_are_the_ones_the_documented_pattern_names():
    # the regular expression the check replaced (docs/reliability.md, "Command-line secrets"): the
    # string tests must agree with it
    import re

    from trackhooks.builtin.sysinfo import _secret_flag

    pattern = (r"^--?[\w.-]*(pass(word|wd)?|token|secret|api[-_]?key|access[-_]?key|auth|credential|"
               r"private[-_]?key)[\w.-]*$")
    flags = ["--password", "-p", "--pass", "--passwd", "--db-pass", "--DB_PASSWORD", "--api-key", "--api_key",
             "--apikey", "--api.key", "--hf-token", "--HF_TOKEN", "-token", "--secret", "--client-secret",
             "--access-key", "--access_key", "--accesskey", "--aws-access-key-id", "--auth", "--oauth-url",
             "--author", "--credentials", "--private-key", "--privatekey", "--private_key_file", "--lr",
             "--epochs", "--batch-size", "--passes=3", "---token", "--to ken", "--tok/en", "--tökén",
             "--påss", "password", "-", "--", "", "--token\n", "--tokens", "--keypass", "--bypass",
             "--api-keys", "--compass", "--secrets.yaml", "--a.b-c_d", "--TOKEN"]
    for flag in flags:
        assert _secret_flag(flag) == (re.match(pattern, flag, re.IGNORECASE) is not None), flag


def test_sysinfo_env_only_when_allow_listed(store_path, monkeypatch):
    monkeypatch.setenv("SECRET_THING", "s3cr3t")
    monkeypatch.setenv("MY_VISIBLE", "1")
    with trackhooks.start_run() as run:
        pass
    system = trackhooks.open_store().run(run.id).system
    assert "s3cr3t" not in repr(system) and "env" not in system
    monkeypatch.setenv("TRACKHOOKS_CAPTURE_ENV", "MY_VISIBLE")
    with trackhooks.start_run() as run:
        pass
    assert trackhooks.open_store().run(run.id).system["env"] == {"MY_VISIBLE": "1"}


def test_installed_distributions_list_a_folder_again_only_when_it_changed(tmp_path, monkeypatch):
    # one stat per sys.path entry instead of a listing of site-packages (a GIL release per entry)
    from trackhooks import plugins

    site = tmp_path / "site"
    site.mkdir()
    (site / "one-0.1.dist-info").mkdir()
    (site / "notes.txt").write_text("")
    old = time.time() - 100
    os.utime(site, (old, old))
    monkeypatch.setenv("TRACKHOOKS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "path", [str(site), str(tmp_path / "missing")])

    def listing():
        plugins.reset_plugin_manager()  # forgets the process's memo, not the cache file
        return plugins.installed_distributions()

    assert listing() == [(str(site), ["one-0.1.dist-info"]), (str(tmp_path / "missing"), [])]
    assert len(list((tmp_path / "cache").glob("sys-path-*.json"))) == 1
    (site / "two-0.1.dist-info").mkdir()
    os.utime(site, (old, old))  # the folder's mtime as recorded: the recorded listing is used
    assert listing()[0] == (str(site), ["one-0.1.dist-info"])
    os.utime(site, (old + 1, old + 1))  # any change of the folder: listed again
    assert listing()[0] == (str(site), ["one-0.1.dist-info", "two-0.1.dist-info"])
    (site / "three-0.1.egg-info").mkdir()  # a folder changed just now is listed every time
    assert "three-0.1.egg-info" in listing()[0][1]
    (site / "four-0.1.dist-info").mkdir()
    assert listing()[0][1] == ["four-0.1.dist-info", "one-0.1.dist-info", "three-0.1.egg-info",
                               "two-0.1.dist-info"]
    plugins.reset_plugin_manager()


def test_os_name_is_platforms_without_a_subprocess(monkeypatch):
    import platform
    import subprocess as sp

    from trackhooks.builtin import sysinfo

    expected = platform.platform(terse=True)
    monkeypatch.setattr(sp, "Popen", None)  # any subprocess would now fail
    assert sysinfo.os_name() == expected


def test_a_zip_on_sys_path_is_part_of_the_installed_state_by_its_mtime(tmp_path, monkeypatch):
    import zipfile

    from trackhooks import plugins

    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zipped_mod.py", "x = 1\n")
    old = time.time() - 100
    os.utime(archive, (old, old))
    monkeypatch.setenv("TRACKHOOKS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "path", [str(archive)])
    plugins.reset_plugin_manager()
    before = plugins._installed_state()
    assert plugins.installed_distributions() == [(str(archive), [])]
    os.utime(archive, (old + 1, old + 1))  # a rewritten zip: its entry points may differ
    plugins.reset_plugin_manager()
    assert plugins._installed_state() != before
    plugins.reset_plugin_manager()
