"""Alembic environment: runs inside the Flask app, on its engine and models."""
from alembic import context
from flask import current_app

from core.extensions import db

config = context.config


def include_object(obj, name, type_, reflected, compare_to):
    """Autogenerate compares only the tables of the branch being written (see ``yiti db revision``)."""
    prefix = config.attributes.get("table_prefix")
    if type_ == "table" and prefix:
        return name.startswith(prefix)
    table = getattr(obj, "table", None)
    if prefix and table is not None:
        return table.name.startswith(prefix)
    return True


def render_item(type_, obj, autogen_context):
    """Write our column types as plain SQLAlchemy types, so a migration never imports the core."""
    from core.crypto import EncryptedText
    from core.models import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, EncryptedText):
        return "sa.Text()"  # the ciphertext
    return False


def run_migrations_online() -> None:
    with db.engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            include_object=include_object,
            render_as_batch=True,  # SQLite alters tables by copy; batch mode writes that for us
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()


assert current_app, "migrations run inside the app (yiti db upgrade)"
run_migrations_online()
