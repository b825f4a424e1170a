"""Notifications: the in-app centre (the bell), e-mail and group robots, by each user's preferences.

``send(user, kind, title, body, url)`` writes a ``core_notification`` row and one
``core_notification_delivery`` row per outside channel, all in the caller's transaction (it
commits with the business change or not at all). The worker's periodic job
(``core.notify.sweep.sweep``) delivers the pending rows with retries and backoff.

New (or reopened) inbox items notify their assignee through ``todo_assigned``, called by
``core.inbox.upsert``; plugins with something to say that is not a to-do call ``send``.

Preferences: per kind, which outside channels a user wants (``email``, ``robot``: may group
robots post about my items); the in-app centre always gets everything. Robots are group robots
an admin configures for a department (and everything below it) or for everyone, with the kinds
they post.
"""
from __future__ import annotations

import uuid

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update

from core import clock
from core.errors import NotFound, ValidationError
from core.extensions import db
from core.notify.models import CHANNELS, KINDS, Delivery, MailSettings, Notification, Robot

__all__ = ["KINDS", "CHANNELS", "Notification", "send", "todo_assigned", "unread_count", "items_query",
           "get_for", "mark_read", "mark_all_read", "preferences", "set_preferences", "KIND_LABELS"]

PREFERENCE_KEY = "notify.channels"

KIND_LABELS = {
    "approval": _l("Approval"),
    "task": _l("Task"),
    "cc": _l("CC"),
    "reminder": _l("Reminder"),
    "mention": _l("Mention"),
    "notice": _l("Notice"),
}
CHANNEL_LABELS = {"email": _l("E-mail"), "robot": _l("Group robot")}

#: Until a user chooses: e-mail for what needs action, group robots for everything they are set up for.
DEFAULT_CHANNELS = {
    "approval": ["email", "robot"],
    "task": ["email", "robot"],
    "cc": ["robot"],
    "reminder": ["email", "robot"],
    "mention": ["email", "robot"],
    "notice": ["email", "robot"],
}


def _user(user):
    from core.org.models import User

    return db.session.get(User, user) if isinstance(user, int) else user


# Preferences ------------------------------------------------------------------------------------


def preferences(user) -> dict[str, list[str]]:
    """``{kind: [channels]}`` for every kind: what ``user`` saved, defaults for the rest."""
    from core.preferences import get_preference

    saved = get_preference(user, PREFERENCE_KEY, {}) or {}
    result = {}
    for kind in KINDS:
        chosen = saved.get(kind) if isinstance(saved, dict) else None
        result[kind] = [c for c in CHANNELS if c in chosen] if isinstance(chosen, list) else list(DEFAULT_CHANNELS[kind])
    return result


def set_preferences(user, choices: dict) -> dict[str, list[str]]:
    """Save ``{kind: [channels]}`` for ``user`` (kinds left out get no outside channel); audited."""
    if not isinstance(choices, dict):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"_schema": [_("Send an object.")]})
    errors = {}
    for kind, channels in choices.items():
        if kind not in KINDS:
            errors[kind] = [_("Unknown kind.")]
        elif not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
            errors[kind] = [_("Must be one of: %(choices)s.", choices=", ".join(CHANNELS))]
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    from core import audit
    from core.preferences import set_preference

    before = preferences(user)
    value = {kind: [c for c in CHANNELS if c in choices.get(kind, [])] for kind in KINDS}
    set_preference(user, PREFERENCE_KEY, value)
    changes = {kind: [before[kind], value[kind]] for kind in KINDS if before[kind] != value[kind]}
    if changes:
        audit.record("update", resource="core.notification_preferences", record_id=user.id,
                     summary=user.username, changes=changes, actor=user)
    return value


# Sending ----------------------------------------------------------------------------------------


def send(user, kind: str, title: str, body: str = "", url: str = "") -> Notification:
    """Notify ``user`` (a user or id) in the caller's transaction; return the in-app notification.

    ``url`` is a page of this site (``/approval/requests/5``); e-mails and robots make it absolute
    with the site address. E-mail goes out if the user wants it for ``kind`` and has an address;
    every enabled robot whose department scope covers the user and whose kinds include ``kind``
    posts it, unless the user turned robots off for ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"notification kind {kind!r} is not one of {', '.join(KINDS)}")
    recipient = _user(user)
    if recipient is None:
        raise ValueError("notification recipient does not exist")
    now = clock.now()
    title = " ".join((title or "").split())  # one line: it is an e-mail subject and a robot card's title
    notification = Notification(recipient_id=recipient.id, kind=kind, title=title[:300], body=body or "",
                                url=(url or "")[:500], created_at=now)
    db.session.add(notification)
    db.session.flush()
    if not recipient.active:
        return notification
    channels = preferences(recipient)[kind]
    rows = []
    if "email" in channels and recipient.email:
        mail_on = db.session.scalar(select(MailSettings.enabled).where(MailSettings.id == 1))
        if mail_on:
            rows.append(Delivery(channel="email"))
    if "robot" in channels:
        rows += [Delivery(channel="robot", robot_id=robot_id) for robot_id in robots_for(recipient, kind)]
    for row in rows:
        row.notification_id, row.status, row.attempts = notification.id, "pending", 0
        row.next_attempt_at = row.created_at = now
        row.idempotency_key = uuid.uuid4().hex
        db.session.add(row)
    db.session.flush()
    return notification


def robots_for(user, kind: str) -> list[int]:
    """Ids of the enabled robots that post ``kind`` for ``user``: for everyone, or for the user's
    department or one above it."""
    from core.org.models import Department

    scope = Robot.department_id.is_(None)
    if user.department_id is not None:
        path = db.session.scalar(select(Department.path).where(Department.id == user.department_id)) or ""
        ancestors = [int(part) for part in path.strip("/").split("/") if part.isdigit()] or [user.department_id]
        scope = scope | Robot.department_id.in_(ancestors)
    rows = db.session.execute(select(Robot.id, Robot.kinds).where(Robot.enabled.is_(True), scope)
                              .order_by(Robot.id)).all()
    return [robot_id for robot_id, kinds in rows if kind in (kinds or [])]


def todo_assigned(todo) -> Notification:
    """A new or reopened inbox item: notify its assignee (called by ``core.inbox.upsert``).

    The link goes through the inbox's own opener, which re-checks access to the subject.
    """
    return send(todo.assignee_id, todo.kind, todo.title, url=f"/inbox/{todo.id}/open")


# The centre -------------------------------------------------------------------------------------


def _user_id(user) -> int:
    return user if isinstance(user, int) else user.id


def unread_count(user) -> int:
    """Unread notifications of ``user``: one indexed ``COUNT``, for the bell."""
    return db.session.scalar(select(func.count()).select_from(Notification)
                             .where(Notification.recipient_id == _user_id(user), Notification.read_at.is_(None)))


def items_query(user, unread: bool = False):
    """``user``'s notifications, newest first (only the unread ones with ``unread``)."""
    query = select(Notification).where(Notification.recipient_id == _user_id(user))
    if unread:
        query = query.where(Notification.read_at.is_(None))
    return query.order_by(Notification.id.desc())


def get_for(user, notification_id: int) -> Notification:
    """``user``'s notification ``notification_id``; ``NotFound`` for anyone else's (or a missing one)."""
    row = db.session.scalar(select(Notification).where(Notification.id == notification_id,
                                                       Notification.recipient_id == _user_id(user))) \
        if -2**31 <= notification_id < 2**31 else None
    if row is None:
        raise NotFound(_("Not found."))
    return row


def mark_read(user, notification_id: int) -> Notification:
    """Mark one of ``user``'s notifications read (reading it twice changes nothing)."""
    row = get_for(user, notification_id)
    if row.read_at is None:
        row.read_at = clock.now()
        db.session.flush()
    return row


def mark_all_read(user) -> int:
    """Mark every unread notification of ``user`` read; return how many."""
    return db.session.execute(
        update(Notification).where(Notification.recipient_id == _user_id(user), Notification.read_at.is_(None))
        .values(read_at=clock.now()).execution_options(synchronize_session="fetch")
    ).rowcount
