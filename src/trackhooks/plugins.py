"""The plugin manager: built-ins from an explicit list, then entry points, then the disable list."""

from __future__ import annotations

import _thread
import os

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
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
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
