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
from pathlib import Path

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


def discover() -> tuple[dict[str, InstalledPlugin], dict[str, str]]:
    """Every installed plugin by name, read from the entry points (manifests only, no hooks).

    Returns ``(installed, broken)``: ``broken`` maps the name of each installed plugin whose
    manifest cannot be read to the reason. A broken plugin stops start-up only when it is
    enabled, so an admin can still start the core and disable it.
    """
    found: dict[str, InstalledPlugin] = {}
    broken: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            module = ep.load()
        except Exception as exc:  # an installed plugin whose package cannot even be imported
            broken[ep.name] = f"failed to import: {exc!r}"
            continue
        spec = getattr(module, "PLUGIN", None)
        if not isinstance(spec, PluginSpec):
            broken[ep.name] = f"{ep.value} has no PLUGIN = PluginSpec(...) manifest"
        elif spec.name != ep.name:
            broken[ep.name] = f"its manifest is named {spec.name!r}"
        elif ep.name in found and found[ep.name].package != ep.value:
            broken[ep.name] = f"installed twice ({found[ep.name].package}, {ep.value})"
        else:
            dist = ep.dist.name if ep.dist else "?"
            found[ep.name] = InstalledPlugin(spec=spec, package=ep.value, distribution=dist)
    for name in broken:
        found.pop(name, None)
    return found, broken


def resolve(enabled: list[str], installed: dict[str, InstalledPlugin],
            broken: dict[str, str] | None = None) -> list[InstalledPlugin]:
    """Check ``enabled`` against ``installed`` and return them in dependency order.

    A plugin comes after everything it requires (and after optional plugins that are enabled);
    plugins with no order between them are sorted by name, so the result never depends on the
    order of the setting.
    """
    names = list(dict.fromkeys(enabled))
    for name in names:
        if broken and name in broken:
            raise PluginError(f"Plugin {name!r}: {broken[name]}")
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
        if installed is None:
            self.installed, self.broken = discover()
        else:
            self.installed, self.broken = installed, {}
        self.enabled = resolve(enabled, self.installed, self.broken)
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        import core.hooks  # the core's own menu items and widgets take the same path as plugins'

        self.pm.register(core.hooks, name="core")
        for plugin in self.enabled:
            self._load(plugin)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"Plugin {self.pm.get_name(exc.plugin)!r}: {exc}") from exc

    def _load(self, plugin: InstalledPlugin) -> None:
        name = plugin.spec.name
        try:
            if importlib.util.find_spec(f"{plugin.package}.hookspecs"):
                self.pm.add_hookspecs(importlib.import_module(f"{plugin.package}.hookspecs"))
            hooks = importlib.import_module(f"{plugin.package}.hooks")
        except Exception as exc:
            raise PluginError(f"Plugin {name!r} failed to import: {exc!r}") from exc
        try:
            self.pm.register(hooks, name=name)
        except pluggy.PluginValidationError as exc:  # a hook implementation that matches no spec's signature
            raise PluginError(str(exc)) from exc  # pluggy's message names the plugin and the hook

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

    def package_dir(self, name: str) -> Path:
        """The folder of an installed plugin's package (``core`` for the core)."""
        if name == "core":
            return Path(__file__).resolve().parents[1]
        spec = importlib.util.find_spec(self.installed[name].package)
        return Path(next(iter(spec.submodule_search_locations)))
