"""worker role 'head' (head of unit)

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite stores the enum as plain VARCHAR (no CHECK constraint): nothing to do there.
    # PostgreSQL (12 and later) allows ADD VALUE inside the migration's transaction, as long as the
    # new value is not used before the commit.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE workerrole ADD VALUE IF NOT EXISTS 'HEAD'")


def downgrade() -> None:
    # PostgreSQL cannot drop a value from an enum type; a 'head' row would have to be changed first.
    pass
