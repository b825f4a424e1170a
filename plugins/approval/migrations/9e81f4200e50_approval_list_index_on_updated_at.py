"""approval: list index on updated_at

Revision ID: 9e81f4200e50
Revises: 91ee4d5364e7
Create Date: 2026-11-25 11:59:47.365874
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # autogenerate writes JSONB(astext_type=Text())


revision = '9e81f4200e50'
down_revision = '91ee4d5364e7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.create_index('ix_approval_request_updated', ['updated_at', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_request_updated')

