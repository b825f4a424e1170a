"""``/api/v1/search``: the header's global search for API clients."""
from __future__ import annotations

from flask import jsonify, request
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core import search as global_search
from core.api import bp
from core.errors import ValidationError


@bp.get("/search")
@login_required
def search():
    """``?q=`` (required) and ``?limit=`` (hits per resource, 1-20, default 5), grouped by plugin."""
    text = global_search.clean_query(request.args.get("q"))
    if not text:
        raise ValidationError(_("Please correct the highlighted fields."), fields={"q": [_("Missing data for required field.")]})
    try:
        limit = int(request.args.get("limit", 5))
    except ValueError:
        raise ValidationError(_("Please correct the highlighted fields."), fields={"limit": [_("Not a valid integer.")]}) from None
    if not 1 <= limit <= 20:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"limit": [_("Must be greater than or equal to 1 and less than or equal to 20.")]})
    groups = global_search.search(current_user, text, per_resource=limit)
    return jsonify({"q": text, "groups": [
        {"plugin": g.plugin, "label": g.label, "more": g.more,
         "items": [{"resource": h.resource, "label": h.label, "id": h.id, "title": h.title, "url": h.url}
                   for h in g.hits]}
        for g in groups]})
