"""Settings: defaults < the TOML file named by ``YITI_CONFIG`` < ``YITI_*`` environment variables.

Every setting has a default here, and its type is the type of that default. A value of the wrong
type, from the file or the environment, stops start-up with a message naming the key. Unknown keys
in the file stop start-up too, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path

ENV_PREFIX = "YITI_"

#: Settings an installer may change. ``None`` means "not set"; its type is given in ``TYPES``.
DEFAULTS: dict[str, object] = {
    "ENV": "development",              # development | production
    "SECRET_KEY": None,                # generated into the instance folder by `yiti init`
    "INSTANCE_PATH": None,             # where the SQLite file, secret key and uploads live
    "DATABASE_URL": None,              # default: SQLite file in the instance folder
    "DATABASE_ECHO": False,
    "REDIS_URL": None,                 # rate limits (and later queues) shared by several servers
    "PLUGINS": ["approval", "crm", "srm", "hr"],
    "LANGUAGES": ["zh_CN", "en"],
    "DEFAULT_LANGUAGE": "zh_CN",
    "DEFAULT_TIMEZONE": "Asia/Shanghai",
    "HTTPS": False,                    # secure cookies; True by default in production
    "PROXY_FIX": 0,                    # number of trusted reverse proxies in front of the app
    "SESSION_IDLE_MINUTES": 120,
    "SESSION_ABSOLUTE_HOURS": 12,
    "PASSWORD_MIN_LENGTH": 8,
    "PASSWORD_HASH": "scrypt:32768:8:1",  # werkzeug method string; tests use a cheaper work factor
    "LOGIN_LIMIT_ACCOUNT": "5 per 15 minutes",
    "LOGIN_LIMIT_IP": "30 per 15 minutes",
    "PAGE_SIZE": 20,
    "DEMO_RECORDS": True,              # `yiti demo` adds each plugin's sample records (customers, ...)
    "JOBS_PATH": None,                 # huey's SQLite queue file; default instance/jobs.db (Redis when REDIS_URL)
    "JOBS_WORKERS": 2,                 # threads `yiti worker` runs jobs in, plus one per repeating sweeper
    "OUTBOX_SWEEP_SECONDS": 10,        # how often the worker looks for deliveries that are due
    "OUTBOX_MAX_ATTEMPTS": 8,          # after this many failed tries a delivery is dead (shown to admins)
    "OUTBOX_RETRY_SECONDS": 30,        # first retry delay; doubles with every failed try
    "OUTBOX_RETRY_MAX_SECONDS": 21600, # the longest wait between two tries (6 hours)
    "OUTBOX_LEASE_SECONDS": 120,       # a claimed delivery not finished by then is tried again
    "OUTBOX_BATCH": 100,               # deliveries claimed per sweep
    "IMPORT_BACKGROUND_ROWS": 2000,    # imports of more rows are checked and applied by the worker
    "IMPORT_BATCH_ROWS": 500,          # a background import commits its progress every this many rows
    "IMPORT_STALE_MINUTES": 30,        # a worker import without progress this long is failed and taken back
    "WEBHOOK_TIMEOUT_SECONDS": 10,     # connect + answer time-out of one outbound webhook call
    "WEBHOOK_CONCURRENCY": 4,          # subscriptions a webhook sweep serves at once (one thread each)
    "ENCRYPTION_KEYS": [],             # Fernet keys for fields encrypted at rest; the first encrypts
    "BASE_URL": None,                  # the portal's address for links in e-mails and robot posts (admin page may override)
    "ROBOT_HOSTS": ["oapi.dingtalk.com", "qyapi.weixin.qq.com", "open.feishu.cn", "open.larksuite.com"],  # robot webhook hosts allowed
    "ROBOT_RATE_PER_MINUTE": 20,       # messages one group robot may post in any 60 seconds (DingTalk, WeCom: 20)
    "NOTIFY_TIMEOUT_SECONDS": 10,      # connect + answer time-out of one SMTP or robot call
    "BACKUP_SCHEDULE": "0 3 * * *",    # when the worker backs up: cron (DEFAULT_TIMEZONE), an hour ("3"), or "off"
    "BACKUP_DIR": None,                # where backups are written; default instance/backups
    "BACKUP_KEEP_COUNT": 14,           # keep at most this many backups (0: no limit)
    "BACKUP_KEEP_DAYS": 30,            # delete backups older than this (0: no limit); the newest verified always stays
    "ATTACHMENTS_STORAGE": "local",    # local (instance/attachments) | s3 (shared by several app servers)
    "ATTACHMENTS_MAX_MB": 20,          # the largest file a user may attach
    "ATTACHMENTS_TYPES": ["pdf", "png", "jpg", "gif", "webp", "docx", "xlsx", "pptx", "doc", "xls", "ppt",
                          "txt", "csv"],  # kinds accepted, checked by content (core/attachments/sniff.py)
    "S3_ENDPOINT_URL": None,           # e.g. https://minio.example.com; empty for AWS itself
    "S3_BUCKET": None,
    "S3_ACCESS_KEY": None,
    "S3_SECRET_KEY": None,
    "S3_REGION": None,
}

TYPES: dict[str, type] = {
    "SECRET_KEY": str,
    "INSTANCE_PATH": str,
    "DATABASE_URL": str,
    "REDIS_URL": str,
    "JOBS_PATH": str,
    "BASE_URL": str,
    "BACKUP_DIR": str,
    "S3_ENDPOINT_URL": str,
    "S3_BUCKET": str,
    "S3_ACCESS_KEY": str,
    "S3_SECRET_KEY": str,
    "S3_REGION": str,
}

CHOICES: dict[str, tuple[str, ...]] = {"ENV": ("development", "production"), "ATTACHMENTS_STORAGE": ("local", "s3")}

#: The smallest value each integer setting accepts: a page size or time-out of 0 breaks every
#: request, and a negative PROXY_FIX would trust a client-supplied X-Forwarded-For entry.
MINIMUMS: dict[str, int] = {
    "PROXY_FIX": 0,
    "SESSION_IDLE_MINUTES": 1,
    "SESSION_ABSOLUTE_HOURS": 1,
    "PASSWORD_MIN_LENGTH": 1,
    "PAGE_SIZE": 1,
    "JOBS_WORKERS": 1,
    "OUTBOX_SWEEP_SECONDS": 1,
    "OUTBOX_MAX_ATTEMPTS": 1,
    "OUTBOX_RETRY_SECONDS": 1,
    "OUTBOX_RETRY_MAX_SECONDS": 1,
    "OUTBOX_LEASE_SECONDS": 1,
    "OUTBOX_BATCH": 1,
    "ROBOT_RATE_PER_MINUTE": 1,
    "NOTIFY_TIMEOUT_SECONDS": 1,
    "WEBHOOK_TIMEOUT_SECONDS": 1,
    "WEBHOOK_CONCURRENCY": 1,
    "BACKUP_KEEP_COUNT": 0,
    "BACKUP_KEEP_DAYS": 0,
    "ATTACHMENTS_MAX_MB": 1,
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

#: Secret keys that must never run in production (examples, placeholders).
WEAK_SECRETS = {"dev", "secret", "change-me", "changeme", "yiti"}


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the key."""


def _type_of(key: str) -> type:
    if key in TYPES:
        return TYPES[key]
    return type(DEFAULTS[key])


def _from_env(key: str, raw: str) -> object:
    kind = _type_of(key)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(f"{ENV_PREFIX}{key}: expected a boolean (true/false), got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{key}: expected an integer, got {raw!r}") from None
    if kind is list:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _check(key: str, value: object, source: str) -> object:
    kind = _type_of(key)
    if value is None:
        return None
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{key} in {source}: expected {kind.__name__}, got {value!r}")
    if kind is list and not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{key} in {source}: expected a list of strings, got {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key} in {source}: expected one of {', '.join(CHOICES[key])}, got {value!r}")
    if key in MINIMUMS and value < MINIMUMS[key]:
        raise ConfigError(f"{key} in {source}: expected {MINIMUMS[key]} or more, got {value!r}")
    if key in _FORMATS:
        try:
            _FORMATS[key](value)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{key} in {source}: {value!r} is not valid ({exc})") from None
    return value


def _rate_limit(value: str) -> None:
    from limits import parse

    parse(value)


def _fernet_key(value: str) -> None:
    from cryptography.fernet import Fernet

    try:
        Fernet(value)
    except (ValueError, TypeError) as exc:
        raise ValueError("each key must be a Fernet key: run `yiti keys generate`") from exc


def _time_zone(value: str) -> None:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError("unknown time zone") from exc


def _backup_schedule(value: str) -> None:
    from core.backup_runs import schedule_cron

    schedule_cron(value)


#: Settings whose text must parse: checked at start-up rather than at the first login or page.
_FORMATS = {
    "LOGIN_LIMIT_ACCOUNT": _rate_limit,
    "LOGIN_LIMIT_IP": _rate_limit,
    "DEFAULT_TIMEZONE": _time_zone,
    "ENCRYPTION_KEYS": lambda keys: [_fernet_key(key) for key in keys],
    "BACKUP_SCHEDULE": lambda value: _backup_schedule(value),
}


def load_settings(overrides: dict | None = None, environ: dict | None = None) -> dict:
    """Return the merged settings: defaults, then the config file, the environment, ``overrides``.

    ``SOURCES`` in the result says where each setting came from (default, file, environment,
    config), so pages can tell an admin which settings they cannot change from the browser.

    ``overrides`` are what ``create_app(config=...)`` received (tests, embedding); they are
    type-checked like everything else but may also carry raw Flask keys.
    """
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    sources = dict.fromkeys(DEFAULTS, "default")
    path = environ.get(f"{ENV_PREFIX}CONFIG")
    if path:
        from_file = _read_file(Path(path))
        settings.update(from_file)
        sources.update(dict.fromkeys(from_file, "file"))
    for key in DEFAULTS:
        raw = environ.get(f"{ENV_PREFIX}{key}")
        if raw is not None:
            settings[key] = _check(key, _from_env(key, raw), "the environment")
            sources[key] = "environment"
    for key, value in (overrides or {}).items():
        settings[key] = _check(key, value, "create_app(config)") if key in DEFAULTS else value
        sources[key] = "config"
    settings["SOURCES"] = sources
    if settings["INSTANCE_PATH"]:
        # Flask accepts only an absolute instance path; a relative one means "from here".
        settings["INSTANCE_PATH"] = os.path.abspath(os.path.expanduser(settings["INSTANCE_PATH"]))
    if settings["DEFAULT_LANGUAGE"] not in settings["LANGUAGES"]:
        raise ConfigError("DEFAULT_LANGUAGE: must be one of LANGUAGES")
    return settings


def _read_file(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"YITI_CONFIG: file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"YITI_CONFIG: {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not UTF-8
        raise ConfigError(f"YITI_CONFIG: cannot read {path}: {exc}") from None
    result = {}
    for key, value in data.items():
        upper = key.upper()
        if upper not in DEFAULTS:
            raise ConfigError(f"{key} in {path}: unknown setting")
        result[upper] = _check(upper, value, str(path))
    return result


def resolve_secret_key(settings: dict, instance_path: Path) -> str | None:
    """The configured secret key, else the one `yiti init` wrote into the instance folder."""
    if settings.get("SECRET_KEY"):
        return settings["SECRET_KEY"]
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip() or None
    return None


def write_secret_key(instance_path: Path) -> Path:
    """Create ``instance/secret_key`` (owner-readable only) unless it exists; return its path."""
    instance_path.mkdir(parents=True, exist_ok=True)
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file
    # Written aside, then linked into place: an interrupted write never leaves an empty key
    # behind, and of two `yiti init` racing on a shared folder the first key wins.
    draft = instance_path / f".secret_key.{secrets.token_hex(8)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        os.link(draft, key_file)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return key_file


def is_weak_secret(value: str | None) -> bool:
    """True when ``value`` is missing, a known placeholder or too short to be a real key."""
    return not value or value.lower() in WEAK_SECRETS or len(value) < 32
