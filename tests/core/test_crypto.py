"""Field encryption: values round-trip, are unreadable in the table, and survive key rotation."""
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, text

from core import crypto
from core.config import ConfigError, load_settings


def test_round_trip_and_mask(make_app):
    app = make_app(plugins=[], schema=None)
    with app.app_context():
        token = crypto.encrypt("6222 0202 0000 1234")
        assert "1234" not in token
        assert crypto.decrypt(token) == "6222 0202 0000 1234"
        assert crypto.mask("6222020200001234") == "************1234"
        assert crypto.mask("12") == "**"
        assert crypto.keys_configured() is False


def test_rotation_keeps_reading_old_values(make_app):
    old, new = crypto.generate_key(), crypto.generate_key()
    app = make_app(plugins=[], schema=None, ENCRYPTION_KEYS=[old])
    with app.app_context():
        token = crypto.encrypt("secret")
    rotated_app = make_app(plugins=[], schema=None, ENCRYPTION_KEYS=[new, old])
    with rotated_app.app_context():
        assert crypto.decrypt(token) == "secret"
        fresh = crypto.rotate(token)
    only_new = make_app(plugins=[], schema=None, ENCRYPTION_KEYS=[new])
    with only_new.app_context():
        assert crypto.decrypt(fresh) == "secret"
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(token)


def test_encrypted_column_stores_ciphertext(make_app):
    app = make_app(plugins=[], schema=None)
    metadata = MetaData()
    table = Table("t_secret", metadata, Column("id", Integer, primary_key=True),
                  Column("value", crypto.EncryptedText))
    with app.app_context():
        from core.extensions import db

        metadata.create_all(db.engine)
        db.session.execute(table.insert().values(id=1, value="hunter2"))
        raw = db.session.execute(text("select value from t_secret")).scalar()
        assert "hunter2" not in raw
        assert db.session.execute(table.select()).one().value == "hunter2"
        assert crypto.encrypted_columns(metadata) == [("t_secret", "id", "value")]


def test_bad_key_is_a_config_error():
    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS"):
        load_settings(environ={"YITI_ENCRYPTION_KEYS": "not-a-key"})
