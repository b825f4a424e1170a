"""core: departments, users, roles, settings

Revision ID: 82c9aea440f0
Revises: 
Create Date: 2026-11-23 09:44:58.122178
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '82c9aea440f0'
down_revision = None
branch_labels = ('core',)
depends_on = None


def upgrade():
    op.create_table('core_department',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('code', sa.String(length=50), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('head_id', sa.Integer(), nullable=True),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['core_department.id'], name=op.f('fk_core_department_parent_id_core_department'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_department')),
    sa.UniqueConstraint('code', name=op.f('uq_core_department_code'))
    )
    with op.batch_alter_table('core_department', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_department_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index('ix_core_department_path', ['path'], unique=False, postgresql_ops={'path': 'varchar_pattern_ops'})

    op.create_table('core_role',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=50), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('builtin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_role')),
    sa.UniqueConstraint('key', name=op.f('uq_core_role_key'))
    )
    op.create_table('core_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('mobile', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('language', sa.String(length=10), nullable=True),
    sa.Column('timezone', sa.String(length=50), nullable=False),
    sa.Column('session_epoch', sa.Integer(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['core_department.id'], name=op.f('fk_core_user_department_id_core_department'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['manager_id'], ['core_user.id'], name=op.f('fk_core_user_manager_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_core_user'))
    )
    with op.batch_alter_table('core_user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_user_department_id'), ['department_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_core_user_manager_id'), ['manager_id'], unique=False)
    # Usernames are unique ignoring case (autogenerate cannot see expression indexes).
    op.create_index('uq_core_user_username_lower', 'core_user', [sa.text('lower(username)')], unique=True)
    # core_department and core_user refer to each other: the head's foreign key comes last.
    with op.batch_alter_table('core_department', schema=None) as batch_op:
        batch_op.create_foreign_key(op.f('fk_core_department_head_id_core_user'), 'core_user', ['head_id'], ['id'],
                                    ondelete='SET NULL')

    op.create_table('core_setting',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by_id'], ['core_user.id'], name=op.f('fk_core_setting_updated_by_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_core_setting'))
    )
    op.create_table('core_user_role',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['role_id'], ['core_role.id'], name=op.f('fk_core_user_role_role_id_core_role'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['core_user.id'], name=op.f('fk_core_user_role_user_id_core_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'role_id', name=op.f('pk_core_user_role'))
    )
    with op.batch_alter_table('core_user_role', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_core_user_role_role_id'), ['role_id'], unique=False)



def downgrade():
    with op.batch_alter_table('core_user_role', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_user_role_role_id'))

    op.drop_table('core_user_role')
    op.drop_table('core_setting')
    with op.batch_alter_table('core_user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_core_user_manager_id'))
        batch_op.drop_index(batch_op.f('ix_core_user_department_id'))

    with op.batch_alter_table('core_department', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_core_department_head_id_core_user'), type_='foreignkey')
    op.drop_index('uq_core_user_username_lower', table_name='core_user')
    op.drop_table('core_user')
    op.drop_table('core_role')
    with op.batch_alter_table('core_department', schema=None) as batch_op:
        batch_op.drop_index('ix_core_department_path', postgresql_ops={'path': 'varchar_pattern_ops'})
        batch_op.drop_index(batch_op.f('ix_core_department_parent_id'))

    op.drop_table('core_department')
