"""The foundation: the package is ours, instants round-trip exactly, settings refuse bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
import importlib
from pathlib import Path

import pytest
from sqlmodel import select

import watchdog
from watchdog.casestore import Case, Notification, Team
from watchdog.db import current_revision, head_revision, is_sqlite
from watchdog.errors import ConfigError
from watchdog.settings import load_settings
from watchdog.settings_urls import mask_url


def test_import_watchdog_is_this_project_not_the_filesystem_events_library():
    assert Path(watchdog.__file__).parent.joinpath("casestore.py").is_file()
    assert watchdog.WATCHDOG_DISTRIBUTION == "frist-watchdog"
    with pytest.raises(ImportError):
        importlib.import_module("watchdog.observers")  # the other library's module


def test_database_is_at_the_newest_migration(engine):
    assert current_revision(engine) == head_revision()


def test_instants_round_trip_aware_and_exact(engine, session):
    received = datetime(2024, 3, 30, 23, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    team = Team(ext_id="T1", name="Team 1")
    session.add(team)
    session.flush()
    case = Case(ext_id="S-1", team_id=team.id, opened_at=received, facts_changed_at=received)
    session.add(case)
    session.flush()
    session.add(Notification(ext_id="N-1", case_id=case.id, received_at=received))
    session.commit()
    session.expire_all()
    got = session.exec(select(Notification)).one()
    assert got.received_at.tzinfo is not None
    assert got.received_at.utcoffset() == timedelta(0)
    assert got.received_at == received
    assert got.received_at == datetime(2024, 3, 30, 22, 30, 15, 123456, tzinfo=UTC)


def test_a_naive_instant_is_refused_by_the_store(engine, session):
    team = Team(ext_id="T1", name="Team 1")
    session.add(team)
    session.flush()
    session.add(Case(ext_id="S-1", team_id=team.id, opened_at=datetime(2024, 1, 1),
                     facts_changed_at=datetime(2024, 1, 1, tzinfo=UTC)))
    with pytest.raises(Exception, match="timezone"):
        session.flush()
    session.rollback()


def test_sqlite_runs_in_wal_mode_and_its_file_is_private(tmp_path):
    from sqlalchemy import text

    from watchdog.db import make_engine

    path = tmp_path / "wd.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert path.stat().st_mode & 0o777 == 0o600
    engine.dispose()


def test_settings_precedence_arguments_over_environment_over_dotenv_over_toml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "wd.toml"
    toml.write_text('municipality = "FromToml"\nlog_level = "ERROR"\n[smtp]\nport = 2525\nfrom_name = "Toml"\n')
    (tmp_path / ".env").write_text("WATCHDOG_LOG_LEVEL=WARNING\nWATCHDOG_SMTP__FROM_NAME=Dotenv\nUNRELATED=1\n")
    monkeypatch.setenv("WATCHDOG_SMTP__FROM_NAME", "Env")
    s = load_settings(toml)
    assert s.municipality == "FromToml"
    assert s.smtp.port == 2525
    assert s.log_level == "WARNING"  # .env beats TOML
    assert s.smtp.from_name == "Env"  # environment beats .env
    s2 = load_settings(toml, municipality="FromArgs")
    assert s2.municipality == "FromArgs"


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('colour = "red"\n', "unknown setting 'colour'"),
        ('[smtp]\nhost = "mail.kommune.dk"\npassword = "x"\n', "clear text"),
        ('[delivery]\nops_urls = ["msteams://abc/def"]\n', "legacy Teams connector"),
        ('[delivery]\nops_urls = ["https://x.webhook.office.com/webhookb2/abc"]\n', "Power Automate"),
        ('database_url = "mysql://x/y"\n', "database_url"),
        ('[alerts.ladder]\nfollow_up = ["fortnight"]\n', "fortnight"),
        ('[alerts]\ncase_link_template = "https://x/sag"\n', "{case_ref}"),
        ('[delivery]\nops_urls = ["slack://token/channel"]\n', "cannot send operator alerts"),
    ],
)
def test_broken_configuration_is_refused_with_one_line(tmp_path, toml, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_secrets_are_masked():
    assert "s3cret" not in mask_url("postgresql+psycopg://wd:s3cret@db/wd")
    assert "SIG" not in mask_url("workflows://host/WF/SIG?pa=yes")


def test_web_base_url_is_trimmed_and_must_be_an_http_address():
    import pytest
    from pydantic import ValidationError

    from watchdog.settings_sections import WebSettings

    assert WebSettings(base_url="https://frister.kommune.dk/").base_url == "https://frister.kommune.dk"
    assert WebSettings().base_url is None
    with pytest.raises(ValidationError, match="web.base_url must start with"):
        WebSettings(base_url="frister.kommune.dk")
