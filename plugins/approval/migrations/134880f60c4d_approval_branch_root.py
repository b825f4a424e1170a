"""approval: branch root

Revision ID: 134880f60c4d
Revises: 
Create Date: 2026-11-23 09:44:59.179989
"""
from alembic import op
import sqlalchemy as sa  # noqa: F401


revision = '134880f60c4d'
down_revision = None
branch_labels = ('approval',)
depends_on = '82c9aea440f0'


def upgrade():
    pass


def downgrade():
    pass
