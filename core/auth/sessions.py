"""Who is logged in: flask-login glue, idle and absolute session time-outs.

The session is Flask's signed cookie, so any app server can serve any request. It carries the
user id *and* the user's ``session_epoch``; changing the password bumps the epoch, which ends
every other session of that user at their next request.
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app, flash, jsonify, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from core import clock
from core.extensions import db, login_manager
from core.org.models import User

SEEN_RESOLUTION = 60  # seconds: refresh the idle stamp at most once a minute, not on every request


@login_manager.user_loader
def _load_user(identity: str) -> User | None:
    try:
        user_id, epoch = (int(part) for part in identity.split(":"))
    except ValueError:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.session_epoch != epoch:
        return None
    return user


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
    session.permanent = True


def end_session() -> None:
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang


def _enforce_timeouts():
    if request.endpoint == "static" or not current_user.is_authenticated:
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
    app.before_request(_enforce_timeouts)
