"""crm: branch root

Revision ID: 18b2357bb68b
Revises: 
Create Date: 2026-11-23 09:45:00.089516
"""
from alembic import op
import sqlalchemy as sa  # noqa: F401


revision = '18b2357bb68b'
down_revision = None
branch_labels = ('crm',)
depends_on = '82c9aea440f0'


def upgrade():
    pass


def downgrade():
    pass
