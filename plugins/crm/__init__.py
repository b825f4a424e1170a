"""Customers (CRM): Customers, contacts, leads, opportunities, follow-ups, orders and service tickets."""
from flask_babel import lazy_gettext as _l

from core.plugins import PluginSpec

PLUGIN = PluginSpec(
    name="crm",
    version="0.1.0",
    label=_l("Customers (CRM)"),
    description=_l("Customers, contacts, leads, opportunities, follow-ups, orders and service tickets."),
    requires=("approval",),
)
