"""Enabling and disabling plugins (admin page and ``yiti plugins``). Changes apply on restart.

The saved list lives in the database so every app server reads the same one at start-up.
``YITI_PLUGINS`` in the environment overrides it; the page then says so and offers no switch.
Disabling a plugin keeps its tables and data: enabling it again brings everything back.
"""
from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _

from core.errors import BusinessRuleError
from core.site_settings import PLUGINS_KEY, get_setting, set_setting


def locked() -> bool:
    """True when the environment (or the embedding code) fixes the plugin list."""
    return current_app.config["YITI"]["SOURCES"]["PLUGINS"] in ("environment", "config")


def configured() -> list[str]:
    """The plugin names that will be enabled at the next start."""
    if locked():
        return list(current_app.config["YITI"]["PLUGINS"])
    saved = get_setting(PLUGINS_KEY)
    return list(saved) if isinstance(saved, list) else list(current_app.config["YITI"]["PLUGINS"])


def plugin_rows() -> dict:
    """What the Plugins page and ``yiti plugins list`` show."""
    plugins = current_app.extensions["plugins"]
    running = set(plugins.names)
    wanted = set(configured())
    rows = []
    for name, installed in sorted(plugins.installed.items()):
        spec = installed.spec
        rows.append({
            "name": name,
            "label": str(spec.label),
            "description": str(spec.description),
            "version": spec.version,
            "requires": list(spec.requires),
            "distribution": installed.distribution,
            "running": name in running,
            "enabled": name in wanted,
            "error": None,
        })
    for name, error in sorted(plugins.broken.items()):
        rows.append({"name": name, "label": name, "description": "", "version": "?", "requires": [],
                     "distribution": "?", "running": False, "enabled": name in wanted, "error": error})
    return {"rows": rows, "locked": locked(), "restart_needed": running != wanted}


def set_enabled(name: str, enabled: bool, by=None) -> list[str]:
    """Enable or disable ``name`` for the next start; dependencies are checked both ways."""
    plugins = current_app.extensions["plugins"]
    if locked():
        raise BusinessRuleError(_("The plugin list is set by the YITI_PLUGINS environment variable; change it there."))
    if name not in plugins.installed:
        raise BusinessRuleError(_("Plugin %(name)s is not installed.", name=name))
    names = configured()
    if enabled:
        missing = [dep for dep in plugins.installed[name].spec.requires if dep not in names]
        if missing:
            raise BusinessRuleError(_("Enable %(deps)s first: %(name)s requires it.", deps=", ".join(missing), name=name))
        names = sorted(set(names) | {name})
    else:
        dependants = [o for o in names if o in plugins.installed and name in plugins.installed[o].spec.requires]
        if dependants:
            raise BusinessRuleError(_("Disable %(deps)s first: it requires %(name)s.", deps=", ".join(dependants), name=name))
        names = [n for n in names if n != name]
    set_setting(PLUGINS_KEY, names, by_id=getattr(by, "id", None))
    return names
