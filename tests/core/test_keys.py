"""Key rotation: every encrypted value is re-encrypted with the new key in batches, so the old key
can be removed; a value no key can read stops the rotation before anything changes."""
from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text

from core import checks, crypto, keys
from core.extensions import db

ROWS = 1203  # more than two batches of 500, and not a multiple of the batch size


def use_keys(app, *keys_):
    app.config["YITI"]["ENCRYPTION_KEYS"] = list(keys_)
    app.extensions.pop("yiti.crypto", None)


@pytest.fixture
def secrets_table():
    metadata = MetaData()
    table = Table("t_rotate_secret", metadata, Column("id", Integer, primary_key=True),
                  Column("label", String(20)), Column("value", crypto.EncryptedText))
    return metadata, table


def tokens(table) -> dict[int, str]:
    return dict(db.session.execute(text(f"SELECT id, value FROM {table.name} WHERE value IS NOT NULL")).all())


def test_rotate_re_encrypts_everything_so_the_old_key_can_go(make_app, secrets_table):
    metadata, table = secrets_table
    old, new = crypto.generate_key(), crypto.generate_key()
    app = make_app(plugins=(), schema=None, ENCRYPTION_KEYS=[old])
    with app.app_context():
        metadata.create_all(db.engine)
        db.session.execute(table.insert(), [{"id": i, "label": f"r{i}", "value": None if i % 100 == 0 else f"秘密-{i}"}
                                            for i in range(1, ROWS + 1)])
        db.session.commit()
        before = tokens(table)
        assert all(Fernet(old).decrypt(t.encode()) for t in before.values())

        use_keys(app, new, old)
        report = keys.rotate_all(metadata, batch=500)
        stored = len(before)
        assert report == {"t_rotate_secret.value": {"rotated": stored, "current": 0}}
        after = tokens(table)
        assert after.keys() == before.keys() and all(after[i] != before[i] for i in before)
        # Idempotent: a second run finds nothing to do.
        assert keys.rotate_all(metadata, batch=500) == {"t_rotate_secret.value": {"rotated": 0, "current": stored}}
        assert tokens(table) == after

        use_keys(app, new)  # the old key is gone
        rows = db.session.execute(select(table).order_by(table.c.id)).all()
        assert [r.value for r in rows] == [None if i % 100 == 0 else f"秘密-{i}" for i in range(1, ROWS + 1)]
        assert rows[0].label == "r1"
        db.session.commit()
        metadata.drop_all(db.engine)


def test_a_value_no_key_can_read_stops_rotation_before_any_change(make_app, secrets_table):
    metadata, table = secrets_table
    old, new, lost = crypto.generate_key(), crypto.generate_key(), crypto.generate_key()
    app = make_app(plugins=(), schema=None, ENCRYPTION_KEYS=[old])
    with app.app_context():
        metadata.create_all(db.engine)
        db.session.execute(table.insert(), [{"id": i, "value": f"v{i}"} for i in range(1, 11)])
        db.session.execute(text(f"INSERT INTO {table.name} (id, value) VALUES (11, :t)"),
                           {"t": Fernet(lost).encrypt(b"written with a key that was dropped").decode()})
        db.session.commit()
        before = tokens(table)
        use_keys(app, new, old)
        with pytest.raises(crypto.DecryptionError, match=r"t_rotate_secret\.value of row id=11"):
            keys.rotate_all(metadata, batch=3)
        assert tokens(table) == before
        db.session.commit()
        metadata.drop_all(db.engine)


def test_cli_generate_and_rotate(make_app):
    app = make_app(plugins=())
    from flask.cli import ScriptInfo

    from core.cli import cli

    runner = app.test_cli_runner()
    info = ScriptInfo(create_app=lambda: app)
    result = runner.invoke(cli, ["keys", "generate"], obj=info)
    assert result.exit_code == 0, result.output
    key = result.stdout.splitlines()[0]
    Fernet(key)  # a usable key
    use_keys(app, key)
    result = runner.invoke(cli, ["keys", "rotate", "--batch-size", "10"], obj=info)
    assert result.exit_code == 0, result.output
    assert "the old keys can be removed" in result.output
    with app.app_context():
        from core.audit.models import AuditEntry

        entry = db.session.scalars(select(AuditEntry).where(AuditEntry.resource == "core.encryption_keys")).one()
        assert entry.actor_name == "cli"


def test_check_warns_in_production_without_keys(make_app):
    app = make_app(plugins=(), schema=None)
    with app.app_context():
        ctx = checks.Context(app=app, workers=1, workers_source="test")
        assert checks.check_encryption_keys(ctx) == []  # development: the derived key is fine
        app.config["YITI"]["ENV"] = "production"
        [finding] = checks.check_encryption_keys(ctx)
        assert finding.level == checks.WARNING and "ENCRYPTION_KEYS" in finding.message
        use_keys(app, crypto.generate_key())
        assert checks.check_encryption_keys(ctx)[0].level == checks.OK
