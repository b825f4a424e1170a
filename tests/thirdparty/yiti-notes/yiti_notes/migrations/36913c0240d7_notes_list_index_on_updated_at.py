"""notes: list index on updated_at

Revision ID: 36913c0240d7
Revises: c4bfd2c7c846
Create Date: 2026-11-25 11:46:31.504792
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # autogenerate writes JSONB(astext_type=Text())


revision = '36913c0240d7'
down_revision = 'c4bfd2c7c846'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notes_note', schema=None) as batch_op:
        batch_op.create_index('ix_notes_note_updated', ['updated_at', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('notes_note', schema=None) as batch_op:
        batch_op.drop_index('ix_notes_note_updated')

