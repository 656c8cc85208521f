"""Every table, imported in one place so that ``SQLModel.metadata`` is complete.

Alembic's env.py and the tests' schema set-up import this module.
"""

from sqlmodel import SQLModel

from watchdog import casestore, deadline_marks, deadlines, outbox  # noqa: F401  (registers the tables)
from watchdog.ops import heartbeat  # noqa: F401  (service_heartbeat)
from watchdog.intake import quality, tokens  # noqa: F401  (data_quality_warning, api_token)
from watchdog import acknowledgements  # noqa: F401  (acknowledgement)
from watchdog.feeds import tokens as feed_tokens  # noqa: F401  (calendar_token)
from watchdog.reports import daily_digest  # noqa: F401  (worker_preference)
from watchdog.web import access_log  # noqa: F401  (access_log, access_log_case)
from watchdog.intake.sources import state as source_state  # noqa: F401  (source_state, source_batch, drop_file_seen)

metadata = SQLModel.metadata
