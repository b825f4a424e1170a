"""Backups: round trips across engines, damaged archives, non-empty targets, interrupted backups."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select, text

from core import backup, create_app
from core.extensions import db

from tests.conftest import FAST_HASH, PASSWORD, Client

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")
OTHER = {"sqlite": "postgresql", "postgresql": "sqlite"}


@pytest.fixture
def other_database(engine_name, tmp_path, request):
    """An empty database of the *other* engine than this test's."""
    if OTHER[engine_name] == "sqlite":
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"r_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{url}?options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def seeded(make_app):
    """A migrated database with the demo company and some records with awkward values."""
    app = make_app(plugins=WITH_NOTES, schema="migrate")
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    client = Client(app)
    client.login("sales1")
    for title in ("换行\n和引号\"", "emoji 🚀", "13800138000"):
        assert client.api("post", "/api/v1/notes/notes", json={"title": title, "body": "正文"}).status_code == 201
    return app


def other_app(url, tmp_path):
    return create_app({"TESTING": True, "DATABASE_URL": url, "PLUGINS": list(WITH_NOTES),
                       "INSTANCE_PATH": str(tmp_path / "other-instance"), "PASSWORD_HASH": FAST_HASH,
                       "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789"})


def test_round_trip_into_the_other_engine_keeps_every_row(make_app, other_database, tmp_path):
    app = seeded(make_app)
    archive = tmp_path / "demo.zip"
    with app.app_context():
        first = backup.create_backup(archive)
    assert first["tables"]["core_user"]["rows"] == 9
    assert first["tables"]["notes_note"]["rows"] >= 3
    assert first["migration_heads"]

    target = other_app(other_database, tmp_path)
    with target.app_context():
        report = backup.restore_backup(archive)
        assert report["rows"] == sum(t["rows"] for t in first["tables"].values())
        second = backup.create_backup(tmp_path / "again.zip")
        # The restored system works: people log in, ids keep counting from where they were.
        from core import migrate

        assert migrate.pending() == []
        db.session.remove()
    assert {t: i["sha256"] for t, i in second["tables"].items()} == {t: i["sha256"] for t, i in first["tables"].items()}
    client = Client(target)
    assert client.login("sales1").status_code == 302
    created = client.api("post", "/api/v1/notes/notes", json={"title": "恢复后新建"})
    assert created.status_code == 201
    assert created.get_json()["id"] > max(json.loads(line)["id"] for line in zipfile.ZipFile(archive).open(
        "tables/notes_note.jsonl"))
    with target.app_context():
        db.engine.dispose()


def test_a_damaged_archive_is_refused_and_nothing_is_restored(make_app, other_database, tmp_path):
    app = seeded(make_app)
    archive = tmp_path / "demo.zip"
    with app.app_context():
        backup.create_backup(archive)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "tables/core_user.jsonl":
                data = data.replace(b"sales1", b"sales9")
            target.writestr(item, data)
    restored = other_app(other_database, tmp_path)
    with restored.app_context():
        with pytest.raises(backup.BackupError, match="core_user is damaged"):
            backup.restore_backup(damaged)
        assert db.session.execute(text("SELECT 1")).scalar() == 1
        from sqlalchemy import inspect

        assert inspect(db.engine).get_table_names() == []  # nothing was created or loaded
        with pytest.raises(backup.BackupError, match="not a backup archive|damaged"):
            (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really a zip")
            backup.restore_backup(tmp_path / "junk.zip")
        db.engine.dispose()


def test_restore_refuses_a_database_that_is_not_empty(make_app, tmp_path):
    app = seeded(make_app)
    archive = tmp_path / "demo.zip"
    with app.app_context():
        backup.create_backup(archive)
        with pytest.raises(backup.BackupError, match="not empty"):
            backup.restore_backup(archive)
        assert db.session.scalar(text("SELECT count(*) FROM core_user")) == 9


def test_a_failed_load_leaves_no_rows_behind(make_app, other_database, tmp_path):
    app = seeded(make_app)
    archive = tmp_path / "demo.zip"
    with app.app_context():
        manifest = backup.create_backup(archive)
    # A row the target cannot take (a NOT NULL column emptied), with its checksum made to match.
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(broken, "w") as target:
        lines = source.read("tables/notes_note.jsonl").decode().splitlines(keepends=True)
        row = json.loads(lines[-1])
        row["title"] = None
        lines[-1] = json.dumps(row, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
        data = "".join(lines).encode()
        import hashlib

        manifest["tables"]["notes_note"]["sha256"] = hashlib.sha256(data).hexdigest()
        for item in source.infolist():
            if item.filename == "tables/notes_note.jsonl":
                target.writestr(item, data)
            elif item.filename == "manifest.json":
                target.writestr(item, json.dumps(manifest))
            else:
                target.writestr(item, source.read(item))
    restored = other_app(other_database, tmp_path)
    with restored.app_context():
        with pytest.raises(Exception):
            backup.restore_backup(broken)
        db.session.rollback()
        assert db.session.scalar(text("SELECT count(*) FROM core_user")) == 0
        db.engine.dispose()


def test_verify_restores_into_a_throw_away_database(make_app, tmp_path):
    app = seeded(make_app)
    archive = tmp_path / "demo.zip"
    with app.app_context():
        backup.create_backup(archive)
        report = backup.verify_archive(archive)
    assert report["tables"] > 5 and report["rows"] > 20


def test_cli_backup_and_verify(make_app, tmp_path):
    app = seeded(make_app)
    archive = tmp_path / "cli.zip"
    from flask.cli import ScriptInfo

    from core.cli import cli

    runner = app.test_cli_runner()
    info = ScriptInfo(create_app=lambda: app)

    def invoke(*args):
        return runner.invoke(cli, list(args), obj=info)

    result = invoke("backup", "--output", str(archive))
    assert result.exit_code == 0, result.output
    assert "Backup written" in result.output and archive.exists()
    result = invoke("backup", "--verify", str(archive))
    assert result.exit_code == 0, result.output
    assert "Verified" in result.output
    result = invoke("restore", str(archive))
    assert result.exit_code != 0 and "not empty" in result.output


def test_an_interrupted_backup_leaves_no_archive_that_looks_valid(tmp_path):
    """Kill ``yiti backup`` with SIGKILL half-way: the target name never appears, the partial file is refused."""
    instance = tmp_path / "instance"
    env = {**os.environ, "YITI_INSTANCE_PATH": str(instance), "YITI_PLUGINS": "notes",
           "YITI_PASSWORD_HASH": FAST_HASH, "YITI_DATABASE_URL": f"sqlite:///{instance / 'yiti.db'}"}
    yiti = str(Path(sys.executable).parent / "yiti")
    subprocess.run([yiti, "init"], env=env, check=True, capture_output=True)
    engine = create_engine(f"sqlite:///{instance / 'yiti.db'}")
    with engine.begin() as conn:
        from yiti_notes.models import Note

        from core import clock

        now = clock.now()
        conn.execute(insert(Note.__table__), [{"title": f"note {i} " + "x" * 200, "body": "y" * 500, "version": 1,
                                               "custom": {}, "created_at": now, "updated_at": now}
                                              for i in range(60000)])
    engine.dispose()
    output = tmp_path / "big.zip"
    process = subprocess.Popen([yiti, "backup", "--output", str(output)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    partial = output.with_name(output.name + ".partial")
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, "the backup finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert not output.exists()
    if partial.exists():
        with pytest.raises(backup.BackupError):
            backup.read_manifest(partial)
