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
    """A navigation entry: ``url_for(endpoint, **params)``; ``section`` groups items (``main`` or ``admin``).

    ``group`` (a label) puts a ``main`` item in a dropdown of the top bar with the other items of
    that label, where the first of them would stand: a module with many pages (CRM: customers,
    contacts, leads...) takes one place in the bar, however many modules are enabled.
    A resource's generic list is ``MenuItem(key, label, "records.list_page", params={"plugin": ..., "plural": ...})``.
    """

    key: str
    label: object
    endpoint: str
    order: int = 100
    section: str = "main"
    icon: str = ""
    badge: Callable[[], int] | None = None  # a cheap count shown beside the label, called once per page render
    params: dict = field(default_factory=dict, hash=False, compare=False)  # url_for arguments
    group: object = None


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
    records: bool = True  # False: only what the company needs to work (flows, settings), no sample records


@dataclass(frozen=True)
class EventType:
    """An event a plugin may ``emit``: ``name`` is ``<plugin>.<event>`` (``notes.note_created``)."""

    name: str
    label: object

    def __post_init__(self):
        if self.name.count(".") != 1 or not all(self.name.split(".")):
            raise ValueError(f"event name {self.name!r} must look like plugin.event")


@dataclass(frozen=True)
class PeriodicJob:
    """A job ``yiti worker`` runs on a schedule, inside the app with a fresh database session.

    ``every`` is a ``timedelta`` (under a minute: repeated within each minute; otherwise whole
    minutes) or a cron string ``"minute hour day month weekday"`` read in ``DEFAULT_TIMEZONE``.
    ``func()`` takes no arguments; what it leaves in the session is committed when it returns.
    Names are ``<plugin>.<job>``.
    """

    name: str
    func: Callable[[], None]
    every: object


@dataclass(frozen=True)
class Delivery:
    """Somewhere outbox messages go (a webhook, a notification channel).

    ``deliver(message)`` gets a ``core.events.Message`` and raises to have it retried later with
    backoff; it must tolerate the same message twice (it sends ``message.idempotency_key`` so the
    receiver can drop repeats). ``events`` limits it to those event names (``None``: every event).
    ``wants(event_name)``, when given, is asked at ``emit`` time too (in the emitting transaction,
    so it may read the database): a delivery that wants nothing now (no webhook subscribes to the
    event) leaves the outbox row as a plain log entry instead of a pending message.
    """

    name: str
    deliver: Callable[[object], None]
    events: tuple[str, ...] | None = None
    wants: Callable[[str], bool] | None = None

