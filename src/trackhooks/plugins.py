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


#: a listing or stamp taken this close (seconds) to the mtime it records is not trusted later: file
#: times tick coarsely (a few ms), so a change in the same tick as the reading would go unseen
_RACY_S = 2.0


def _crc_key(text: str) -> str:
    import zlib  # not hashlib: loading OpenSSL costs more than the check; the text is compared exactly

    return f"{zlib.crc32(text.encode('utf-8', 'surrogateescape')):08x}{len(text):x}"


def installed_distributions() -> list[tuple[str, list[str]]]:
    """The ``.dist-info``/``.egg-info`` directory names of each ``sys.path`` entry, in its order.

    Installing, removing, upgrading or reinstalling a package adds, removes or renames a
    ``.dist-info`` directory, which changes the mtime of the directory holding it: a directory whose
    mtime is the one recorded (in the cache directory, per ``sys.path``) is not listed again. Listing
    site-packages is one GIL release per entry (~500), and a stat per distribution was one more
    each: on the writer thread beside a training loop every release is a hand-over of the GIL, which
    cost the loop ~55 us each (benchmarks/README.md, "Fourth pass"). Now: one stat per entry.
    A listing taken within two seconds of the directory's last change is checked again next time.
    """
    return [(entry, list(names or ())) for entry, names, _ in _listing()]


def _listing() -> list[tuple[str, list[str] | None, int | None]]:
    """``(entry, names, mtime_ns)`` per sys.path entry; names is None for what is not a folder (a zip
    file, whose mtime then says it all, or nothing)."""
    key = tuple(sys.path)
    memo = _dists_memo.get(key)
    if memo is not None:
        return memo
    import json

    path = os.path.join(_cache_dir(), f"sys-path-v2-{_crc_key(repr((sys.version, key)))}.json")
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        if not isinstance(cached, dict) or cached.get("sys_path") != list(key):
            cached = {}
    except (OSError, ValueError):
        cached = {}
    known = cached.get("entries") or {}
    entries: dict = {}
    out: list[tuple[str, list[str] | None, int | None]] = []
    changed = False
    now = time.time()
    for entry in key:
        folder = entry or "."
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            mtime = None
        rec = known.get(entry)
        if isinstance(rec, list) and len(rec) == 3 and rec[0] == mtime and rec[2]:  # (a missing one stays missing)
            names = rec[1]
        else:
            try:
                names = sorted(n for n in os.listdir(folder) if n.endswith((".dist-info", ".egg-info")))
            except OSError:  # a zip file (its mtime says it all), or nothing
                names = None
            trusted = mtime is None or now - mtime / 1e9 > _RACY_S
            rec = [mtime, names, trusted]
            changed = True
        entries[entry] = rec
        out.append((entry, names, mtime))
    if changed:
        _write_json(path, {"sys_path": list(key), "entries": entries})
    _dists_memo[key] = out
    return out


_dists_memo: dict = {}


def _write_json(path: str, data: object) -> None:
    """Best effort, atomically: a read-only home only means doing the work again next time."""
    import json

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass


def _installed_state() -> list:
    """What decides the entry points: the distributions on sys.path (see installed_distributions).

    An ``.egg-info`` (``setup.py develop``) is rewritten in place, so its ``entry_points.txt``'s
    mtime is part of the state too; a ``.dist-info`` is always written anew. Once per process and
    sys.path, like the listing.
    """
    key = ("state", tuple(sys.path))
    if key not in _state_memo:
        _state_memo[key] = _read_installed_state()
    return _state_memo[key]


def _read_installed_state() -> list:
    state: list = [sys.version]
    for entry, names, mtime in _listing():
        if names is None:
            state.append((entry, mtime))
            continue
        dists = []
        for n in names:
            if n.endswith(".egg-info"):
                try:
                    dists.append((n, os.stat(os.path.join(entry or ".", n, "entry_points.txt")).st_mtime_ns))
                except OSError:
                    dists.append((n, None))
            else:
                dists.append(n)
        state.append((entry, dists))
    return state


def _state_text() -> str | None:
    """``repr(_installed_state())``, once per process and sys.path (None if it cannot be read)."""
    key = ("text", tuple(sys.path))
    if key not in _state_memo:
        try:
            _state_memo[key] = repr(_installed_state())
        except Exception:
            _state_memo[key] = None
    return _state_memo[key]


_state_memo: dict = {}


def _index_state() -> str | None:
    """The installed state the hook index is valid for: that of ``sys.path`` after its first entry.

    The first entry is the script's own folder, different for every script: with it, two programs
    would take turns rewriting the index, and each import every plugin again. A plugin module that a
    script's folder shadows is caught by ``_shadowed`` instead."""
    key = ("index", tuple(sys.path))
    if key not in _state_memo:
        try:
            state = _installed_state()
            _state_memo[key] = _crc_key(repr([state[0], *state[2:]]))
        except Exception:
            _state_memo[key] = None
    return _state_memo[key]


def _shadowed(modname: str) -> bool:
    """Whether the script's folder (``sys.path[0]``) holds a module or package of that top-level name."""
    top = modname.partition(".")[0]
    first = (sys.path[0] or ".") if sys.path else None
    if first is None:
        return False
    return os.path.exists(os.path.join(first, top + ".py")) or os.path.isdir(os.path.join(first, top))


def _entry_points() -> list:
    """The ``trackhooks`` entry points, from a cache keyed by the installed state when it is current."""
    import json

    cache_dir = _cache_dir()
    state = _state_text()
    path = None
    if state is not None:
        path = os.path.join(cache_dir, f"entry-points-{ENTRY_POINT_GROUP}-{_crc_key(state)}.json")
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
        _write_json(path, {"state": state, "entry_points": found})
        try:
            # one file per installed state (per venv, per sys.path): forget states unused for a month
            cutoff = time.time() - 30 * 86400
            for name in os.listdir(cache_dir):
                old = os.path.join(cache_dir, name)
                if name.startswith(("entry-points-", "sys-path-", "plugin-hooks-", "autolog-entry-points-")) \
                        and os.stat(old).st_mtime < cutoff:
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


def _module_stamp(modname: str) -> dict | None:
    """The files an entry-point module is made of, found without importing it — the ``__init__.py``
    of its packages, its own file and the other ``.py`` files beside it (what it may re-export hooks
    from) — as ``{"files": [[path, mtime_ns, size]], "dirs": [[folder, mtime_ns]]}`` (a new file
    beside them changes the folder's mtime). None for anything else (an extension, a zip, a namespace)."""
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
    dirs = []
    if spec.submodule_search_locations:
        folder = os.path.dirname(files[-1])
        dirs.append(folder)
        files += sorted(os.path.join(folder, n) for n in os.listdir(folder)
                        if n.endswith(".py") and os.path.join(folder, n) not in files)
    return _restamp({"files": [[f] for f in files], "dirs": [[d] for d in dirs]})


def _restamp(stamp: dict) -> dict:
    """The same files and folders with their current mtimes (and sizes); raises OSError if one is gone."""
    files = []
    for f, *_ in stamp["files"]:
        st = os.stat(f)
        files.append([f, st.st_mtime_ns, st.st_size])
    return {"files": files, "dirs": [[d, os.stat(d).st_mtime_ns] for d, *_ in stamp["dirs"]]}


def _stamp_is_current(stamp: object) -> bool:
    """Whether a recorded stamp still describes the files: one stat per file and folder, instead of
    finding the module again (a stat of every sys.path entry, a listing of its folder)."""
    if not isinstance(stamp, dict) or stamp.get("racy") or not isinstance(stamp.get("files"), list) \
            or not isinstance(stamp.get("dirs"), list):
        return False
    try:
        return _restamp(stamp) == {"files": stamp["files"], "dirs": stamp["dirs"]}
    except (OSError, TypeError, ValueError):
        return False


def _mark_racy(stamp: dict) -> dict:
    newest = max([f[1] for f in stamp["files"]] + [d[1] for d in stamp["dirs"]], default=0)
    if time.time() - newest / 1e9 <= _RACY_S:
        stamp["racy"] = True  # changed a moment ago: look again next time
    return stamp


_INDEX_MAX = 512  # entry-point modules kept in one installed state's hook index


def _hook_index_path(state: str) -> str:
    # one file per installed state: with one file for all of them, every process parsed the slots of
    # every state it had ever seen (160 of them, 122 kB, 1.3 ms here; benchmarks/README.md, "Twelfth pass")
    return os.path.join(_cache_dir(), f"plugin-hooks-{ENTRY_POINT_GROUP}-{state}.json")


def _load_hook_index(state: str | None) -> dict:
    import json

    if state is None:
        return {}
    path = _hook_index_path(state)
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
        if time.time() - os.stat(path).st_mtime > 86400:
            os.utime(path)  # still in use: keep it (states unused for a month are forgotten)
        return index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_hook_index(state: str, index: dict) -> None:
    _write_json(_hook_index_path(state), index)


def _read_hook_functions(hook: str, disabled: set[str]) -> list:
    """Import the built-ins, and the entry-point modules that may implement ``hook``.

    Which ``trackhooks_*`` hooks an entry-point module implements is remembered per module and
    installed state (``plugin-hooks-trackhooks.json`` in the cache directory) with the stamp of its
    files: a module known not to implement ``hook`` whose files and folder have not changed since
    (one stat each) is not imported (the eight first-party plugins: ~3.5 ms of CPU on the writer of
    every process for a hook none of them has). A stamp taken within two seconds of a change of
    its files is not trusted: the module is imported again next time.
    """
    import importlib

    plugins: list = [(name, importlib.import_module(mod)) for name, mod in BUILTIN_PLUGINS.items()
                     if name not in disabled]
    seen = {name for name, _ in plugins} | disabled
    state = _index_state()
    index = _load_hook_index(state)
    changed = False
    for ep in _entry_points():
        if ep.name in seen:
            continue
        seen.add(ep.name)
        slot = ep.value  # in the index of this installed state (a file per state, see _hook_index_path)
        known = index.get(slot)
        if isinstance(known, dict) and hook not in (known.get("hooks") or ()) \
                and _stamp_is_current(known.get("stamp")) and not _shadowed(ep.value):
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break tracking
            import warnings

            warnings.warn(f"trackhooks: plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                          RuntimeWarning, stacklevel=2)
            continue
        plugins.append((ep.name, obj))
        try:  # after the import, which may have written a __pycache__ beside the files
            stamp = _module_stamp(ep.value.partition("[")[0].partition(":")[0].strip())
        except Exception:  # anything unusual: import it next time too, as without the index
            stamp = None
        if stamp is not None and state is not None:
            hooks = sorted(n for n in dir(obj) if n.startswith("trackhooks_")
                           and isinstance(getattr(getattr(obj, n, None), "trackhooks_impl", None), dict))
            entry = {"stamp": _mark_racy(stamp), "hooks": hooks}
            if known != entry:
                index.pop(slot, None)
                index[slot] = entry  # last: the oldest entries are the first to go
                while len(index) > _INDEX_MAX:
                    index.pop(next(iter(index)))
                changed = True
    if changed and state is not None:
        _save_hook_index(state, index)
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
        _dists_memo.clear()  # and look at what is installed again
        _state_memo.clear()
        _light_hooks.clear()
