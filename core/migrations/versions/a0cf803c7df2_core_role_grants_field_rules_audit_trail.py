"""core: role grants, field rules, audit trail

Revision ID: a0cf803c7df2
Revises: 82c9aea440f0
Create Date: 2026-11-25 10:22:23.238466
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # autogenerate writes JSONB(astext_type=Text())
from sqlalchemy.dialects import postgresql

revision = 'a0cf803c7df2'
down_revision = '82c9aea440f0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_field_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('resource', sa.String(length=100), nullable=False),
    sa.Column('field', sa.String(length=100), nullable=False),
    sa.Column('rule', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['core_role.id'], name=op.f('fk_core_field_rule_role_id_core_role'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_field_rule')),
    sa.UniqueConstraint('role_id', 'resource', 'field', name=op.f('uq_core_field_rule_role_id_resource_field'))
    )
    with op.batch_alter_table('core_field_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_field_rule_role_id'), ['role_id'], unique=False)

    op.create_table('core_role_grant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.Column('permission', sa.String(length=150), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['core_role.id'], name=op.f('fk_core_role_grant_role_id_core_role'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_role_grant')),
    sa.UniqueConstraint('role_id', 'permission', name=op.f('uq_core_role_grant_role_id_permission'))
    )
    with op.batch_alter_table('core_role_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_role_grant_role_id'), ['role_id'], unique=False)

    op.create_table('core_audit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=100), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('resource', sa.String(length=100), nullable=True),
    sa.Column('record_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('summary', sa.String(length=255), nullable=False),
    sa.Column('changes', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['core_user.id'], name=op.f('fk_core_audit_actor_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_audit'))
    )
    with op.batch_alter_table('core_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_audit_action'), ['action'], unique=False)
        batch_op.create_index('ix_core_audit_actor', ['actor_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_audit_at'), ['at'], unique=False)
        batch_op.create_index('ix_core_audit_record', ['resource', 'record_id', 'id'], unique=False)



def downgrade():
    with op.batch_alter_table('core_audit', schema=None) as batch_op:
        batch_op.drop_index('ix_core_audit_record')
        batch_op.drop_index(batch_op.f('ix_core_audit_at'))
        batch_op.drop_index('ix_core_audit_actor')
        batch_op.drop_index(batch_op.f('ix_core_audit_action'))

    op.drop_table('core_audit')
    with op.batch_alter_table('core_role_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_role_grant_role_id'))

    op.drop_table('core_role_grant')
    with op.batch_alter_table('core_field_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_field_rule_role_id'))

    op.drop_table('core_field_rule')
