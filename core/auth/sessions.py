"""Who is logged in: flask-login glue, idle and absolute session time-outs.

The session is Flask's signed cookie, so any app server can serve any request. It carries the
user id *and* the user's ``session_epoch``; changing the password bumps the epoch, which ends
every other session of that user at their next request. Each login also gets a random session id;
logging out records it in ``core_revoked_session``, so a copy of the cookie taken before the
logout is refused too (checked in the same query that loads the user).

API requests may instead carry ``Authorization: Bearer <token>`` (``core.auth.tokens``). Such a
request is the token's alone: a session cookie it also carries is ignored, it needs no CSRF token
(a cross-site page cannot set that header), a bad token is a 401 and a ``read`` token cannot write.
Every other request that writes still needs the session's CSRF token.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import lru_cache

from flask import Flask, current_app, flash, g, jsonify, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import bindparam, delete, exists, select
from sqlalchemy.orm import joinedload

from core import clock
from core.auth import tokens
from core.auth.revocation import RevokedSession
from core.extensions import csrf, db, login_manager
from core.org.models import User
from core.permissions import cache as permission_cache

SEEN_RESOLUTION = 60  # seconds: refresh the idle stamp at most once a minute, not on every request


@lru_cache(maxsize=1)
def _user_query():
    """One round trip for the session's user: the user with its roles (``is_admin`` needs them), the
    permission stamp, and whether the session was revoked (built once, run with its parameters)."""
    revoked = exists().where(RevokedSession.sid == bindparam("sid"))
    return (select(User, permission_cache.stamp_column(), revoked).options(joinedload(User.roles))
            .where(User.id == bindparam("user_id")))


@login_manager.user_loader
def _load_user(identity: str) -> User | None:
    if bearer_token() is not None:
        return None  # the token decides, not the cookie (flask-login then asks the request loader)
    try:
        user_id, epoch = (int(part) for part in identity.split(":"))
    except ValueError:
        return None
    rows = db.session.execute(_user_query(), {"user_id": user_id, "sid": session.get("sid") or ""}).unique().all()
    row = rows[0] if rows else None
    if row is None or row[2]:
        return None
    user = row[0]
    permission_cache.remember_stamp(row[1])  # read with the user: no extra round trip
    if user is None or not user.active or user.session_epoch != epoch:
        return None
    return user


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer ...`` header on an API request; None otherwise."""
    if not request.path.startswith("/api/"):
        return None
    scheme, _sep, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


@login_manager.request_loader
def _load_user_from_token(_request) -> User | None:
    raw = bearer_token()
    if raw is None:
        return None
    token = tokens.active_token(raw)
    if token is None:
        return None
    user = token.user
    if db.session.is_modified(token):
        db.session.commit()  # last_used_at, on its own: the request may still fail or roll back
    g.api_token = token
    return user


def _token_error(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.headers["WWW-Authenticate"] = f'Bearer error="{code}"'
    return response, status


def _authenticate_request():
    """Bearer API requests: check the token and its scope. Every other request: check CSRF.

    This replaces flask-wtf's default check (``WTF_CSRF_CHECK_DEFAULT`` is off), so that the
    exemption is exactly "authenticated by a token"; ``@csrf.exempt`` marks still apply.
    """
    raw = bearer_token()
    if raw is None:
        if current_app.config["WTF_CSRF_ENABLED"]:
            csrf.protect(apply_exemptions=True)
        return None
    if not current_user.is_authenticated or g.get("api_token") is None:
        return _token_error(401, "invalid_token", _("The API token is invalid, expired or revoked."))
    if request.method not in tokens.SAFE_METHODS and not g.api_token.can_write:
        return _token_error(403, "insufficient_scope", _("This token may only read. Use a read-write token to make changes."))
    return None


@login_manager.unauthorized_handler
def _unauthorized():
    if request.path.startswith("/api/"):
        return jsonify({"error": {"code": "unauthorized", "message": _("Log in first.")}}), 401
    return redirect(url_for("auth.login", next=_here()))


def _here() -> str:
    """The requested path with its query string: where to come back to after logging in."""
    return request.full_path if request.query_string else request.path


def start_session(user: User) -> None:
    """Log ``user`` in on a fresh session (keeping only the language choice)."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    login_user(user)
    stamp = int(clock.now().timestamp())
    session["login_at"] = stamp
    session["seen_at"] = stamp
    session["sid"] = secrets.token_hex(16)
    session.permanent = True


def revoke_session() -> None:
    """Refuse this session's cookie from now on, on every server (call before ``end_session``).

    Also forgets revocations whose sessions would have expired by now: no job needed.
    """
    sid = session.get("sid")
    if not sid:
        return
    now = clock.now()
    lifetime = timedelta(hours=current_app.config["YITI"]["SESSION_ABSOLUTE_HOURS"])
    login_at = datetime.fromtimestamp(session.get("login_at", 0), tz=now.tzinfo)
    db.session.execute(delete(RevokedSession).where(RevokedSession.expires_at < now))
    db.session.merge(RevokedSession(sid=sid, expires_at=max(login_at + lifetime, now)))


def end_session() -> None:
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang


def _enforce_timeouts():
    if request.endpoint == "static" or not current_user.is_authenticated or g.get("api_token") is not None:
        return None
    settings = current_app.config["YITI"]
    now = int(clock.now().timestamp())
    login_at = session.get("login_at", 0)
    seen_at = session.get("seen_at", 0)
    idle = now - seen_at > settings["SESSION_IDLE_MINUTES"] * 60
    too_old = now - login_at > settings["SESSION_ABSOLUTE_HOURS"] * 3600
    if idle or too_old:
        end_session()
        message = _("Your session has expired. Please log in again.")
        if request.path.startswith("/api/"):
            return jsonify({"error": {"code": "session_expired", "message": message}}), 401
        flash(message, "warning")
        return redirect(url_for("auth.login", next=_here()))
    if now - seen_at >= SEEN_RESOLUTION:
        session["seen_at"] = now
    return None


def init_app(app: Flask) -> None:
    login_manager.session_protection = None  # the epoch and time-outs do this job, without IP pinning
    app.permanent_session_lifetime = timedelta(hours=app.config["YITI"]["SESSION_ABSOLUTE_HOURS"])
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # _authenticate_request checks CSRF instead
    app.before_request(_authenticate_request)
    app.before_request(_enforce_timeouts)
