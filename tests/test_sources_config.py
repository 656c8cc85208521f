"""Source settings and the less common inputs: a SQL query instead of a view, XLSX exports, secrets."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from conftest import at
from sources_helpers import MAPPING, ext_ids
from sources_vendor import mariadb_vendor
from watchdog.casestore import Case
from watchdog.errors import ConfigError
from watchdog.intake.sources.mapping import load_mapping
from watchdog.intake.sources.reading import read_mapped_file
from watchdog.intake.sources.sql_source import read_sql_source
from watchdog.intake.upsert import validate_raw
from watchdog.settings import load_settings


def test_a_sql_source_password_is_a_secret_and_never_part_of_the_url(tmp_path):
    with pytest.raises(ConfigError, match="put the password in password or password_file"):
        load_settings(None, intake={"sql_sources": [
            {"name": "x", "url": "mysql+pymysql://reader:hemmelig@db/rapport", "mapping": str(MAPPING)}]})
    secret = tmp_path / "pw"
    secret.write_text("hemmelig\n", encoding="utf-8")
    settings = load_settings(None, intake={"sql_sources": [
        {"name": "x", "url": "mysql+pymysql://reader@db/rapport", "password_file": str(secret),
         "mapping": str(MAPPING)}]})
    assert settings.intake.sql_sources[0].password.get_secret_value() == "hemmelig"
    assert "hemmelig" not in str(settings.masked())


def test_two_sql_sources_may_not_share_a_name():
    source = {"name": "x", "url": "mysql+pymysql://reader@db/rapport", "mapping": str(MAPPING)}
    with pytest.raises(ConfigError, match="used twice"):
        load_settings(None, intake={"sql_sources": [source, source]})


def test_a_sql_source_may_read_an_entity_through_a_query_and_a_column_it_does_not_name_is_refused(engine):
    vendor = mariadb_vendor()
    try:
        vendor.seed()
        data = load_mapping(MAPPING)
        cases = data.entities["cases"]
        cases.view, cases.query = None, "SELECT s.*, 'x' AS ekstra FROM sf_sag s"
        settings = load_settings(None, intake={"sql_sources": [
            {"name": "q", "url": vendor.url, "mapping": str(MAPPING)}]})
        cfg = settings.intake.sql_sources[0]
        refused = read_sql_source(engine, settings, cfg, now=at("2026-12-01 03:00"), replica="r1", mapping=data)
        assert refused.outcome == "refused"
        first = refused.problems[0]
        assert (first.source, first.field) == ("q:cases query", "ekstra")
        assert first.reason.startswith("column not named in the mapping for cases")

        cases.query = "SELECT s.* FROM sf_sag s JOIN sf_enhed e ON e.enhed_id = s.enhed_id"
        run = read_sql_source(engine, settings, cfg, now=at("2026-12-01 03:05"), replica="r1", mapping=data)
        assert run.outcome == "imported" and ext_ids(engine, Case) == ["SF-1001", "SF-1002"]
    finally:
        vendor.close()


def test_an_xlsx_export_with_date_and_time_cells_is_mapped(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Sagsnr", "CPR-nr", "Enhed ID", "Oprettet dato", "Oprettet kl", "Lukket"])
    sheet.append(["SF-1", "010203-1234", "E-NORD", date(2026, 11, 2), time(9, 30), datetime(2026, 11, 20, 12, 0)])
    path = tmp_path / "sager.xlsx"
    book.save(path)

    valid, problems = validate_raw(read_mapped_file(path, load_mapping(MAPPING)))

    assert problems == []
    assert valid[0].data.opened_at == at("2026-11-02 09:30") and valid[0].data.closed_at == at("2026-11-20 12:00")
