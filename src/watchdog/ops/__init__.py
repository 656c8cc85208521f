"""Operations: health and readiness, Prometheus metrics, JSON logs, the heartbeat.

What the other stages call (each is one line at the call site):

- ``watchdog.ops.logs.configure_logging(settings)``: once at start-up (the CLI does it).
- ``watchdog.ops.heartbeat.round_finished(engine, settings, replica=..., ok=..., duration_s=..., now=...)``:
  after every poll round of ``watchdog run`` / ``watchdog tick``. It records the poll metrics,
  stores the replica's heartbeat row (readiness across replicas and restarts) and, after a
  successful round, calls ``settings.http.heartbeat_url``. Never raises.
- ``watchdog.ops.metrics.record_delivery(channel, result)``: after each delivery attempt.
- ``watchdog.ops.health.start_health_server(settings, engine)`` (``watchdog run``) and
  ``watchdog.ops.health.mount(app, settings, engine)`` (``watchdog serve``).
"""
