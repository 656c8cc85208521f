"""Stage 5a's inputs: what a message shows beyond its own alerts.

I/O: reads the database (the outbox and the deadlines), never writes. ``batch_rows`` reads, for a
whole claimed batch at once, the deadlines, cases, workers and teams its messages show, and when
each of its recipients last had a message on its channel (``last_messages_at``: one query per 500
recipients, not one per message; ``BatchRows.sent`` keeps it current as the batch's messages are
recorded sent). For one recipient's message, ``message_context`` gives rendering (pure) a
``render.MessageContext``: that last message's instant (so breaches due after it are "new"), and
for a team leader or head of unit the counts per caseworker (open breaches, deadlines due within 7
days) of the teams the message concerns, and the link to the full list in the web app.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, case, func, select, type_coerce
from sqlmodel import Session

from watchdog.sensitive import contains_cpr
from watchdog.arrangement import NO_WORKER_DA, MessageContext, WorkerCount
from watchdog.casestore import Case, Team, Worker, WorkerRole
from watchdog.deadlines import Deadline
from watchdog.outbox import Alert, AlertState, Channel
from watchdog.rules.types import Status

DUE_SOON_DAYS = 7
#: The web app's pages the messages link to (``settings.web.base_url`` + path).
TEAM_PAGE = "/team"
OWN_PAGE = "/"


def full_list_url(settings, *, leader: bool) -> str:
    """Where the full list is: the web app's team page (leaders) or front page (caseworkers);
    without a configured web address, the case system's front page."""
    base = settings.web.base_url
    if base:
        return base + (TEAM_PAGE if leader else OWN_PAGE)
    from watchdog.reports.digest import system_link

    return system_link(settings)


def last_message_at(session: Session, *, worker_id: int | None, address: str, channel: Channel) -> datetime | None:
    """When the recipient last got a message on this channel (sent or accepted), or None."""
    query = select(func.max(Alert.sent_at)).where(
        Alert.state.in_((AlertState.SENT, AlertState.ACCEPTED)), Alert.channel == Channel(channel))
    query = (query.where(Alert.recipient_worker_id == worker_id) if worker_id is not None
             else query.where(Alert.recipient_address == address))
    return session.execute(query).scalar_one_or_none()


def team_counts(session: Session, team_ids: Iterable[int], *, now: datetime) -> tuple[WorkerCount, ...]:
    """Per responsible caseworker in these teams: open breaches, and open deadlines due within
    ``DUE_SOON_DAYS``; by most breaches first."""
    ids = sorted(set(team_ids))
    if not ids:
        return ()
    soon = now + timedelta(days=DUE_SOON_DAYS)
    # An open deadline past its due time is a breach the poll has not stored yet.
    breached = (((Deadline.status == Status.BREACHED) & (Deadline.due <= soon))
                | ((Deadline.status == Status.OPEN) & (Deadline.due <= now)))
    due_soon = (Deadline.status == Status.OPEN) & (Deadline.due > now) & (Deadline.due <= soon)
    # Read from the teams' cases (``ix_case_file_team_id``, then ``ix_deadline_case_id``): a few
    # thousand rows a team. The status is compared as text (``status || ''``) and the week's end
    # only in the sums, so that the planner does not read ``ix_deadline_status_due`` instead: every
    # open deadline due within the week, all teams' (~70k rows at 100k cases, ~65 ms a leader's
    # message). A caseworker whose sums are both 0 is left out below, as the WHERE left them out.
    open_or_breached = type_coerce(Deadline.status, String).concat("").in_(
        (Status.BREACHED.name, Status.OPEN.name))
    rows = session.execute(
        select(Worker.name, func.sum(case((breached, 1), else_=0)),
               func.sum(case((due_soon, 1), else_=0)))
        .select_from(Case).join(Deadline, Deadline.case_id == Case.id)
        .outerjoin(Worker, Worker.id == Deadline.responsible_worker_id)
        .where(Case.team_id.in_(ids), open_or_breached)
        .group_by(Worker.name)
    ).all()
    counts: dict[str, list[int]] = {}
    for name, b, s_ in rows:
        # A name stored before the intake refused CPR-like names is left out, not the message.
        entry = counts.setdefault(NAME_WITHHELD_DA if name and contains_cpr(name) else (name or NO_WORKER_DA), [0, 0])
        entry[0] += int(b or 0)
        entry[1] += int(s_ or 0)
    return tuple(WorkerCount(name, b, s) for name, (b, s) in
                 sorted(counts.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0])) if b or s)


NAME_WITHHELD_DA = "(navn udeladt)"


def recipient_key(worker_id: int | None, address: str, channel: Channel) -> tuple:
    """Whose messages ``last_message_at`` looks at: the worker's (any address), else the address's."""
    return (("worker", worker_id) if worker_id is not None else ("address", address), Channel(channel).value)


def last_messages_at(session: Session, alerts: Iterable[Alert]) -> dict[tuple, datetime | None]:
    """``last_message_at`` for every recipient of ``alerts`` in a query per 500 recipients, by
    ``recipient_key`` (None: never messaged on that channel)."""
    keys = {recipient_key(a.recipient_worker_id, a.recipient_address, a.channel) for a in alerts}
    out: dict[tuple, datetime | None] = dict.fromkeys(keys)
    done = Alert.state.in_((AlertState.SENT, AlertState.ACCEPTED))
    workers = sorted({who[1] for who, _channel in keys if who[0] == "worker"})
    addresses = sorted({who[1] for who, _channel in keys if who[0] == "address"})
    for start in range(0, len(workers), _CHUNK):
        for worker_id, channel, last in session.execute(
                select(Alert.recipient_worker_id, Alert.channel, func.max(Alert.sent_at))
                .where(done, Alert.recipient_worker_id.in_(workers[start:start + _CHUNK]))
                .group_by(Alert.recipient_worker_id, Alert.channel)):
            key = recipient_key(worker_id, "", channel)
            if key in out:
                out[key] = last
    for start in range(0, len(addresses), _CHUNK):
        for address, channel, last in session.execute(
                select(Alert.recipient_address, Alert.channel, func.max(Alert.sent_at))
                .where(done, Alert.recipient_address.in_(addresses[start:start + _CHUNK]))
                .group_by(Alert.recipient_address, Alert.channel)):
            key = recipient_key(None, address, channel)
            if key in out:
                out[key] = last
    return out


_UNKNOWN = object()


def message_context(session: Session, settings, *, recipient: Worker | None, address: str,
                    channel: Channel, team_ids: Iterable[int], now: datetime,
                    last=_UNKNOWN) -> MessageContext:
    """Everything ``render.render_alerts`` needs besides the items, for one recipient.
    ``last``: the recipient's ``last_message_at`` when the caller has read it already (None:
    never messaged); read here otherwise."""
    leader = recipient is not None and WorkerRole(recipient.role) in (WorkerRole.LEADER, WorkerRole.HEAD)
    if last is _UNKNOWN:
        last = last_message_at(session, worker_id=recipient.id if recipient is not None else None,
                               address=address, channel=channel)
    # Never messaged: only the breaches of the last backlog_days count as new to them.
    new_since = last if last is not None else now - timedelta(days=settings.alerts.backlog_days)
    counts: tuple[WorkerCount, ...] = ()
    scope = None
    if leader:
        ids = sorted(set(team_ids))
        counts = team_counts(session, ids, now=now)
        names = session.execute(select(Team.name).where(Team.id.in_(ids)).order_by(Team.name)).scalars().all()
        scope = ", ".join(n for n in names if not contains_cpr(n)) or None
    return MessageContext(new_since=new_since, leader=leader, counts=counts, counts_scope=scope,
                          list_url=full_list_url(settings, leader=leader),
                          max_items=settings.alerts.max_items_per_section)


# --- the rows of a claimed batch ---------------------------------------------------------------

@dataclass(frozen=True)
class BatchRows:
    """What the messages of one claimed batch are built from, read in a few queries for the whole
    batch (not a ``Session.get`` per alert): the alerts' deadlines (plain rows), their cases
    (plain rows), the recipients and responsible workers, and the cases' teams (detached ORM rows,
    as ``message_context`` and the name checks read them)."""

    deadlines: dict[int, Any]
    cases: dict[int, Any]
    workers: dict[int, Worker]
    teams: dict[int, Team]
    acknowledged: dict[int, datetime] = field(default_factory=dict)  # deadline id → open ack's end
    digest_recipients: frozenset[int] = frozenset()  # recipients who chose a daily digest
    # ``recipient_key`` → the recipient's last message on the channel (None: never); a message of
    # the batch recorded sent updates it (``sent``), as a fresh read would see it.
    last_messages: dict[tuple, datetime | None] = field(default_factory=dict)

    def last_message(self, *, worker_id: int | None, address: str, channel: Channel):
        """``last_message_at`` as it would read now, or ``_UNKNOWN`` (not read with the batch)."""
        return self.last_messages.get(recipient_key(worker_id, address, channel), _UNKNOWN)

    def sent(self, alerts: Iterable[Alert], *, at: datetime) -> None:
        for alert in alerts:
            key = recipient_key(alert.recipient_worker_id, alert.recipient_address, alert.channel)
            if key in self.last_messages:
                before = self.last_messages[key]
                self.last_messages[key] = at if before is None or at > before else before


_CHUNK = 500


def batch_rows(session: Session, alerts: Iterable[Alert], *, now: datetime) -> BatchRows:
    """The rows ``alerts`` need, each read once, and which of their deadlines have an open
    acknowledgement and which recipients chose a daily digest (so a message without either skips
    those checks). Read when the batch is claimed: a deadline closed or acknowledged while the
    batch is being sent is seen by the next batch, as one closed during a send."""
    from watchdog.acknowledgements import active_until
    from watchdog.reports.daily_digest import WorkerPreference

    alerts = list(alerts)

    def by_id(query, column, ids) -> dict[int, Any]:
        out: dict[int, Any] = {}
        ids = sorted(ids)
        for start in range(0, len(ids), _CHUNK):
            out.update((r.id, r) for r in session.execute(query.where(column.in_(ids[start:start + _CHUNK]))))
        return out

    deadlines = by_id(select(Deadline.id, Deadline.key, Deadline.case_id, Deadline.duty, Deadline.regime,
                             Deadline.citation, Deadline.due, Deadline.status, Deadline.met_at,
                             Deadline.municipal_policy, Deadline.responsible_worker_id),
                      Deadline.id, {a.deadline_id for a in alerts if a.deadline_id is not None})
    cases = by_id(select(Case.id, Case.ext_id, Case.link, Case.team_id), Case.id,
                  {d.case_id for d in deadlines.values()})
    worker_ids = ({a.recipient_worker_id for a in alerts if a.recipient_worker_id is not None}
                  | {d.responsible_worker_id for d in deadlines.values() if d.responsible_worker_id is not None})
    workers: dict[int, Worker] = {}
    teams: dict[int, Team] = {}
    ids = sorted(worker_ids)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        workers.update((w.id, w) for w in session.scalars(select(Worker).where(Worker.id.in_(chunk))))
    ids = sorted({c.team_id for c in cases.values()})
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        teams.update((t.id, t) for t in session.scalars(select(Team).where(Team.id.in_(chunk))))
    recipients = sorted({a.recipient_worker_id for a in alerts if a.recipient_worker_id is not None})
    digest: set[int] = set()
    for start in range(0, len(recipients), _CHUNK):
        digest.update(session.scalars(select(WorkerPreference.worker_id).where(
            WorkerPreference.worker_id.in_(recipients[start:start + _CHUNK]),
            WorkerPreference.daily_digest_hour.is_not(None))))
    return BatchRows(deadlines=deadlines, cases=cases, workers=workers, teams=teams,
                     acknowledged=active_until(session, deadlines, now=now), digest_recipients=frozenset(digest),
                     last_messages=last_messages_at(session, alerts))
