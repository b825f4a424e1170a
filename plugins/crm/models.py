"""CRM tables (``crm_`` prefix): customers and everything hanging off them. No business rules here."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, Numeric, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column, validates

from core.extensions import db
from core.models import CreatedByMixin, CustomFieldsMixin, JSONType, OwnedMixin, UTCDateTime, VersionedMixin


class _Record(OwnedMixin, CreatedByMixin, VersionedMixin, CustomFieldsMixin):
    id: Mapped[int] = mapped_column(primary_key=True)


def _customer_fk(nullable: bool = True):
    return mapped_column(ForeignKey("crm_customer.id", ondelete="SET NULL"), nullable=nullable, index=True)


class Customer(_Record, db.Model):
    __tablename__ = "crm_customer"
    __table_args__ = (
        *OwnedMixin.scope_indexes("crm_customer"),
        Index("uq_crm_customer_credit_code", "credit_code", unique=True),
        Index("ix_crm_customer_pool", "owner_id", "last_followup_at"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    credit_code: Mapped[str | None] = mapped_column(String(18))
    industry: Mapped[str] = mapped_column(String(50), nullable=False, default="")
    province: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    city: Mapped[str] = mapped_column(String(30), nullable=False, default="")
    level: Mapped[str] = mapped_column(String(1), nullable=False, default="C")
    source: Mapped[str] = mapped_column(String(30), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    tags: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    address: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    #: When the last follow-up happened (or the customer was claimed): what the public pool counts from.
    last_followup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the owner was warned that the customer is about to return to the pool.
    pool_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when merged into another customer (the survivor); the merged row is kept, status "merged".
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("crm_customer.id", ondelete="SET NULL"))


class Contact(_Record, db.Model):
    __tablename__ = "crm_contact"
    __table_args__ = (*OwnedMixin.scope_indexes("crm_contact"), Index("ix_crm_contact_mobile", "mobile"))

    customer_id: Mapped[int | None] = _customer_fk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    title: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    mobile: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    email: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    wechat: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    is_primary: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class FollowUp(_Record, db.Model):
    __tablename__ = "crm_followup"
    __table_args__ = (*OwnedMixin.scope_indexes("crm_followup"),)

    customer_id: Mapped[int | None] = _customer_fk()
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contact.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="call")
    content: Mapped[str] = mapped_column(Text, nullable=False)
    happened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Lead(_Record, db.Model):
    __tablename__ = "crm_lead"
    __table_args__ = (*OwnedMixin.scope_indexes("crm_lead"), Index("ix_crm_lead_status", "status"))

    name: Mapped[str] = mapped_column(String(100), nullable=False)
    company: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    mobile: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    email: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    source: Mapped[str] = mapped_column(String(30), nullable=False, default="")
    province: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="new")
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    customer_id: Mapped[int | None] = _customer_fk()  # set on conversion


class Opportunity(_Record, db.Model):
    __tablename__ = "crm_opportunity"
    __table_args__ = (*OwnedMixin.scope_indexes("crm_opportunity"), Index("ix_crm_opportunity_stage", "stage"))

    customer_id: Mapped[int | None] = _customer_fk()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False, default=Decimal("0"))
    expected_close: Mapped[date | None] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(30), nullable=False, default="initial")
    probability: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=10)
    lost_reason: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    #: Why the last contract approval was rejected (kept until the next approval starts).
    rejection_reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")

    @validates("stage")
    def _stage_sets_probability(self, _key, stage):
        from plugins.crm.settings import probability

        self.probability = probability(stage)
        return stage


class Order(_Record, db.Model):
    __tablename__ = "crm_order"
    __table_args__ = (*OwnedMixin.scope_indexes("crm_order"), Index("uq_crm_order_number", "number", unique=True))

    opportunity_id: Mapped[int | None] = mapped_column(ForeignKey("crm_opportunity.id", ondelete="SET NULL"),
                                                       index=True)
    customer_id: Mapped[int | None] = _customer_fk()
    number: Mapped[str] = mapped_column(String(40), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False, default=Decimal("0"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="draft")
    lines: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: "" (none yet), "requested" (the order was confirmed: finance has an invoice request), "issued".
    invoice_status: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    invoice_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Ticket(_Record, db.Model):
    __tablename__ = "crm_ticket"
    __table_args__ = (*OwnedMixin.scope_indexes("crm_ticket"), Index("ix_crm_ticket_status_sla", "status", "sla_due_at"))

    customer_id: Mapped[int | None] = _customer_fk()
    subject: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="inquiry")
    priority: Mapped[str] = mapped_column(String(10), nullable=False, default="normal")
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")
    resolution: Mapped[str] = mapped_column(Text, nullable=False, default="")
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    #: When the overdue ticket was escalated to the assignee's team lead (once).
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


MODELS = (Customer, Contact, FollowUp, Lead, Opportunity, Order, Ticket)
