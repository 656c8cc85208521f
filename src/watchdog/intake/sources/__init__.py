"""Stage 1 intake, sources: the service fetches the case system's data itself, on a schedule.

No I/O at import. The room's modules, in the order data flows through them::

    drop_folder   list the share, wait for complete files, claim the batch ─┐
    sql_source    read the reporting database's views since the watermark ──┤
    mapping       the vendor's columns and values → ours (TOML; pure)       ├─► intake.upsert.import_records
    reading       vendor rows → raw records (through parsing's cell reader) ┘     (all or nothing)
    state         source_state, source_batch, drop_file_seen (tables)
    watch         ops alerts (a refused batch, a silent source), each source's state
    runner        one round of every source (the scheduler's jobs, ``watchdog tick``)

Sources call the import (``intake.parsing``, ``intake.upsert``); nothing there calls back here.
"""
