"""Approvals: The approval and workflow engine the other modules use: sequential, all-of and any-of approvals, conditions, transfer, CC, time limits."""
from flask_babel import lazy_gettext as _l

from core.plugins import PluginSpec

PLUGIN = PluginSpec(
    name="approval",
    version="0.1.0",
    label=_l("Approvals"),
    description=_l("The approval and workflow engine the other modules use: sequential, all-of and any-of approvals, conditions, transfer, CC, time limits."),
    requires=(),
)
