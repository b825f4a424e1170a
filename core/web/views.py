"""Home dashboard, language switch and health checks."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import text

from core.extensions import csrf, db

bp = Blueprint("web", __name__)


def plugins():
    return current_app.extensions["plugins"]


@bp.app_context_processor
def _navigation():
    """The menu for the current user, from every plugin's ``register_menu``."""
    if not current_user.is_authenticated:
        return {"menu": {}}
    items = sorted(plugins().collect("register_menu", user=current_user), key=lambda i: (i.section, i.order, i.key))
    menu: dict[str, list] = {}
    groups: dict[str, MenuGroup] = {}
    for item in items:
        if item.section == "main" and item.group is not None:
            label = str(item.group)
            if label not in groups:
                groups[label] = MenuGroup(label=item.group, entries=[])
                menu.setdefault("main", []).append(groups[label])
            groups[label].entries.append(item)
        else:
            menu.setdefault(item.section, []).append(item)
    return {"menu": menu}


@dataclass
class MenuGroup:
    """A dropdown of the top bar: the ``main`` menu items that share a ``group`` label."""

    label: object
    entries: list


@bp.get("/")
@login_required
def home():
    widgets = sorted(plugins().collect("register_dashboard_widgets", user=current_user), key=lambda w: (w.order, w.key))
    # Widgets render their own templates (autoescaped), so their output is already safe HTML.
    return render_template("home.html", widgets=[(w, Markup(w.render())) for w in widgets])


@bp.post("/lang/<code>")
def set_language(code: str):
    """Switch the interface language; a logged-in user keeps the choice for next time."""
    if code in current_app.config["YITI"]["LANGUAGES"]:
        session["lang"] = code
        if current_user.is_authenticated and current_user.language != code:
            current_user.language = code
            db.session.commit()
    return redirect(safe_next(request.form.get("next") or request.referrer))


def local_path(url: str) -> str | None:
    """``url`` if it is a path of this site, else ``None``. Browsers drop tabs and line breaks from a
    URL (``/``, a tab, ``/evil`` becomes ``//evil``: another site), so a control character or a space
    refuses it too."""
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        return None
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else None


def safe_next(target: str | None) -> str:
    """Only same-site paths: never bounce a user to another host after login or a language switch."""
    if not target:
        return url_for("web.home")
    parts = urlsplit(target)
    if parts.netloc and parts.netloc != request.host:
        return url_for("web.home")
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return url_for("web.home")
    return path + (f"?{parts.query}" if parts.query else "")


@bp.get("/favicon.ico")
def favicon():
    """Where browsers and tools look for the icon when a page names none (a JSON answer, a file)."""
    return redirect(url_for("static", filename="favicon.svg"), code=301)


@bp.get("/healthz")
@csrf.exempt
def healthz():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the database answers and every enabled branch is migrated to its head."""
    from core import migrate

    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, do not crash: a load balancer reads this
        db.session.rollback()
        checks["database"] = f"error: {exc.__class__.__name__}"
        return jsonify({"status": "unavailable", "checks": checks}), 503
    behind = migrate.pending()
    checks["migrations"] = "ok" if not behind else "pending: " + ", ".join(behind)
    ready = not behind
    return jsonify({"status": "ok" if ready else "unavailable", "checks": checks}), 200 if ready else 503
