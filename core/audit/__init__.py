"""The audit trail: ``record()`` in the caller's transaction, ``history()`` for a record's History tab.

Entries are append-only. Values of fields a reader may not see in full are masked when the
history is shown (``history(..., viewer=user)``), with the same field rules as everywhere else.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import insert, select

from core import clock
from core.audit.models import AuditEntry
from core.extensions import db

__all__ = ["AuditEntry", "record", "record_many", "values", "history", "diff", "jsonable"]


#: Types JSON stores as they are: most values of a snapshot, so they are passed through first.
_AS_IS = frozenset({str, int, float, bool, type(None)})


def jsonable(value):
    """A value as it is stored in ``changes`` (JSON): dates as ISO text, decimals as strings."""
    if type(value) in _AS_IS:
        return value
    if isinstance(value, dict):
        return {str(k): v if type(v) in _AS_IS else jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v if type(v) in _AS_IS else jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def diff(before: dict, after: dict) -> dict:
    """``{field: [old, new]}`` for each field whose value differs between two snapshots."""
    changes = {}
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if type(old) not in _AS_IS:
            old = jsonable(old)
        if type(new) not in _AS_IS:
            new = jsonable(new)
        if old != new:
            changes[key] = [old, new]
    return changes


def _actor(actor):
    if actor is not None:
        return actor
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user._get_current_object()
    return None


def record(action: str, *, resource: str | None = None, record_id: int | None = None, summary: str = "",
           changes: dict | None = None, actor=None, actor_name: str | None = None) -> AuditEntry:
    """Append an audit entry in the caller's transaction (it commits or rolls back with the change).

    ``actor`` defaults to the logged-in user; ``actor_name`` names someone who is not a user
    (a failed login's typed username, the system).
    """
    entry = AuditEntry(**values(action, resource=resource, record_id=record_id, summary=summary, changes=changes,
                                actor=actor, actor_name=actor_name))
    db.session.add(entry)
    return entry


def values(action: str, *, resource: str | None = None, record_id: int | None = None, summary: str = "",
           changes: dict | None = None, actor=None, actor_name: str | None = None) -> dict:
    """The columns of the entry ``record`` would write (``at`` left to its default)."""
    who = _actor(actor)
    return {
        "actor_id": getattr(who, "id", None),
        "actor_name": (actor_name if actor_name is not None else getattr(who, "username", "system"))[:100],
        "address": (request.remote_addr or "")[:64] if has_request_context() else "",
        "action": action,
        "resource": resource,
        "record_id": record_id,
        "summary": (summary or "")[:255],
        "changes": jsonable(changes or {}),
    }


def record_many(action: str, *, resource: str, items: list[tuple[int, str, dict]], actor=None) -> None:
    """Append one ``action`` entry for each ``(record_id, summary, changes)`` of ``items`` in one
    ``INSERT`` (a bulk import), in the caller's transaction: the entries ``record`` would write one by one.

    ``changes`` are taken as ``diff`` gives them (JSON-ready already).
    """
    if not items:
        return
    common = values(action, resource=resource, actor=actor)
    common["at"] = clock.now()
    db.session.execute(insert(AuditEntry.__table__), [
        {**common, "record_id": record_id, "summary": (summary or "")[:255], "changes": changes}
        for record_id, summary, changes in items])


def history(resource: str, record_id: int, viewer=None, limit: int = 200) -> list[AuditEntry]:
    """A record's entries, newest first; with ``viewer`` the values they may not see are masked.

    The masked entries are detached copies: the stored trail is never changed.
    """
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.resource == resource, AuditEntry.record_id == record_id)
        .order_by(AuditEntry.id.desc()).limit(limit)
    ).all()
    if viewer is None:
        return list(entries)
    from core.permissions.fields import mask_changes

    shown = []
    for entry in entries:
        copy = AuditEntry(id=entry.id, at=entry.at, actor_id=entry.actor_id, actor_name=entry.actor_name,
                          address=entry.address, action=entry.action, resource=entry.resource,
                          record_id=entry.record_id, summary=entry.summary,
                          changes=mask_changes(resource, viewer, entry.changes))
        shown.append(copy)
    return shown
