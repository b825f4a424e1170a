"""core: revoked sessions (a logged-out cookie is refused on every server)

Revision ID: 7c2d4e6f8a10
Revises: 5b1e0c7a9d21
Create Date: 2026-11-25 14:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '7c2d4e6f8a10'
down_revision = '5b1e0c7a9d21'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_revoked_session',
    sa.Column('sid', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sid', name=op.f('pk_core_revoked_session'))
    )
    with op.batch_alter_table('core_revoked_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_revoked_session_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('core_revoked_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_revoked_session_expires_at'))
    op.drop_table('core_revoked_session')
