"""Settings: defaults < YITI_CONFIG file < YITI_* environment < create_app(config), and start-up checks."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from flask import request

from core import create_app
from core.config import (
    DEFAULTS,
    ConfigError,
    is_weak_secret,
    load_settings,
    resolve_secret_key,
    write_secret_key,
)
from core.extensions import db

STRONG_SECRET = "kV3q8sT0pX2mZ7rB1nC5wL9yH4dF6gJ0aQe"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """``create_app`` reads ``os.environ``: no YITI_* variable of the shell may leak into a test."""
    for name in list(os.environ):
        if name.startswith("YITI_"):
            monkeypatch.delenv(name)


@pytest.fixture
def toml(tmp_path):
    """``toml("key = 1")`` writes a settings file and returns the environment naming it."""

    def write(text: str) -> dict:
        path = tmp_path / "yiti.toml"
        path.write_text(text, encoding="utf-8")
        return {"YITI_CONFIG": str(path)}

    return write


@pytest.fixture
def start(tmp_path):
    """``start(ENV=..., ...)`` runs the real app factory on a throw-away SQLite file."""
    apps = []

    def factory(**settings):
        config = {
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'config.db'}",
            "PLUGINS": [],
            **settings,
        }
        app = create_app(config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


# Precedence -----------------------------------------------------------------------------------


def test_defaults_apply_when_nothing_is_configured():
    settings = load_settings(environ={})

    assert {key: settings[key] for key in DEFAULTS} == DEFAULTS
    assert set(settings["SOURCES"].values()) == {"default"}


def test_config_file_overrides_defaults(toml):
    environ = toml('session_idle_minutes = 30\nplugins = ["approval", "crm"]\nhttps = true\n')

    settings = load_settings(environ=environ)

    assert settings["SESSION_IDLE_MINUTES"] == 30
    assert settings["PLUGINS"] == ["approval", "crm"]
    assert settings["HTTPS"] is True
    assert settings["SOURCES"]["SESSION_IDLE_MINUTES"] == "file"
    assert settings["SESSION_ABSOLUTE_HOURS"] == DEFAULTS["SESSION_ABSOLUTE_HOURS"]
    assert settings["SOURCES"]["SESSION_ABSOLUTE_HOURS"] == "default"


def test_environment_overrides_config_file(toml):
    environ = toml("session_idle_minutes = 30\npage_size = 50\n")
    environ["YITI_SESSION_IDLE_MINUTES"] = "45"

    settings = load_settings(environ=environ)

    assert settings["SESSION_IDLE_MINUTES"] == 45
    assert settings["SOURCES"]["SESSION_IDLE_MINUTES"] == "environment"
    assert settings["PAGE_SIZE"] == 50  # the file still counts for what the environment leaves alone


def test_create_app_config_overrides_environment(toml):
    environ = toml("session_idle_minutes = 30\n")
    environ["YITI_SESSION_IDLE_MINUTES"] = "45"

    settings = load_settings({"SESSION_IDLE_MINUTES": 5}, environ=environ)

    assert settings["SESSION_IDLE_MINUTES"] == 5
    assert settings["SOURCES"]["SESSION_IDLE_MINUTES"] == "config"


def test_create_app_reads_settings_from_the_process_environment(monkeypatch, start):
    monkeypatch.setenv("YITI_PAGE_SIZE", "7")
    monkeypatch.setenv("YITI_DEFAULT_TIMEZONE", "Europe/Berlin")

    app = start()

    assert app.config["YITI"]["PAGE_SIZE"] == 7
    assert app.config["YITI"]["DEFAULT_TIMEZONE"] == "Europe/Berlin"


def test_example_settings_file_is_valid():
    example = Path(__file__).resolve().parents[2] / "config" / "yiti.example.toml"

    settings = load_settings(environ={"YITI_CONFIG": str(example)})

    assert settings["ENV"] == "production"
    assert settings["PASSWORD_MIN_LENGTH"] == 10
    assert settings["PROXY_FIX"] == 1


# Parsing environment values -------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("1", True), ("true", True), ("Yes", True), (" on ", True),
    ("0", False), ("false", False), ("NO", False), ("off", False), ("", False),
])
def test_boolean_environment_values_are_parsed(raw, expected):
    assert load_settings(environ={"YITI_HTTPS": raw})["HTTPS"] is expected


def test_list_environment_values_are_comma_separated_and_trimmed():
    settings = load_settings(environ={"YITI_PLUGINS": " approval, crm ,,hr ", "YITI_LANGUAGES": "en,zh_CN",
                                      "YITI_DEFAULT_LANGUAGE": "en"})

    assert settings["PLUGINS"] == ["approval", "crm", "hr"]
    assert settings["LANGUAGES"] == ["en", "zh_CN"]
    assert settings["DEFAULT_LANGUAGE"] == "en"


def test_empty_plugins_environment_value_means_no_plugins():
    assert load_settings(environ={"YITI_PLUGINS": ""})["PLUGINS"] == []


def test_optional_text_settings_come_from_the_environment():
    settings = load_settings(environ={"YITI_DATABASE_URL": "postgresql://yiti@db/yiti",
                                      "YITI_REDIS_URL": "redis://cache:6379/0"})

    assert settings["DATABASE_URL"] == "postgresql://yiti@db/yiti"
    assert settings["REDIS_URL"] == "redis://cache:6379/0"


def test_relative_instance_path_is_made_absolute(tmp_path, monkeypatch, start):
    monkeypatch.chdir(tmp_path)

    settings = load_settings(environ={"YITI_INSTANCE_PATH": "instance"})
    app = start(INSTANCE_PATH="data")

    assert settings["INSTANCE_PATH"] == str(tmp_path / "instance")
    assert app.instance_path == str(tmp_path / "data")


# Malformed values name the key ----------------------------------------------------------------


@pytest.mark.parametrize("name, raw", [
    ("YITI_SESSION_IDLE_MINUTES", "abc"),
    ("YITI_PROXY_FIX", "1.5"),
    ("YITI_HTTPS", "maybe"),
    ("YITI_DATABASE_ECHO", "2"),
    ("YITI_ENV", "staging"),
    ("YITI_PROXY_FIX", "-1"),
    ("YITI_PAGE_SIZE", "0"),
    ("YITI_SESSION_IDLE_MINUTES", "-5"),
    ("YITI_LOGIN_LIMIT_IP", "lots"),
    ("YITI_LOGIN_LIMIT_ACCOUNT", "5 per fortnight"),
    ("YITI_DEFAULT_TIMEZONE", "Mars/Olympus_Mons"),
])
def test_malformed_environment_setting_names_the_key(name, raw):
    with pytest.raises(ConfigError) as error:
        load_settings(environ={name: raw})

    assert name.removeprefix("YITI_") in str(error.value)
    assert raw in str(error.value)


@pytest.mark.parametrize("line, key", [
    ('session_idle_minutes = "120"', "SESSION_IDLE_MINUTES"),
    ("proxy_fix = true", "PROXY_FIX"),
    ("https = 1", "HTTPS"),
    ("plugins = [1, 2]", "PLUGINS"),
    ('plugins = "approval,crm"', "PLUGINS"),
    ("languages = [\"zh_CN\", 3]", "LANGUAGES"),
    ('env = "prod"', "ENV"),
    ("secret_key = 12345", "SECRET_KEY"),
    ("page_size = 0", "PAGE_SIZE"),
])
def test_malformed_file_setting_names_the_key(toml, line, key):
    with pytest.raises(ConfigError) as error:
        load_settings(environ=toml(line + "\n"))

    assert key in str(error.value)


def test_unknown_key_in_file_names_the_key(toml):
    with pytest.raises(ConfigError, match="sesion_idle_minutes.*unknown setting"):
        load_settings(environ=toml("sesion_idle_minutes = 30\n"))


def test_invalid_toml_names_the_file(toml, tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings(environ=toml("plugins = [approval\n"))

    assert "YITI_CONFIG" in str(error.value)
    assert str(tmp_path / "yiti.toml") in str(error.value)
    assert "TOML" in str(error.value)


def test_missing_config_file_names_the_file(tmp_path):
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError, match="does not exist") as error:
        load_settings(environ={"YITI_CONFIG": str(missing)})

    assert str(missing) in str(error.value)


def test_config_file_that_is_a_folder_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"YITI_CONFIG": str(tmp_path)})

    assert "YITI_CONFIG" in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_create_app_config_is_type_checked_but_passes_raw_flask_keys():
    with pytest.raises(ConfigError, match="PAGE_SIZE"):
        load_settings({"PAGE_SIZE": "20"}, environ={})

    settings = load_settings({"TESTING": True, "MAX_FORM_PARTS": 10}, environ={})
    assert settings["TESTING"] is True
    assert settings["MAX_FORM_PARTS"] == 10


def test_default_language_must_be_one_of_the_languages():
    with pytest.raises(ConfigError, match="DEFAULT_LANGUAGE"):
        load_settings(environ={"YITI_LANGUAGES": "en"})


def test_malformed_setting_stops_create_app(monkeypatch, start):
    monkeypatch.setenv("YITI_SESSION_IDLE_MINUTES", "abc")

    with pytest.raises(ConfigError, match="SESSION_IDLE_MINUTES"):
        start()


# Production ----------------------------------------------------------------------------------


def test_production_refuses_to_start_without_a_secret_key(start):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        start(ENV="production")


@pytest.mark.parametrize("secret", ["change-me", "secret", "yiti", "CHANGEME", "short-but-random-8Hq2"])
def test_production_refuses_to_start_with_a_weak_secret_key(start, secret):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        start(ENV="production", SECRET_KEY=secret)


def test_production_refuses_a_weak_secret_key_from_the_environment(monkeypatch, start):
    monkeypatch.setenv("YITI_ENV", "production")
    monkeypatch.setenv("YITI_SECRET_KEY", "dev")

    with pytest.raises(ConfigError, match="SECRET_KEY"):
        start()


def test_production_starts_with_a_real_secret_key(start):
    app = start(ENV="production", SECRET_KEY=STRONG_SECRET)

    assert app.secret_key == STRONG_SECRET
    assert app.test_client().get("/healthz").status_code == 200


def test_production_starts_with_the_key_yiti_init_wrote(start, tmp_path):
    key_file = write_secret_key(tmp_path / "instance")

    app = start(ENV="production")

    assert app.secret_key == key_file.read_text()


def test_production_defaults_to_secure_cookies(start):
    app = start(ENV="production", SECRET_KEY=STRONG_SECRET)

    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["PREFERRED_URL_SCHEME"] == "https"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True


def test_production_cookies_follow_an_explicit_https_setting(toml, monkeypatch, start):
    monkeypatch.setenv("YITI_CONFIG", toml("https = false\n")["YITI_CONFIG"])

    app = start(ENV="production", SECRET_KEY=STRONG_SECRET)

    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_development_cookies_are_not_secure_unless_https_is_set(start):
    assert start().config["SESSION_COOKIE_SECURE"] is False
    assert start(HTTPS=True).config["SESSION_COOKIE_SECURE"] is True


def test_development_without_a_key_generates_one_per_process(start):
    first, second = start(), start()

    assert not is_weak_secret(first.secret_key)
    assert first.secret_key != second.secret_key


# Secret key file ------------------------------------------------------------------------------


def test_write_secret_key_creates_an_owner_only_file(tmp_path):
    key_file = write_secret_key(tmp_path / "new" / "instance")

    assert key_file == tmp_path / "new" / "instance" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not is_weak_secret(key_file.read_text())


def test_write_secret_key_keeps_an_existing_key(tmp_path):
    first = write_secret_key(tmp_path).read_text()

    again = write_secret_key(tmp_path)

    assert again.read_text() == first
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]  # no draft left behind


def test_write_secret_key_never_replaces_a_key_written_meanwhile(tmp_path, monkeypatch):
    """Two `yiti init` on a shared instance folder: the key the other one wrote first stays."""
    real_link = os.link

    def link_after_a_rival(source, target):
        Path(target).write_text("the-rivals-key")
        real_link(source, target)

    monkeypatch.setattr(os, "link", link_after_a_rival)

    key_file = write_secret_key(tmp_path)

    assert key_file.read_text() == "the-rivals-key"
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]


def test_configured_secret_key_wins_over_the_key_file(tmp_path):
    key_file = write_secret_key(tmp_path)

    assert resolve_secret_key({"SECRET_KEY": STRONG_SECRET}, tmp_path) == STRONG_SECRET
    assert resolve_secret_key({"SECRET_KEY": None}, tmp_path) == key_file.read_text()
    assert resolve_secret_key({"SECRET_KEY": None}, tmp_path / "empty") is None


def test_weak_secret_detection():
    assert is_weak_secret(None)
    assert is_weak_secret("")
    assert is_weak_secret("Change-Me")
    assert is_weak_secret("x" * 31)
    assert not is_weak_secret(STRONG_SECRET)


# Database URL and proxies ---------------------------------------------------------------------


def test_database_defaults_to_sqlite_in_the_instance_folder(tmp_path, start):
    app = start(DATABASE_URL=None)

    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'instance' / 'yiti.db'}"


@pytest.mark.parametrize("url", ["postgresql://yiti@db/yiti", "postgres://yiti@db/yiti"])
def test_postgresql_urls_use_psycopg_3(url):
    from core import normalise_database_url

    assert normalise_database_url(url) == "postgresql+psycopg://yiti@db/yiti"


def _echo_client_address(app):
    @app.get("/_test/address")
    def address():
        return f"{request.remote_addr} {request.scheme}"

    return app.test_client()


def test_forwarded_headers_are_ignored_without_proxy_fix(start):
    client = _echo_client_address(start())

    response = client.get("/_test/address", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})

    assert response.get_data(as_text=True) == "127.0.0.1 http"


def test_proxy_fix_trusts_the_configured_number_of_proxies(start):
    client = _echo_client_address(start(PROXY_FIX=1))

    response = client.get("/_test/address", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9",
                                                      "X-Forwarded-Proto": "https"})

    assert response.get_data(as_text=True) == "203.0.113.9 https"
