"""Operations commands: ``yiti keys generate|rotate`` and ``yiti export`` (added to the ``yiti`` group)."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import AppGroup, with_appcontext

from core.errors import DomainError
from core.extensions import db


@click.group("keys", cls=AppGroup)
def keys_group():
    """Encryption keys for fields encrypted at rest (ENCRYPTION_KEYS)."""


@keys_group.command("generate", with_appcontext=False)
def keys_generate():
    """Print a new key, and how to put it into service without downtime."""
    from core.crypto import generate_key

    key = generate_key()
    click.echo(key)
    click.echo("\nTo start using it (no downtime):\n"
               "  1. put it FIRST in YITI_ENCRYPTION_KEYS on every server, keeping the old keys after it\n"
               "     (comma-separated), and restart the servers and the worker;\n"
               "  2. run `yiti keys rotate` to re-encrypt what is stored with it;\n"
               "  3. remove the old keys from YITI_ENCRYPTION_KEYS and restart again.\n"
               "Keep every key with the backups: a backup holds encrypted fields as they are stored.", err=True)


@keys_group.command("rotate")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Rows re-encrypted per transaction.")
def keys_rotate(batch_size):
    """Re-encrypt every encrypted field with the first key of ENCRYPTION_KEYS (online, safe to repeat)."""
    from core import audit, crypto, keys

    if not crypto.keys_configured():
        click.echo("ENCRYPTION_KEYS is not set: values are encrypted with a key derived from SECRET_KEY. "
                   "Run `yiti keys generate` first.", err=True)
    try:
        report = keys.rotate_all(batch=batch_size)
    except crypto.DecryptionError as exc:
        raise click.ClickException(f"Nothing was rotated: {exc}") from None
    for name, counts in report.items():
        click.echo(f"{name:<40} {counts['rotated']:>9} re-encrypted {counts['current']:>9} already current")
    rotated = sum(c["rotated"] for c in report.values())
    audit.record("update", resource="core.encryption_keys", summary="keys rotated", actor_name="cli",
                 changes={"rotated": rotated, "columns": sorted(report)})
    db.session.commit()
    click.echo(f"{rotated} value(s) re-encrypted in {len(report)} column(s). "
               "Every value is now readable with the first key alone: the old keys can be removed.")


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default="xlsx", show_default=True)
@click.option("--plugin", default=None, help="Only this plugin's tables (or `core`); default: everything.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True,
              help="File to write (.xlsx, or .zip of CSV files).")
@with_appcontext
def export_command(fmt, plugin, output):
    """Export every table (or one plugin's) as an XLSX workbook or a ZIP of CSV files, for people."""
    from core import export

    if plugin is not None and plugin not in export.owners():
        raise click.ClickException(f"Unknown or disabled plugin {plugin!r}: choose from {', '.join(export.owners())}.")
    output = Path(output)
    partial = output.with_name(output.name + ".partial")
    try:
        counts = export.export(partial, fmt, plugin, actor_name="cli")
        partial.replace(output)
    except DomainError as exc:
        raise click.ClickException(str(exc.message)) from None
    finally:
        export.remove_quietly(partial)
    db.session.commit()
    click.echo(f"Exported {len(counts)} tables, {sum(counts.values())} rows to {output}.")
