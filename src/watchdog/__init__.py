"""watchdog: legal deadlines in Danish child-protection cases, watched.

Distribution ``frist-watchdog``; import package ``watchdog``. Not the filesystem-events library
of the same import name (which must not be installed beside it).
"""

__version__ = "0.1.0"

WATCHDOG_DISTRIBUTION = "frist-watchdog"
