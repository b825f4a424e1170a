"""Plugin machinery: markers (``hookimpl``), value types, hookspecs and the manager."""
from core.plugins.markers import hookimpl, hookspec
from core.plugins.spec import DashboardWidget, DemoCompany, MenuItem, Permission, PluginSpec, RoleTemplate
from core.plugins.spec import Delivery, EventType, PeriodicJob

__all__ = [
    "DashboardWidget", "DemoCompany", "MenuItem", "Permission", "PluginSpec", "RoleTemplate",
    "Delivery", "EventType", "PeriodicJob",
    "hookimpl", "hookspec",
]
