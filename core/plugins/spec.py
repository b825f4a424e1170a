"""Value types that plugins hand to the core through hooks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class PluginSpec:
    """A plugin's static manifest, ``PLUGIN`` in its package ``__init__``.

    Reading it must be cheap and import nothing heavy: the Plugins page lists every installed
    plugin, enabled or not. ``requires`` must be enabled too; ``optional`` are used when present.
    The hook implementations live in ``<package>.hooks`` and are imported only when enabled.
    """

    name: str
    version: str
    label: object  # a lazy translatable string
    description: object = ""
    requires: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class MenuItem:
    """A navigation entry. ``endpoint`` is a Flask endpoint; ``section`` groups items (``main`` or ``admin``)."""

    key: str
    label: object
    endpoint: str
    order: int = 100
    section: str = "main"
    icon: str = ""


@dataclass(frozen=True)
class DashboardWidget:
    """A home-page card: ``render()`` returns HTML (from a template), called only for users who see it."""

    key: str
    title: object
    render: Callable[[], str]
    order: int = 100
    width: int = 6  # Bootstrap columns out of 12 on wide screens


@dataclass(frozen=True)
class Permission:
    """A permission a plugin defines: ``<plugin>.<resource>.<action>``."""

    name: str
    label: object

    def __post_init__(self):
        if self.name.count(".") != 2 or not all(self.name.split(".")):
            raise ValueError(f"permission name {self.name!r} must look like plugin.resource.action")


@dataclass(frozen=True)
class RoleTemplate:
    """A role's default grants in one plugin: ``grants`` maps permission names to a scope
    (``own``, ``department``, ``department_tree``, ``all``); ``field_rules`` is a tuple of
    ``(resource key, field, rule)`` with rule ``hidden``, ``masked`` or ``readonly``.
    ``label`` names a role the core does not already define."""

    key: str
    grants: dict = field(default_factory=dict, hash=False)
    field_rules: tuple = ()
    label: object = None


@dataclass
class DemoCompany:
    """What ``yiti demo`` created, handed to each plugin's ``demo_data`` hook."""

    departments: dict = field(default_factory=dict)  # key -> Department
    users: dict = field(default_factory=dict)  # username -> User
    password: str = ""
