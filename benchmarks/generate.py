"""A synthetic national case store: many municipalities' worth of cases, written in bulk.

I/O: writes a database (SQLite file or PostgreSQL database) through SQLAlchemy Core. The mix of
facts follows ``watchdog.demo_data`` (a notification per case, two thirds investigated, measures,
follow-ups, supervision visits of placed children, reassessments), but over three years of
history (so recurring duties have several instances, and some cases are closed), and with the
rows built as plain dicts with their ids assigned here: at 100,000 cases the ORM would spend
minutes on identity maps and flushes. Deterministic for a given seed, scale and ``now``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine

from watchdog.casestore import (
    Absence, Case, FollowUp, Investigation, InvestigationKind, Measure, Notification,
    ReassessmentParticipant, SupervisionVisit, Team, Worker, WorkerRole,
)
from watchdog.clock import local_date
from watchdog.demo_data import sample_measure, sample_outcome

GENERATOR_VERSION = 1  # bump when the mix changes: cached stores are keyed by it
CASES_PER_MUNICIPALITY = 1000
CASEWORKERS_PER_MUNICIPALITY = 32
BATCH_CASES = 2000
HISTORY = timedelta(days=3 * 365)

# Insert order respects the foreign keys.
_TABLES = [Team, Worker, Absence, Case, Notification, ReassessmentParticipant, Investigation,
           Measure, FollowUp, SupervisionVisit]


class _Ids:
    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def __call__(self, table: str) -> int:
        value = self.next.get(table, 0) + 1
        self.next[table] = value
        return value


def _rows(seed: int, now: datetime, cases: int) -> Iterator[dict[str, list[dict]]]:
    """Yield the rows of about ``BATCH_CASES`` cases at a time, per table name."""
    rng = random.Random(seed)
    ids = _Ids()
    today = local_date(now)
    batch: dict[str, list[dict]] = {t.__tablename__: [] for t in _TABLES}
    municipalities = max(1, -(-cases // CASES_PER_MUNICIPALITY))
    made = 0
    for muni in range(municipalities):
        m = f"K{muni + 1:03d}"
        team_ids = []
        for t in range(2):
            team_id = ids("team")
            team_ids.append(team_id)
            batch["team"].append({"id": team_id, "ext_id": f"{m}-T{t + 1}", "name": f"{m} Basisteam {t + 1}",
                                  "duty_email": f"doegnvagt@{m.lower()}.example" if t == 0 else None,
                                  "duty_teams_url": None})

        def worker(role: WorkerRole, team_id: int, fte: float = 1.0) -> int:
            worker_id = ids("worker")
            batch["worker"].append({"id": worker_id, "ext_id": f"{m}-W{worker_id:06d}",
                                    "name": f"Medarbejder {worker_id}",
                                    "email": f"w{worker_id}@{m.lower()}.example", "teams_workflow_url": None,
                                    "role": role, "fte": fte, "team_id": team_id, "active": True})
            return worker_id

        for team_id in team_ids:
            worker(WorkerRole.LEADER, team_id)
        reviewer = worker(WorkerRole.REVIEWER, team_ids[0])
        caseworkers = [(worker(WorkerRole.CASEWORKER, team_ids[i % 2],
                               rng.choice([1.0, 1.0, 1.0, 0.8, 0.75, 0.6, 0.5])), team_ids[i % 2])
                       for i in range(CASEWORKERS_PER_MUNICIPALITY)]
        away, substitute = caseworkers[0][0], caseworkers[1][0]
        batch["absence"].append({"id": ids("absence"), "ext_id": f"{m}-A1", "worker_id": away,
                                 "starts_on": today - timedelta(days=2), "ends_on": today + timedelta(days=10),
                                 "substitute_id": substitute})

        for _ in range(min(CASES_PER_MUNICIPALITY, cases - made)):
            made += 1
            _case(rng, ids, batch, now, today, made, caseworkers, reviewer)
            if made % BATCH_CASES == 0:
                yield batch
                batch = {t.__tablename__: [] for t in _TABLES}
    if any(batch.values()):
        yield batch


def _case(rng: random.Random, ids: _Ids, batch: dict[str, list[dict]], now: datetime, today: date,
          number: int, caseworkers: list[tuple[int, int]], reviewer: int) -> None:
    worker_id, team_id = rng.choice(caseworkers)
    # Recent cases are more common than old ones; old ones are more often closed.
    opened = now - HISTORY * (rng.random() ** 1.6)
    closed = None
    if now - opened > timedelta(days=180) and rng.random() < 0.25:
        closed = opened + (now - opened) * rng.uniform(0.4, 0.95)
    case_id = ids("case_file")
    birth = today - timedelta(days=rng.randint(0, 17 * 365 + 300))
    batch["case_file"].append({
        "id": case_id, "ext_id": f"S-{number:07d}", "team_id": team_id, "worker_id": worker_id,
        "birth_date": birth, "opened_at": opened, "closed_at": closed, "aftercare_decided_at": None,
        "link": None, "facts_changed_at": now,
    })
    horizon = closed or now

    def notification(received: datetime, child_in_support: bool) -> dict:
        assessed = sample_outcome(rng, received, received + timedelta(hours=24), horizon, 0.93, 0.06)
        professional = rng.random() < 0.7
        row = {"id": ids("notification"), "ext_id": f"U-{number:07d}-{len(batch['notification'])}",
               "case_id": case_id, "received_at": received, "professional_notifier": professional,
               "assessed_at": assessed, "assessed_by_id": worker_id if assessed else None,
               "receipt_confirmed_at": (sample_outcome(rng, received, received + timedelta(days=8), horizon, 0.85, 0.1)
                                        if professional else None),
               "child_in_support": child_in_support, "reassessed_at": None,
               "reassessment_reasoning_recorded": None}
        batch["notification"].append(row)
        return row

    first = notification(opened, False)
    if rng.random() >= 0.67:
        return
    aware = opened
    completed = sample_outcome(rng, aware, aware + timedelta(days=122), horizon, 0.45, 0.4)
    interim = None
    if (completed is None or completed > aware + timedelta(days=122)) and rng.random() < 0.15 \
            and horizon > aware + timedelta(days=100):
        interim = aware + timedelta(days=rng.randint(90, 118))
    investigation_id = ids("investigation")
    batch["investigation"].append({
        "id": investigation_id, "ext_id": f"B-{number:07d}", "case_id": case_id, "notification_id": first["id"],
        "kind": InvestigationKind.NEW if rng.random() < 0.85 else InvestigationKind.UPDATE,
        "aware_at": aware, "completed_at": completed,
        "interim_assessed_at": interim if interim and interim <= now else None,
    })
    if completed is None or rng.random() >= 0.75:
        return
    decided = completed + timedelta(days=rng.randint(3, 30))
    if decided >= horizon:
        return
    placement, kind, basis, effected, conversation, exemption = sample_measure(rng, decided, horizon)
    measure_id = ids("measure")
    batch["measure"].append({
        "id": measure_id, "ext_id": f"F-{number:07d}", "case_id": case_id, "kind": kind, "legal_basis": basis,
        "decided_at": decided, "effected_at": effected, "ended_at": None, "investigation_id": None,
        "child_conversation_at": conversation, "child_conversation_exemption": exemption,
        "plan_at": sample_outcome(rng, decided, decided + timedelta(days=91), horizon, 0.7, 0.15),
        "plan_required": placement or rng.random() < 0.6,
    })
    if effected is None:
        return
    # Follow-ups as a chain: each one done (or not yet) by the time the previous one planned.
    start, due = effected, effected + timedelta(days=91)
    for k in range(1, 20):
        done = sample_outcome(rng, start, due, horizon, 0.7, 0.2)
        if done is None:
            break
        next_on = local_date(done) + timedelta(days=rng.choice([90, 120, 180]))
        batch["follow_up"].append({"id": ids("follow_up"), "ext_id": f"O-{number:07d}-{k}", "measure_id": measure_id,
                                   "performed_at": done, "next_planned_on": next_on})
        start, due = done, datetime.combine(next_on, done.timetz())
    if placement:
        visit_at, k = effected + timedelta(days=rng.randint(30, 170)), 1
        while visit_at < horizon:
            batch["supervision_visit"].append({"id": ids("supervision_visit"), "ext_id": f"T-{number:07d}-{k}",
                                               "measure_id": measure_id, "visited_at": visit_at,
                                               "child_conversation": rng.random() < 0.85})
            k += 1
            visit_at += timedelta(days=rng.randint(120, 220))
    if rng.random() < 0.3:
        later = effected + timedelta(days=rng.randint(5, 120))
        if later < horizon:
            second = notification(later, True)
            reassessed = sample_outcome(rng, later, later + timedelta(days=7), horizon, 0.65, 0.15)
            if reassessed is not None:
                second["reassessed_at"] = reassessed
                second["reassessment_reasoning_recorded"] = rng.random() < 0.9
                # Usually the reviewer takes part; sometimes only the caseworker (not met).
                for participant in ([worker_id, reviewer] if rng.random() < 0.8 else [worker_id]):
                    batch["reassessment_participant"].append({
                        "id": ids("reassessment_participant"), "notification_id": second["id"],
                        "worker_id": participant})


def populate(engine: Engine, *, seed: int, now: datetime, cases: int,
             progress: Callable[[str], None] = lambda message: None) -> dict[str, int]:
    """Insert the national store into an empty, migrated database; returns rows per table."""
    counts = {t.__tablename__: 0 for t in _TABLES}
    with engine.begin() as conn:
        for batch in _rows(seed, now, cases):
            for model in _TABLES:
                rows = batch[model.__tablename__]
                if rows:
                    conn.execute(model.__table__.insert(), rows)
                    counts[model.__tablename__] += len(rows)
            if counts["case_file"] % 20_000 == 0:
                progress(f"{counts['case_file']:,} cases written")
        if engine.dialect.name == "postgresql":
            # The ids were given here: move the sequences past them for later inserts.
            for model in _TABLES:
                name = model.__tablename__
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                  f"COALESCE((SELECT max(id) FROM {name}), 0) + 1, false)"))
    return counts
