"""Suppliers (SRM): Suppliers, qualifications, purchasing and supplier evaluation."""
from flask_babel import lazy_gettext as _l

from core.plugins import PluginSpec

PLUGIN = PluginSpec(
    name="srm",
    version="0.1.0",
    label=_l("Suppliers (SRM)"),
    description=_l("Suppliers, qualifications, purchasing and supplier evaluation."),
    requires=("approval",),
)
