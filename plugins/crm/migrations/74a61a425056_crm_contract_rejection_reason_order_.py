"""crm: contract rejection reason, order confirmation and invoice, ticket escalation

Revision ID: 74a61a425056
Revises: 205239830ffe
Create Date: 2026-11-25 14:16:29.887093
"""
from alembic import op
import sqlalchemy as sa


revision = '74a61a425056'
down_revision = '205239830ffe'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('crm_opportunity', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rejection_reason', sa.String(length=500), nullable=False, server_default=''))

    with op.batch_alter_table('crm_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('invoice_status', sa.String(length=20), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('invoice_issued_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('crm_ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_crm_ticket_status_sla', ['status', 'sla_due_at'], unique=False)



def downgrade():
    with op.batch_alter_table('crm_ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_crm_ticket_status_sla')
        batch_op.drop_column('escalated_at')

    with op.batch_alter_table('crm_order', schema=None) as batch_op:
        batch_op.drop_column('invoice_issued_at')
        batch_op.drop_column('invoice_status')
        batch_op.drop_column('confirmed_at')

    with op.batch_alter_table('crm_opportunity', schema=None) as batch_op:
        batch_op.drop_column('rejection_reason')

