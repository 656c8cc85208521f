"""service_heartbeat.stopped_at: a replica that stopped in order says so

Revision ID: 0004
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = "0004"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("service_heartbeat", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stopped_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("service_heartbeat", schema=None) as batch_op:
        batch_op.drop_column("stopped_at")
