"""access log of the web app: every page view of case data and the case references it showed

Revision ID: 0007
Revises: 0002
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("worker_ext_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("page", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["worker_id"], ["worker.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_access_log_at"), "access_log", ["at"], unique=False)
    op.create_index(op.f("ix_access_log_worker_id"), "access_log", ["worker_id"], unique=False)
    op.create_table(
        "access_log_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("access_id", sa.Integer(), nullable=False),
        sa.Column("case_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["access_id"], ["access_log.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_access_log_case_access_id"), "access_log_case", ["access_id"], unique=False)
    op.create_index(op.f("ix_access_log_case_case_ref"), "access_log_case", ["case_ref"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_access_log_case_case_ref"), table_name="access_log_case")
    op.drop_index(op.f("ix_access_log_case_access_id"), table_name="access_log_case")
    op.drop_table("access_log_case")
    op.drop_index(op.f("ix_access_log_worker_id"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_at"), table_name="access_log")
    op.drop_table("access_log")
