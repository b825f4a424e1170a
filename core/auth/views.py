"""Login, logout, the user's own profile and password."""
from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _, ngettext
from flask_login import current_user, login_required

from core import audit
from core.auth import throttle, tokens
from core.auth.sessions import end_session, revoke_session, start_session
from core.errors import ValidationError
from core.extensions import db
from core.org import services
from core.web.forms import form_data
from core.web.views import safe_next

bp = Blueprint("auth", __name__)
log = logging.getLogger("yiti.auth")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request.args.get("next")))
    if request.method == "GET":
        return render_template("auth/login.html", username="", error=None)

    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "?"
    wait = throttle.retry_after(username, address)
    if wait:
        minutes = max(1, round(wait / 60))
        error = _("Too many failed attempts. Try again in %(n)d minutes.", n=minutes)
        return render_template("auth/login.html", username=username, error=error), 429
    user = services.authenticate(username, password) if username and password else None
    if user is None:
        throttle.record_failure(username, address)
        log.info("failed login for %r from %s", username, address)
        db.session.rollback()
        audit.record("login_failed", resource="core.user", summary=username[:100], actor_name=username[:100])
        db.session.commit()
        error = _("Wrong username or password.")
        return render_template("auth/login.html", username=username, error=error), 200
    throttle.clear_account(username, address)
    audit.record("login", resource="core.user", record_id=user.id, summary=user.username, actor=user)
    db.session.commit()
    start_session(user)
    log.info("login %s from %s", user.username, address)
    return redirect(safe_next(request.args.get("next")))


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        audit.record("logout", resource="core.user", record_id=current_user.id, summary=current_user.username)
        revoke_session()
        db.session.commit()
    end_session()
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def profile():
    errors = {}
    if request.method == "POST":
        try:
            services.update_profile(current_user, form_data(request.form, ("display_name", "email", "mobile", "language", "timezone", "version")))
            db.session.commit()
            flash(_("Your profile is saved."), "success")
            return redirect(url_for("auth.profile"))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.fields
    return _profile_page(errors=errors, form=request.form if errors else None)


EXPIRY_CHOICES = (7, 30, 90, 365)


def _profile_page(status: int = 200, **context):
    context.setdefault("errors", {})
    context.setdefault("form", None)
    context.setdefault("token_errors", {})
    context.setdefault("token_form", None)
    context.setdefault("new_token", None)
    user = current_user._get_current_object()
    return render_template(
        "auth/profile.html", tokens=tokens.list_tokens(user),
        scope_labels=tokens.SCOPE_LABELS, default_expiry=tokens.DEFAULT_EXPIRY_DAYS,
        expiry_options=[(days, ngettext("%(num)d day", "%(num)d days", days)) for days in EXPIRY_CHOICES] + [("", _("Never"))],
        **context,
    ), status


@bp.post("/account/tokens")
@login_required
def create_token():
    data = form_data(request.form, ("name", "scope", "expires_in_days"))
    # The form's "never" choice is an empty value; a form without the field gets the default.
    expires_in_days = data.get("expires_in_days") if "expires_in_days" in data else tokens.DEFAULT_EXPIRY_DAYS
    user = current_user._get_current_object()
    try:
        token, secret = tokens.create_token(user, data.get("name") or "", data.get("scope") or "read", expires_in_days)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        return _profile_page(422, token_errors=exc.fields, token_form=request.form)
    # Shown in this response only: the secret never travels in a cookie or a second request.
    return _profile_page(201, new_token={"id": token.id, "name": token.name, "token": secret})


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    token = tokens.revoke_token(current_user._get_current_object(), token_id)
    db.session.commit()
    flash(_("The token %(name)s is revoked.", name=token.name), "success")
    return redirect(url_for("auth.profile", _anchor="api-tokens"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    errors = {}
    if request.method == "POST":
        # The user object itself, not the ``current_user`` proxy: a session holding the proxy as its
        # user resolves it to itself, endlessly (the interpreter crashes).
        user = current_user._get_current_object()
        # The current password is checked here too, so guesses share the login's throttle: a
        # stolen session must not become a way to try passwords without limit.
        address = request.remote_addr or "?"
        wait = throttle.retry_after(user.username, address)
        if wait:
            message = _("Too many failed attempts. Try again in %(n)d minutes.", n=max(1, round(wait / 60)))
            return render_template("auth/password.html", errors={"current_password": [message]}), 429
        try:
            services.change_own_password(user, form_data(request.form, ("current_password", "new_password", "confirm_password")))
            db.session.commit()
            throttle.clear_account(user.username, address)
            start_session(user)  # this session continues; the others end (epoch changed)
            flash(_("Your password is changed. Other sessions have been logged out."), "success")
            return redirect(url_for("web.home"))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.fields
            if "current_password" in errors:
                throttle.record_failure(user.username, address)
                log.info("wrong current password for %r from %s", user.username, address)
    return render_template("auth/password.html", errors=errors)
