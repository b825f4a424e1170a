"""Team notes: a minimal third-party plugin (model, page, menu item, permission, migration, translation)."""
from flask_babel import lazy_gettext as _l

from core.plugins import PluginSpec

PLUGIN = PluginSpec(
    name="notes",
    version="1.0.0",
    label=_l("Team notes"),
    description=_l("Short notes shared with your department."),
)
