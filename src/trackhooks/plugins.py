"""The plugin manager: built-ins from an explicit list, then entry points, then the disable list."""

from __future__ import annotations

import _thread
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import pluggy

#: built-in plugins, registered exactly like third-party ones (name -> module)
BUILTIN_PLUGINS: dict[str, str] = {
    "localstore": "trackhooks.builtin.localstore_plugin",
    "sysinfo": "trackhooks.builtin.sysinfo",
}
ENTRY_POINT_GROUP = "trackhooks"

_pm: pluggy.PluginManager | None = None
_lock = _thread.RLock()


def disabled_plugins() -> set[str]:
    raw = os.environ.get("TRACKHOOKS_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def make_plugin_manager(*, load_entry_points: bool = True) -> pluggy.PluginManager:
    # imported here: pluggy (with importlib.metadata) costs more than the interpreter start, and
    # trackhooks.autolog() reads this module without ever building a manager
    import importlib
    import warnings

    import pluggy

    from . import hookspecs

    pm = pluggy.PluginManager("trackhooks")
    pm.add_hookspecs(hookspecs)
    for name, modname in BUILTIN_PLUGINS.items():
        pm.register(importlib.import_module(modname), name=name)
    disabled = disabled_plugins()
    if load_entry_points:
        for ep in _entry_points():
            if ep.name in disabled or pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken third-party plugin must not break tracking
                warnings.warn(f"trackhooks: plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                              RuntimeWarning, stacklevel=2)
    for name in disabled:
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
        pm.set_blocked(name)
    return pm


class _EntryPoint:
    """What the plugin manager uses of an ``importlib.metadata.EntryPoint``, rebuilt from the cache."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str):
        self.name, self.value = name, value

    def load(self):
        import importlib

        module, _, attrs = self.value.partition("[")[0].partition(":")
        obj = importlib.import_module(module.strip())
        for attr in filter(None, attrs.strip().split(".")):
            obj = getattr(obj, attr)
        return obj


def _installed_state() -> list:
    """What decides the entry points: the distributions on sys.path and their entry_points.txt.

    Installing, removing or upgrading a package adds, removes or renames a .dist-info (or .egg-info)
    directory; reinstalling one or rewriting an .egg-info in place changes its entry_points.txt's
    mtime. One listing per path entry and one stat per distribution (~1 ms), against tens of ms for
    importlib.metadata's scan, which reads and parses the metadata of every distribution. The
    directories' own mtimes are not used: a script's directory changes whenever a file is written.
    """
    state: list = [sys.version]
    for entry in sys.path:
        path = entry or "."
        try:
            names = sorted(n for n in os.listdir(path) if n.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file (its mtime says it all), or nothing
            try:
                state.append((entry, os.stat(path).st_mtime_ns))
            except OSError:
                state.append((entry, None))
            continue
        dists = []
        for n in names:
            try:
                dists.append((n, os.stat(os.path.join(path, n, "entry_points.txt")).st_mtime_ns))
            except OSError:
                dists.append((n, None))
        state.append((entry, dists))
    return state


def _entry_points() -> list:
    """The ``trackhooks`` entry points, from a cache keyed by the installed state when it is current."""
    import json
    import zlib  # not hashlib: loading OpenSSL costs more than the check; the state is compared exactly

    cache_dir = _cache_dir()
    try:
        state = repr(_installed_state())
    except Exception:
        state = None
    path = None
    if state is not None:
        key = f"{zlib.crc32(state.encode('utf-8', 'surrogateescape')):08x}{len(state):x}"
        path = os.path.join(cache_dir, f"entry-points-{ENTRY_POINT_GROUP}-{key}.json")
        try:
            with open(path, encoding="utf-8") as f:
                cached = json.load(f)
            if cached["state"] == state:
                found = [_EntryPoint(n, v) for n, v in cached["entry_points"]]
                if time.time() - os.stat(path).st_mtime > 86400:
                    os.utime(path)  # still in use: keep it
                return found
        except (OSError, ValueError, TypeError, KeyError):
            pass
    from importlib.metadata import entry_points

    found = [(ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    if path is not None:
        try:  # best effort: a read-only home only means scanning again next time
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"state": state, "entry_points": found}, f)
            os.replace(tmp, path)
            # one file per installed state (per venv, per sys.path): forget states unused for a month
            cutoff = time.time() - 30 * 86400
            for name in os.listdir(cache_dir):
                old = os.path.join(cache_dir, name)
                if name.startswith("entry-points-") and os.stat(old).st_mtime < cutoff:
                    os.unlink(old)
        except OSError:
            pass
    return [_EntryPoint(n, v) for n, v in found]


def hook_functions(hook: str) -> list:
    """``(plugin name, function)`` of every implementation of ``hook``, in pluggy's call order.

    With the plugin manager built, it is the one source. Without it, the built-in modules and the
    entry points (cached, minus the disable list) are read the way ``trackhooks.autolog()`` reads them:
    each plugin's attribute named ``hook`` carrying the ``trackhooks_impl`` marker, ordered as pluggy
    orders hook implementations (``tryfirst`` first, ``trylast`` last, later registrations first),
    wrappers left out. A run that only needs ``trackhooks_collect_system_info`` then never imports
    pluggy nor builds the manager: 12-15 ms of the writer's CPU and ~1 400 objects in every process
    (see benchmarks/README.md), which a training loop that holds the GIL waits for.
    """
    pm = _pm
    if pm is not None:
        return [(impl.plugin_name, impl.function) for impl in reversed(getattr(pm.hook, hook).get_hookimpls())
                if not (impl.hookwrapper or getattr(impl, "wrapper", False))]
    disabled = disabled_plugins()
    # once per process and disable list: the scan's listing of sys.path is ~50 GIL releases, each
    # a wait for a training loop that holds the GIL to let go (up to 5 ms), for every top-level run
    cache_key = (hook, frozenset(disabled))
    found = _light_hooks.get(cache_key)
    if found is None:
        found = _light_hooks[cache_key] = _read_hook_functions(hook, disabled)
    return list(found)


_light_hooks: dict = {}


def _cache_dir() -> str:
    return os.environ.get("TRACKHOOKS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "trackhooks")


def _module_stamp(modname: str) -> list | None:
    """``[path, mtime_ns, size]`` of the files an entry-point module is made of, found without
    importing it: the ``__init__.py`` of its packages, its own file and the other ``.py`` files beside
    it (what it may re-export hooks from). None for anything else (an extension, a zip, a namespace)."""
    import importlib.util

    parts = modname.split(".")
    spec = importlib.util.find_spec(parts[0])  # a top-level name: finds, does not import
    if spec is None or not (spec.origin or "").endswith(".py"):
        return None
    files = [spec.origin]
    locs = spec.submodule_search_locations
    for part in parts[1:]:
        for loc in locs or ():
            if os.path.isfile(os.path.join(loc, part + ".py")):
                files.append(os.path.join(loc, part + ".py"))
                locs = None
                break
            if os.path.isfile(os.path.join(loc, part, "__init__.py")):
                files.append(os.path.join(loc, part, "__init__.py"))
                locs = [os.path.join(loc, part)]
                break
        else:
            return None
    if spec.submodule_search_locations:
        folder = os.path.dirname(files[-1])
        files += sorted(os.path.join(folder, n) for n in os.listdir(folder)
                        if n.endswith(".py") and os.path.join(folder, n) not in files)
    stamp = []
    for f in files:
        st = os.stat(f)
        stamp.append([f, st.st_mtime_ns, st.st_size])
    return stamp


def _hook_index_path() -> str:
    return os.path.join(_cache_dir(), f"plugin-hooks-{ENTRY_POINT_GROUP}.json")


def _load_hook_index() -> dict:
    import json

    try:
        with open(_hook_index_path(), encoding="utf-8") as f:
            index = json.load(f)
        return index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_hook_index(index: dict) -> None:
    import json

    path = _hook_index_path()
    try:  # best effort, like the entry-point cache
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(index, f)
        os.replace(tmp, path)
    except OSError:
        pass


def _read_hook_functions(hook: str, disabled: set[str]) -> list:
    """Import the built-ins, and the entry-point modules that may implement ``hook``.

    Which ``trackhooks_*`` hooks an entry-point module implements is remembered per module
    (``plugin-hooks-trackhooks.json`` in the cache directory) with the stamp of its files: a module
    known not to implement ``hook`` whose files have not changed since is not imported (the eight
    first-party plugins: ~3.5 ms of CPU on the writer of every process for a hook none of them has).
    """
    import importlib

    plugins: list = [(name, importlib.import_module(mod)) for name, mod in BUILTIN_PLUGINS.items()
                     if name not in disabled]
    seen = {name for name, _ in plugins} | disabled
    index = _load_hook_index()
    changed = False
    for ep in _entry_points():
        if ep.name in seen:
            continue
        seen.add(ep.name)
        try:
            stamp = _module_stamp(ep.value.partition("[")[0].partition(":")[0].strip())
        except Exception:  # anything unusual: import it, as without the index
            stamp = None
        known = index.get(ep.value)
        if stamp is not None and isinstance(known, dict) and known.get("stamp") == stamp \
                and hook not in (known.get("hooks") or ()):
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break tracking
            import warnings

            warnings.warn(f"trackhooks: plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                          RuntimeWarning, stacklevel=2)
            continue
        plugins.append((ep.name, obj))
        if stamp is not None:
            hooks = sorted(n for n in dir(obj) if n.startswith("trackhooks_")
                           and isinstance(getattr(getattr(obj, n, None), "trackhooks_impl", None), dict))
            entry = {"stamp": stamp, "hooks": hooks}
            if known != entry:
                index[ep.value] = entry
                changed = True
    if changed:
        _save_hook_index(index)
    ordered: list = []  # pluggy's _add_hookimpl, for implementations that are not wrappers
    for name, plugin in plugins:
        fn = getattr(plugin, hook, None)
        opts = getattr(fn, "trackhooks_impl", None) if callable(fn) else None
        if not isinstance(opts, dict) or opts.get("hookwrapper") or opts.get("wrapper"):
            continue
        if opts.get("trylast"):
            ordered.insert(0, (name, fn, False))
        elif opts.get("tryfirst"):
            ordered.append((name, fn, True))
        else:
            i = len(ordered) - 1
            while i >= 0 and ordered[i][2]:
                i -= 1
            ordered.insert(i + 1, (name, fn, False))
    return [(name, fn) for name, fn, _ in reversed(ordered)]


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy PluginManager ("trackhooks"). Register or unregister plugins on it."""
    global _pm
    if _pm is None:
        with _lock:
            if _pm is None:
                _pm = make_plugin_manager()
    return _pm


def reset_plugin_manager() -> None:
    """Forget the plugin manager so that the next call rebuilds it (re-reads the environment)."""
    global _pm
    with _lock:
        _pm = None
        _light_hooks.clear()
