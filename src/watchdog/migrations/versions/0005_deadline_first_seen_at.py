"""deadline.first_seen_at: when the service first computed a deadline (backlog at go-live)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch operation would copy and drop deadline, which SQLite refuses while
    # the outbox and the outcome log reference its rows.
    op.add_column("deadline", sa.Column("first_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    # Existing rows: the first outcome event of the deadline (its first computation), else the
    # time it was last computed. Either way the upgrade does not turn old escalations into a
    # backlog, and a breach already escalated stays escalated (its stage is in the outbox).
    op.execute(
        "UPDATE deadline SET first_seen_at = COALESCE("
        "(SELECT MIN(outcome_event.recorded_at) FROM outcome_event WHERE outcome_event.deadline_id = deadline.id), "
        "computed_at)"
    )


def downgrade() -> None:
    with op.batch_alter_table("deadline", schema=None) as batch_op:
        batch_op.drop_column("first_seen_at")
