"""notes: notes table

Revision ID: c4bfd2c7c846
Revises: 
Create Date: 2026-11-23 09:46:39.735533
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = 'c4bfd2c7c846'
down_revision = None
branch_labels = ('notes',)
depends_on = '82c9aea440f0'


def upgrade():

    op.create_table('notes_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('custom', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['core_user.id'], name=op.f('fk_notes_note_created_by_id_core_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['department_id'], ['core_department.id'], name=op.f('fk_notes_note_department_id_core_department'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['core_user.id'], name=op.f('fk_notes_note_owner_id_core_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notes_note'))
    )
    with op.batch_alter_table('notes_note', schema=None) as batch_op:
        batch_op.create_index('ix_notes_note_department_updated', ['department_id', 'updated_at'], unique=False)
        batch_op.create_index('ix_notes_note_owner_updated', ['owner_id', 'updated_at'], unique=False)




def downgrade():

    with op.batch_alter_table('notes_note', schema=None) as batch_op:
        batch_op.drop_index('ix_notes_note_owner_updated')
        batch_op.drop_index('ix_notes_note_department_updated')

    op.drop_table('notes_note')

