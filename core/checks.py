"""Pre-flight checks for ``yiti check``: what would go wrong if this installation went live now.

Each check is a plain function taking a ``Context`` and returning a list of ``Finding`` — one
``ok`` finding when all is well, so the report also says what was looked at. They run inside the
app context. Levels: ``error`` (do not go live; ``yiti check`` exits 1), ``warning`` (works, but
read it), ``ok``.
"""
from __future__ import annotations

import multiprocessing
import os
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask
from flask_babel import gettext as _
from sqlalchemy import text

from core import clock
from core.config import is_weak_secret

ERROR, WARNING, OK = "error", "warning", "ok"
#: Clock skew between this server and the database above which times shown and stored disagree.
MAX_SKEW_SECONDS = 5.0
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Finding:
    """One result: which check, how serious, what is wrong (plain language) and what to do."""

    check: str
    level: str
    message: str
    action: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """What the checks look at: the app, and how it will be run (which the app cannot know)."""

    app: Flask
    workers: int
    workers_source: str
    servers: int = 1
    behind_proxy: bool = True
    environ: dict = field(default_factory=lambda: dict(os.environ))

    @property
    def settings(self) -> dict:
        return self.app.config["YITI"]

    @property
    def production(self) -> bool:
        return self.settings["ENV"] == "production"

    @property
    def engine(self):
        from core.extensions import db

        return db.engine


def gunicorn_workers(environ: dict) -> tuple[int, str]:
    """How many worker processes ``config/gunicorn.conf.py`` starts, and where that number comes from.

    Mirrors the configuration file: ``YITI_WORKERS``, else gunicorn's ``WEB_CONCURRENCY``, else
    twice the CPUs plus one.
    """
    for name in ("YITI_WORKERS", "WEB_CONCURRENCY"):
        raw = (environ.get(name) or "").strip()
        if raw.isdigit() and int(raw) > 0:
            return int(raw), name
    return multiprocessing.cpu_count() * 2 + 1, "config/gunicorn.conf.py"


def proxy_expected(environ: dict) -> bool:
    """Whether the app server listens only locally (the default ``YITI_BIND``), so a proxy must be in front."""
    bind = environ.get("YITI_BIND", "127.0.0.1:8000").strip()
    return bind.startswith(("127.", "localhost", "[::1]", "unix:"))


# The checks --------------------------------------------------------------------------------------


def check_debug(ctx: Context) -> list[Finding]:
    flag = ctx.environ.get("FLASK_DEBUG", "").strip().lower() in _TRUE
    if ctx.app.debug or flag:
        return [Finding("debug", ERROR,
                        _("Debug mode is on: error pages show source code and settings to anyone."),
                        _("Remove FLASK_DEBUG (and DEBUG from the configuration) from the service's environment."))]
    return [Finding("debug", OK, _("Debug mode is off."))]


def check_env(ctx: Context) -> list[Finding]:
    if not ctx.production:
        return [Finding("env", ERROR,
                        _("ENV is %(env)s, not production: secure cookies and the secret key checks are off.",
                          env=ctx.settings["ENV"]),
                        _("Set YITI_ENV=production in the environment file."))]
    return [Finding("env", OK, _("ENV is production."))]


def check_secret_key(ctx: Context) -> list[Finding]:
    from core.config import resolve_secret_key

    configured = resolve_secret_key(ctx.settings, Path(ctx.app.instance_path))
    if configured is None:
        return [Finding("secret_key", ERROR,
                        _("No secret key is configured: every process invents its own, so sessions break "
                          "between workers and end at every restart."),
                        _("Run `yiti init` to generate one into the instance folder, or set YITI_SECRET_KEY."))]
    if is_weak_secret(configured):
        return [Finding("secret_key", ERROR,
                        _("The secret key is a placeholder or shorter than 32 characters: anyone who guesses "
                          "it can forge a login session."),
                        _("Set YITI_SECRET_KEY to 32+ random characters, e.g. the output of "
                          "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`."))]
    return [Finding("secret_key", OK, _("The secret key is set and long enough."))]


def check_secret_key_file(ctx: Context) -> list[Finding]:
    if ctx.settings.get("SECRET_KEY"):
        return []  # from the environment or the config file: nothing on disk to look at
    key_file = Path(ctx.app.instance_path) / "secret_key"
    if not key_file.is_file():
        return []
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        return [Finding("secret_key_file", ERROR,
                        _("%(path)s can be read by other users of this server (mode %(mode)s).",
                          path=str(key_file), mode=oct(mode)),
                        _("Run `chmod 600 %(path)s` (owned by the service user).", path=str(key_file)))]
    return [Finding("secret_key_file", OK, _("The secret key file is readable only by its owner."))]


def check_database_engine(ctx: Context) -> list[Finding]:
    if ctx.engine.dialect.name != "sqlite":
        return [Finding("database_engine", OK,
                        _("The database is %(engine)s.", engine=ctx.engine.dialect.name))]
    if ctx.servers > 1:
        return [Finding("database_engine", ERROR,
                        _("SQLite is a file on one server; %(servers)s app servers cannot share it.",
                          servers=ctx.servers),
                        _("Use PostgreSQL: set YITI_DATABASE_URL=postgresql://user@host/yiti."))]
    if ctx.workers > 1:
        return [Finding("database_engine", ERROR,
                        _("SQLite with %(workers)s web workers (from %(source)s): concurrent writes wait for "
                          "each other and time out under load.", workers=ctx.workers, source=ctx.workers_source),
                        _("Use PostgreSQL (YITI_DATABASE_URL), or run one worker: YITI_WORKERS=1."))]
    if ctx.production:
        return [Finding("database_engine", WARNING,
                        _("SQLite in production: fine for a few users on one worker, but backups and growth "
                          "are easier with PostgreSQL."),
                        _("Consider PostgreSQL (YITI_DATABASE_URL) before the company grows."))]
    return [Finding("database_engine", OK, _("SQLite with one worker."))]


def check_database_reachable(ctx: Context) -> list[Finding]:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error: report it, the other checks go on
        return [Finding("database", ERROR,
                        _("The database cannot be reached: %(error)s", error=_short(exc)),
                        _("Check YITI_DATABASE_URL, that the database server runs, and that this user may log in."))]
    return [Finding("database", OK, _("The database answers."))]


def check_migrations(ctx: Context) -> list[Finding]:
    from core import migrate

    behind = migrate.pending()
    if behind:
        return [Finding("migrations", ERROR,
                        _("The database schema is behind for: %(branches)s.", branches=", ".join(behind)),
                        _("Run `yiti upgrade` (backup, then migrations); on a new database, `yiti init`."))]
    return [Finding("migrations", OK, _("The database schema is up to date."))]


def check_clock(ctx: Context) -> list[Finding]:
    """Compare this server's clock with the database's; time-outs and reminders use both."""
    query = ("SELECT clock_timestamp()" if ctx.engine.dialect.name == "postgresql"
             else "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
    with ctx.engine.connect() as conn:
        before = time.monotonic()
        here = clock.now()
        value = conn.execute(text(query)).scalar()
        took = time.monotonic() - before
    if isinstance(value, str):  # SQLite: UTC text
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    skew = abs((value - here).total_seconds() - took / 2)
    if skew > MAX_SKEW_SECONDS:
        return [Finding("clock", WARNING,
                        _("This server's clock and the database's differ by %(seconds)s seconds: due dates, "
                          "time-outs and the audit trail will disagree.", seconds=f"{skew:.1f}"),
                        _("Synchronise both servers' clocks (e.g. `apt install systemd-timesyncd`, or chrony)."))]
    return [Finding("clock", OK, _("This server's clock agrees with the database's."))]


def check_redis(ctx: Context) -> list[Finding]:
    url = ctx.settings["REDIS_URL"]
    if not url:
        if ctx.servers > 1:
            return [Finding("redis", ERROR,
                            _("%(servers)s app servers without Redis: each keeps its own login throttle and "
                              "job queue, so limits multiply and jobs stay on one server.", servers=ctx.servers),
                            _("Install Redis and set YITI_REDIS_URL=redis://host:6379/0 on every server."))]
        if ctx.workers > 1:
            return [Finding("redis", WARNING,
                            _("Without Redis each of the %(workers)s web workers counts failed logins on its "
                              "own, so the login limit is %(workers)s times weaker.", workers=ctx.workers),
                            _("Install Redis and set YITI_REDIS_URL=redis://127.0.0.1:6379/0."))]
        return [Finding("redis", OK, _("Redis is not needed by one worker on one server."))]
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # connection refused, DNS, auth: all mean "not usable"
        return [Finding("redis", ERROR,
                        _("Redis is configured but cannot be reached: %(error)s", error=_short(exc)),
                        _("Start Redis (`systemctl start redis-server`) or correct YITI_REDIS_URL."))]
    return [Finding("redis", OK, _("Redis answers."))]


def check_https(ctx: Context) -> list[Finding]:
    if ctx.production and not ctx.app.config.get("SESSION_COOKIE_SECURE"):
        return [Finding("https", ERROR,
                        _("HTTPS is off in production: passwords and session cookies travel in clear text."),
                        _("Serve the site over HTTPS (see config/nginx/yiti.conf) and remove YITI_HTTPS=false."))]
    if ctx.app.config.get("SESSION_COOKIE_SECURE"):
        return [Finding("https", OK, _("Cookies are sent over HTTPS only."))]
    return []


def check_proxy_fix(ctx: Context) -> list[Finding]:
    if not ctx.behind_proxy:
        return []
    if not ctx.settings["PROXY_FIX"]:
        return [Finding("proxy_fix", WARNING,
                        _("PROXY_FIX is 0 but the app sits behind a proxy: every user seems to come from the "
                          "proxy's address, so one user's failed logins lock everyone out, and links may use http."),
                        _("Set YITI_PROXY_FIX=1 (the number of proxies in front), or run `yiti check --direct` "
                          "if nothing stands in front of the app."))]
    return [Finding("proxy_fix", OK, _("PROXY_FIX is %(count)s: the app trusts that many proxies in front of it.",
                                              count=ctx.settings["PROXY_FIX"]))]


def check_instance_folder(ctx: Context) -> list[Finding]:
    folder = Path(ctx.app.instance_path)
    if not folder.is_dir():
        return [Finding("instance", ERROR,
                        _("The instance folder %(path)s does not exist.", path=str(folder)),
                        _("Run `yiti init`, or create it: `install -d -o yiti -m 750 %(path)s`.", path=str(folder)))]
    if not _writable(folder):
        return [Finding("instance", ERROR,
                        _("The instance folder %(path)s is not writable by this user.", path=str(folder)),
                        _("Make the service user own it: `chown -R yiti: %(path)s`.", path=str(folder)))]
    return [Finding("instance", OK, _("The instance folder is writable."))]


def check_data_folders(ctx: Context) -> list[Finding]:
    findings = []
    instance = Path(ctx.app.instance_path)
    from core.backup_runs import backup_dir

    for name, folder in (("attachments", instance / "attachments"), ("backups", backup_dir(ctx.app))):
        if not folder.is_dir():
            findings.append(Finding(f"{name}_folder", WARNING,
                                    _("The folder %(path)s does not exist yet.", path=str(folder)),
                                    _("Create it for the service user: `install -d -o yiti -m 750 %(path)s`.",
                                      path=str(folder))))
        elif not _writable(folder):
            findings.append(Finding(f"{name}_folder", ERROR,
                                    _("The folder %(path)s is not writable by this user.", path=str(folder)),
                                    _("Make the service user own it: `chown -R yiti: %(path)s`.", path=str(folder))))
        else:
            findings.append(Finding(f"{name}_folder", OK, _("%(path)s is ready.", path=str(folder))))
    return findings


def check_encryption_keys(ctx: Context) -> list[Finding]:
    from core.crypto import keys_configured

    if keys_configured(ctx.app):
        return [Finding("encryption_keys", OK, _("ENCRYPTION_KEYS is set: encrypted fields use their own keys."))]
    if ctx.production:
        return [Finding("encryption_keys", WARNING,
                        _("ENCRYPTION_KEYS is not set: encrypted fields use a key derived from the secret key, "
                          "so changing the secret key makes them unreadable."),
                        _("Run `yiti keys generate`, set YITI_ENCRYPTION_KEYS to its output on every server, "
                          "restart, then run `yiti keys rotate`. Keep the key safe, apart from the backups."))]
    return []


def check_backups(ctx: Context) -> list[Finding]:
    """Is there a recent backup that was proven to restore?"""
    from datetime import timedelta

    from sqlalchemy import inspect

    from core import backup_runs

    schedule = backup_runs.schedule_cron(ctx.settings["BACKUP_SCHEDULE"])
    if not inspect(ctx.engine).has_table(backup_runs.BackupRun.__tablename__):
        return []  # the schema is behind: check_migrations says so
    latest = backup_runs.latest_verified()
    if latest is None or latest.finished_at < clock.now() - timedelta(days=2):
        if not ctx.production:
            return []
        return [Finding("backups", WARNING,
                        _("There is no verified backup from the last two days."),
                        _("Run `yiti worker` (it backs up on BACKUP_SCHEDULE and verifies each backup), or "
                          "press “Back up now” on the Backups page.") if schedule else
                        _("Scheduled backups are off: set YITI_BACKUP_SCHEDULE (e.g. 3 for 03:00 daily)."))]
    return [Finding("backups", OK, _("The last verified backup is from %(when)s.", when=latest.finished_at.isoformat()))]


#: In report order. Checks that need the database run only when it answers.
CHECKS = (check_debug, check_env, check_secret_key, check_secret_key_file, check_encryption_keys, check_https,
          check_proxy_fix,
          check_database_engine, check_redis, check_instance_folder, check_data_folders)
DATABASE_CHECKS = (check_migrations, check_clock, check_backups)


def run_checks(app: Flask, *, workers: int | None = None, servers: int = 1, behind_proxy: bool | None = None,
               environ: dict | None = None) -> list[Finding]:
    """Run every check for ``app`` as it will be deployed; call inside its app context.

    ``workers`` (gunicorn processes per server) defaults to what ``config/gunicorn.conf.py`` would
    start; ``behind_proxy`` defaults to true when the app server listens only locally.
    """
    environ = dict(os.environ if environ is None else environ)
    source = "--workers"
    if workers is None:
        workers, source = gunicorn_workers(environ)
    if behind_proxy is None:
        behind_proxy = proxy_expected(environ)
    ctx = Context(app=app, workers=workers, workers_source=source, servers=servers,
                  behind_proxy=behind_proxy, environ=environ)
    findings = [finding for check in CHECKS for finding in check(ctx)]
    reachable = check_database_reachable(ctx)
    findings += reachable
    if reachable[0].level == OK:
        for check in DATABASE_CHECKS:
            findings += check(ctx)
    return findings


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == ERROR for f in findings)


def _writable(folder: Path) -> bool:
    """Really try: ``os.access`` answers for the real user id and ignores read-only mounts."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _short(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__
