"""hr: branch root

Revision ID: 946a57894832
Revises: 
Create Date: 2026-11-23 09:45:01.760362
"""
from alembic import op
import sqlalchemy as sa  # noqa: F401


revision = '946a57894832'
down_revision = None
branch_labels = ('hr',)
depends_on = '82c9aea440f0'


def upgrade():
    pass


def downgrade():
    pass
