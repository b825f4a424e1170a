"""People (HR): Employees, organisation, leave and expenses."""
from flask_babel import lazy_gettext as _l

from core.plugins import PluginSpec

PLUGIN = PluginSpec(
    name="hr",
    version="0.1.0",
    label=_l("People (HR)"),
    description=_l("Employees, organisation, leave and expenses."),
    requires=("approval",),
)
