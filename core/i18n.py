"""Languages and time zones: zh_CN first, English second; every user picks their own."""
from __future__ import annotations

from functools import lru_cache

from babel import Locale
from flask import Flask, current_app, has_request_context, request, session
from flask_login import current_user

from flask_babel import Babel

LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}


def select_locale() -> str:
    """The session's choice, then the user's saved language, then the browser's, then the default."""
    languages = current_app.config["YITI"]["LANGUAGES"]
    if not has_request_context():  # CLI, jobs: the installation's default language
        return current_app.config["YITI"]["DEFAULT_LANGUAGE"]
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    if current_user and current_user.is_authenticated and current_user.language in languages:
        return current_user.language
    best = request.accept_languages.best_match(languages + ["zh", "zh-CN"])
    if best in ("zh", "zh-CN"):
        return "zh_CN"
    return best or current_app.config["YITI"]["DEFAULT_LANGUAGE"]


@lru_cache(maxsize=32)
def _parsed(code: str) -> Locale:
    """``Locale.parse`` once per language: parsing looks the locale data up, a cost on every request."""
    return Locale.parse(code)


def _babel_locale() -> Locale:
    """Flask-Babel's locale selector: ``select_locale()`` as a ``Locale`` it uses as it is."""
    return _parsed(select_locale())


def select_timezone() -> str:
    if has_request_context() and current_user and current_user.is_authenticated and current_user.timezone:
        return current_user.timezone
    return current_app.config["YITI"]["DEFAULT_TIMEZONE"]


def init_app(app: Flask, plugins) -> None:
    """Set up Flask-Babel with the core's catalogue plus every enabled plugin's ``translations`` folder.

    Babel expands ``zh_CN`` to ``zh_Hans_CN`` and looks catalogues up by that name, so the
    Simplified Chinese catalogues live in ``translations/zh_Hans_CN/`` (which Traditional
    Chinese locales never match).
    """
    folders = [plugins.package_dir("core") / "translations"]
    folders += [plugins.package_dir(name) / "translations" for name in plugins.names]
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(str(f) for f in folders if f.is_dir())
    app.config["BABEL_DEFAULT_LOCALE"] = app.config["YITI"]["DEFAULT_LANGUAGE"]
    app.config["BABEL_DEFAULT_TIMEZONE"] = "UTC"
    # One Babel per app, not a shared extension object: Flask-Babel caches loaded catalogues on
    # it, and apps with different plugins need different catalogues.
    Babel(app, locale_selector=_babel_locale, timezone_selector=select_timezone)

    @app.context_processor
    def _languages():
        return {
            "current_language": select_locale(),
            "language_names": LANGUAGE_NAMES,
            "languages": app.config["YITI"]["LANGUAGES"],
        }

