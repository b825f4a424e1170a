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
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by copying and dropping it: with foreign keys on, dropping it
            # would cascade to (delete) the rows of every table that refers to it. Off for the
            # migration (outside its transaction, where SQLite takes the pragma), checked after.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=db.metadata,
            include_object=include_object,
            render_as_batch=True,  # SQLite alters tables by copy; batch mode writes that for us
            compare_type=True,
            render_item=render_item,
        )
        try:
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            connection.commit()
            if broken:
                raise RuntimeError(f"the migration left rows whose references do not exist: {broken[:5]}")


assert current_app, "migrations run inside the app (yiti db upgrade)"
run_migrations_online()
