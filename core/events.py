"""Events: ``emit(name, **payload)`` inside a transaction, delivered only if it commits.

``emit`` writes an outbox row (``core_outbox``) in the caller's transaction and queues the event
on the session. When that transaction commits, every ``on_event`` hook runs once, after the
commit, in a fresh transaction of its own; when it rolls back (or the session closes without a
commit) nothing happens and the outbox row is gone with the rest of the work. Events emitted
inside a SAVEPOINT that is rolled back are dropped too.

``on_event`` is a convenience for work the process may lose if it dies right after the commit.
What must reach someone (webhooks, notifications) is a *delivery* (``register_deliveries``): the
worker's sweeper (``core.jobs.sweep_outbox``) hands every pending outbox row to each delivery that
wants it, at least once, with retries, backoff and a dead-letter state.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy import Index, Integer, String, Text, event, inspect as sa_inspect
from sqlalchemy.orm import Mapped, Session, mapped_column

from core import clock
from core.audit import jsonable
from core.extensions import db
from core.models import JSONType, UTCDateTime
from core.plugins.manager import PluginError, Plugins

log = logging.getLogger(__name__)

OUTBOX_STATUSES = ("pending", "delivered", "dead")
_PENDING = "yiti.events.pending"  # emitted in the open transaction
_READY = "yiti.events.ready"  # committed, waiting for the transaction to end


class UnknownEvent(ValueError):
    """``emit`` was given a name no plugin declared with ``register_event_types``."""


class OutboxMessage(db.Model):
    """An event that committed, kept until every delivery that wants it has taken it."""

    __tablename__ = "core_outbox"
    __table_args__ = (Index("ix_core_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    payload: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.event} {self.status}>"


@dataclass(frozen=True)
class Message:
    """What a delivery receives: the event and the key a receiver uses to drop repeats."""

    id: int
    event: str
    payload: dict
    idempotency_key: str
    attempt: int
    created_at: datetime


@dataclass
class _Queued:
    app: Flask
    name: str
    payload: dict
    row: OutboxMessage


def init_app(app: Flask, plugins: Plugins) -> None:
    """Collect the event types and deliveries once; a name declared twice stops start-up."""
    types: dict = {}
    for plugin, event_type in plugins.collect_by_plugin("register_event_types"):
        if event_type.name.split(".")[0] != plugin:
            raise PluginError(f"Plugin {plugin!r} declares event {event_type.name!r} outside its own name")
        if event_type.name in types:
            raise PluginError(f"Event {event_type.name!r} is declared twice")
        types[event_type.name] = event_type
    deliveries: dict = {}
    with app.app_context():  # a delivery may read its settings
        declared = plugins.collect_by_plugin("register_deliveries")
    for plugin, delivery in declared:
        if delivery.name in deliveries:
            raise PluginError(f"Delivery {delivery.name!r} is declared twice (by {plugin!r})")
        deliveries[delivery.name] = delivery
    app.extensions["yiti.event_types"] = dict(sorted(types.items()))
    app.extensions["yiti.deliveries"] = dict(sorted(deliveries.items()))


def event_types() -> dict:
    """Every declared event type of the running app by name."""
    return current_app.extensions["yiti.event_types"]


def deliveries_for(name: str, app: Flask | None = None) -> list:
    """The deliveries that want event ``name``, in name order."""
    app = app or current_app
    return [d for d in app.extensions["yiti.deliveries"].values()
            if (d.events is None or name in d.events) and (d.wants is None or d.wants(name))]


def emit(name: str, **payload) -> OutboxMessage:
    """Queue event ``name`` in the current transaction; it exists only if the transaction commits.

    ``payload`` must be JSON-ready (dates and decimals are turned into text). Writes one outbox
    row in the caller's transaction: ``pending`` when some delivery wants the event, otherwise
    already ``delivered`` (kept as the event log). Raises ``UnknownEvent`` for an undeclared name.
    """
    app = current_app._get_current_object()
    if name not in app.extensions["yiti.event_types"]:
        raise UnknownEvent(f"event {name!r} is not declared by any plugin's register_event_types")
    data = jsonable(payload)
    json.dumps(data)  # a payload that cannot be stored fails here, in the caller, not at commit
    now = clock.now()
    wanted = bool(deliveries_for(name, app))
    row = OutboxMessage(event=name, payload=data, idempotency_key=uuid.uuid4().hex, created_at=now,
                        status="pending" if wanted else "delivered", next_attempt_at=now,
                        delivered_at=None if wanted else now)
    db.session.add(row)
    db.session.info.setdefault(_PENDING, []).append(_Queued(app, name, data, row))
    return row


# Session bookkeeping: pending -> ready at the outermost commit -> dispatched when it has ended.


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a RELEASE SAVEPOINT: the outer transaction may still roll back
        return
    pending = session.info.pop(_PENDING, None)
    if pending:
        # Rows added inside a rolled-back SAVEPOINT were expunged: their events never happened.
        committed = [q for q in pending if sa_inspect(q.row).persistent]
        session.info.setdefault(_READY, []).extend(committed)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(_PENDING, None)  # not committed: rolled back or closed
    ready = session.info.pop(_READY, None)
    if ready:
        _dispatch(session, ready)


def _dispatch(session: Session, ready: list[_Queued]) -> None:
    """Run every ``on_event`` hook for each committed event, each in its own transaction."""
    for queued in ready:
        for impl in queued.app.extensions["plugins"].hook.on_event.get_hookimpls():
            kwargs = {"name": queued.name, "payload": json.loads(json.dumps(queued.payload))}
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
                session.commit()
            except Exception:
                session.rollback()
                log.exception("on_event of plugin %r failed for event %r", impl.plugin_name, queued.name)
