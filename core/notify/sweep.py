"""The worker job that delivers pending notifications: e-mails one by one, robots by batch.

Safe in several processes at once, like the outbox sweeper: an e-mail row is claimed with a
conditional ``UPDATE`` (lease + token); a robot is claimed the same way, so only one sweeper
posts through a robot at a time (the lease is renewed before every post, and a sweeper that lost
it stops), and its rate limit (``ROBOT_RATE_PER_MINUTE`` messages in any
60 seconds, DingTalk's and WeCom's limit) is counted from the ``sent`` rows in the database.
When more are due than the minute allows, the last message of the budget is a digest of the
rest ("还有 N 条通知：…") instead of dropping or delaying them.

Outcomes: sent; a *rate limit* reply is retried later; a *configuration* error (bad signature,
keyword, key, login) is never retried — the row is dead and the robot (or SMTP settings) shows
the error to the admin; anything else is retried with ``core.jobs.backoff`` until
``OUTBOX_MAX_ATTEMPTS``. Network calls happen outside any transaction.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, or_, select, update

from core import clock
from core.extensions import db
from core.jobs import backoff
from core.notify import KIND_LABELS, mail, robots
from core.notify.models import Delivery, MailSettings, Notification, Robot
from core.notify.robots import Card, SendError

log = logging.getLogger(__name__)

#: How many due rows of one robot one sweep looks at (the rest wait for the next sweep).
ROBOT_BATCH = 200
DIGEST_TITLES = 10


def sweep() -> dict:
    """Deliver what is due; return counts ``{"sent", "folded", "retried", "dead", "skipped"}``.

    Commits as it goes: call it with nothing pending in the session (the worker, a test).
    """
    counts = dict.fromkeys(("sent", "folded", "retried", "dead", "skipped"), 0)
    db.session.commit()
    _sweep_email(counts)
    _sweep_robots(counts)
    return counts


def _settings() -> dict:
    return current_app.config["YITI"]


def _lease(now):
    return now + timedelta(seconds=_settings()["OUTBOX_LEASE_SECONDS"])


# E-mail -----------------------------------------------------------------------------------------


def _sweep_email(counts: dict) -> None:
    now = clock.now()
    free = or_(Delivery.locked_until.is_(None), Delivery.locked_until < now)
    due = (Delivery.channel == "email", Delivery.status == "pending", Delivery.next_attempt_at <= now, free)
    ids = db.session.scalars(select(Delivery.id).where(*due).order_by(Delivery.next_attempt_at, Delivery.id)
                             .limit(_settings()["OUTBOX_BATCH"])).all()
    db.session.commit()
    for delivery_id in ids:
        token = uuid.uuid4().hex
        claimed = db.session.execute(
            update(Delivery).where(Delivery.id == delivery_id, *due)
            .values(locked_until=_lease(now), claim_token=token, attempts=Delivery.attempts + 1)
            .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        if claimed != 1:
            counts["skipped"] += 1
            continue
        try:
            error = _send_email(delivery_id)
        except Exception as exc:  # one broken row must not stop every other delivery: retried, then dead
            db.session.rollback()
            log.exception("notification e-mail %s could not be prepared", delivery_id)
            error = SendError("other", _("Unexpected error: %(reason)s", reason=exc.__class__.__name__))
        counts[_finish([delivery_id], error, token=token)] += 1


def _send_email(delivery_id: int) -> SendError | None:
    from core.org.models import User

    delivery = db.session.get(Delivery, delivery_id, populate_existing=True)
    notification = db.session.get(Notification, delivery.notification_id)
    user = db.session.get(User, notification.recipient_id)
    row = mail.settings()
    if not user.email or not user.active:
        db.session.commit()
        return SendError("config", _("The recipient has no e-mail address."))
    message = mail.compose(row, user, notification, lambda kind: KIND_LABELS.get(kind, kind), delivery.idempotency_key)
    if row in db.session:
        db.session.expunge(row)  # keep the loaded settings: no transaction stays open across the network call
    db.session.commit()
    try:
        mail.send(row, message)
    except SendError as exc:
        if exc.kind == "config":
            db.session.execute(update(MailSettings).where(MailSettings.id == 1)
                               .values(last_error=exc.message[:2000], last_error_at=clock.now()))
            db.session.commit()
        return exc
    return None


# Robots -----------------------------------------------------------------------------------------


def _sweep_robots(counts: dict) -> None:
    robot_ids = db.session.scalars(
        select(Delivery.robot_id).where(Delivery.channel == "robot", Delivery.status == "pending",
                                        Delivery.next_attempt_at <= clock.now()).distinct()).all()
    db.session.commit()
    for robot_id in sorted(robot_ids):
        token, now = uuid.uuid4().hex, clock.now()  # now: the robots before may have taken a while
        claimed = db.session.execute(
            update(Robot).where(Robot.id == robot_id, or_(Robot.locked_until.is_(None), Robot.locked_until < now))
            .values(locked_until=_lease(now), claim_token=token).execution_options(synchronize_session=False)
        ).rowcount
        db.session.commit()
        if claimed != 1:
            counts["skipped"] += 1
            continue
        try:
            _sweep_robot(robot_id, token, counts)
        finally:
            db.session.rollback()
            db.session.execute(update(Robot).where(Robot.id == robot_id, Robot.claim_token == token)
                               .values(locked_until=None, claim_token=None).execution_options(synchronize_session=False))
            db.session.commit()


def sent_in_last_minute(robot_id: int, now) -> int:
    """Messages ``robot_id`` posted in the 60 seconds before ``now`` (a digest counts once)."""
    return db.session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.robot_id == robot_id, Delivery.status == "sent", Delivery.sent_at > now - timedelta(seconds=60)))


def _renew(robot_id: int, token: str, ids: list[int]) -> bool:
    """Before a post: renew our lease on the robot and count the attempt of ``ids``, or (another
    sweeper took the robot over, or the rows) change nothing and say so."""
    renewed = db.session.execute(
        update(Robot).where(Robot.id == robot_id, Robot.claim_token == token)
        .values(locked_until=_lease(clock.now())).execution_options(synchronize_session=False)).rowcount
    counted = db.session.execute(
        update(Delivery).where(Delivery.id.in_(ids), Delivery.status == "pending")
        .values(attempts=Delivery.attempts + 1).execution_options(synchronize_session=False)).rowcount
    if renewed != 1 or counted != len(ids):
        db.session.rollback()
        log.warning("robot %s: lease lost, leaving its deliveries to the sweeper that holds it", robot_id)
        return False
    db.session.commit()
    return True


def _sweep_robot(robot_id: int, token: str, counts: dict) -> None:
    now = clock.now()
    robot = db.session.get(Robot, robot_id, populate_existing=True)
    due = db.session.execute(
        select(Delivery.id, Notification.kind, Notification.title, Notification.body, Notification.url,
               Notification.recipient_id)
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(Delivery.robot_id == robot_id, Delivery.channel == "robot", Delivery.status == "pending",
               Delivery.next_attempt_at <= now)
        .order_by(Delivery.id).limit(ROBOT_BATCH)).all()
    if not robot.enabled:
        counts["dead"] += len(due)
        _mark([row.id for row in due], status="dead", last_error=_("The robot is disabled."))
        db.session.commit()
        return
    budget = _settings()["ROBOT_RATE_PER_MINUTE"] - sent_in_last_minute(robot_id, now)
    names = _recipient_names({row.recipient_id for row in due})
    base = mail.base_url()
    # Robot state is read now: the rest of the work happens without an open transaction.
    db.session.expunge(robot)
    db.session.commit()
    if budget <= 0 or not due:
        return
    if len(due) <= budget:
        batches = [[row] for row in due]
    else:
        batches = [[row] for row in due[:budget - 1]] + [due[budget - 1:]]
    cards = [_card(batch[0], names, base) if len(batch) == 1 else _digest(batch, names, base) for batch in batches]
    for index, (batch, card) in enumerate(zip(batches, cards)):
        ids = [row.id for row in batch]
        if not _renew(robot_id, token, ids):
            counts["skipped"] += len(ids)
            return
        try:
            robots.post(robot, card, int(clock.now().timestamp() * 1000))
            error = None
        except SendError as exc:
            error = exc
        if error is None:
            if len(ids) > 1:
                _mark(ids[1:], status="folded", sent_at=clock.now(), last_error=None, locked_until=None)
                counts["folded"] += len(ids) - 1
            if robot.last_error:  # it works again: the admin page stops showing the old error
                db.session.execute(update(Robot).where(Robot.id == robot.id).values(last_error=None, last_error_at=None))
                robot.last_error = None
            counts[_finish(ids[:1], None)] += 1  # one message (a digest counts once), committed with the folded rows
            continue
        log.warning("robot %s (%s) could not post: %s", robot.id, robot.platform, error.kind)
        rest = [row.id for later in batches[index:] for row in later]
        if error.kind == "config":
            db.session.execute(update(Robot).where(Robot.id == robot.id)
                               .values(last_error=error.message[:2000], last_error_at=clock.now()))
            counts[_finish(rest, error)] += len(rest)  # every message would fail the same way
        else:
            counts[_finish(ids, error)] += len(ids)  # the rest wait for the next sweep, attempts unspent
        db.session.commit()
        return  # a failure for one message is the robot's state for the next ones: stop for now


def _recipient_names(ids: set) -> dict:
    from core.org.services import display_names

    return display_names(ids)


def _group_language():
    return _settings()["DEFAULT_LANGUAGE"]


def _card(notification, names: dict, base: str) -> Card:
    """A robot message for one notification, in the installation's language (a group has no single reader)."""
    with force_locale(_group_language()):
        kind = str(KIND_LABELS.get(notification.kind, notification.kind))
        text = _("For %(name)s", name=names.get(notification.recipient_id, ""))
        if notification.body:
            text += "\n\n" + notification.body
        return Card(title=f"{kind}: {notification.title}", text=text,
                    url=mail.absolute(notification.url, base), link_label=_("Open in Yiti OA"))


def _digest(batch: list, names: dict, base: str) -> Card:
    """One message standing for several: "还有 N 条通知：" and their titles."""
    with force_locale(_group_language()):
        lines = [f"- {KIND_LABELS.get(n.kind, n.kind)}: {n.title} ({names.get(n.recipient_id, '')})"
                 for n in batch[:DIGEST_TITLES]]
        if len(batch) > DIGEST_TITLES:
            lines.append("- …")
        title = _("%(count)s more notifications", count=len(batch))
        text = _("%(count)s more notifications:", count=len(batch)) + "\n\n" + "\n".join(lines)
        return Card(title=title, text=text, url=mail.absolute("/notifications", base),
                    link_label=_("Open in Yiti OA"))


# Bookkeeping ------------------------------------------------------------------------------------


def _mark(ids: list[int], **values) -> None:
    if ids:
        db.session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(**values)
                           .execution_options(synchronize_session=False))


def _finish(ids: list[int], error: SendError | None, token: str | None = None) -> str:
    """Record the outcome for ``ids`` (their attempt is already counted); return its name."""
    now = clock.now()
    if error is None:
        values, outcome = {"status": "sent", "sent_at": now, "last_error": None}, "sent"
    else:
        attempts = db.session.scalar(select(func.max(Delivery.attempts)).where(Delivery.id.in_(ids))) or 1
        if error.kind == "config" or attempts >= _settings()["OUTBOX_MAX_ATTEMPTS"]:
            values, outcome = {"status": "dead", "last_error": error.message[:2000]}, "dead"
        else:
            wait = backoff(attempts)
            if error.kind == "rate":
                wait = max(wait, timedelta(seconds=60))  # the platform's window is a minute (or more)
            values, outcome = {"next_attempt_at": now + wait, "last_error": error.message[:2000]}, "retried"
    query = update(Delivery).where(Delivery.id.in_(ids))
    if token is not None:
        query = query.where(Delivery.claim_token == token)
    done = db.session.execute(query.values(locked_until=None, claim_token=None, **values)
                              .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if token is not None and done != 1:
        log.warning("notification delivery %s: lease lost before it was marked %s", ids[0], outcome)
        return "skipped"
    return outcome
