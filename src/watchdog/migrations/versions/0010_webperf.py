"""outcome_event.occurred_at indexed: the barometer finds the few deadlines with events after its as-of instant

Revision ID: 0010_webperf
Revises: 0003
"""

from alembic import op

revision = "0010_webperf"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_outcome_event_occurred_at"), "outcome_event", ["occurred_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outcome_event_occurred_at"), table_name="outcome_event")
