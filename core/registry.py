"""What the enabled plugins declared at start-up: permissions and the tables each one owns."""
from __future__ import annotations

from flask import Flask, current_app

import core.audit.models  # noqa: F401
import core.auth.revocation  # noqa: F401  (the core's tables must be known before they are listed)
import core.attachments.models  # noqa: F401
import core.comments.models  # noqa: F401
import core.backup_runs  # noqa: F401
import core.events  # noqa: F401
import core.imports.models  # noqa: F401
import core.inbox.models  # noqa: F401
import core.notify.models  # noqa: F401
import core.auth.tokens  # noqa: F401
import core.org.models  # noqa: F401
import core.permissions.models  # noqa: F401
import core.permissions.cache  # noqa: F401
import core.preferences  # noqa: F401
import core.site_settings  # noqa: F401
import core.webhooks.models  # noqa: F401
from core.extensions import db
from core.plugins.manager import PluginError, Plugins


def init_app(app: Flask, plugins: Plugins) -> None:
    """Collect declarations once and check them; any clash stops start-up naming the plugins."""
    app.extensions["yiti.tables"] = _tables(plugins)
    app.extensions["yiti.resources"] = _resources(plugins)
    app.extensions["yiti.permissions"] = _permissions(plugins, app.extensions["yiti.resources"])


def _resources(plugins: Plugins) -> dict:
    declared: dict = {}
    for plugin, resource in plugins.collect_by_plugin("register_resources"):
        if resource.plugin != plugin:
            raise PluginError(f"Plugin {plugin!r} declares resource {resource.key!r} outside its own name")
        if resource.key in declared:
            raise PluginError(f"Resource {resource.key!r} is declared twice")
        declared[resource.key] = resource
    return dict(sorted(declared.items()))


def _permissions(plugins: Plugins, resources: dict) -> dict:
    declared: dict[str, tuple[str, object]] = {}
    pairs = plugins.collect_by_plugin("register_permissions")
    pairs += [(r.plugin, p) for r in resources.values() for p in r.permissions()]
    for plugin, permission in pairs:
        if permission.name in declared:
            first = declared[permission.name][0]
            raise PluginError(f"Permission {permission.name!r} is declared twice: by {first!r} and by {plugin!r}")
        expected = "core" if plugin == "core" else plugin
        if permission.name.split(".")[0] != expected:
            raise PluginError(f"Plugin {plugin!r} declares permission {permission.name!r} outside its own name")
        declared[permission.name] = (plugin, permission)
    return {name: permission for name, (_, permission) in sorted(declared.items())}


def _tables(plugins: Plugins) -> dict[str, list]:
    """Tables by owner: ``core`` (every ``core_`` table) and each enabled plugin's models."""
    owned = {"core": [t for t in db.metadata.sorted_tables if t.name.startswith("core_")]}
    for plugin, model in plugins.collect_by_plugin("register_models"):
        if not model.__tablename__.startswith(f"{plugin}_"):
            raise PluginError(f"Plugin {plugin!r}: table {model.__tablename__!r} must start with {plugin + '_'!r}")
        owned.setdefault(plugin, []).append(model.__table__)
    return owned


def resources() -> dict:
    """Every resource of the running app by key (``<plugin>.<name>``)."""
    return current_app.extensions["yiti.resources"]


def permissions() -> dict:
    """Every permission of the running app by name."""
    return current_app.extensions["yiti.permissions"]


def owned_tables() -> list:
    """Tables of the core and the enabled plugins, in dependency order."""
    wanted = {t.name for tables in current_app.extensions["yiti.tables"].values() for t in tables}
    return [t for t in db.metadata.sorted_tables if t.name in wanted]


def create_schema() -> None:
    """Create missing tables of the core and enabled plugins directly from the models.

    For tests and throw-away databases only; real databases are built by migrations
    (``yiti db upgrade``), which tests check against these same models.
    """
    db.metadata.create_all(db.engine, tables=owned_tables())
