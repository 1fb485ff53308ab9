"""``trackhooks.autolog()``: enable integrations lazily, never importing a framework.

An integration plugin declares the top-level modules it patches (hook ``trackhooks_autolog_modules``).
``autolog`` calls the plugin's ``trackhooks_autolog`` at once when one of those modules is already
imported, and otherwise when the module is first imported: a finder at the front of
``sys.meta_path`` wraps the loader of exactly the watched modules and calls the plugins right after
the module has executed. ``autolog(disable=True)`` drops what is still waiting (and the finder with
it) and restores the frameworks that were patched.

This module is imported by ``trackhooks.autolog`` in every training script that calls it, so it
stays light: when the plugin manager does not exist yet, the plugins are found by reading the
``trackhooks`` entry points straight from the installed distributions' ``entry_points.txt``
(``importlib.metadata`` and pluggy together cost more than the whole interpreter start), and the
plugin modules are imported (they are light by contract) but not registered. Once the plugin
manager exists (after a ``start_run``, or when a test registers plugins on it) it is the one source.
"""

from __future__ import annotations

import _thread
import os
import sys
import time  # built into the interpreter: nothing to load

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

ENTRY_POINT_GROUP = "trackhooks"
IMPL_ATTR = "trackhooks_impl"  # what pluggy's (and trackhooks.plugin's) hookimpl marker sets

_lock = _thread.RLock()  # _thread, not threading: this module must cost nothing to import
#: plugin name -> [options, top-level modules not imported yet, the plugin's trackhooks_autolog]
_pending: dict[str, list] = {}
#: plugins whose trackhooks_autolog was called with options (so disable must reach them)
_enabled: set[str] = set()
_finder: "_PostImportFinder | None" = None


class _Plugin:
    __slots__ = ("name", "autolog", "modules")

    def __init__(self, name: str, autolog: "Callable[..., Any]", modules: "tuple[str, ...] | None"):
        self.name, self.autolog, self.modules = name, autolog, modules


def autolog(*names: str, **options: "Any") -> list[str]:
    """Enable the installed integration plugins by name (all of them if no name is given).

    Options are passed to each plugin's ``trackhooks_autolog`` (e.g. ``disable=True``). A plugin
    whose framework is not imported yet is enabled when it is first imported; no framework is ever
    imported here. Returns the names of the plugins enabled (or disabled).
    """
    plugins = _discover()
    chosen = list(names) if names else sorted(plugins)
    unknown = [n for n in chosen if n not in plugins]
    if unknown:
        from .errors import UnknownPluginError

        raise UnknownPluginError(
            f"no installed integration named {', '.join(map(repr, unknown))}; installed: "
            f"{', '.join(sorted(plugins)) or 'none (pip install trackhooks-lightning, -keras, -sklearn, -xgboost)'}")
    disable = bool(options.get("disable"))
    now: list[_Plugin] = []
    with _lock:
        for name in chosen:
            plugin = plugins[name]
            if disable:
                _pending.pop(name, None)
                # never enabled and its framework never imported: nothing to restore, nothing to import
                if plugin.modules is None or name in _enabled or any(m in sys.modules for m in plugin.modules):
                    now.append(plugin)
                _enabled.discard(name)
                continue
            later = () if plugin.modules is None else tuple(m for m in plugin.modules if m not in sys.modules)
            if later:
                _pending[name] = [dict(options), set(later), plugin.autolog]
            else:
                _pending.pop(name, None)
            if plugin.modules is None or len(later) < len(plugin.modules):
                now.append(plugin)
        _update_finder()
    for plugin in now:
        if not disable:
            with _lock:
                _enabled.add(plugin.name)
        plugin.autolog(options=dict(options))
    return chosen


def pending() -> dict[str, tuple[str, ...]]:
    """The plugins waiting for a framework import: name -> the modules that will enable them."""
    with _lock:
        return {name: tuple(sorted(entry[1])) for name, entry in _pending.items()}


# ---- discovery ---------------------------------------------------------------------------------------


def _discover() -> dict[str, _Plugin]:
    from . import plugins as _plugins  # light: pluggy is imported only when the manager is built

    pm = _plugins._pm
    if pm is not None:
        modules = {impl.plugin_name: impl.function
                   for impl in pm.hook.trackhooks_autolog_modules.get_hookimpls()}
        return {impl.plugin_name: _Plugin(impl.plugin_name, impl.function, _modules_of(impl.plugin_name,
                                                                                     modules.get(impl.plugin_name)))
                for impl in pm.hook.trackhooks_autolog.get_hookimpls()}
    disabled = _plugins.disabled_plugins()
    found: dict[str, _Plugin] = {}
    for name, value in _entry_points(ENTRY_POINT_GROUP):
        if name in disabled or name in found or name in _plugins.BUILTIN_PLUGINS:
            continue
        try:
            obj = _load(value)
        except Exception as exc:  # a broken third-party plugin must not break tracking
            _warn(f"trackhooks: plugin {name!r} ({value}) failed to load: {exc}", 4)
            continue
        fn = _impl(obj, "trackhooks_autolog")
        if fn is not None:
            found[name] = _Plugin(name, fn, _modules_of(name, _impl(obj, "trackhooks_autolog_modules")))
    return found


def _impl(obj: object, hook: str) -> "Callable[..., Any] | None":
    fn = getattr(obj, hook, None)
    return fn if callable(fn) and getattr(fn, IMPL_ATTR, None) is not None else None


def _modules_of(name: str, fn: "Callable[..., Any] | None") -> "tuple[str, ...] | None":
    if fn is None:
        return None  # the plugin does not say: it is called at once, as before lazy enabling existed
    try:
        modules = fn()
        if modules is None:
            return None
        modules = tuple(modules)
        if not all(isinstance(m, str) and m and "." not in m for m in modules):
            raise ValueError(f"not top-level module names: {modules!r}")
        return modules
    except Exception as exc:
        _warn(f"trackhooks: plugin {name!r}: trackhooks_autolog_modules failed ({exc}); it is enabled at once", 5)
        return None


def _warn(message: str, stacklevel: int) -> None:
    import warnings  # not imported at interpreter start: only on this rare path

    warnings.warn(message, RuntimeWarning, stacklevel=stacklevel)


def _load(value: str) -> object:
    module, _, attr = value.partition(":")
    module = module.strip()
    __import__(module)  # not importlib.import_module: the importlib package is not loaded at start
    obj: object = sys.modules[module]
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def _entry_points(group: str) -> "Iterator[tuple[str, str]]":
    """(name, value) of every entry point in ``group`` of the distributions on ``sys.path``, first
    distribution of a name wins (as in importlib.metadata). Reads files, imports nothing.

    The script's folder (``sys.path[0]``) is read every time: a run writes files there, so its mtime
    changes all the time. What the other folders hold is kept in a text file of the cache directory
    (not JSON: ``json`` imports ``re``, ~7 ms of a fresh interpreter) with the mtime of each folder
    and of each ``.egg-info``'s ``entry_points.txt`` (rewritten in place): installing, removing or
    upgrading a package adds, removes or renames a folder in one of them. Reading ~150
    ``entry_points.txt`` of a virtual environment took ~2.5 ms of every ``autolog()``; the check is
    a ``stat`` per folder (benchmarks/README.md, "Twelfth pass")."""
    folders = [entry or "." for entry in sys.path if isinstance(entry, str)]
    seen: set[str] = set()
    yield from ((name, value) for _, name, value in _scan(folders[:1], group, seen, []))
    rest = folders[1:]
    found = _read_scan_cache(rest, group)
    if found is None:
        # stamped before they are read: a change while they are read is seen by the next process
        stamps = [("dir", folder, _mtime(folder)) for folder in rest]
        found = list(_scan(rest, group, set(), stamps))
        _write_scan_cache(rest, group, stamps, found)
    for dist, name, value in found:
        if dist not in seen:
            yield name, value


def _scan(folders: "list[str]", group: str, seen: "set[str]",
          stamps: "list[tuple[str, str, str]]") -> "Iterator[tuple[str, str, str]]":
    """(distribution, name, value) of the entry points of ``group`` in ``folders``; adds every
    distribution name met to ``seen``, and ``("file", path, mtime)`` of every ``.egg-info``'s
    file, taken before it is read, to ``stamps``."""
    for folder in folders:
        try:
            names = os.listdir(folder)
        except (OSError, TypeError):
            continue  # a zip or a missing directory: no plugin distribution lives there in practice
        for dirname in sorted(names):
            stem, dot, suffix = dirname.rpartition(".")
            if not dot or suffix not in ("dist-info", "egg-info"):
                continue
            dist = stem.split("-", 1)[0].lower().replace("-", "_").replace(".", "_")
            if dist in seen:
                continue
            seen.add(dist)
            path = os.path.join(folder, dirname, "entry_points.txt")
            if suffix == "egg-info":
                stamps.append(("file", path, _mtime(path)))
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            for name, value in _parse_group(text, group):
                yield dist, name, value


def _mtime(path: str) -> str:
    try:
        return str(os.stat(path).st_mtime_ns)
    except OSError:
        return "-"


def _scan_cache_path(folders: "list[str]", group: str) -> str:
    from . import plugins as _plugins

    key = _plugins._crc_key("\0".join([sys.version, group, *folders]))
    return os.path.join(_plugins._cache_dir(), f"autolog-entry-points-{key}.txt")


def _read_scan_cache(folders: "list[str]", group: str) -> "list[tuple[str, str, str]] | None":
    """What ``_scan`` found in ``folders`` when nothing in them has changed since; else None."""
    path = _scan_cache_path(folders, group)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
            age = time.time() - os.fstat(f.fileno()).st_mtime
    except (OSError, ValueError):
        return None
    if age > 86400:
        try:
            os.utime(path)  # still in use: the entry-point cache forgets files unused for a month
        except OSError:
            pass
    if lines[:2] != [sys.version.replace("\n", " "), group]:
        return None
    stamped: list[str] = []
    found: list[tuple[str, str, str]] = []
    for line in lines[2:]:
        kind, _, rest = line.partition("\t")
        if kind == "dir" or kind == "file":
            mtime, _, path = rest.partition("\t")
            if _mtime(path) != mtime:
                return None
            if kind == "dir":
                stamped.append(path)
        elif kind == "ep":
            parts = rest.split("\t")
            if len(parts) != 3:
                return None
            found.append((parts[0], parts[1], parts[2]))
        elif line:
            return None
    return found if stamped == folders else None


def _write_scan_cache(folders: "list[str]", group: str, stamps: "list[tuple[str, str, str]]",
                      found: "list[tuple[str, str, str]]") -> None:
    """Best effort: an unwritable cache directory only means reading the files next time."""
    from . import plugins as _plugins

    newest = max((int(m) for _, _, m in stamps if m != "-"), default=0)
    if time.time_ns() - newest < _plugins._RACY_S * 1e9:
        return  # changed a moment ago: a coarse clock may not tick again for the next change
    if any("\t" in path or "\n" in path for _, path, _ in stamps) or \
            any("\t" in field or "\n" in field for entry in found for field in entry):
        return
    lines = [sys.version.replace("\n", " "), group, *(f"{kind}\t{m}\t{path}" for kind, path, m in stamps),
             *("ep\t" + "\t".join(entry) for entry in found)]
    path = _scan_cache_path(folders, group)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _parse_group(text: str, group: str) -> "Iterator[tuple[str, str]]":
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            yield name.strip(), value.strip()


# ---- the post-import hook -------------------------------------------------------------------------------


def _update_finder() -> None:
    global _finder
    watched = {m for entry in _pending.values() for m in entry[1]}
    if watched and _finder is None:
        _finder = _PostImportFinder()
        sys.meta_path.insert(0, _finder)
    elif not watched and _finder is not None:
        try:
            sys.meta_path.remove(_finder)
        except ValueError:
            pass
        _finder = None
    if _finder is not None:
        _finder.watched = frozenset(watched)


class _PostImportFinder:
    """Finds nothing itself: for a watched top-level module it asks the other finders and wraps the
    loader of the spec they return, so that the plugins run right after the module executed."""

    def __init__(self) -> None:
        self.watched: frozenset[str] = frozenset()
        self._busy = _thread._local()

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if path is not None or fullname not in self.watched or getattr(self._busy, "on", False):
            return None
        self._busy.on = True
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.on = False
        loader = getattr(spec, "loader", None)
        if spec is not None and loader is not None and hasattr(loader, "exec_module"):
            spec.loader = _NotifyingLoader(loader, fullname)  # type: ignore[attr-defined]
        return spec


class _NotifyingLoader:
    def __init__(self, loader: object, name: str) -> None:
        self._loader, self._name = loader, name

    def create_module(self, spec: object) -> object:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: object) -> None:
        # the module looks exactly as if we had not been there
        if getattr(module, "__loader__", None) is self:
            try:
                module.__loader__ = self._loader  # type: ignore[attr-defined]
            except AttributeError:
                pass
        spec = getattr(module, "__spec__", None)
        if spec is not None and getattr(spec, "loader", None) is self:
            spec.loader = self._loader
        self._loader.exec_module(module)  # type: ignore[attr-defined]
        _imported(self._name)

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)


def _imported(module: str) -> None:
    """``module`` has just executed: call the plugins waiting for it. Never breaks the import."""
    calls = []
    with _lock:
        for name, entry in list(_pending.items()):
            options, modules, fn = entry
            if module in modules:
                modules.discard(module)
                if not modules:
                    del _pending[name]
                calls.append((name, options, fn))
                _enabled.add(name)
        _update_finder()
    for name, options, fn in calls:
        try:
            fn(options=dict(options))
        except Exception as exc:
            _warn(f"trackhooks: autolog({name!r}) failed when {module!r} was imported, {name} runs are "
                  f"not recorded: {type(exc).__name__}: {exc}", 4)  # the importing line
