"""Stage 6, the delivery round: claim due alerts, render, send, record each outcome.

I/O: the database, and the network through ``delivery.Transport`` (Apprise: the only module that
speaks to the network). One round, top to bottom::

    deliver(now):  outbox.claim_due              claim due rows, one recipient+channel together
                   render.render_alerts          one Danish message per recipient and channel
                   delivery.Transport.send       Apprise: email or Teams
                   outbox.record_success/failure an attempt row each; retry with backoff, or dead
                                                 (only under the claim's token: a stale holder is dropped)
                   outcome_log.record_alerts_sent  the outcome log
                   (dead letter)                 ops_alerts: to settings.delivery.ops_urls

The scheduler (``watchdog run``) and ``watchdog tick`` (``service.tick``) call ``deliver`` with
``clock.utcnow()``; tests pass ``now`` in. Several replicas may run it at once: the outbox's
claims and their tokens keep every alert single.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from watchdog import acknowledgement_alerts, delivery, ops_alerts, outcome_log, outbox, render
from watchdog.casestore import Team, Worker
from watchdog.clock import ensure_aware, format_local
from watchdog.db import session_scope
from watchdog.message_context import BatchRows, batch_rows, message_context
from watchdog.ops import metrics
from watchdog.outbox import Alert, AlertKind, AlertState, Channel
from watchdog.reports import daily_digest
from watchdog.rules.types import Status
from watchdog.sensitive import contains_cpr

log = logging.getLogger(__name__)

# Deadline alerts are rendered from the deadline row at send time; the others carry their message.
DEADLINE_KINDS = frozenset({AlertKind.WARNING, AlertKind.ESCALATION, AlertKind.REMINDER})

@dataclass
class DeliveryReport:
    claimed: int = 0
    messages: int = 0
    sent: int = 0
    accepted: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0
    ops_alerts: int = 0
    released: int = 0
    stale: int = 0  # outcomes dropped: this worker's claim had expired and another had taken it


def deliver(engine: Engine, settings, *, now: datetime, transport, worker_name: str,
            stop: threading.Event | None = None,
            clock: Callable[[], datetime] | None = None) -> DeliveryReport:
    """Deliver every due alert: claim, render, send, record. Returns what happened.

    The messages of a round share the transport's connection (``Transport.round``); each still
    gets its own outcome, recorded sent only when the server accepted it.
    ``stop`` (set on SIGTERM) is checked between messages: the send in progress finishes and is
    recorded, the claims not yet attempted are released for the next round or replica.
    ``clock`` (the daemon and ``watchdog tick`` pass ``clock.utcnow``) gives each claim batch of
    a long round its own instant: claimed with the round's start time, a late batch's claims
    would already be expired for the other replicas while this one is still sending them.
    Without it every batch uses ``now`` (tests, simulated time).
    """
    now = ensure_aware(now, what="now")
    report = DeliveryReport()
    # One round of the transport: the SMTP connection is kept from one message to the next
    # (``delivery.Transport.round``); a stand-in transport (tests) may have none.
    with getattr(transport, "round", contextlib.nullcontext)():
        while not (stop is not None and stop.is_set()):
            if clock is not None:
                now = ensure_aware(clock(), what="clock()")
            with Session(engine, expire_on_commit=False) as session:
                claimed = outbox.claim_due(session, now=now, worker_name=worker_name,
                                           claim_seconds=settings.delivery.claim_timeout_seconds,
                                           limit=settings.delivery.batch_size)
            if not claimed:
                break
            if len(claimed) >= settings.delivery.batch_size:
                claimed += _claim_rest_of_last_recipient(engine, settings, claimed, now=now,
                                                         worker_name=worker_name)
            report.claimed += len(claimed)
            with Session(engine, expire_on_commit=False) as session:
                rows = batch_rows(session, claimed, now=now)
            groups = _message_groups(claimed)
            for index, group in enumerate(groups):
                if stop is not None and stop.is_set():
                    rest = [a for g in groups[index:] for a in g]
                    with session_scope(engine) as session:
                        report.released += outbox.release(session, rest, worker_name=worker_name)
                    break
                _deliver_one_message(engine, settings, group, now=now, transport=transport,
                                     worker_name=worker_name, report=report, rows=rows)
    if report.claimed:
        log.info("delivery: %d alerts in %d messages: %d sent, %d accepted, %d failed, %d dead, "
                 "%d cancelled", report.claimed, report.messages, report.sent, report.accepted,
                 report.failed, report.dead, report.cancelled)
    return report


def _claim_rest_of_last_recipient(engine: Engine, settings, claimed: list[Alert], *, now: datetime,
                                  worker_name: str) -> list[Alert]:
    """A full batch may have cut the last recipient's alerts in two (claims come ordered by
    recipient): claim the rest of them too, so that their backlog summary or list is one message."""
    last = claimed[-1]
    if AlertKind(last.kind) not in DEADLINE_KINDS:
        return []
    held = {a.id for a in claimed}
    with Session(engine, expire_on_commit=False) as session:
        rest = outbox.claim_due(session, now=now, worker_name=worker_name,
                                claim_seconds=settings.delivery.claim_timeout_seconds, limit=None,
                                recipient=(last.recipient_address, Channel(last.channel)))
    return [a for a in rest if a.id not in held]


def _message_groups(claimed: list[Alert]) -> list[list[Alert]]:
    """Deadline alerts of one recipient and channel become one message; the rest go one by one."""
    grouped: dict[tuple[str, Channel], list[Alert]] = defaultdict(list)
    singles: list[list[Alert]] = []
    for alert in claimed:
        if AlertKind(alert.kind) in DEADLINE_KINDS and alert.deadline_id is not None:
            grouped[(alert.recipient_address, Channel(alert.channel))].append(alert)
        else:
            singles.append([alert])
    return list(grouped.values()) + singles


def _cancel_moot(engine: Engine, group: list[Alert], report: DeliveryReport, rows: BatchRows) -> list[Alert]:
    """Drop the alerts whose deadline closed after they were planned (typically while they waited
    for a retry): a caseworker must not be warned about a deadline they have met. Returns the rest."""
    keep, moot = [], []
    reasons = {}
    for claimed in group:
        reason = _moot_reason(claimed, rows.deadlines.get(claimed.deadline_id) if claimed.deadline_id else None)
        if reason is None:
            keep.append(claimed)
        else:
            reasons[claimed.id] = reason
    if reasons:
        with session_scope(engine) as session:
            for claimed in group:
                # The claimed copy carries the claim's token: a claim lost meanwhile changes nothing.
                if claimed.id in reasons and outbox.record_cancelled(session, claimed, reason=reasons[claimed.id]):
                    moot.append(claimed)
    report.cancelled += len(moot)
    return keep


def _moot_reason(alert: Alert, deadline) -> str | None:
    if deadline is None or AlertKind(alert.kind) not in DEADLINE_KINDS:
        return None
    status = Status(deadline.status)
    if status.is_final:
        return f"the deadline is {status.value} since the alert was planned"
    if status == Status.EXCEPTED and AlertKind(alert.kind) != AlertKind.REMINDER:
        return "the deadline is excepted (lawful reason) since the alert was planned"
    if status == Status.EXCEPTED and deadline.met_at is not None:
        return "the excepted investigation has been finished since the alert was planned"
    return None


def _deliver_one_message(engine: Engine, settings, group: list[Alert], *, now: datetime, transport,
                         worker_name: str, report: DeliveryReport, rows: BatchRows) -> None:
    group = _cancel_moot(engine, group, report, rows)
    # Only a message with an acknowledged deadline, an end notice or a digest recipient needs
    # those checks' own reads (``rows`` knows which, for the whole batch).
    if any(AlertKind(a.kind) == AlertKind.ACK_ENDED or a.deadline_id in rows.acknowledged for a in group):
        group = acknowledgement_alerts.hold_acknowledged(engine, group, now=now, worker_name=worker_name)
    if group and group[0].recipient_worker_id in rows.digest_recipients:
        kept = daily_digest.absorb_into_digest(engine, group, now=now)
        report.cancelled += len(group) - len(kept)
        group = kept
    if not group:
        return
    first = group[0]
    channel = Channel(first.channel)
    try:
        with Session(engine) as session:
            message, name, held = _build_message(session, settings, group, now=now, rows=rows)
        if held:
            # The net, one item at a time: only the offending alerts die; the others still go.
            _record(engine, settings, [a for a in group if a.id in held], _HELD_BACK, channel=channel,
                    now=now, worker_name=worker_name, report=report, rows=rows)
            group = [a for a in group if a.id not in held]
            if not group:
                return
        result = transport.send(message, delivery.Recipient(first.recipient_address, channel, name))
    except Exception as exc:  # a bug or a vanished row: record it on the alerts, never lose them
        log.exception("delivery: cannot send alerts %s", [a.id for a in group])
        result = delivery.SendResult(ok=False, detail=f"internal error: {_one_line(exc)}", permanent=True)
    report.messages += 1
    _record(engine, settings, group, result, channel=channel, now=now, worker_name=worker_name,
            report=report, rows=rows)


# What a held-back alert's attempt says: never the number itself (the ops alert repeats it).
_HELD_BACK = delivery.SendResult(
    ok=False, permanent=True,
    detail="held back, not sent: the case reference, case link or a name of this alert contains what "
           "looks like a CPR number (not repeated here); correct the case in the case system, then "
           "`watchdog outbox retry`")


def _record(engine: Engine, settings, group: list[Alert], result, *, channel: Channel, now: datetime,
            worker_name: str, report: DeliveryReport, rows: BatchRows | None = None) -> None:
    """Record a send's outcome on its alerts, and count it in the report and the metrics."""
    # The message has left: its outcome must be recorded even if the database blips right now
    # (a PostgreSQL restart, a failover). Unrecorded, the claim would expire and another replica
    # would send the same message again.
    outcomes = _retry_on_database_error(
        lambda: _record_outcome(engine, settings, group, result, channel=channel, now=now,
                                worker_name=worker_name, rows=rows),
        what=f"recording the delivery of alerts {[a.id for a in group]}",
        give_up_after=settings.delivery.claim_timeout_seconds / 2)
    for outcome, count in outcomes.items():
        if outcome in ("ops_alerts", "stale"):
            setattr(report, outcome, getattr(report, outcome) + count)
            continue
        setattr(report, outcome, getattr(report, outcome) + count)
        for _ in range(count):
            metrics.record_delivery(channel.value, outcome)


def _record_outcome(engine: Engine, settings, group: list[Alert], result, *, channel: Channel,
                    now: datetime, worker_name: str, rows: BatchRows | None = None) -> dict[str, int]:
    """One transaction: an attempt row and the new state of each alert of a sent message.

    Recorded under each claim's token: if this process's claim expired and another replica took
    an alert, its result stands and ours is logged and dropped ("stale"). A success is a few
    statements for the whole message (``outbox.record_successes``, one outcome event per alert
    with a deadline); a failure is recorded alert by alert (each has its own attempt count)."""
    outcomes: dict[str, int] = defaultdict(int)
    dead: list[Alert] = []
    with session_scope(engine) as session:
        if result.ok:
            held = outbox.record_successes(session, group, now=now, worker_name=worker_name,
                                           detail=result.detail, accepted_only=result.accepted_only)
            outcome_log.record_alerts_sent(session, [
                (a.deadline_id, f"{a.kind} {a.stage} via {channel}")
                for a in group if a.id in held and a.deadline_id is not None], at=now,
                known=rows.deadlines if rows is not None else None)
            if rows is not None:  # the next message of the batch to this recipient reads it so
                rows.sent([a for a in group if a.id in held], at=now)
            if len(held) < len(group):
                outcomes["stale"] = len(group) - len(held)
            if held:
                outcomes["accepted" if result.accepted_only else "sent"] = len(held)
            return dict(outcomes)
        for claimed in group:
            alert = Alert.model_validate(claimed.model_dump())  # a copy: a retry of this starts afresh
            state = outbox.record_failure(
                session, alert, now=now, worker_name=worker_name, detail=result.detail,
                permanent=result.permanent, max_attempts=settings.delivery.max_attempts,
                backoff_base_seconds=settings.delivery.backoff_base_seconds,
                backoff_max_seconds=settings.delivery.backoff_max_seconds)
            if state is None:
                outcomes["stale"] += 1
                continue
            if state == AlertState.DEAD:
                dead.append(alert)
            outcomes["dead" if state == AlertState.DEAD else "failed"] += 1
        if dead:
            outcomes["ops_alerts"] += _report_dead_letters(session, settings, dead, now=now)
    return dict(outcomes)


def _retry_on_database_error(work, *, what: str, give_up_after: float, sleep=time.sleep):
    """Run ``work`` again while the database is unreachable, with growing pauses, for at most
    ``give_up_after`` seconds; then let the error through (the claim expires, as after a crash)."""
    deadline = time.monotonic() + give_up_after
    pause = 0.5
    while True:
        try:
            return work()
        except OperationalError as exc:
            if time.monotonic() + pause > deadline:
                raise
            log.warning("database error while %s: %s; retrying in %.1fs", what, _one_line(exc), pause)
            sleep(pause)
            pause = min(pause * 2, 10.0)


def _build_message(session: Session, settings, group: list[Alert], *, now: datetime, rows: BatchRows):
    """The message for one group, the recipient's name (for the greeting), and the ids of the
    alerts held back because an item of theirs looks like it holds a CPR number. The deadlines,
    cases, workers and teams come from ``rows`` (read once per claimed batch); ``session`` is for
    the message's context (``message_context``)."""
    first = group[0]
    recipient = rows.workers.get(first.recipient_worker_id) if first.recipient_worker_id else None
    name = _shown_name(recipient)
    if AlertKind(first.kind) not in DEADLINE_KINDS or first.deadline_id is None:
        return render.message_from_payload(outbox.payload_of(first)), name, set()
    items = []
    held: set[int] = set()
    team_ids: set[int] = set()
    for alert in group:
        deadline = rows.deadlines.get(alert.deadline_id)
        if deadline is None:
            raise LookupError(f"alert {alert.id}: deadline {alert.deadline_id} no longer exists")
        case = rows.cases[deadline.case_id]
        responsible = (rows.workers.get(deadline.responsible_worker_id)
                       if deadline.responsible_worker_id else None)
        # The caseworker's name helps a leader or substitute; the caseworker knows their own.
        responsible_name = (_shown_name(responsible) if responsible is not None
                            and responsible.id != alert.recipient_worker_id else None)
        team_ids.add(case.team_id)
        item = render.AlertItem(
            alert_id=alert.id, kind=AlertKind(alert.kind), stage=alert.stage, duty=deadline.duty,
            regime=deadline.regime, citation=deadline.citation, case_ref=case.ext_id,
            case_link=case_link(case, settings), due=deadline.due, status=deadline.status,
            municipal_policy=deadline.municipal_policy, responsible_name=responsible_name,
            team_name=_shown_name(rows.teams.get(case.team_id)),
            deadline_id=deadline.id,
        )
        if render.item_sensitive(item):
            held.add(alert.id)
        else:
            items.append(item)
    if not items:
        return None, name, held
    context = message_context(session, settings, recipient=recipient, address=first.recipient_address,
                              channel=Channel(first.channel), team_ids=team_ids, now=now,
                              last=rows.last_message(worker_id=recipient.id if recipient is not None else None,
                                                     address=first.recipient_address, channel=first.channel))
    return render.render_alerts(items, recipient_name=name, now=now, context=context), name, held


def _shown_name(row: Worker | Team | None) -> str | None:
    """A worker's or team's name for a message, or None when it looks like it holds a CPR number
    (stored before the intake refused such names): the message goes without the name rather than
    not at all."""
    if row is None:
        return None
    if contains_cpr(row.name):
        log.error("%s (id %s): the name looks like it holds a CPR number; left out of the message",
                  type(row).__name__.lower(), row.id)
        return None
    return row.name


def case_link(case, settings) -> str:
    """The case's own link if the store has one, else the configured template."""
    if case.link:
        return case.link
    return settings.alerts.case_link_template.format(case_ref=quote(case.ext_id, safe=""))


# --- dead letters ---------------------------------------------------------------------------

def _report_dead_letters(session: Session, settings, dead: list[Alert], *, now: datetime) -> int:
    """Tell the operators about alerts that will not be delivered: nothing is dropped silently.

    The operator alert goes through the same outbox (so it is retried and survives a restart).
    An operator alert that dies itself is only logged, or one broken ops channel would feed itself.
    """
    worth_telling = [a for a in dead if AlertKind(a.kind) != AlertKind.OPS]
    for alert in dead:
        log.error("dead letter: alert %s (%s %s, %s) after %d attempts: %s", alert.id, alert.kind,
                  alert.stage, alert.channel, alert.attempts, alert.last_error)
    if not worth_telling or not settings.delivery.ops_urls:
        return 0
    payload = render.message_to_payload(dead_letter_message(worth_telling, now=now))
    # One operator alert per death: the key names the dead alerts and the instant, so an alert
    # that is retried by hand and dies again is reported again.
    ids = "-".join(str(a.id) for a in worth_telling[:10])
    return ops_alerts.enqueue(session, settings, key=f"ops:dead:{ids}", stage="dead_letter", payload=payload,
                              now=now)


def dead_letter_message(dead: list[Alert], *, now: datetime) -> render.Message:
    """The operator's message: which alerts, why, and how to retry. No case data beyond the ids."""
    lines = [f"- alert {a.id}: {a.kind} {a.stage} via {a.channel}, {a.attempts} forsøg: "
             f"{(a.last_error or 'ukendt fejl')[:300]}" for a in dead]
    subject = f"watchdog: {len(dead)} besked(er) kunne ikke leveres"
    text = "\n".join([
        f"{subject} ({format_local(now)}).", "", *lines, "",
        "Ret fejlen, og send dem igen med `watchdog outbox retry`. Se `watchdog outbox list --state dead`.",
    ])
    return render.Message(subject=subject, text=text, html=render.text_to_html(text),
                          card=render.simple_card(subject, text))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
