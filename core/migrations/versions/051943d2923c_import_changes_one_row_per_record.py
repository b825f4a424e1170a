"""core: what an import wrote, one row per record (undo reads it; no list rewritten per batch)

Imports applied before this migration keep their undo: their ``created`` and ``updated_records``
lists are copied into ``core_import_change`` before the columns go.

Revision ID: 051943d2923c
Revises: 0f68bb2d0b68
Create Date: 2026-12-07 02:11:16.942473
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # autogenerate writes JSONB(astext_type=Text())
from sqlalchemy.dialects import postgresql

revision = '051943d2923c'
down_revision = '0f68bb2d0b68'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_import_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['core_import.id'], name=op.f('fk_core_import_change_import_id_core_import'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_import_change'))
    )
    with op.batch_alter_table('core_import_change', schema=None) as batch_op:
        batch_op.create_index('ix_core_import_change_import_id_id', ['import_id', 'id'], unique=False)
    _copy_the_lists()
    # SQLite drops the columns by copying core_import (env.py turns foreign keys off meanwhile, so
    # the copied rows above are not cascaded away); reflecting it must not reflect the tables it
    # refers to (core_user's expression index cannot be reflected and would only warn).
    with op.batch_alter_table('core_import', schema=None, reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.drop_column('updated_records')
        batch_op.drop_column('created')


_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')


def _copy_the_lists():
    imports = sa.table('core_import', sa.column('id', sa.Integer), sa.column('created', _JSON),
                       sa.column('updated_records', _JSON))
    changes = sa.table('core_import_change', sa.column('import_id', sa.Integer), sa.column('kind', sa.String),
                       sa.column('record_id', sa.Integer), sa.column('version', sa.Integer), sa.column('before', _JSON))
    conn = op.get_bind()
    for import_id, created, updated in conn.execute(sa.select(imports.c.id, imports.c.created, imports.c.updated_records)
                                                    .order_by(imports.c.id)).all():
        rows = [{"import_id": import_id, "kind": "insert", "record_id": record_id, "version": version, "before": None}
                for record_id, version in created or []]
        rows += [{"import_id": import_id, "kind": "update", "record_id": change["id"], "version": change["version"],
                  "before": change["before"]} for change in updated or []]
        if rows:
            conn.execute(changes.insert(), rows)


def downgrade():
    # The lists come back empty: what imports wrote since the upgrade can no longer be undone.
    with op.batch_alter_table('core_import', schema=None, reflect_kwargs={"resolve_fks": False}) as batch_op:
        batch_op.add_column(sa.Column('created', _JSON, nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('updated_records', _JSON, nullable=False, server_default='[]'))

    with op.batch_alter_table('core_import_change', schema=None) as batch_op:
        batch_op.drop_index('ix_core_import_change_import_id_id')

    op.drop_table('core_import_change')
