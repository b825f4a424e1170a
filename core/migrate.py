"""Alembic migrations with one branch per owner: ``core`` plus one per plugin.

A plugin's revisions live in ``<package>/migrations/``, its first revision labelled with the
plugin's name. Every *installed* plugin's folder is on the version path, so a database that once
had a plugin enabled still upgrades after it is disabled; only enabled branches are upgraded.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app

from core.extensions import db

CORE_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config for the current app, built in code (no alembic.ini to keep in step)."""
    plugins = current_app.extensions["plugins"]
    locations = [CORE_DIR / "versions"]
    for name in sorted(plugins.installed):
        folder = plugins.package_dir(name) / "migrations"
        if folder.is_dir():
            locations.append(folder)
    cfg = Config()
    cfg.set_main_option("script_location", str(CORE_DIR))
    cfg.set_main_option("version_locations", ";".join(str(p) for p in locations))
    cfg.set_main_option("path_separator", ";")
    cfg.set_main_option("version_path_separator", ";")
    return cfg


def branches() -> list[str]:
    """The branches the running app needs: the core's and each enabled plugin's that has one."""
    script = ScriptDirectory.from_config(alembic_config())
    labels = {label for rev in script.walk_revisions() for label in rev.branch_labels}
    return ["core"] + [name for name in current_app.extensions["plugins"].names if name in labels]


def upgrade() -> None:
    """Bring the core's and every enabled plugin's branch to its head."""
    cfg = alembic_config()
    for branch in branches():
        command.upgrade(cfg, f"{branch}@head")


def pending() -> list[str]:
    """Branches whose head the database has not reached (empty when up to date)."""
    script = ScriptDirectory.from_config(alembic_config())
    with db.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    reached = set()
    for rev in current:
        reached.update(r.revision for r in script.iterate_revisions(rev, "base"))
    return [b for b in branches() if script.get_revision(f"{b}@head").revision not in reached]
