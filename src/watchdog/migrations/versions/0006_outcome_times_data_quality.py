"""outcome log with two times (occurred_at, recorded_at); data-quality warnings

Revision ID: 0006
Revises: 0008

``outcome_event.at`` (when the service recorded a change) becomes ``recorded_at``; the new
``occurred_at`` (when it happened in the case) is filled for the existing rows from the deadlines'
facts where they settle it:

- a deadline's first event, ``open``: its clock start;
- ``met``: the deadline's ``met_at`` (met by the due time, so the answer is exact from then on);
- ``breached`` and ``excepted``: the due instant (a lawful reason counts from the due time);
- ``met_late``: the completion (``met_at``) when it was logged as a change; when the deadline was
  first seen already met late (history imported after the fact), the due instant, from which its
  answer was "Nej" (the breach before the completion was never logged, so that is as close as the
  log allows);
- ``not_applicable``: the end of the measure or the closing of the case, whichever is known first;
- alerts sent: their recorded time (sending is what happened).

What it cannot settle, left at the recorded time: a value that would lie after the recorded time
(the facts changed since: the deadline row keeps only the latest facts, so an event whose facts
were later corrected gets today's facts' instant or its recorded time); a duty that vanished from
the facts (a not-applicable event without an end); a deadline moved back to open. The statuses
in between that the old log never held (e.g. the breach of a deadline first seen met late) are not
invented: recomputing a case (any change to its facts) writes its history afresh from there.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outcome_event", schema=None) as batch_op:
        batch_op.drop_index("ix_outcome_event_at")
        batch_op.alter_column("at", new_column_name="recorded_at", existing_nullable=False)
        batch_op.add_column(sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))

    _fill_occurred_at()
    with op.batch_alter_table("outcome_event", schema=None) as batch_op:
        batch_op.alter_column("occurred_at", nullable=False)
        batch_op.create_index(batch_op.f("ix_outcome_event_recorded_at"), ["recorded_at"], unique=False)

    op.create_table(
        "data_quality_warning",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("entity", sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
        sa.Column("record_ext_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("field", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("case_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("record", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("detected_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "entity", "record_ext_id", "field", name="uq_data_quality_warning_subject"),
    )
    with op.batch_alter_table("data_quality_warning", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_quality_warning_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_data_quality_warning_kind"), ["kind"], unique=False)


def _fill_occurred_at() -> None:
    """Set-based UPDATEs that run the same on SQLite and PostgreSQL (statuses are stored by name)."""
    run = op.execute
    run("UPDATE outcome_event SET occurred_at = recorded_at")
    deadline = "(SELECT d.{col} FROM deadline d WHERE d.id = outcome_event.deadline_id)"

    def set_from(expr: str, where: str) -> None:
        # Only where the fact is known and not after the recorded time.
        run(f"UPDATE outcome_event SET occurred_at = {expr} WHERE kind = 'status' AND {where} "
            f"AND {expr} IS NOT NULL AND {expr} <= recorded_at")

    set_from(deadline.format(col="clock_start"), "to_status = 'OPEN' AND from_status IS NULL")
    set_from(deadline.format(col="met_at"), "to_status = 'MET'")
    set_from(deadline.format(col="due"), "to_status IN ('BREACHED', 'EXCEPTED')")
    set_from(deadline.format(col="due"), "to_status = 'MET_LATE' AND from_status IS NULL")
    set_from(deadline.format(col="met_at"), "to_status = 'MET_LATE' AND from_status IS NOT NULL")
    measure_end = ("(SELECT m.ended_at FROM deadline d JOIN measure m ON m.id = d.subject_id "
                   "WHERE d.id = outcome_event.deadline_id AND d.subject_kind = 'MEASURE')")
    case_closed = ("(SELECT c.closed_at FROM deadline d JOIN case_file c ON c.id = d.case_id "
                   "WHERE d.id = outcome_event.deadline_id)")
    set_from(measure_end, "to_status = 'NOT_APPLICABLE'")
    # The closing, where it came before the end of the measure (or there is none).
    set_from(case_closed, f"to_status = 'NOT_APPLICABLE' AND {case_closed} < occurred_at")


def downgrade() -> None:
    with op.batch_alter_table("data_quality_warning", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_quality_warning_kind"))
        batch_op.drop_index(batch_op.f("ix_data_quality_warning_case_id"))
    op.drop_table("data_quality_warning")
    with op.batch_alter_table("outcome_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcome_event_recorded_at"))
        batch_op.drop_column("occurred_at")
        batch_op.alter_column("recorded_at", new_column_name="at", existing_nullable=False)
    with op.batch_alter_table("outcome_event", schema=None) as batch_op:
        batch_op.create_index("ix_outcome_event_at", ["at"], unique=False)
