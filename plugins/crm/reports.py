"""CRM reports: sales funnel, won-amount leaderboard, customer mix, service tickets.

Every figure is an aggregate computed by the database over the reader's scoped query
(``scope_filter``): a rep counts only their own records, a manager their department tree, the
general manager everything. Nothing is loaded row by row. Money is returned as ``Decimal``
strings with two places; months are ``YYYY-MM`` in the reader's time zone.

Filters (all optional): ``from`` / ``to`` (dates, inclusive, in the reader's time zone) and
``department_id`` (that department and the ones below it, within the reader's scope).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import marshmallow
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import case, func, select

from core import clock
from core.errors import ValidationError
from core.extensions import db
from core.permissions import require, scope_filter
from core.schemas import Schema, load
from plugins.crm import settings
from plugins.crm.models import Customer, Opportunity, Ticket
from plugins.crm.resources import CUSTOMER, OPPORTUNITY, TICKET

CENT = Decimal("0.01")
#: Stages that end an opportunity; the funnel runs through the others up to ``won``.
WON, LOST = "won", "lost"
LEADERBOARD_REPS = 20
DONE_TICKETS = ("resolved", "closed")


class FilterSchema(Schema):
    start = marshmallow.fields.Date(data_key="from", load_default=None, allow_none=True)
    end = marshmallow.fields.Date(data_key="to", load_default=None, allow_none=True)
    department_id = marshmallow.fields.Integer(load_default=None, allow_none=True, strict=False)

    @marshmallow.validates_schema
    def _ordered(self, data, **kwargs):
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise marshmallow.ValidationError({"to": [_("The end date must not be before the start date.")]})


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    department_id: int | None = None


def parse_filters(args) -> Filters:
    """``Filters`` from a query string (empty values are no filter); bad input is a field error."""
    data = {k: v for k, v in args.items() if k in ("from", "to", "department_id") and v not in ("", None)}
    clean = load(FilterSchema(), data)
    department_id = clean["department_id"]
    if department_id is not None and not (1 <= department_id <= 2**31 - 1):
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"department_id": [_("Not a valid integer.")]})
    return Filters(**clean)


def _zone(user) -> ZoneInfo:
    return ZoneInfo(getattr(user, "timezone", None) or current_app.config["YITI"]["DEFAULT_TIMEZONE"])


def _bounds(user, filters: Filters) -> tuple[datetime | None, datetime | None]:
    """The date range as UTC instants: ``[start 00:00, day after end 00:00)`` in the reader's zone."""
    zone = _zone(user)
    start = datetime.combine(filters.start, time.min, zone) if filters.start else None
    end = datetime.combine(filters.end + timedelta(days=1), time.min, zone) if filters.end else None
    return start, end


def _departments(department_id: int) -> list[int]:
    """The department and every one below it (one query); unknown: no departments, no rows."""
    from core.org.models import Department

    path = select(Department.path).where(Department.id == department_id).scalar_subquery()
    return list(db.session.scalars(select(Department.id).where(Department.path.like(path + "%"))))


def _where(resource, user, filters: Filters, instant=None, day=None) -> list:
    """The scope, the department filter, and the date range on ``instant`` (a UTC column) or ``day`` (a date)."""
    require(user, resource.permission("read"))
    conditions = [scope_filter(resource, "read", user)]
    if filters.department_id is not None:
        conditions.append(resource.model.department_id.in_(_departments(filters.department_id)))
    if instant is not None:
        start, end = _bounds(user, filters)
        if start is not None:
            conditions.append(instant >= start)
        if end is not None:
            conditions.append(instant < end)
    if day is not None:
        if filters.start:
            conditions.append(day >= filters.start)
        if filters.end:
            conditions.append(day <= filters.end)
    return conditions


def _month(column, user, is_date: bool = False):
    """``YYYY-MM`` of a column in SQL: a date as it is, an instant in the reader's time zone."""
    dialect = db.engine.dialect.name
    if dialect == "postgresql":
        value = column if is_date else func.timezone(str(_zone(user)), column)
        return func.to_char(value, "YYYY-MM")
    if is_date:
        return func.strftime("%Y-%m", column)
    # SQLite stores UTC text and knows no time zones: shift by the zone's current offset.
    offset = int(clock.now().astimezone(_zone(user)).utcoffset().total_seconds() // 60)
    return func.strftime("%Y-%m", func.datetime(column, f"{offset:+d} minutes"))


def money(value) -> str:
    """A sum as a Decimal string with two places (``None``, an empty sum, is ``"0.00"``)."""
    if value is None:
        return "0.00"
    return str(Decimal(str(value)).quantize(CENT))


def _percent(part: int, whole: int) -> str | None:
    return str((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))) if whole else None


# Reports -----------------------------------------------------------------------------------------


def funnel(user, filters: Filters) -> dict:
    """Opportunities created in the range, by stage: how many are at each stage, how many reached it
    (are at it or further on, won included), and the conversion from the previous stage."""
    rows = db.session.execute(
        select(Opportunity.stage, func.count(), func.sum(Opportunity.amount))
        .where(*_where(OPPORTUNITY, user, filters, instant=Opportunity.created_at))
        .group_by(Opportunity.stage)).all()
    by_stage = {stage: (count, amount) for stage, count, amount in rows}
    open_stages = [(key, label) for key, label, _p in settings.stages() if key != LOST]
    stages, reached_before = [], None
    for i, (key, label) in enumerate(open_stages):
        count, amount = by_stage.get(key, (0, None))
        reached = sum(by_stage.get(k, (0, None))[0] for k, _l in open_stages[i:])
        stages.append({"stage": key, "label": str(label), "count": count, "amount": money(amount),
                       "reached": reached,
                       "conversion": _percent(reached, reached_before) if reached_before is not None else None})
        reached_before = reached
    lost_count, lost_amount = by_stage.get(LOST, (0, None))
    total = sum(count for count, _a in by_stage.values())
    won = by_stage.get(WON, (0, None))[0]
    return {"stages": stages, "lost": {"count": lost_count, "amount": money(lost_amount)}, "total": total,
            "win_rate": _percent(won, won + lost_count)}


def leaderboard(user, filters: Filters) -> dict:
    """Won amount per rep and month (the close month: ``expected_close`` of a won opportunity, else
    the day it was last changed), reps ordered by their total in the range, the top 20."""
    close_day = func.coalesce(Opportunity.expected_close, func.date(Opportunity.updated_at))
    month = _month(close_day, user, is_date=True).label("month")
    rows = db.session.execute(
        select(Opportunity.owner_id, month, func.count(), func.sum(Opportunity.amount))
        .where(Opportunity.stage == WON, *_where(OPPORTUNITY, user, filters, day=close_day))
        .group_by(Opportunity.owner_id, month)).all()
    reps: dict = {}
    months = set()
    for owner_id, month_key, count, amount in rows:
        rep = reps.setdefault(owner_id, {"user_id": owner_id, "name": "", "total": Decimal(0), "count": 0,
                                         "by_month": {}})
        amount = Decimal(money(amount))
        rep["by_month"][month_key] = money(amount)
        rep["total"] += amount
        rep["count"] += count
        months.add(month_key)
    names = _user_names(reps)
    ranked = sorted(reps.values(), key=lambda r: (-r["total"], names.get(r["user_id"], "")))[:LEADERBOARD_REPS]
    for rep in ranked:
        rep["name"] = names.get(rep["user_id"], _("(no owner)"))
        rep["total"] = money(rep["total"])
    return {"months": sorted(months), "reps": ranked}


def _user_names(ids) -> dict:
    from core.org.services import display_names

    return display_names(ids)


def customers(user, filters: Filters) -> dict:
    """Customers created in the range (merged ones left out) by region (province), level and industry."""
    where = [Customer.status != "merged", *_where(CUSTOMER, user, filters, instant=Customer.created_at)]
    result = {}
    for key, column in (("region", Customer.province), ("level", Customer.level), ("industry", Customer.industry)):
        rows = db.session.execute(select(column, func.count()).where(*where).group_by(column)
                                  .order_by(func.count().desc(), column)).all()
        result[key] = [{"name": name or "", "count": count} for name, count in rows]
    result["total"] = sum(row["count"] for row in result["level"])
    return result


def tickets(user, filters: Filters) -> dict:
    """Tickets created in the range: volume per month and per status, SLA (met, breached, pending)
    and satisfaction (average and the count of each score).

    A ticket's resolution time is taken as its last change (there is no resolved-at column): a
    resolved or closed ticket met its SLA when it was last changed by ``sla_due_at``.
    """
    where = _where(TICKET, user, filters, instant=Ticket.created_at)
    month = _month(Ticket.created_at, user).label("month")
    volume = db.session.execute(select(month, func.count()).where(*where).group_by(month).order_by(month)).all()
    statuses = db.session.execute(select(Ticket.status, func.count()).where(*where).group_by(Ticket.status)).all()
    now = clock.now()
    done = Ticket.status.in_(DONE_TICKETS)
    with_sla = Ticket.sla_due_at.is_not(None)

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    sla = db.session.execute(select(
        count_if(with_sla & done & (Ticket.updated_at <= Ticket.sla_due_at)),
        count_if(with_sla & ((done & (Ticket.updated_at > Ticket.sla_due_at)) | (~done & (Ticket.sla_due_at < now)))),
        count_if(with_sla & ~done & (Ticket.sla_due_at >= now)),
    ).where(*where)).one()
    scores = dict(db.session.execute(select(Ticket.satisfaction, func.count()).where(
        *where, Ticket.satisfaction.is_not(None)).group_by(Ticket.satisfaction)).all())
    rated = sum(scores.values())
    average = (Decimal(sum(s * n for s, n in scores.items())) / rated).quantize(CENT) if rated else None
    met, breached, pending = (int(v) for v in sla)
    return {
        "volume": [{"month": m, "count": n} for m, n in volume],
        "status": {status: n for status, n in statuses},
        "total": sum(n for _s, n in statuses),
        "sla": {"met": met, "breached": breached, "pending": pending, "met_rate": _percent(met, met + breached)},
        "satisfaction": {"average": str(average) if average is not None else None, "rated": rated,
                         "scores": {str(score): scores.get(score, 0) for score in range(1, 6)}},
    }


#: name → (report, the resource whose read permission it needs)
REPORTS = {
    "funnel": (funnel, OPPORTUNITY),
    "leaderboard": (leaderboard, OPPORTUNITY),
    "customers": (customers, CUSTOMER),
    "tickets": (tickets, TICKET),
}


def run(name: str, user, filters: Filters) -> dict:
    """The report ``name`` for ``user``; an unknown name is ``NotFound``, no permission ``Forbidden``."""
    from core.errors import NotFound

    if name not in REPORTS:
        raise NotFound(_("Not found."))
    report, _resource = REPORTS[name]
    return report(user, filters)

