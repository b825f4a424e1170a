"""Global search: one query box over every resource the user may read, grouped by module.

Each resource is searched through its own scoped list query (``core.resources.list_query``), so
record scopes apply in SQL and fields the user sees masked or not at all are never matched (a
search for a hidden mobile number must not reveal which customer has it). Results keep the
field rules too: a title the user sees masked stays masked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, url_for

from core import resources as records
from core.permissions import can
from core.registry import resources

MAX_QUERY_LENGTH = 100


@dataclass
class Hit:
    resource: str
    label: str
    id: int
    title: str
    url: str


@dataclass
class Group:
    plugin: str
    label: str
    hits: list[Hit] = field(default_factory=list)
    more: dict = field(default_factory=dict)  # resource key -> {"label", "url"} of its list, when it had more hits


def clean_query(text: str | None) -> str:
    """The search text as the resources' search expects it: trimmed, bounded, no NUL."""
    return (text or "").replace("\x00", "").strip()[:MAX_QUERY_LENGTH]


def searchable(user) -> list:
    """The resources with search fields that ``user`` may read, in menu order (plugin, name)."""
    found = [r for r in resources().values() if r.search_fields and can(user, r.permission("read"))]
    return sorted(found, key=lambda r: (r.plugin, r.name))


def search(user, text: str, per_resource: int = 5) -> list[Group]:
    """Up to ``per_resource`` hits of every searchable resource, grouped by plugin.

    One bounded query per resource the user may read; no count (a group says "more" when a
    resource had more than ``per_resource`` hits, linking to its filtered list).
    """
    text = clean_query(text)
    if not text:
        return []
    installed = current_app.extensions["plugins"].installed
    groups: dict[str, Group] = {}
    for resource in searchable(user):
        query = records.list_query(resource, user, {"q": text})
        rows = records.dumped(resource, user, query.limit(per_resource + 1))
        if not rows:
            continue
        plugin = installed.get(resource.plugin)
        group = groups.setdefault(resource.plugin, Group(resource.plugin, str(plugin.spec.label) if plugin
                                                         else resource.plugin))
        for row in rows[:per_resource]:
            group.hits.append(Hit(resource.key, str(resource.label), row["id"], resource.title_of(row),
                                  url_for("records.detail", plugin=resource.plugin, plural=resource.plural,
                                          record_id=row["id"])))
        if len(rows) > per_resource:
            group.more[resource.key] = {"label": str(resource.label_plural), "url": url_for(
                "records.list_page", plugin=resource.plugin, plural=resource.plural, q=text)}
    return list(groups.values())
