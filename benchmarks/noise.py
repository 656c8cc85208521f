"""The noise budget: how many messages people get, how long they are, and whether what can still
be met comes first, over 8 simulated weeks of the demo municipality::

    python -m benchmarks.noise [--seed 7] [--weeks 8] [--start 2026-10-05] [--cases 900]

I/O: a SQLite database and the delivered messages under ``benchmarks/out/noise/`` (replaced each
run), a local SMTP server (``watchdog.mailsink``), and a JSON and Markdown result there.

The municipality is generated as of the last simulated day (so it holds the work done during the
eight weeks: completions, new notifications, new measures) and the service goes live on the
first day. Every simulated day at 09:00 local time the facts dated up to that instant become
known (every case is marked changed; the rules ignore facts dated after ``now``), then one poll
and one delivery round run through the real service and the real SMTP path, as ``watchdog run``
would. The figures are read from the messages the SMTP server received and the outbox:

- messages per working day (per recipient: their messages / the working days of the period);
- items per message (the alerts a deadline message carries; the listed cases of a digest);
- lines per message (its text/plain part);
- the share of messages whose first item is still meetable, and of the messages that hold a
  meetable deadline, the share that list it first (target: 100 %).

Targets (issue 14): median caseworker at most one message per working day; no message over
150 lines; every message that holds a meetable deadline lists it first.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import shutil
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text, update
from sqlmodel import Session, select

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "noise"
MAX_LINES = 150


@dataclass
class Received:
    day: date
    to: str
    subject: str
    lines: int
    items: int
    holds_meetable: bool
    first_meetable: bool
    digest: bool


@dataclass
class Recipient:
    address: str
    role: str
    messages: list[Received] = field(default_factory=list)


def _parse(path: Path) -> tuple[str, str, str]:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return str(msg["To"]), str(msg["Subject"]), msg.get_body(("plain",)).get_content()


def _first_listed_ref(body: str) -> str | None:
    for line in body.splitlines():
        if line.startswith("- Sag "):
            return line[len("- Sag "):].split(":", 1)[0]
    return None


def run(*, seed: int, weeks: int, start: date, cases: int, out: Path = OUT, progress=print) -> dict:
    from watchdog.casestore import Case, Worker
    from watchdog.clock import LOCAL_TZ, ensure_aware
    from watchdog.db import make_engine, session_scope, upgrade
    from watchdog.deadlines import Deadline
    from watchdog.delivery import Transport
    from watchdog.demo_data import Scale, generate, populate
    from watchdog.mailsink import MailSink
    from watchdog.outbox import Alert, AlertKind, AlertState
    from watchdog.delivery_round import deliver
    from watchdog.service import is_warning_day, poll
    from watchdog.settings import load_settings

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # Every day at 09:00 local: the instants in UTC move with DST, the local time does not.
    days = [ensure_aware(datetime.combine(start + timedelta(days=n), datetime.min.time().replace(hour=9),
                                          tzinfo=LOCAL_TZ)) for n in range(weeks * 7)]
    last = days[-1]
    instants = {d.astimezone(LOCAL_TZ).date(): d for d in days}
    started = time.monotonic()
    with MailSink(out / "mail") as sink:
        settings = load_settings(None, database_url=f"sqlite:///{out / 'noise.db'}", municipality="Demo Kommune",
                                 smtp={"host": "127.0.0.1", "port": sink.port, "mode": "plain",
                                       "from_address": "frister@demo-kommune.dk"},
                                 delivery={"batch_size": 10000},
                                 web={"base_url": "https://frister.demo-kommune.dk"})
        engine = make_engine(settings.database_url_value)
        upgrade(engine)
        with session_scope(engine) as session:
            populate(session, generate(seed, last, Scale(cases=cases)))
            # Known from go-live on: facts are marked changed on each simulated day (below).
            session.execute(update(Case).values(facts_changed_at=days[0]))
        transport = Transport(settings)
        mails_by_day: dict[date, list[Path]] = {}
        for now in days:
            with session_scope(engine) as session:
                session.execute(update(Case).values(facts_changed_at=now))
            before = len(sink.saved)
            poll(engine, settings, now=now, replica="noise")
            deliver(engine, settings, now=now, transport=transport, worker_name="noise")
            mails_by_day[now.astimezone(LOCAL_TZ).date()] = sink.saved[before:]
            progress(f"{now.astimezone(LOCAL_TZ).date()}: {len(sink.saved) - before} messages")
        with Session(engine) as session:
            roles = {w.email: str(w.role.value) for w in session.exec(select(Worker)).all()}
            # The deadline alerts of each message: one recipient and day (one round a day).
            groups: dict[tuple[str, date], list[tuple[Alert, Deadline]]] = defaultdict(list)
            for alert, deadline in session.exec(
                    select(Alert, Deadline).join(Deadline, Deadline.id == Alert.deadline_id)
                    .where(Alert.state == AlertState.SENT, Alert.kind != AlertKind.DIGEST)).all():
                groups[(alert.recipient_address, alert.sent_at.astimezone(LOCAL_TZ).date())].append((alert, deadline))
            case_refs = dict(session.execute(text("SELECT id, ext_id FROM case_file")).all())
        engine.dispose()

    recipients: dict[str, Recipient] = {}
    for day, paths in mails_by_day.items():
        for path in paths:
            to, subject, body = _parse(path)
            digest = subject.startswith("Ugeoversigt")
            group = [] if digest else groups.get((to, day), [])
            sent_at = instants[day]
            meetable = {case_refs[d.case_id] for a, d in group if ensure_aware(d.due) > sent_at
                        and AlertKind(a.kind) == AlertKind.WARNING}
            first_ref = _first_listed_ref(body)
            items = len(group) if not digest else sum(1 for line in body.splitlines() if line.startswith("   - Sag "))
            rec = recipients.setdefault(to, Recipient(to, roles.get(to, "other")))
            rec.messages.append(Received(day=day, to=to, subject=subject, lines=len(body.splitlines()), items=items,
                                         holds_meetable=bool(meetable), first_meetable=first_ref in meetable,
                                         digest=digest))
    working_days = sum(1 for d in days if is_warning_day(d.astimezone(LOCAL_TZ).date()))
    return summarise(recipients, working_days=working_days, days=len(days), seed=seed, start=start,
                     cases=cases, seconds=time.monotonic() - started)


def summarise(recipients: dict[str, Recipient], *, working_days: int, **meta) -> dict:
    def per_role(role: str) -> dict:
        people = [r for r in recipients.values() if r.role == role]
        msgs = [m for r in people for m in r.messages]
        if not people:
            return {"recipients": 0}
        per_day = sorted(len(r.messages) / working_days for r in people)
        return {
            "recipients": len(people),
            "messages": len(msgs),
            "messages_per_working_day_median": round(statistics.median(per_day), 2),
            "messages_per_working_day_max": round(max(per_day), 2),
            "items_per_message_median": statistics.median(m.items for m in msgs) if msgs else 0,
            "items_per_message_max": max((m.items for m in msgs), default=0),
            "lines_per_message_median": statistics.median(m.lines for m in msgs) if msgs else 0,
            "lines_per_message_max": max((m.lines for m in msgs), default=0),
            "first_item_meetable_share": _share([m.first_meetable for m in msgs if not m.digest]),
            "meetable_listed_first_share": _share([m.first_meetable for m in msgs if m.holds_meetable]),
            "messages_holding_a_meetable_deadline": sum(1 for m in msgs if m.holds_meetable),
        }

    everything = [m for r in recipients.values() for m in r.messages]
    result = {**{k: str(v) if isinstance(v, date) else v for k, v in meta.items()}, "working_days": working_days,
              "caseworker": per_role("caseworker"), "leader": per_role("leader"),
              "other": per_role("other"),
              "messages": len(everything), "max_lines": max((m.lines for m in everything), default=0)}
    cw = result["caseworker"]
    holding = [m for m in everything if m.holds_meetable]
    result["targets"] = {
        "median caseworker ≤ 1 message per working day": cw.get("messages_per_working_day_median", 0) <= 1,
        f"no message over {MAX_LINES} lines": result["max_lines"] <= MAX_LINES,
        "100 % of messages holding a meetable deadline list it first": all(m.first_meetable for m in holding),
    }
    return result


def _share(flags: list[bool]) -> float | None:
    return round(100 * sum(flags) / len(flags), 1) if flags else None


def markdown(result: dict) -> str:
    rows = [("messages per working day, median", "messages_per_working_day_median"),
            ("messages per working day, highest", "messages_per_working_day_max"),
            ("items per message, median", "items_per_message_median"),
            ("items per message, highest", "items_per_message_max"),
            ("lines per message, median", "lines_per_message_median"),
            ("lines per message, highest", "lines_per_message_max"),
            ("first item still meetable (% of deadline messages)", "first_item_meetable_share"),
            ("messages holding a meetable deadline", "messages_holding_a_meetable_deadline"),
            ("… of which list it first (%)", "meetable_listed_first_share")]
    out = [f"Seed {result['seed']}, {result['cases']} cases, {result['days']} days from {result['start']} "
           f"({result['working_days']} working days), {result['messages']} messages, {result['seconds']:.0f} s.", "",
           "| figure | caseworkers | leaders |", "|---|---:|---:|",
           f"| recipients | {result['caseworker']['recipients']} | {result['leader']['recipients']} |",
           f"| messages | {result['caseworker'].get('messages', 0)} | {result['leader'].get('messages', 0)} |"]
    for label, key in rows:
        out.append(f"| {label} | {result['caseworker'].get(key, '–')} | {result['leader'].get(key, '–')} |")
    out += ["", "| target | met? |", "|---|---|"]
    out += [f"| {name} | {'yes' if ok else 'NO'} |" for name, ok in result["targets"].items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 10, 5))
    parser.add_argument("--cases", type=int, default=900)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run(seed=args.seed, weeks=args.weeks, start=args.start, cases=args.cases,
                 progress=(lambda m: None) if args.quiet else print)
    (OUT / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    table = markdown(result)
    (OUT / "result.md").write_text(table + "\n")
    print(table)
    return 0 if all(result["targets"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
