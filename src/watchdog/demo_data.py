"""A synthetic municipality for the demo and for tests: teams, workers, cases and their facts.

Pure apart from writing the rows it makes: ``generate(rng, now)`` returns plain table objects, and
``populate(session, ...)`` adds them. Deterministic for a given seed and ``now``. The scale follows
the memo in the seeds: about 900 active cases on about 32 caseworkers (some part-time) in two
teams, with a realistic mix of on-time and late work over the past year. There are no children's
names or CPR numbers anywhere: a child is known by the case reference only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session

from watchdog.casestore import (
    Absence,
    Case,
    FollowUp,
    Investigation,
    InvestigationKind,
    Measure,
    MeasureKind,
    Notification,
    ReassessmentParticipant,
    SupervisionVisit,
    Team,
    Worker,
    WorkerRole,
)
from watchdog.clock import local_date

_FIRST = ["Anne", "Mette", "Louise", "Camilla", "Sara", "Maria", "Line", "Julie", "Katrine", "Sofie",
          "Ida", "Emma", "Peter", "Lars", "Jens", "Morten", "Rasmus", "Thomas", "Mikkel", "Søren",
          "Hanne", "Birgitte", "Lene", "Tina", "Rikke", "Maja", "Nanna", "Signe", "Helle", "Pia",
          "Jonas", "Anders", "Kasper", "Henrik"]
_LAST = ["Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
         "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Poulsen"]


@dataclass
class Municipality:
    """The rows, plus ``links``: which generated object each row refers to (ids come at insert)."""

    teams: list[Team] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    absences: list[Absence] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    participants: list[ReassessmentParticipant] = field(default_factory=list)
    investigations: list[Investigation] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    follow_ups: list[FollowUp] = field(default_factory=list)
    visits: list[SupervisionVisit] = field(default_factory=list)
    links: dict[int, dict[str, object]] = field(default_factory=dict)

    def link(self, row: object, **refs: object) -> None:
        self.links.setdefault(id(row), {}).update(refs)

    def ref(self, row: object, name: str) -> object | None:
        return self.links.get(id(row), {}).get(name)


@dataclass(frozen=True)
class Scale:
    cases: int = 900
    caseworkers: int = 32
    teams: int = 2
    email_domain: str = "demo-kommune.dk"
    # A share of caseworkers who also get Teams messages through a (local, demo) workflow URL.
    teams_url: str | None = None


def sample_outcome(rng: random.Random, clock_start: datetime, due: datetime, now: datetime,
             on_time: float, late: float) -> datetime | None:
    """When a duty was done: on time with probability ``on_time``, late with ``late``, else not yet."""
    if now <= clock_start:
        return None
    roll = rng.random()
    span = (min(due, now) - clock_start).total_seconds()
    if roll < on_time:
        done = clock_start + timedelta(seconds=rng.uniform(0.1, 0.95) * max(span, 60))
    elif roll < on_time + late and now > due:
        done = due + timedelta(seconds=rng.uniform(0.05, 1.0) * max((now - due).total_seconds(), 60))
    else:
        return None
    return done if done <= now else None


_BASIS = {MeasureKind.PLACEMENT_CONSENT: "BL § 46", MeasureKind.PLACEMENT_NO_CONSENT: "BL § 47",
          MeasureKind.SUPPORT: "BL § 32, stk. 1, nr. 3"}


def sample_measure(rng: random.Random, decided: datetime, now: datetime):
    """A decided measure's kind and its facts: (placement, kind, legal basis, effected instant or
    None, child-conversation instant or None, recorded exemption or None)."""
    placement = rng.random() < 0.25
    kind = ((MeasureKind.PLACEMENT_CONSENT if rng.random() < 0.8 else MeasureKind.PLACEMENT_NO_CONSENT)
            if placement else MeasureKind.SUPPORT)
    effected = decided + timedelta(days=rng.randint(0, 14))
    effected = effected if effected <= now else None
    conversation = decided - timedelta(days=rng.randint(1, 20)) if rng.random() < 0.7 else None
    exemption = None
    if conversation is None and rng.random() < 0.4:
        exemption = "Barnets alder og modenhed taler afgørende imod samtale"
    return placement, kind, _BASIS[kind], effected, conversation, exemption


def generate(seed: int, now: datetime, scale: Scale = Scale()) -> Municipality:
    """Build the municipality's rows (without ids) for ``now``. Same seed and now, same rows."""
    rng = random.Random(seed)
    m = Municipality()
    names = [f"{f} {l}" for f in _FIRST for l in _LAST]
    rng.shuffle(names)

    def slug(name: str) -> str:
        return (name.lower().replace(" ", ".").replace("ø", "oe").replace("æ", "ae").replace("å", "aa"))

    # Teams: the two basis teams of the memo. Team 1 has a duty address (døgnvagt).
    for t in range(scale.teams):
        m.teams.append(Team(ext_id=f"T{t + 1}", name=f"Basisteam {t + 1}",
                            duty_email=f"doegnvagt{t + 1}@{scale.email_domain}" if t == 0 else None))

    worker_no = 0

    def new_worker(role: WorkerRole, fte: float) -> Worker:
        nonlocal worker_no
        worker_no += 1
        name = names[worker_no]
        return Worker(ext_id=f"W{worker_no:03d}", name=name, email=f"{slug(name)}@{scale.email_domain}",
                      role=role, fte=fte, active=True)

    team_of: dict[str, int] = {}
    for t in range(scale.teams):
        leader = new_worker(WorkerRole.LEADER, 1.0)
        team_of[leader.ext_id] = t
        m.workers.append(leader)
    reviewer = new_worker(WorkerRole.REVIEWER, 1.0)
    team_of[reviewer.ext_id] = 0
    m.workers.append(reviewer)
    caseworkers: list[Worker] = []
    for i in range(scale.caseworkers):
        # Part-time and project work: 32 people on about 24 full-time posts, as in the memo.
        fte = rng.choice([1.0, 1.0, 1.0, 0.8, 0.75, 0.6, 0.5, 0.4])
        w = new_worker(WorkerRole.CASEWORKER, fte)
        if scale.teams_url and i % 4 == 0:
            w.teams_workflow_url = scale.teams_url
        team_of[w.ext_id] = i % scale.teams
        caseworkers.append(w)
    m.workers.extend(caseworkers)
    # The head of unit (afdelingsleder) and IT operations, numbered after the caseworkers so that
    # every earlier worker keeps its id and name.
    m.workers.append(new_worker(WorkerRole.HEAD, 1.0))
    m.workers.append(new_worker(WorkerRole.ADMIN, 0.0))

    today = local_date(now)
    # Two caseworkers are away now: one with a substitute, one without (the leader covers).
    k = len(caseworkers)
    for ext_id, away, substitute, back_in in (("A001", caseworkers[0], caseworkers[1] if k > 1 else None, 10),
                                              ("A002", caseworkers[5 % k], None, 20)):
        absence = Absence(ext_id=ext_id, worker_id=0, starts_on=today - timedelta(days=2),
                          ends_on=today + timedelta(days=back_in))
        m.link(absence, worker=away, substitute=substitute)
        m.absences.append(absence)

    year = timedelta(days=365)
    for c in range(scale.cases):
        worker = rng.choice(caseworkers)
        team_idx = team_of[worker.ext_id]
        opened = now - timedelta(seconds=rng.uniform(0, 1.0) * year.total_seconds())
        birth = today - timedelta(days=rng.randint(0, 17 * 365 + 300))
        case = Case(ext_id=f"S-{opened.year}-{c + 1:05d}", team_id=0, opened_at=opened,
                    birth_date=birth, facts_changed_at=now)
        m.link(case, worker=worker, team=team_idx)
        m.cases.append(case)

        # Every case starts with a notification; some get a later one while support runs.
        received = opened
        assessed = sample_outcome(rng, received, received + timedelta(hours=24), now, 0.93, 0.06)
        n = Notification(ext_id=f"U-{c + 1:05d}-1", case_id=0, received_at=received,
                         professional_notifier=rng.random() < 0.7, assessed_at=assessed)
        m.link(n, case=case, assessor=worker if assessed else None)
        if n.professional_notifier:
            n.receipt_confirmed_at = sample_outcome(rng, received, received + timedelta(days=8), now, 0.85, 0.1)
        m.notifications.append(n)

        # About two thirds lead to a new investigation (some to an update of an earlier one).
        if rng.random() < 0.67:
            aware = received
            due = aware + timedelta(days=122)
            completed = sample_outcome(rng, aware, due, now, 0.45, 0.4)
            interim = None
            if completed is None or completed > due:
                if rng.random() < 0.15 and now > aware + timedelta(days=100):
                    interim = aware + timedelta(days=rng.randint(90, 118))
            inv = Investigation(ext_id=f"B-{c + 1:05d}", case_id=0, aware_at=aware,
                                kind=InvestigationKind.NEW if rng.random() < 0.85 else InvestigationKind.UPDATE,
                                completed_at=completed, interim_assessed_at=interim if interim and interim <= now else None)
            m.link(inv, case=case)
            m.investigations.append(inv)

            # Half of the investigated cases lead to a measure.
            if completed is not None and rng.random() < 0.75:
                decided = completed + timedelta(days=rng.randint(3, 30))
                if decided < now:
                    placement, kind, basis, effected, conversation, exemption = sample_measure(
                        rng, decided, now)
                    plan = sample_outcome(rng, decided, decided + timedelta(days=91), now, 0.7, 0.15)
                    meas = Measure(ext_id=f"F-{c + 1:05d}", case_id=0, kind=kind, legal_basis=basis,
                                   decided_at=decided, effected_at=effected, child_conversation_at=conversation,
                                   child_conversation_exemption=exemption, plan_at=plan,
                                   plan_required=placement or rng.random() < 0.6)
                    m.link(meas, case=case)
                    m.measures.append(meas)
                    if effected is not None:
                        first_due = effected + timedelta(days=91)
                        done = sample_outcome(rng, effected, first_due, now, 0.7, 0.2)
                        if done is not None:
                            fu = FollowUp(ext_id=f"O-{c + 1:05d}-1", measure_id=0, performed_at=done,
                                          next_planned_on=local_date(done) + timedelta(days=rng.choice([90, 120, 180])))
                            m.link(fu, measure=meas)
                            m.follow_ups.append(fu)
                        if placement:
                            t = effected + timedelta(days=rng.randint(30, 170))
                            k = 1
                            while t < now:
                                v = SupervisionVisit(ext_id=f"T-{c + 1:05d}-{k}", measure_id=0, visited_at=t,
                                                     child_conversation=rng.random() < 0.85)
                                m.link(v, measure=meas)
                                m.visits.append(v)
                                k += 1
                                t += timedelta(days=rng.randint(120, 220))

                    # A later notification about a child in support: a reassessment is due.
                    if effected is not None and rng.random() < 0.3:
                        later = effected + timedelta(days=rng.randint(5, 120))
                        if later < now:
                            n2_assessed = sample_outcome(rng, later, later + timedelta(hours=24), now, 0.9, 0.08)
                            n2 = Notification(ext_id=f"U-{c + 1:05d}-2", case_id=0, received_at=later,
                                              professional_notifier=rng.random() < 0.7, assessed_at=n2_assessed,
                                              child_in_support=True)
                            m.link(n2, case=case, assessor=worker if n2_assessed else None)
                            roll = rng.random()
                            reassessed = sample_outcome(rng, later, later + timedelta(days=7), now, 0.65, 0.15)
                            if reassessed is not None:
                                n2.reassessed_at = reassessed
                                n2.reassessment_reasoning_recorded = rng.random() < 0.9
                                # Usually the reviewer takes part; sometimes only the caseworker (not met).
                                m.link(n2, participants=[worker, reviewer] if roll < 0.8 else [worker])
                            m.notifications.append(n2)
    return m


def populate(session: Session, m: Municipality) -> dict[str, int]:
    """Insert the generated rows, wiring their references; returns counts per table."""
    session.add_all(m.teams)
    session.flush()
    team_ids = [t.id for t in m.teams]
    caseworkers = [w for w in m.workers if w.role == WorkerRole.CASEWORKER]
    for idx, leader in enumerate(w for w in m.workers if w.role == WorkerRole.LEADER):
        leader.team_id = team_ids[idx % len(team_ids)]
    for idx, w in enumerate(caseworkers):
        w.team_id = team_ids[idx % len(team_ids)]
    for w in m.workers:
        if w.role == WorkerRole.REVIEWER:
            w.team_id = team_ids[0]
    session.add_all(m.workers)
    session.flush()
    for absence in m.absences:
        absence.worker_id = m.ref(absence, "worker").id
        substitute = m.ref(absence, "substitute")
        absence.substitute_id = substitute.id if substitute else None
    session.add_all(m.absences)
    for case in m.cases:
        case.team_id = team_ids[m.ref(case, "team")]
        case.worker_id = m.ref(case, "worker").id
    session.add_all(m.cases)
    session.flush()
    for n in m.notifications:
        n.case_id = m.ref(n, "case").id
        assessor = m.ref(n, "assessor")
        n.assessed_by_id = assessor.id if assessor else None
    for inv in m.investigations:
        inv.case_id = m.ref(inv, "case").id
    session.add_all(m.notifications)
    session.add_all(m.investigations)
    session.flush()
    for n in m.notifications:
        for p in m.ref(n, "participants") or []:
            m.participants.append(ReassessmentParticipant(notification_id=n.id, worker_id=p.id))
    session.add_all(m.participants)
    for meas in m.measures:
        meas.case_id = m.ref(meas, "case").id
    session.add_all(m.measures)
    session.flush()
    for row in (*m.follow_ups, *m.visits):
        row.measure_id = m.ref(row, "measure").id
    session.add_all(m.follow_ups)
    session.add_all(m.visits)
    session.flush()
    return {
        "teams": len(m.teams), "workers": len(m.workers), "absences": len(m.absences),
        "cases": len(m.cases), "notifications": len(m.notifications),
        "investigations": len(m.investigations), "measures": len(m.measures),
        "follow_ups": len(m.follow_ups), "supervision_visits": len(m.visits),
    }


def active_case_count(m: Municipality) -> int:
    return sum(1 for c in m.cases if c.closed_at is None)
