"""The header's search box: a full results page and the suggestions dropdown it shows while typing."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from core import search as global_search

bp = Blueprint("search", __name__)


@bp.get("/search")
@login_required
def results():
    """Every resource's hits for ``?q=``, grouped by module."""
    text = global_search.clean_query(request.args.get("q"))
    groups = global_search.search(current_user, text, per_resource=20)
    return render_template("search/results.html", q=text, groups=groups)


@bp.get("/search/suggest")
@login_required
def suggest():
    """The dropdown under the header box (an htmx fragment): a few hits per resource."""
    text = global_search.clean_query(request.args.get("q"))
    groups = global_search.search(current_user, text, per_resource=3)
    return render_template("search/_suggest.html", q=text, groups=groups)
