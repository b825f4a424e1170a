"""What an administrator may write to a webhook subscription, and what is shown back."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from marshmallow import fields, post_load, validate, validates, ValidationError as MMValidationError

from core.events import event_types
from core.org.schemas import Text
from core.schemas import Schema, length

ALL_EVENTS = "*"


class WebhookIn(Schema):
    name = Text(required=True, validate=length(100, 1))
    url = Text(required=True, validate=length(2000, 1))
    events = fields.List(Text(validate=length(100, 1)), required=True,
                         validate=validate.Length(min=1, error=_l("Choose at least one event.")))
    active = fields.Boolean(load_default=True)

    @validates("url")
    def _url(self, value: str, **_kwargs):
        check_url(value)

    @validates("events")
    def _events(self, value: list, **_kwargs):
        known = set(event_types())
        unknown = sorted({name for name in value if name != ALL_EVENTS and name not in known})
        if unknown:
            raise MMValidationError(str(_l("Unknown event: %(names)s", names=", ".join(unknown))))

    @post_load
    def _clean(self, data, **_kwargs):
        if "name" in data:
            data["name"] = data["name"].strip()
        if "url" in data:
            data["url"] = data["url"].strip()
        if "events" in data:
            data["events"] = [ALL_EVENTS] if ALL_EVENTS in data["events"] else sorted(set(data["events"]))
        return data


def check_url(value: str) -> None:
    """An absolute ``http``/``https`` URL with a host and no credentials; anything else is refused.

    Private and loopback addresses are allowed on purpose: on-premise installations integrate
    with systems on their own network (see docs/webhooks.md).
    """
    text = value.strip()
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise MMValidationError(str(_l("Enter a URL without spaces.")))
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port that is not a number in range
    except ValueError:
        raise MMValidationError(str(_l("Enter a valid http:// or https:// URL."))) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MMValidationError(str(_l("Enter a valid http:// or https:// URL.")))
    if parts.username is not None or parts.password is not None:
        raise MMValidationError(str(_l("Put no user name or password in the URL; the signature authenticates us.")))
    del port


class WebhookOut(Schema):
    id = fields.Integer()
    name = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    created_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class DeliveryOut(Schema):
    id = fields.Integer()
    delivery_id = fields.String()
    webhook_id = fields.Integer()
    message_id = fields.Integer(allow_none=True)
    event = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    response_code = fields.Integer(allow_none=True)
    response_body = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    last_attempt_at = fields.DateTime(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
