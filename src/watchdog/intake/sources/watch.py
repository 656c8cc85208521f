"""Stage 1 intake, sources, watched: operator alerts about the pipe, and each source's state.

I/O: the database (``source_state``, the outbox). ``now`` comes in.

The intake-silence alert (``intake.silence``) watches notifications; this watches the sources
themselves: a refused batch, and a source without a successful read for longer than
``intake.source_max_age_hours`` (a drop folder: no batch imported), each raise ONE operator alert
through the outbox to ``delivery.ops_urls`` (the key makes a repeat the same row). Operator
messages name the source, the counts and where the report is, never a value that looks like a
CPR number.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from watchdog.clock import ensure_aware, format_local
from watchdog.outbox import AlertKind, Channel, NewAlert, enqueue
from watchdog.render import Message, message_to_payload, simple_card, text_to_html
from watchdog.settings_urls import parse_ops_url
from watchdog.intake.sources.state import SourceState, all_states

log = logging.getLogger(__name__)

DROP_SOURCE = "drop-folder"
_CPR_LIKE = re.compile(r"(?<!\d)\d{6}[- ]?\d{4}(?!\d)")


@dataclass(frozen=True)
class SourceInfo:
    """A configured source and what its row says."""

    name: str
    kind: str  # drop_folder | sql
    where: str  # the folder, or the URL without a password
    mapping: str | None
    last_ok_at: str | None
    last_batch_at: str | None
    rows_read: int
    batches_ok: int
    batches_refused: int
    last_error: str | None
    silent: bool

    def as_dict(self) -> dict:
        return asdict(self)


def configured_sources(settings) -> list[tuple[str, str, str, str | None]]:
    """(name, kind, where, mapping) of every source in the settings."""
    out = []
    intake = settings.intake
    if intake.drop_folder is not None:
        out.append((DROP_SOURCE, "drop_folder", str(intake.drop_folder),
                    str(intake.drop_mapping) if intake.drop_mapping else None))
    for cfg in intake.sql_sources:
        out.append((cfg.name, "sql", cfg.url, str(cfg.mapping)))
    return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else ensure_aware(value, what="time").isoformat()


def _last_sign_of_life(row: SourceState | None, kind: str) -> datetime | None:
    if row is None:
        return None
    value = row.last_batch_at if kind == "drop_folder" else row.last_ok_at
    return ensure_aware(value or row.created_at, what="time")


def is_silent(row: SourceState | None, kind: str, settings, now: datetime) -> bool:
    since = _last_sign_of_life(row, kind)
    return since is not None and now - since > timedelta(hours=settings.intake.source_max_age_hours)


def source_overview(session: Session, settings, *, now: datetime) -> list[SourceInfo]:
    """Every configured source with its state (``watchdog sources``, ``/readyz``, metrics)."""
    states = all_states(session)
    infos = []
    for name, kind, where, mapping in configured_sources(settings):
        row = states.get(name)
        infos.append(SourceInfo(
            name=name, kind=kind, where=where, mapping=mapping,
            last_ok_at=_iso(row.last_ok_at) if row else None,
            last_batch_at=_iso(row.last_batch_at) if row else None,
            rows_read=row.rows_read if row else 0, batches_ok=row.batches_ok if row else 0,
            batches_refused=row.batches_refused if row else 0, last_error=row.last_error if row else None,
            silent=is_silent(row, kind, settings, now)))
    return infos


def ops_alert(session: Session, settings, *, key: str, subject: str, text: str, now: datetime) -> int:
    """One operator alert per ``key`` to every ``delivery.ops_urls`` entry. Returns how many were new."""
    text = _CPR_LIKE.sub("[tal fjernet]", text)
    log.error("%s: %s", subject, text.splitlines()[0] if text else "")
    if not settings.delivery.ops_urls:
        return 0
    payload = message_to_payload(Message(subject=subject, text=text, html=text_to_html(text),
                                         card=simple_card(subject, text)))
    alerts = []
    for url in settings.delivery.ops_urls:
        target = parse_ops_url(url)
        if target is None:
            continue
        address, kind = target
        channel = Channel.TEAMS if kind == "teams" else Channel.EMAIL
        alerts.append(NewAlert(key=f"{key}:{address}:{channel.value}"[:300], kind=AlertKind.OPS, stage="source",
                               recipient_address=address, channel=channel, send_after=now, payload=payload))
    return enqueue(session, alerts, now=now)


def check_source_silence(session: Session, settings, *, now: datetime) -> int:
    """An ops alert per source silent for longer than ``intake.source_max_age_hours`` (once per silence)."""
    states = all_states(session)
    new = 0
    for name, kind, where, _mapping in configured_sources(settings):
        row = states.get(name)
        if not is_silent(row, kind, settings, now):
            continue
        since = _last_sign_of_life(row, kind)
        what = "ingen leverance er importeret" if kind == "drop_folder" else "ingen vellykket læsning"
        hours = settings.intake.source_max_age_hours
        text = (f"Kilden {name} ({where}): {what} siden {format_local(since)} (grænse {hours} timer).\n\n"
                f"Sidste fejl: {row.last_error or 'ingen'}.\n\n"
                "Frister beregnes kun ud fra de data, der er kommet ind: tjek udtrækket eller forbindelsen "
                "til sagssystemet i dag. Se `watchdog sources`.")
        new += ops_alert(session, settings, key=f"ops:source_silent:{name}:{since.isoformat()}",
                         subject=f"watchdog: kilden {name} har været tavs i over {hours} timer",
                         text=text, now=now)
    return new
