"""Password hashing (a memory-hard KDF, scrypt via werkzeug) and the password policy."""
from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from core.errors import ValidationError


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["YITI"]["PASSWORD_HASH"])


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a user with no password (not yet set) never matches."""
    return bool(password_hash) and check_password_hash(password_hash, password)


@cache
def _common_passwords() -> frozenset[str]:
    text = (Path(__file__).parent / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def policy_errors(password: str, username: str = "") -> list[str]:
    """Why ``password`` is not acceptable (an empty list when it is)."""
    minimum = current_app.config["YITI"]["PASSWORD_MIN_LENGTH"]
    errors = []
    if len(password) < minimum:
        errors.append(_("Use at least %(n)d characters.", n=minimum))
    lowered = password.lower()
    if lowered in _common_passwords() or len(set(lowered)) <= 2:
        errors.append(_("This password is too common; choose another."))
    if username and username.lower() in lowered:
        errors.append(_("The password must not contain the username."))
    return errors


def check_policy(password: str, username: str = "", field: str = "password") -> None:
    """Raise a field ``ValidationError`` when ``password`` breaks the policy."""
    errors = policy_errors(password, username)
    if errors:
        raise ValidationError(_("The password is not strong enough."), fields={field: errors})
