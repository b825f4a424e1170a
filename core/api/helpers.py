"""Small helpers every API module uses: JSON bodies, pagination, versions."""
from __future__ import annotations

from flask import current_app, request
from flask_babel import gettext as _

from core.errors import DomainError, ValidationError


def json_body() -> dict:
    """The request's JSON object, or a 400 saying what is wrong with it."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise DomainError(_("Send a JSON object with Content-Type: application/json."))
    return data


def with_if_match(data: dict) -> dict:
    """Take the expected version from ``If-Match`` when the body has none."""
    header = request.headers.get("If-Match", "").strip().strip('"').removeprefix("W/").strip('"')
    if header and "version" not in data:
        if not (header.isascii() and header.isdigit()):
            raise ValidationError(_("If-Match must be the record's version number."), fields={"version": [_("Not a valid integer.")]})
        data = {**data, "version": int(header)}
    return data


def page_args() -> tuple[int, int]:
    """``page`` (from 1) and ``per_page`` (1..200) from the query string."""
    try:
        page = max(1, int(request.args.get("page", 1)))
        per_page = min(200, max(1, int(request.args.get("per_page", current_app.config["YITI"]["PAGE_SIZE"]))))
    except ValueError:
        raise ValidationError(_("page and per_page must be integers."), fields={"page": [_("Not a valid integer.")]}) from None
    return page, per_page


def envelope(items: list, total: int, page: int, per_page: int) -> dict:
    return {"items": items, "total": total, "page": page, "per_page": per_page}
