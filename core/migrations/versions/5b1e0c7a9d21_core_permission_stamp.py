"""core: permission stamp (cross-server cache key for grants, field rules, departments)

Revision ID: 5b1e0c7a9d21
Revises: 33605bcf0b1f
Create Date: 2026-11-25 13:50:00
"""
from alembic import op
import sqlalchemy as sa

revision = '5b1e0c7a9d21'
down_revision = '33605bcf0b1f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_permission_stamp',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_permission_stamp'))
    )


def downgrade():
    op.drop_table('core_permission_stamp')
