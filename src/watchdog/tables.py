"""Every table, imported in one place so that ``SQLModel.metadata`` is complete.

Alembic's env.py and the tests' schema set-up import this module.
"""

from sqlmodel import SQLModel

from watchdog import casestore, deadline_marks, deadlines, outbox  # noqa: F401  (registers the tables)
from watchdog.ops import heartbeat  # noqa: F401  (service_heartbeat)
from watchdog.intake import tokens  # noqa: F401  (api_token)

metadata = SQLModel.metadata
