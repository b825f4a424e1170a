"""What the admin page does: robots and SMTP settings (validated, audited, secrets never in the
trail), test messages, and the recent failures."""
from __future__ import annotations

from types import SimpleNamespace

import marshmallow
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import fields, validate
from sqlalchemy import select

from core import audit, clock
from core.errors import NotFound, ValidationError
from core.extensions import db
from core.notify import KIND_LABELS, mail, robots
from core.notify.models import KINDS, PLATFORMS, Delivery, MailSettings, Notification, Robot
from core.notify.robots import Card, SendError
from core.schemas import Schema, length, load

PLATFORM_LABELS = {"dingtalk": _l("DingTalk"), "wecom": _l("WeCom"), "feishu": _l("Feishu / Lark")}
SECURITY_LABELS = {"starttls": _l("STARTTLS"), "ssl": _l("SSL/TLS"), "none": _l("None (not encrypted)")}
SECRET = "changed"  # what the audit trail says about a secret, instead of its value


class RobotIn(Schema):
    name = fields.String(required=True, validate=length(100, 1))
    platform = fields.String(required=True, validate=validate.OneOf(PLATFORMS))
    webhook_url = fields.String(allow_none=True, validate=length(1000))
    secret = fields.String(allow_none=True, validate=length(200))
    keyword = fields.String(allow_none=True, validate=length(50))
    kinds = fields.List(fields.String(validate=validate.OneOf(KINDS)), load_default=list)
    department_id = fields.Integer(allow_none=True, strict=False, validate=validate.Range(1, 2**31 - 1))
    enabled = fields.Boolean(load_default=True)


class MailIn(Schema):
    enabled = fields.Boolean(load_default=False)
    host = fields.String(allow_none=True, validate=length(255))
    port = fields.Integer(required=True, strict=False, validate=validate.Range(1, 65535))
    security = fields.String(required=True, validate=validate.OneOf(("none", "starttls", "ssl")))
    username = fields.String(allow_none=True, validate=length(255))
    password = fields.String(allow_none=True, validate=length(255))
    sender = fields.Email(allow_none=True, validate=length(254))
    base_url = fields.Url(allow_none=True, require_tld=False, schemes={"http", "https"}, validate=length(255))

    @marshmallow.validates_schema
    def _complete(self, data, **_kwargs):
        if data.get("enabled"):
            missing = {name: [_("Required to send e-mail.")] for name in ("host", "sender") if not data.get(name)}
            if missing:
                raise marshmallow.ValidationError(missing)


def get_robot(robot_id: int) -> Robot:
    robot = db.session.get(Robot, robot_id) if 0 < robot_id < 2**31 else None
    if robot is None:
        raise NotFound(_("Not found."))
    return robot


def save_robot(actor, robot_id: int | None, data: dict) -> Robot:
    """Create or update a robot. An empty URL or secret on update keeps the stored one; the URL's
    host must be allowed (``ROBOT_HOSTS``). Audited; the URL and secret appear as "changed"."""
    from core.org.models import Department

    robot = get_robot(robot_id) if robot_id is not None else None
    clean = load(RobotIn(), data)
    errors = {}
    url = clean.get("webhook_url") or (robot.webhook_url if robot else None)
    if not url:
        errors["webhook_url"] = [_("Missing data for required field.")]
    else:
        problem = robots.check_url(clean["platform"], url)
        if problem:
            errors["webhook_url"] = [problem]
    if clean.get("department_id") and db.session.get(Department, clean["department_id"]) is None:
        errors["department_id"] = [_("Does not exist.")]
    if errors:
        raise ValidationError(_("Please correct the highlighted fields."), fields=errors)
    values = {"name": clean["name"], "platform": clean["platform"], "keyword": clean.get("keyword") or None,
              "kinds": [kind for kind in KINDS if kind in clean["kinds"]], "department_id": clean.get("department_id"),
              "enabled": clean["enabled"]}
    creating = robot is None
    if creating:
        robot = Robot(webhook_url=url, secret=clean.get("secret") or None, **values)
        db.session.add(robot)
        changes = {key: [None, value] for key, value in values.items()}
        changes["webhook_url"] = [None, SECRET]
        if robot.secret:
            changes["secret"] = [None, SECRET]
    else:
        changes = {key: [getattr(robot, key), value] for key, value in values.items() if getattr(robot, key) != value}
        if clean.get("webhook_url") and clean["webhook_url"] != robot.webhook_url:
            robot.webhook_url = clean["webhook_url"]
            changes["webhook_url"] = [SECRET, SECRET]
        if clean.get("secret") and clean["secret"] != robot.secret:
            robot.secret = clean["secret"]
            changes["secret"] = [SECRET, SECRET]
        for key, value in values.items():
            setattr(robot, key, value)
    db.session.flush()
    if changes:
        audit.record("create" if creating else "update", resource="core.robot", record_id=robot.id,
                     summary=robot.name, changes=changes, actor=actor)
    return robot


def save_mail(actor, data: dict) -> MailSettings:
    """Save the SMTP settings; an empty password keeps the stored one. Audited without the password."""
    clean = load(MailIn(), data)
    row = db.session.get(MailSettings, 1)
    creating = row is None
    if creating:
        row = MailSettings(id=1)
        db.session.add(row)
    values = {"enabled": clean["enabled"], "host": clean.get("host") or "", "port": clean["port"],
              "security": clean["security"], "username": clean.get("username") or None,
              "sender": clean.get("sender") or "", "base_url": (clean.get("base_url") or "").rstrip("/") or None}
    changes = {key: [None if creating else getattr(row, key), value] for key, value in values.items()
               if creating or getattr(row, key) != value}
    for key, value in values.items():
        setattr(row, key, value)
    if clean.get("password"):
        if clean["password"] != row.password:
            changes["password"] = [SECRET, SECRET]
        row.password = clean["password"]
    row.updated_by_id = getattr(actor, "id", None)
    db.session.flush()
    if changes:
        audit.record("update", resource="core.mail_settings", record_id=1, summary="SMTP", changes=changes, actor=actor)
    return row


def test_robot(actor, robot_id: int) -> None:
    """Post a test message through the robot now; raise ``SendError`` (and keep it on the robot) when it fails."""
    robot = get_robot(robot_id)
    base = mail.base_url()
    card = Card(title=_("Test message from Yiti OA"), text=_("If you can read this, the robot %(name)s works.", name=robot.name),
                url=mail.absolute("/", base), link_label=_("Open in Yiti OA"))
    snapshot = SimpleNamespace(id=robot.id, platform=robot.platform, webhook_url=robot.webhook_url,
                               secret=robot.secret, keyword=robot.keyword)
    db.session.commit()  # no transaction open across the network call
    try:
        robots.post(snapshot, card, int(clock.now().timestamp() * 1000))
    except SendError as exc:
        if exc.kind == "config":
            robot.last_error, robot.last_error_at = exc.message[:2000], clock.now()
        audit.record("test", resource="core.robot", record_id=robot.id, summary=robot.name,
                     changes={"result": [None, exc.message[:200]]}, actor=actor)
        db.session.commit()
        raise
    robot.last_error = robot.last_error_at = None
    audit.record("test", resource="core.robot", record_id=robot.id, summary=robot.name,
                 changes={"result": [None, "ok"]}, actor=actor)
    db.session.commit()


def test_mail(actor) -> None:
    """E-mail a test message to the admin's own address now; raise ``SendError`` when it fails."""
    if not actor.email:
        raise SendError("config", _("Your profile has no e-mail address."))
    row = mail.settings()
    sample = Notification(recipient_id=actor.id, kind="notice", title=_("Test message from Yiti OA"),
                          body=_("If you can read this, e-mail works."), url="/")
    message = mail.compose(row, actor, sample, lambda kind: KIND_LABELS.get(kind, kind), "test")
    if row in db.session:
        db.session.expunge(row)
    db.session.commit()
    try:
        mail.send(row, message)
    except SendError as exc:
        stored = db.session.get(MailSettings, 1)
        if stored is not None and exc.kind == "config":
            stored.last_error, stored.last_error_at = exc.message[:2000], clock.now()
            db.session.commit()
        raise
    stored = db.session.get(MailSettings, 1)
    if stored is not None:
        stored.last_error = stored.last_error_at = None
        db.session.commit()


def recent_failures(limit: int = 20) -> list:
    """The latest dead deliveries with their notification: what the admin should look at."""
    return db.session.execute(
        select(Delivery, Notification).join(Notification, Notification.id == Delivery.notification_id)
        .where(Delivery.status == "dead").order_by(Delivery.id.desc()).limit(limit)).all()


def retry_delivery(actor, delivery_id: int) -> Delivery:
    """Send a dead delivery again now with fresh attempts. Audited."""
    row = db.session.get(Delivery, delivery_id) if 0 < delivery_id < 2**31 else None
    if row is None or row.status != "dead":
        raise NotFound(_("Not found."))
    row.status, row.attempts, row.next_attempt_at, row.locked_until, row.claim_token = "pending", 0, clock.now(), None, None
    audit.record("retry", resource="core.notification_delivery", record_id=row.id, summary=row.channel,
                 changes={"status": ["dead", "pending"]}, actor=actor)
    return row
