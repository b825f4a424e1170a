"""core: attachments, comments, notifications, webhooks, backups, background imports

Revision ID: 0f68bb2d0b68
Revises: 7c2d4e6f8a10
Create Date: 2026-11-25 14:08:40.926271
"""
import warnings

from alembic import op
import sqlalchemy as sa
from sqlalchemy import Text  # autogenerate writes JSONB(astext_type=Text())
from sqlalchemy.dialects import postgresql

revision = '0f68bb2d0b68'
down_revision = '7c2d4e6f8a10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('core_robot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('webhook_url', sa.Text(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=True),
    sa.Column('keyword', sa.String(length=50), nullable=True),
    sa.Column('kinds', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['core_department.id'], name=op.f('fk_core_robot_department_id_core_department'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_robot'))
    )
    with op.batch_alter_table('core_robot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_robot_department_id'), ['department_id'], unique=False)

    op.create_table('core_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resource', sa.String(length=100), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['deleted_by_id'], ['core_user.id'], name=op.f('fk_core_attachment_deleted_by_id_core_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['core_user.id'], name=op.f('fk_core_attachment_uploaded_by_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_attachment'))
    )
    with op.batch_alter_table('core_attachment', schema=None) as batch_op:
        batch_op.create_index('ix_core_attachment_record', ['resource', 'record_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_attachment_sha256'), ['sha256'], unique=False)

    op.create_table('core_backup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tables', sa.Integer(), nullable=True),
    sa.Column('rows', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('verify_status', sa.String(length=20), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verify_report', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('verify_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['requested_by_id'], ['core_user.id'], name=op.f('fk_core_backup_requested_by_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_backup'))
    )
    with op.batch_alter_table('core_backup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_backup_finished_at'), ['finished_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_backup_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_backup_verify_status'), ['verify_status'], unique=False)

    op.create_table('core_comment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('resource', sa.String(length=100), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['core_user.id'], name=op.f('fk_core_comment_author_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_comment'))
    )
    with op.batch_alter_table('core_comment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_comment_author_id'), ['author_id'], unique=False)
        batch_op.create_index('ix_core_comment_record', ['resource', 'record_id', 'id'], unique=False)

    op.create_table('core_mail_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('security', sa.String(length=10), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=True),
    sa.Column('password', sa.Text(), nullable=True),
    sa.Column('sender', sa.String(length=254), nullable=False),
    sa.Column('base_url', sa.String(length=255), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['core_user.id'], name=op.f('fk_core_mail_settings_updated_by_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_mail_settings'))
    )
    op.create_table('core_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['recipient_id'], ['core_user.id'], name=op.f('fk_core_notification_recipient_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_notification'))
    )
    with op.batch_alter_table('core_notification', schema=None) as batch_op:
        batch_op.create_index('ix_core_notification_recipient_id', ['recipient_id', 'id'], unique=False)
        batch_op.create_index('ix_core_notification_recipient_read', ['recipient_id', 'read_at'], unique=False)

    op.create_table('core_webhook',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=255), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['core_user.id'], name=op.f('fk_core_webhook_created_by_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_webhook'))
    )
    op.create_table('core_notification_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('robot_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['notification_id'], ['core_notification.id'], name=op.f('fk_core_notification_delivery_notification_id_core_notification'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['robot_id'], ['core_robot.id'], name=op.f('fk_core_notification_delivery_robot_id_core_robot'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_notification_delivery')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_core_notification_delivery_idempotency_key'))
    )
    with op.batch_alter_table('core_notification_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_core_notification_delivery_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_notification_delivery_notification_id'), ['notification_id'], unique=False)
        batch_op.create_index('ix_core_notification_delivery_robot_sent', ['robot_id', 'status', 'sent_at'], unique=False)

    op.create_table('core_webhook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.String(length=36), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sa.String(length=32), nullable=True),
    sa.Column('response_code', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['core_outbox.id'], name=op.f('fk_core_webhook_delivery_message_id_core_outbox'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['webhook_id'], ['core_webhook.id'], name=op.f('fk_core_webhook_delivery_webhook_id_core_webhook'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_webhook_delivery')),
    sa.UniqueConstraint('delivery_id', name=op.f('uq_core_webhook_delivery_delivery_id')),
    sa.UniqueConstraint('message_id', 'webhook_id', name='uq_core_webhook_delivery_message')
    )
    with op.batch_alter_table('core_webhook_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_core_webhook_delivery_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_core_webhook_delivery_webhook', ['webhook_id', 'id'], unique=False)

    # SQLite rebuilds core_import by copy; reflecting its foreign key to core_user warns about the
    # expression index on usernames, which the copy leaves alone.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table('core_import', schema=None) as batch_op:
            batch_op.add_column(sa.Column('data', sa.LargeBinary(), nullable=True))
            batch_op.add_column(sa.Column('background', sa.Boolean(), nullable=False, server_default=sa.false()))
            batch_op.add_column(sa.Column('progress_at', sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))
            batch_op.drop_column('rows')

    with op.batch_alter_table('core_todo', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extra', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True))


def downgrade():
    with op.batch_alter_table('core_todo', schema=None) as batch_op:
        batch_op.drop_column('extra')

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
        with op.batch_alter_table('core_import', schema=None) as batch_op:
            batch_op.add_column(sa.Column('rows', sa.JSON(), nullable=True))
            batch_op.drop_column('error')
            batch_op.drop_column('progress_at')
            batch_op.drop_column('background')
            batch_op.drop_column('data')

    with op.batch_alter_table('core_webhook_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_core_webhook_delivery_webhook')
        batch_op.drop_index('ix_core_webhook_delivery_due')

    op.drop_table('core_webhook_delivery')
    with op.batch_alter_table('core_notification_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_core_notification_delivery_robot_sent')
        batch_op.drop_index(batch_op.f('ix_core_notification_delivery_notification_id'))
        batch_op.drop_index('ix_core_notification_delivery_due')

    op.drop_table('core_notification_delivery')
    op.drop_table('core_webhook')
    with op.batch_alter_table('core_notification', schema=None) as batch_op:
        batch_op.drop_index('ix_core_notification_recipient_read')
        batch_op.drop_index('ix_core_notification_recipient_id')

    op.drop_table('core_notification')
    op.drop_table('core_mail_settings')
    with op.batch_alter_table('core_comment', schema=None) as batch_op:
        batch_op.drop_index('ix_core_comment_record')
        batch_op.drop_index(batch_op.f('ix_core_comment_author_id'))

    op.drop_table('core_comment')
    with op.batch_alter_table('core_backup', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_backup_verify_status'))
        batch_op.drop_index(batch_op.f('ix_core_backup_status'))
        batch_op.drop_index(batch_op.f('ix_core_backup_finished_at'))

    op.drop_table('core_backup')
    with op.batch_alter_table('core_attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_attachment_sha256'))
        batch_op.drop_index('ix_core_attachment_record')

    op.drop_table('core_attachment')
    with op.batch_alter_table('core_robot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_robot_department_id'))

    op.drop_table('core_robot')
