"""Stage 2a, the deadline rules: case facts + the law + ``now`` → deadlines.

Pure: no database, no clock, no network. ``watchdog.rules.engine.compute_case_deadlines`` is the
entry point; ``types`` is the contract every other stage speaks; ``citations`` is the one place a
paragraph is written down; ``calendar`` does the counting (hours, months, hverdage, regime).
"""
