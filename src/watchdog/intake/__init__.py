"""Stage 1 intake: records from the case system into the case store, all or nothing.

- ``schemas``: one input model per entity (the documented format; no table models).
- ``parsing``: CSV / XLSX / JSON Lines files with Danish spreadsheet conventions → records.
- ``upsert``: validate every record, resolve references by ``ext_id``, write in one transaction,
  recompute the deadlines of the affected cases.
- ``api``: the HTTP ingest API (FastAPI), ``tokens``: its API tokens, ``silence``: the intake
  silence check the poll calls.
"""
