"""The public lead form's defences, without a login: a signed form token, a honeypot, a minimum
fill time and a per-address rate limit; plus its own field validation.

The token is signed with the app's secret and carries the time the form was served (read from
``core.clock``, so tests move it) and a random nonce that is also set as a same-site cookie: a
post from another site has neither a fresh token nor the cookie (double submit), a bot that
posts at once is too fast, and one that fills every field fills the honeypot.
"""
from __future__ import annotations

import re
import secrets

from flask import current_app
from flask_babel import gettext as _, lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeSerializer
from limits import parse
from marshmallow import Schema, ValidationError as SchemaError, fields, validates_schema

from core import clock
from core.extensions import limiter
from core.schemas import length
from plugins.crm import settings

SALT = "crm.lead-form"
COOKIE = "crm_lead_form"
HONEYPOT = "website"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def issue() -> tuple[str, str]:
    """A new ``(token, nonce)`` for a form being served; the nonce goes into the cookie."""
    nonce = secrets.token_urlsafe(16)
    return _serializer().dumps({"at": clock.now().timestamp(), "n": nonce}), nonce


def check(token: str, cookie_nonce: str | None) -> str | None:
    """What is wrong with a submitted form's token (a message), or ``None`` when it is fine."""
    try:
        data = _serializer().loads(token or "")
        issued, nonce = float(data["at"]), str(data["n"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return _("This form has expired. Please fill it in again.")
    if not cookie_nonce or not secrets.compare_digest(nonce, cookie_nonce):
        return _("This form has expired. Please fill it in again.")
    elapsed = clock.now().timestamp() - issued
    if elapsed < float(settings.get("LEAD_FORM_MIN_SECONDS")):
        return _("That was too fast. Please check your details and send the form again.")
    if elapsed > float(settings.get("LEAD_FORM_MAX_HOURS")) * 3600:
        return _("This form has expired. Please fill it in again.")
    return None


def allowed(address: str) -> bool:
    """Count a submission from ``address``; ``False`` once it is over ``LEAD_FORM_RATE``."""
    return limiter.limiter.hit(parse(settings.get("LEAD_FORM_RATE")), "crm-lead-form", address or "-")


MOBILE = re.compile(r"^1[3-9]\d{9}$")


class WebLeadSchema(Schema):
    """What a visitor may send: name, company, mobile, e-mail, province, message (one contact at least)."""

    name = fields.String(required=True, validate=length(100, 1), metadata={"label": _l("Your name")})
    company = fields.String(load_default="", validate=length(200), metadata={"label": _l("Company")})
    mobile = fields.String(load_default="", validate=length(20), metadata={"label": _l("Mobile")})
    email = fields.String(load_default="", validate=length(254), metadata={"label": _l("E-mail")})
    province = fields.String(load_default="", validate=length(20), metadata={"label": _l("Province")})

    @validates_schema(skip_on_field_errors=False)
    def _contact(self, data, **kwargs):
        errors = {}
        mobile, email = data.get("mobile", "").strip(), data.get("email", "").strip()
        if mobile and not MOBILE.match(mobile):
            errors["mobile"] = [_("Enter an 11-digit mainland mobile number.")]
        if email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
            errors["email"] = [_("Enter a valid e-mail address.")]
        if not mobile and not email:
            errors["mobile"] = [_("Leave a mobile number or an e-mail address.")]
        if errors:
            raise SchemaError(errors)
