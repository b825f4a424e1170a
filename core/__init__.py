"""Yiti OA core: ``create_app`` builds the application as a plain sequence of steps."""
from __future__ import annotations

import os
import weakref
from pathlib import Path

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from core import urls
from core.config import ConfigError, is_weak_secret, load_settings, resolve_secret_key
from core.extensions import csrf, db, limiter, login_manager
from core.plugins.manager import PluginError, Plugins

__all__ = ["create_app", "ConfigError", "PluginError"]


def create_app(config: dict | None = None, *, load_plugins: bool = True) -> Flask:
    """Build the Yiti OA app.

    ``config`` overrides every other source (tests, embedding). ``load_plugins=False`` starts the
    core alone, which the ``yiti plugins`` commands use so that a broken plugin can be disabled.
    Raises ``ConfigError`` or ``PluginError`` with a message naming the culprit.
    """
    settings = load_settings(config)
    app = Flask(__name__, instance_path=settings["INSTANCE_PATH"] or None)
    urls.init_app(app)
    _configure(app, settings)

    db.init_app(app)
    with app.app_context():
        _tune_engine(db.engine)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    plugins = Plugins(_enabled_plugins(app, settings) if load_plugins else [])
    app.extensions["plugins"] = plugins

    from core import i18n

    i18n.init_app(app, plugins)

    from core import registry

    registry.init_app(app, plugins)

    from core import events

    events.init_app(app, plugins)

    from core.auth import sessions
    from core.web import errors, security

    sessions.init_app(app)
    security.init_app(app)
    errors.init_app(app)

    from core.admin.views import bp as admin_bp
    from core.api import bp as api_bp
    from core.auth.views import bp as auth_bp
    from core.web.records import bp as records_bp
    from core.web.imports import bp as imports_bp
    from core.web.discussion import bp as discussion_bp
    from core.web.views import bp as web_bp
    from core.inbox.views import bp as inbox_bp
    from core.web.search import bp as search_bp
    from core.webhooks.views import bp as webhooks_bp

    for blueprint in (web_bp, auth_bp, admin_bp, api_bp, inbox_bp, search_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(webhooks_bp)
    for blueprint in sorted(plugins.collect("register_blueprints", app=app), key=lambda b: b.name):
        app.register_blueprint(blueprint)
    app.register_blueprint(records_bp)  # /<plugin>/<plural>: Werkzeug matches fixed paths first
    app.register_blueprint(imports_bp)  # /<plugin>/<plural>/import and /imports/<id>
    app.register_blueprint(discussion_bp)  # /<plugin>/<plural>/<id>/attachments and /comments
    from core.notify.views import bp as notify_bp

    app.register_blueprint(notify_bp)  # /notifications, /account/notifications, /admin/notifications, its API

    plugins.hook.register_cli(cli=app.cli)
    return app


def _configure(app: Flask, settings: dict) -> None:
    """Turn our settings into Flask and extension configuration."""
    instance = Path(app.instance_path)
    production = settings["ENV"] == "production"
    secret = resolve_secret_key(settings, instance)
    if production and is_weak_secret(secret):
        raise ConfigError(
            "SECRET_KEY: production needs a real secret key (32+ random characters): "
            "run `yiti init` to generate one into the instance folder, or set YITI_SECRET_KEY"
        )
    if secret is None:
        # Development without `yiti init`: a key for this process only; sessions end on restart.
        import secrets

        secret = secrets.token_urlsafe(48)
    url = settings["DATABASE_URL"] or f"sqlite:///{instance / 'yiti.db'}"
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    https = settings["HTTPS"] or (production and settings["SOURCES"]["HTTPS"] == "default")
    app.config.update(
        YITI=settings,
        SECRET_KEY=secret,
        SQLALCHEMY_DATABASE_URI=normalise_database_url(url),
        SQLALCHEMY_ECHO=settings["DATABASE_ECHO"],
        SESSION_COOKIE_NAME="yiti_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        # Send the cookie only when the session changes (``seen_at`` moves at most once a minute),
        # not re-signed on every request; the time-outs are checked on the server from its stamps.
        SESSION_REFRESH_EACH_REQUEST=False,
        PREFERRED_URL_SCHEME="https" if https else "http",
        RATELIMIT_STORAGE_URI=settings["REDIS_URL"] or "memory://",
        RATELIMIT_HEADERS_ENABLED=False,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session, which has its own time-outs
        MAX_CONTENT_LENGTH=max(50, settings["ATTACHMENTS_MAX_MB"] + 1) * 1024 * 1024,
    )
    for key, value in settings.items():
        if key.isupper() and key not in app.config and key not in {"SOURCES"}:
            app.config[key] = value  # raw Flask keys passed through create_app(config)
    if settings["PROXY_FIX"]:
        count = settings["PROXY_FIX"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written the usual way (``postgresql://`` / ``postgres://``)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _tune_engine(engine) -> None:
    """Every database: a process forked from this one (``gunicorn --preload``, a worker pool) opens
    its own connections rather than sharing the parent's sockets (reading the saved plugin list
    opens one while the app is built). SQLite: WAL for concurrent readers, a busy timeout instead
    of instant lock errors, foreign keys on."""
    engine_ref = weakref.ref(engine)

    def _forget_the_parents_connections():
        forked = engine_ref()
        if forked is not None:
            forked.dispose(close=False)  # close=False: the parent still uses them

    os.register_at_fork(after_in_child=_forget_the_parents_connections)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _enabled_plugins(app: Flask, settings: dict) -> list[str]:
    """``YITI_PLUGINS`` or ``create_app(config)`` win; else what an admin saved; else the config file/default."""
    if settings["SOURCES"]["PLUGINS"] in ("environment", "config"):
        return list(settings["PLUGINS"])
    from core.site_settings import PLUGINS_KEY, read_before_schema

    with app.app_context():
        saved = read_before_schema(PLUGINS_KEY)
    return list(saved) if isinstance(saved, list) else list(settings["PLUGINS"])
