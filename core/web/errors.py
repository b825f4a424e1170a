"""One place that turns errors into responses: JSON envelopes under /api/, pages elsewhere."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from core.errors import DomainError
from core.extensions import db

log = logging.getLogger(__name__)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _domain_error(error: DomainError):
    db.session.rollback()
    if wants_json():
        return jsonify(error.to_dict()), error.status
    return render_template("errors/error.html", status=error.status, message=error.message), error.status


def _http_error(error: HTTPException):
    messages = {
        400: _("The request could not be understood."),
        403: _("You do not have access to this page."),
        404: _("The page you asked for does not exist."),
        405: _("This action is not allowed here."),
        413: _("The upload is too large."),
        429: _("Too many requests. Please wait a moment and try again."),
    }
    message = messages.get(error.code, error.description)
    if wants_json():
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify({"error": {"code": code, "message": message}}), error.code
    return render_template("errors/error.html", status=error.code, message=message), error.code


def _csrf_error(error: CSRFError):
    message = _("The form has expired or was sent from another site. Reload the page and try again.")
    if wants_json():
        return jsonify({"error": {"code": "csrf", "message": message}}), 400
    return render_template("errors/error.html", status=400, message=message), 400


def _unexpected(error: Exception):
    db.session.rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    message = _("Something went wrong on our side. The error has been logged.")
    if wants_json():
        return jsonify({"error": {"code": "internal", "message": message}}), 500
    return render_template("errors/error.html", status=500, message=message), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    if not app.testing:
        app.register_error_handler(Exception, _unexpected)
