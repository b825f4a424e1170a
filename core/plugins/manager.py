"""Finding, checking, ordering and loading plugins.

Installed is not enabled: every package in the ``yiti.plugins`` entry-point group is *installed*
(our own plugins are declared there too), and only the names in the ``PLUGINS`` setting are
loaded. Any problem — an unknown name, a missing requirement, a cycle, a plugin that fails to
import — stops start-up with a message naming the plugin; nothing is skipped silently.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points

import pluggy

from core.plugins import hookspecs
from core.plugins.markers import PROJECT
from core.plugins.spec import PluginSpec

ENTRY_POINT_GROUP = "yiti.plugins"


class PluginError(RuntimeError):
    """A plugin cannot be loaded; the message names it."""


@dataclass(frozen=True)
class InstalledPlugin:
    """An installed plugin: its manifest, package and the distribution that ships it."""

    spec: PluginSpec
    package: str
    distribution: str


def discover() -> dict[str, InstalledPlugin]:
    """Every installed plugin by name, read from the entry points (manifests only, no hooks)."""
    found: dict[str, InstalledPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            module = ep.load()
        except Exception as exc:  # an installed plugin whose package cannot even be imported
            raise PluginError(f"Plugin {ep.name!r} failed to import: {exc!r}") from exc
        spec = getattr(module, "PLUGIN", None)
        if not isinstance(spec, PluginSpec):
            raise PluginError(f"Plugin {ep.name!r}: {ep.value} has no PLUGIN = PluginSpec(...) manifest")
        if spec.name != ep.name:
            raise PluginError(f"Plugin {ep.name!r}: its manifest is named {spec.name!r}")
        if ep.name in found and found[ep.name].package != ep.value:
            raise PluginError(f"Plugin {ep.name!r} is installed twice ({found[ep.name].package}, {ep.value})")
        dist = ep.dist.name if ep.dist else "?"
        found[ep.name] = InstalledPlugin(spec=spec, package=ep.value, distribution=dist)
    return found


def resolve(enabled: list[str], installed: dict[str, InstalledPlugin]) -> list[InstalledPlugin]:
    """Check ``enabled`` against ``installed`` and return them in dependency order.

    A plugin comes after everything it requires (and after optional plugins that are enabled);
    plugins with no order between them are sorted by name, so the result never depends on the
    order of the setting.
    """
    names = list(dict.fromkeys(enabled))
    for name in names:
        if name not in installed:
            known = ", ".join(sorted(installed)) or "none"
            raise PluginError(f"Plugin {name!r} is enabled but not installed (installed: {known})")
    for name in names:
        for required in installed[name].spec.requires:
            if required not in names:
                raise PluginError(f"Plugin {name!r} requires plugin {required!r}, which is not enabled")
    after = {
        name: {dep for dep in (*installed[name].spec.requires, *installed[name].spec.optional) if dep in names}
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = sorted(n for n in names if n not in ordered and after[n] <= set(ordered))
        if not ready:
            stuck = sorted(n for n in names if n not in ordered)
            raise PluginError(f"Plugins {', '.join(stuck)} require each other in a cycle")
        ordered.extend(ready)
    return [installed[name] for name in ordered]


class Plugins:
    """The plugins of one app: the pluggy manager, what is installed and what is enabled."""

    def __init__(self, enabled: list[str], installed: dict[str, InstalledPlugin] | None = None):
        self.installed = discover() if installed is None else installed
        self.enabled = resolve(enabled, self.installed)
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        import core.hooks  # the core's own menu items and widgets take the same path as plugins'

        self.pm.register(core.hooks, name="core")
        for plugin in self.enabled:
            self._load(plugin)
        self.pm.check_pending()

    def _load(self, plugin: InstalledPlugin) -> None:
        name = plugin.spec.name
        try:
            if importlib.util.find_spec(f"{plugin.package}.hookspecs"):
                self.pm.add_hookspecs(importlib.import_module(f"{plugin.package}.hookspecs"))
            hooks = importlib.import_module(f"{plugin.package}.hooks")
        except Exception as exc:
            raise PluginError(f"Plugin {name!r} failed to import: {exc!r}") from exc
        self.pm.register(hooks, name=name)

    @property
    def hook(self):
        """The hook relay: ``plugins.hook.register_menu(user=...)``."""
        return self.pm.hook

    @property
    def names(self) -> list[str]:
        """Enabled plugin names in load order."""
        return [p.spec.name for p in self.enabled]

    def collect(self, hook_name: str, **kwargs) -> list:
        """Call a list-returning hook and flatten the per-plugin lists."""
        results = getattr(self.pm.hook, hook_name)(**kwargs)
        return [item for result in results if result for item in result]

    def collect_by_plugin(self, hook_name: str, **kwargs) -> list[tuple[str, object]]:
        """Like ``collect`` but keeps who said what: ``[(plugin_name, item), ...]``."""
        pairs = []
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            pairs.extend((impl.plugin_name, item) for item in result or ())
        return pairs

    def package_dir(self, name: str):
        """The folder of an installed plugin's package (``core`` for the core)."""
        import core

        package = "core" if name == "core" else self.installed[name].package
        spec = importlib.util.find_spec(package) if package != "core" else None
        from pathlib import Path

        return Path(core.__file__).parent if spec is None else Path(next(iter(spec.submodule_search_locations)))
