"""The ``yiti`` command: ``run``, ``init``, ``demo``, ``db``, ``plugins``, ``users``.

It is a Flask CLI group, so plugins add commands through ``register_cli`` and every command runs
inside the app. ``yiti plugins ...`` starts the core without plugins, so a plugin that breaks
start-up can still be disabled.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, ScriptInfo, pass_script_info, with_appcontext

from core import ConfigError, PluginError, create_app
from core.extensions import db


def _make_app():
    try:
        return create_app()
    except (ConfigError, PluginError) as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_make_app, add_version_option=False, load_dotenv=False)
def cli():
    """Yiti OA: a self-hosted office-automation suite."""


def main():
    cli.main(prog_name="yiti")


def _require_schema() -> None:
    """Stop with a clear message, not a traceback, when `yiti init` has not created the tables."""
    from sqlalchemy import inspect

    if not inspect(db.engine).has_table("core_user"):
        raise click.ClickException("The database has no Yiti OA tables yet: run `yiti init` first.")


# init / demo ------------------------------------------------------------------------------------


@cli.command("init", with_appcontext=False)
@pass_script_info
def init_command(info: ScriptInfo):
    """Create the secret key, the database schema and the built-in roles (safe to run again)."""
    from core import migrate
    from core.config import load_settings, write_secret_key
    from core.permissions.services import apply_role_templates

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if settings["ENV"] == "production" and not settings["SECRET_KEY"]:
        # Production refuses to start without a key, so it must exist before the app does.
        instance = settings["INSTANCE_PATH"] or Flask("core").instance_path
        write_secret_key(Path(instance))
    with info.load_app().app_context():
        key_file = write_secret_key(Path(current_app.instance_path))
        migrate.upgrade()
        apply_role_templates()
        db.session.commit()
        click.echo(f"Secret key: {key_file}")
        click.echo(f"Database:   {db.engine.url.render_as_string(hide_password=True)} (migrated)")


@cli.command("demo")
@click.option("--password", default=None, help="Password for every demo user (default: a fixed demo password).")
@with_appcontext
def demo_command(password):
    """Create a sample company (departments, users, roles) and each plugin's demo data."""
    from core import demo
    from core.org.services import find_user

    _require_schema()
    existing = {username for username, *_rest in demo.USERS if find_user(username) is not None}
    company = demo.create_demo_company(password)
    db.session.commit()
    click.echo("Demo company ready. Log in at http://127.0.0.1:5000 as:")
    for username, user in company.users.items():
        department = user.department.name if user.department else ""
        click.echo(f"  {username:<10} {user.display_name:<6} {department}")
    # Existing users keep their password: never print one that does not work for them.
    created = [username for username in company.users if username not in existing]
    if len(created) == len(company.users):
        click.echo(f"Password for every demo user: {company.password}")
    elif created:
        click.echo(f"Password for {', '.join(created)}: {company.password} (the other users keep theirs)")
    else:
        click.echo("The demo users already existed; their passwords are unchanged.")


# worker -------------------------------------------------------------------------------------------


@cli.command("worker")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Job threads (default: JOBS_WORKERS).")
@with_appcontext
def worker_command(workers):
    """Run background jobs: the outbox sweeper and every plugin's periodic jobs (until stopped)."""
    from core import jobs

    _require_schema()
    app = current_app._get_current_object()
    try:
        names = list(jobs.periodic_jobs(app))
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    # Warnings and errors (a failed delivery, a job that raised) go to stderr with time and source,
    # unless the installer configured logging already.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(f"Worker started with periodic jobs: {', '.join(names)}", err=True)
    jobs.run_worker(app, workers)


# db -----------------------------------------------------------------------------------------------


@cli.group("db")
def db_group():
    """Database schema migrations."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade():
    """Migrate the core and every enabled plugin to the latest schema."""
    from core import migrate

    migrate.upgrade()
    click.echo("Database is up to date: " + ", ".join(migrate.branches()))


@db_group.command("status")
@with_appcontext
def db_status():
    """Say which branches still have migrations to apply (exit 1 if any)."""
    from core import migrate

    behind = migrate.pending()
    if behind:
        click.echo("Pending: " + ", ".join(behind))
        sys.exit(1)
    click.echo("Up to date.")


@db_group.command("revision")
@click.option("--branch", default="core", show_default=True, help="core or a plugin name")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate/--empty", default=True)
@with_appcontext
def db_revision(branch, message, autogenerate):
    """Write a new migration for one branch, comparing only that branch's tables."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from core import migrate

    plugins = current_app.extensions["plugins"]
    folder = migrate.CORE_DIR / "versions" if branch == "core" else plugins.package_dir(branch) / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = migrate.alembic_config()
    cfg.attributes["table_prefix"] = f"{branch}_"
    labels = {label for rev in ScriptDirectory.from_config(cfg).walk_revisions() for label in rev.branch_labels}
    if branch in labels:
        command.revision(cfg, message, autogenerate=autogenerate, head=f"{branch}@head")
    else:
        command.revision(cfg, message, autogenerate=autogenerate, head="base", branch_label=branch,
                         version_path=str(folder), depends_on="core@head" if branch != "core" else None)


# plugins ------------------------------------------------------------------------------------------


def _core_only_app():
    try:
        return create_app(load_plugins=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group("plugins")
def plugins_group():
    """List, enable and disable plugins (changes apply at the next start)."""


@plugins_group.command("list", with_appcontext=False)
def plugins_list():
    """Every installed plugin and whether it is enabled."""
    from core.plugins_admin import plugin_rows

    with _core_only_app().app_context():
        _require_schema()
        info = plugin_rows()
        for row in info["rows"]:
            state = "enabled" if row["enabled"] else "disabled"
            requires = ", ".join(row["requires"]) or "-"
            click.echo(f"{row['name']:<12} {row['version']:<8} {state:<9} requires: {requires:<12} {row['distribution']}")
        if info["locked"]:
            click.echo("(set by YITI_PLUGINS)")


def _toggle(name: str, enabled: bool) -> None:
    from core.errors import BusinessRuleError
    from core.plugins_admin import set_enabled

    with _core_only_app().app_context():
        _require_schema()
        try:
            names = set_enabled(name, enabled)
        except BusinessRuleError as exc:
            raise click.ClickException(str(exc.message)) from None
        db.session.commit()
    click.echo(f"Enabled plugins: {', '.join(names) or '(none)'}. Restart Yiti OA to apply.")


@plugins_group.command("enable", with_appcontext=False)
@click.argument("name")
def plugins_enable(name):
    """Enable NAME (its requirements must be enabled)."""
    _toggle(name, True)


@plugins_group.command("disable", with_appcontext=False)
@click.argument("name")
def plugins_disable(name):
    """Disable NAME; its data stays in the database."""
    _toggle(name, False)


# users --------------------------------------------------------------------------------------------


@cli.group("users")
def users_group():
    """Manage user accounts."""


@users_group.command("create-admin")
@click.option("--username", default="admin", show_default=True)
@click.option("--name", "display_name", default="系统管理员", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_admin(username, display_name, password):
    """Create an administrator (or give an existing user the admin role and this password)."""
    from core.errors import DomainError
    from core.org import services
    from core.org.roles import ensure_default_roles

    _require_schema()
    ensure_default_roles()
    try:
        user = services.find_user(username)
        if user is None:
            user = services.create_user(None, {"username": username, "display_name": display_name,
                                               "password": password, "roles": ["admin"]})
        else:
            services.update_user(None, user.id, {"password": password, "roles": sorted(user.role_keys | {"admin"}),
                                                 "active": True})
    except DomainError as exc:
        db.session.rollback()
        details = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items())
        raise click.ClickException(f"{exc.message} {details}".strip()) from None
    db.session.commit()
    click.echo(f"Administrator {user.username} is ready.")


# backup / restore ---------------------------------------------------------------------------------


@cli.command("backup")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Archive to write (default: BACKUP_DIR/yiti-<time>.zip, BACKUP_DIR being instance/backups unless set).")
@click.option("--verify", "verify_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Instead of backing up, restore FILE into a throw-away database and report.")
@with_appcontext
def backup_command(output, verify_file):
    """Write a portable backup of every table and uploaded file, or verify one."""
    from core import backup

    if verify_file:
        try:
            report = backup.verify_archive(Path(verify_file))
        except backup.BackupError as exc:
            raise click.ClickException(f"Verification failed: {exc}") from None
        click.echo(f"Verified {verify_file}: {report['tables']} tables, {report['rows']} rows, "
                   f"{report['files']} files restored and matched their checksums.")
        return
    from core import clock

    if output is None:
        from core.backup_runs import backup_dir

        stamp = clock.now().strftime("%Y%m%d-%H%M%S")
        output = backup_dir() / f"yiti-{stamp}.zip"
    started = clock.now()
    manifest = backup.create_backup(Path(output))
    rows = sum(t["rows"] for t in manifest["tables"].values())
    click.echo(f"Backup written to {output}: {len(manifest['tables'])} tables, {rows} rows, "
               f"{len(manifest['files'])} files.")
    _record_backup(Path(output), manifest, "manual", started)


def _record_backup(path: Path, manifest: dict, trigger: str, started) -> None:
    """List a backup written from the command line on the admin page (when the schema has the table)."""
    from sqlalchemy import inspect

    from core import backup_runs

    if not inspect(db.engine).has_table(backup_runs.BackupRun.__tablename__):
        return  # a schema from before backups were recorded: `yiti upgrade` creates the table
    backup_runs.record_backup(path, manifest, trigger, started)
    db.session.commit()


@cli.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def restore_command(archive):
    """Restore ARCHIVE into this (empty) database, verify it, then migrate to this version."""
    from core import backup

    try:
        report = backup.restore_backup(Path(archive))
    except backup.BackupError as exc:
        raise click.ClickException(f"Restore refused: {exc}") from None
    click.echo(f"Restored {report['tables']} tables, {report['rows']} rows and {report['files']} files; "
               "counts and checksums match the archive.")


# upgrade / check ----------------------------------------------------------------------------------


@cli.command("upgrade")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Where to write the backup taken first (default: BACKUP_DIR/yiti-pre-upgrade-<time>.zip).")
@with_appcontext
def upgrade_command(output):
    """Back up the database, then migrate it to this version; nothing is migrated if the backup fails."""
    from core import backup, clock, migrate

    if output is None:
        stamp = clock.now().strftime("%Y%m%d-%H%M%S")
        from core.backup_runs import backup_dir

        output = backup_dir() / f"yiti-pre-upgrade-{stamp}.zip"
    behind = migrate.pending()
    started = clock.now()
    try:
        manifest = backup.create_backup(Path(output))
    except Exception as exc:  # whatever stopped the backup, the database must stay untouched
        db.session.rollback()
        raise click.ClickException(f"Backup failed, so nothing was migrated: {exc.__class__.__name__}: {exc}") from None
    rows = sum(t["rows"] for t in manifest["tables"].values())
    click.echo(f"Backup written to {output}: {len(manifest['tables'])} tables, {rows} rows.")
    if not behind:
        click.echo("The database was already up to date; no migration was needed.")
        _record_backup(Path(output), manifest, "upgrade", started)
        return
    migrate.upgrade()
    _record_backup(Path(output), manifest, "upgrade", started)
    click.echo("Migrated: " + ", ".join(behind) + ". To go back, restore the backup above into an empty database.")


@cli.command("check", with_appcontext=False)
@click.option("--workers", type=click.IntRange(1, 512), default=None,
              help="Web worker processes per server (default: YITI_WORKERS, WEB_CONCURRENCY, else gunicorn.conf.py's).")
@click.option("--servers", type=click.IntRange(1, 512), default=1, show_default=True, envvar="YITI_SERVERS",
              help="App servers sharing this database (also YITI_SERVERS).")
@click.option("--behind-proxy/--direct", "behind_proxy", default=None,
              help="Whether a reverse proxy stands in front (default: yes when YITI_BIND is a local address).")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@pass_script_info
def check_command(info: ScriptInfo, workers, servers, behind_proxy, as_json):
    """Report misconfiguration before going live (exit 1 if anything must be fixed)."""
    import json

    from core import checks

    try:
        app = info.load_app()
    except (click.ClickException, ConfigError, PluginError) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        findings = [checks.Finding("config", checks.ERROR, message,
                                   "Fix the setting named above (environment file or YITI_CONFIG), then run again.")]
    else:
        with app.app_context():
            findings = checks.run_checks(app, workers=workers, servers=servers, behind_proxy=behind_proxy)
    errors = sum(f.level == checks.ERROR for f in findings)
    warnings = sum(f.level == checks.WARNING for f in findings)
    if as_json:
        click.echo(json.dumps({"ok": errors == 0, "errors": errors, "warnings": warnings,
                               "findings": [f.as_dict() for f in findings]}, ensure_ascii=False, indent=2))
    else:
        labels = {checks.ERROR: click.style("ERROR", fg="red", bold=True),
                  checks.WARNING: click.style("WARN ", fg="yellow"), checks.OK: click.style("ok   ", fg="green")}
        for finding in findings:
            click.echo(f"{labels[finding.level]} {finding.check:<18} {finding.message}")
            if finding.action:
                click.echo(f"{'':<25}-> {finding.action}")
        verdict = "fix the errors before going live." if errors else "ready to go live."
        click.echo(f"\n{errors} error(s), {warnings} warning(s): {verdict}")
    if errors:
        sys.exit(1)


# keys / export ------------------------------------------------------------------------------------

from core.ops_cli import export_command, keys_group  # noqa: E402

cli.add_command(keys_group)
cli.add_command(export_command)
