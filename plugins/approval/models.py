"""Approval tables (``approval_`` prefix): flows, requests, tasks, the timeline, copies, delegations.

No business rules here: they live in ``engine.py`` (walking a flow) and ``services.py`` (actions).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.extensions import db
from core.models import CreatedByMixin, JSONType, OwnedMixin, TimestampMixin, UTCDateTime, VersionedMixin

FLOW_STATUSES = ("draft", "published", "retired")
#: ``returned``: sent back to the initiator, who edits and resubmits it (or withdraws it).
REQUEST_STATUSES = ("running", "returned", "approved", "rejected", "withdrawn", "cancelled")
TASK_STATUSES = ("waiting", "pending", "approved", "rejected", "returned", "cancelled", "skipped", "auto")
TASK_ORIGINS = ("rule", "delegate", "transfer", "add_sign", "escalate")
#: Task statuses that count as "this approver said yes".
APPROVED = ("approved", "auto")
OPEN = ("waiting", "pending")


class Flow(TimestampMixin, CreatedByMixin, db.Model):
    """One version of a flow definition. Running requests keep the version they started with."""

    __tablename__ = "approval_flow"
    __table_args__ = (
        UniqueConstraint("key", "version", name="uq_approval_flow_key_version"),
        Index("ix_approval_flow_status_key", "status", "key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="draft")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    subject_type: Mapped[str | None] = mapped_column(String(100))
    form: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    nodes: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    settings: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Flow {self.key} v{self.version} {self.status}>"


class Request(OwnedMixin, VersionedMixin, db.Model):
    """A request going through a flow. ``owner_id`` is the initiator, ``department_id`` theirs."""

    __tablename__ = "approval_request"
    __table_args__ = (
        *OwnedMixin.scope_indexes("approval_request"),
        Index("ix_approval_request_subject", "subject_type", "subject_id"),
        Index("ix_approval_request_initiator_created", "initiator_id", "created_at"),
        Index("ix_approval_request_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("approval_flow.id", ondelete="RESTRICT"), nullable=False, index=True)
    flow_key: Mapped[str] = mapped_column(String(64), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    subject_type: Mapped[str | None] = mapped_column(String(100))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    initiator_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="RESTRICT"), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="running")
    context: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    #: The nodes this request walks (condition branches resolved), in order: ``[node_key, ...]``.
    path: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    current_node: Mapped[str | None] = mapped_column(String(64))
    #: Grows each time the request is sent back and walks nodes again; tasks carry it.
    round: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    flow: Mapped[Flow] = relationship(lazy="joined")
    tasks: Mapped[list[Task]] = relationship(back_populates="request", order_by="Task.id", viewonly=True)


class Task(db.Model):
    """One approver's part in one node (and round) of a request."""

    __tablename__ = "approval_task"
    __table_args__ = (
        Index("ix_approval_task_request_node", "request_id", "node_key", "round"),
        Index("ix_approval_task_assignee_status", "assignee_id", "status"),
        Index("ix_approval_task_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_request.id", ondelete="CASCADE"), nullable=False)
    node_key: Mapped[str] = mapped_column(String(64), nullable=False)
    round: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    seq: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    assignee_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="RESTRICT"), nullable=False)
    origin: Mapped[str] = mapped_column(String(20), nullable=False, default="rule")
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    #: For an added approver (加签): the task it was added to.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("approval_task.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acted_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    comment: Mapped[str] = mapped_column(Text, nullable=False, default="")

    request: Mapped[Request] = relationship(back_populates="tasks")


class Event(db.Model):
    """The request's timeline: append-only."""

    __tablename__ = "approval_event"
    __table_args__ = (Index("ix_approval_event_request_at", "request_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_request.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(30), nullable=False)
    node_key: Mapped[str | None] = mapped_column(String(64))
    task_id: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, nullable=False, default="")
    details: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)


class CC(db.Model):
    """A copy (抄送) of a request to someone who only reads it."""

    __tablename__ = "approval_cc"
    __table_args__ = (UniqueConstraint("request_id", "user_id", "node_key", name="uq_approval_cc_request_user_node"),
                      Index("ix_approval_cc_user", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("approval_request.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False)
    node_key: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=clock.now)


class Delegation(TimestampMixin, db.Model):
    """While ``user`` is away (``starts_at`` to ``ends_at``) ``delegate`` approves for them;
    ``flow_keys`` limits it to some flows (``None``: all)."""

    __tablename__ = "approval_delegation"
    __table_args__ = (Index("ix_approval_delegation_user_period", "user_id", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False)
    delegate_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    flow_keys: Mapped[list | None] = mapped_column(JSONType)

    def covers(self, flow_key: str, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at and (self.flow_keys is None or flow_key in self.flow_keys)


MODELS = [Flow, Request, Task, Event, CC, Delegation]
