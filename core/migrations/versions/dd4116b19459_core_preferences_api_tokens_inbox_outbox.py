"""core: preferences, API tokens, inbox, outbox (imports come in the next revision)

Revision ID: dd4116b19459
Revises: a0cf803c7df2
Create Date: 2026-11-25 11:46:12.365694
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # autogenerate writes JSONB(astext_type=Text())
from sqlalchemy.dialects import postgresql

revision = 'dd4116b19459'
down_revision = 'a0cf803c7df2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_core_outbox_idempotency_key'))
    )
    with op.batch_alter_table('core_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_outbox_event'), ['event'], unique=False)
        batch_op.create_index('ix_core_outbox_status_next', ['status', 'next_attempt_at'], unique=False)

    op.create_table('core_api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("scope IN ('read', 'read-write')", name=op.f('ck_core_api_token_scope')),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_api_token_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_api_token'))
    )
    with op.batch_alter_table('core_api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_api_token_token_hash'), ['token_hash'], unique=True)
        batch_op.create_index(batch_op.f('ix_core_api_token_user_id'), ['user_id'], unique=False)

    op.create_table('core_todo',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plugin', sa.String(length=50), nullable=False),
    sa.Column('source_key', sa.String(length=200), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('subject_type', sa.String(length=100), nullable=True),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['core_user.id'], name=op.f('fk_core_todo_assignee_id_core_user'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['done_by_id'], ['core_user.id'], name=op.f('fk_core_todo_done_by_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_todo')),
    sa.UniqueConstraint('plugin', 'source_key', 'assignee_id', name='uq_core_todo_source_assignee')
    )
    with op.batch_alter_table('core_todo', schema=None) as batch_op:
        batch_op.create_index('ix_core_todo_assignee_status_done', ['assignee_id', 'status', 'done_at'], unique=False)
        batch_op.create_index('ix_core_todo_assignee_status_due', ['assignee_id', 'status', 'due_at'], unique=False)

    op.create_table('core_user_pref',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=150), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_user_pref_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'key', name=op.f('pk_core_user_pref'))
    )


def downgrade():
    op.drop_table('core_user_pref')
    with op.batch_alter_table('core_todo', schema=None) as batch_op:
        batch_op.drop_index('ix_core_todo_assignee_status_due')
        batch_op.drop_index('ix_core_todo_assignee_status_done')

    op.drop_table('core_todo')

    with op.batch_alter_table('core_api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_api_token_user_id'))
        batch_op.drop_index(batch_op.f('ix_core_api_token_token_hash'))

    op.drop_table('core_api_token')
    with op.batch_alter_table('core_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_core_outbox_status_next')
        batch_op.drop_index(batch_op.f('ix_core_outbox_event'))

    op.drop_table('core_outbox')
