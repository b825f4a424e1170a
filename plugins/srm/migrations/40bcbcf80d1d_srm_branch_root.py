"""srm: branch root

Revision ID: 40bcbcf80d1d
Revises: 
Create Date: 2026-11-23 09:45:00.934624
"""
from alembic import op
import sqlalchemy as sa  # noqa: F401


revision = '40bcbcf80d1d'
down_revision = None
branch_labels = ('srm',)
depends_on = '82c9aea440f0'


def upgrade():
    pass


def downgrade():
    pass
