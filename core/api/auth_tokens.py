"""``/api/v1/auth/tokens``: get a personal API token with a password, list and revoke one's tokens."""
from __future__ import annotations

import logging

from flask import jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core import audit
from core.api import bp
from core.api.helpers import envelope, json_body, page_args
from core.auth import throttle, tokens
from core.extensions import csrf, db
from core.org import services
from core.schemas import load

log = logging.getLogger("yiti.auth")
token_out, tokens_out = tokens.TokenOut(), tokens.TokenOut(many=True)


def _error(status: int, code: str, message: str, **details):
    return jsonify({"error": {"code": code, "message": message, **details}}), status


@bp.post("/auth/tokens")
@csrf.exempt  # it carries the credentials itself; a cookie adds nothing a forged request could use
def create_token():
    """Exchange a username and password for a new token; failures count toward the login throttle."""
    data = load(tokens.TokenRequestIn(), json_body())
    username, address = data["username"].strip(), request.remote_addr or "?"
    wait = throttle.retry_after(username, address)
    if wait:
        message = _("Too many failed attempts. Try again in %(n)d minutes.", n=max(1, round(wait / 60)))
        response, status = _error(429, "too_many_attempts", message, retry_after=wait)
        response.headers["Retry-After"] = str(wait)
        return response, status
    user = services.authenticate(username, data["password"])
    if user is None:
        throttle.record_failure(username, address)
        log.info("failed token request for %r from %s", username, address)
        db.session.rollback()
        audit.record("login_failed", resource="core.user", summary=username[:100], actor_name=username[:100])
        db.session.commit()
        return _error(401, "invalid_credentials", _("Wrong username or password."))
    throttle.clear_account(username, address)
    token, secret = tokens.create_token(user, data["name"], data["scope"], data["expires_in_days"])
    db.session.commit()
    return jsonify({"token": secret, **token_out.dump(token)}), 201


@bp.get("/auth/tokens")
@login_required
def list_tokens():
    """The caller's own tokens, newest first; the secrets are never shown again."""
    page, per_page = page_args()
    query = (select(tokens.ApiToken).where(tokens.ApiToken.user_id == current_user.id)
             .order_by(tokens.ApiToken.created_at.desc(), tokens.ApiToken.id.desc()))
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    offset = (page - 1) * per_page
    rows = db.session.scalars(query.limit(per_page).offset(offset)).all() if offset < total else []
    return jsonify(envelope(tokens_out.dump(rows), total, page, per_page))


@bp.delete("/auth/tokens/<int:token_id>")
@login_required
def revoke_token(token_id: int):
    tokens.revoke_token(current_user._get_current_object(), token_id)
    db.session.commit()
    return "", 204
