"""Field encryption at rest: secrets (robot keys, SMTP passwords) and personal data (bank accounts, ID numbers).

Values are Fernet tokens (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a
``MultiFernet`` built from ``ENCRYPTION_KEYS``: the first key encrypts, every key decrypts. Key
rotation without downtime is therefore: generate a key (``yiti keys generate``), put it *first*
in ``YITI_ENCRYPTION_KEYS`` on every server, restart them (they now write with the new key and
still read the old), run ``yiti keys rotate`` (re-encrypts every stored value with the new key),
then drop the old key.

With no ``ENCRYPTION_KEYS`` set, one key is derived from ``SECRET_KEY`` (HKDF), so a demo works
out of the box; ``yiti check`` tells production installs to set real keys.

A model column declared ``mapped_column(EncryptedText)`` stores the token and hands the plain
text to Python; ``encrypted_columns()`` lists every such column, for rotation.
"""
from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

_CACHE = "yiti.crypto"


class DecryptionError(ValueError):
    """A stored value cannot be decrypted with any configured key (a key was dropped too early)."""


def generate_key() -> str:
    """A new random Fernet key, as text for ``YITI_ENCRYPTION_KEYS``."""
    return Fernet.generate_key().decode()


def _derived_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yiti-oa field encryption", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def keys_configured(app=None) -> bool:
    """Whether real keys are set (``False``: the key is derived from ``SECRET_KEY``)."""
    app = app or current_app
    return bool(app.config["YITI"].get("ENCRYPTION_KEYS"))


def _keys(app=None) -> tuple[MultiFernet, Fernet]:
    """``(every key, the primary key)``, built once per app from ``ENCRYPTION_KEYS``."""
    app = app or current_app
    cached = app.extensions.get(_CACHE)
    if cached is None:
        keys = list(app.config["YITI"].get("ENCRYPTION_KEYS") or [])
        fernets = [Fernet(key) for key in keys] or [Fernet(_derived_key(app.config["SECRET_KEY"]))]
        cached = app.extensions[_CACHE] = (MultiFernet(fernets), fernets[0])
    return cached


def _fernet(app=None) -> MultiFernet:
    return _keys(app)[0]


def is_current(token: str) -> bool:
    """Whether ``token`` is already encrypted with the primary key (nothing to rotate)."""
    try:
        _keys()[1].decrypt(token.encode("ascii"))
        return True
    except (InvalidToken, UnicodeEncodeError):
        return False


def encrypt(plain: str) -> str:
    """Encrypt ``plain`` with the primary key; the result is ASCII text."""
    return _fernet().encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a value written by ``encrypt`` with any configured key."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise DecryptionError("cannot decrypt a stored value with the configured ENCRYPTION_KEYS") from exc


def rotate(token: str) -> str:
    """Re-encrypt ``token`` under the primary key (unchanged plain text)."""
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise DecryptionError("cannot decrypt a stored value with the configured ENCRYPTION_KEYS") from exc


def mask(plain: str | None, keep: int = 4) -> str:
    """``6222********1234``-style display of a secret: only the last ``keep`` characters show."""
    if not plain:
        return ""
    if len(plain) <= keep:
        return "*" * len(plain)
    return "*" * min(len(plain) - keep, 12) + plain[-keep:]


class EncryptedText(TypeDecorator):
    """A text column stored encrypted; Python sees the plain text.

    Encrypted values cannot be searched or sorted in SQL; keep them out of a resource's
    ``search_fields`` and ``sort_fields``.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return encrypt(str(value))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return decrypt(value)


def encrypted_columns(metadata) -> list[tuple[str, str, str]]:
    """``(table, primary key column, column)`` for every ``EncryptedText`` column in ``metadata``."""
    found = []
    for table in metadata.sorted_tables:
        primary = list(table.primary_key.columns)
        for column in table.columns:
            if isinstance(column.type, EncryptedText) and len(primary) == 1:
                found.append((table.name, primary[0].name, column.name))
    return found
