"""A made-up vendor's "case system reporting schema" on a real second database server.

MariaDB (127.0.0.1:3306, root, no password; ``.ci/run`` starts it) and PostgreSQL (a schema of
its own in the test database) hold the same schema: tables named the vendor's way (``sf_sag``, …),
read through reporting views (``rpt_sag``, …) whose columns are the vendor's, not ours — the
names ``examples/mappings/sagsflow.toml`` maps. Each test gets a fresh database or schema.
"""

from __future__ import annotations

import os
import uuid
from datetime import date, datetime, time

import pytest
from sqlalchemy import create_engine, text

MARIADB_URL = os.environ.get("WATCHDOG_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

COLUMNS = {
    "enhed": "enhed_id VARCHAR(20) PRIMARY KEY, enhedsnavn VARCHAR(100), vagt_mail VARCHAR(200), rettet {ts}",
    "medarbejder": ("medarbejder_id VARCHAR(20) PRIMARY KEY, initialer VARCHAR(10), fulde_navn VARCHAR(100), "
                    "mail VARCHAR(200), telefon VARCHAR(20), enhed_id VARCHAR(20), stilling VARCHAR(50), "
                    "normering DECIMAL(3,2), aktiv CHAR(1), rettet {ts}"),
    "sag": ("sagsnr VARCHAR(20) PRIMARY KEY, cpr_nr VARCHAR(11), barnets_navn VARCHAR(100), adresse VARCHAR(100), "
            "enhed_id VARCHAR(20), sagsbehandler_id VARCHAR(20), oprettet_dato DATE, oprettet_kl TIME, "
            "lukket {ts}, rettet {ts}"),
    "underretning": ("underretning_id VARCHAR(20) PRIMARY KEY, sagsnr VARCHAR(20), underretter VARCHAR(100), "
                     "resume VARCHAR(500), modtaget_dato DATE, modtaget_kl TIME, fra_fagperson CHAR(1), "
                     "vurderet {ts}, vurderet_af VARCHAR(20), kvittering_sendt {ts}, barn_i_indsats CHAR(1), "
                     "rettet {ts}"),
    "undersoegelse": ("undersoegelse_id VARCHAR(20) PRIMARY KEY, sagsnr VARCHAR(20), underretning_id VARCHAR(20), "
                      "type VARCHAR(20), kendskab {ts}, afsluttet {ts}, foreloebig_vurdering {ts}, rettet {ts}"),
    "afgoerelse": ("afgoerelse_id VARCHAR(20) PRIMARY KEY, sagsnr VARCHAR(20), indsatstype VARCHAR(50), "
                   "paragraf VARCHAR(50), begrundelse VARCHAR(500), afgjort {ts}, ivaerksat {ts}, ophoert {ts}, "
                   "boernesamtale {ts}, plan {ts}, rettet {ts}"),
    "opfoelgning": ("opfoelgning_id VARCHAR(20) PRIMARY KEY, afgoerelse_id VARCHAR(20), udfoert {ts}, "
                    "naeste_opfoelgning DATE, rettet {ts}"),
}

NIGHT = datetime(2026, 12, 1, 1, 0)  # the vendor's own clock: naive Danish time, as DATETIME columns hold it


class Vendor:
    """The vendor database: its URL for the source settings, and a writer for the test."""

    def __init__(self, kind: str, url: str, admin_url: str, cleanup):
        self.kind, self.url = kind, url
        self.engine = create_engine(admin_url)
        self._cleanup = cleanup

    def insert(self, name: str, **values) -> None:
        cols = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with self.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO sf_{name} ({cols}) VALUES ({marks})"), values)

    def update(self, name: str, key: str, key_value: str, **values) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with self.engine.begin() as conn:
            conn.execute(text(f"UPDATE sf_{name} SET {sets} WHERE {key} = :_key"), values | {"_key": key_value})

    def seed(self) -> None:
        """The example night: one team, a leader and a caseworker, two cases, notifications, a placement."""
        self.insert("enhed", enhed_id="E-NORD", enhedsnavn="Familieteam Nord",
                    vagt_mail="vagt.nord@kommune.example.dk", rettet=NIGHT)
        self.insert("medarbejder", medarbejder_id="M-1", initialer="LEHA", fulde_navn="Lene Hansen",
                    mail="lene.hansen@kommune.example.dk", telefon="12345678", enhed_id="E-NORD",
                    stilling="Teamleder", normering=1, aktiv="J", rettet=NIGHT)
        self.insert("medarbejder", medarbejder_id="M-2", initialer="PEJE", fulde_navn="Peter Jensen",
                    mail="peter.jensen@kommune.example.dk", telefon="23456789", enhed_id="E-NORD",
                    stilling="Socialrådgiver", normering=0.8, aktiv="J", rettet=NIGHT)
        for ref, cpr, opened in (("SF-1001", "010203-1234", date(2026, 11, 23)),
                                 ("SF-1002", "020304-2345", date(2026, 11, 25))):
            self.insert("sag", sagsnr=ref, cpr_nr=cpr, barnets_navn="Testbarn Hemmeligsen", adresse="Testvej 1",
                        enhed_id="E-NORD", sagsbehandler_id="M-2", oprettet_dato=opened, oprettet_kl=time(9, 15),
                        rettet=NIGHT)
        self.insert("underretning", underretning_id="U-501", sagsnr="SF-1001", underretter="Skolen",
                    resume="Bekymring", modtaget_dato=date(2026, 11, 23), modtaget_kl=time(8, 55),
                    fra_fagperson="J", vurderet=datetime(2026, 11, 23, 14, 0), vurderet_af="M-2",
                    barn_i_indsats="N", rettet=NIGHT)
        self.insert("underretning", underretning_id="U-502", sagsnr="SF-1002", underretter="Politiet",
                    resume="Bekymring", modtaget_dato=date(2026, 11, 30), modtaget_kl=time(22, 10),
                    fra_fagperson="J", barn_i_indsats="N", rettet=NIGHT)
        self.insert("afgoerelse", afgoerelse_id="A-31", sagsnr="SF-1002", indsatstype="Anbringelse med samtykke",
                    paragraf="BL § 46", begrundelse="Se journal", afgjort=datetime(2026, 11, 27, 10, 0),
                    ivaerksat=datetime(2026, 11, 28), boernesamtale=datetime(2026, 11, 26, 10, 30), rettet=NIGHT)

    def close(self) -> None:
        self.engine.dispose()
        self._cleanup()


def _create(conn, ts: str) -> None:
    for name, cols in COLUMNS.items():
        conn.execute(text(f"CREATE TABLE sf_{name} ({cols.format(ts=ts)})"))
        conn.execute(text(f"CREATE VIEW rpt_{name} AS SELECT * FROM sf_{name}"))


def mariadb_vendor() -> Vendor:
    name = f"wd_sources_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    server = create_engine(MARIADB_URL + "/")
    try:
        with server.begin() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    except Exception as exc:  # CI starts MariaDB (.ci/run): a missing server is a failure, not a skip
        server.dispose()
        pytest.fail(f"MariaDB is not reachable at {MARIADB_URL} ({exc.__class__.__name__}); "
                    "start it: /etc/init.d/mariadb start")
    url = f"{MARIADB_URL}/{name}?charset=utf8mb4"
    admin = create_engine(url)
    with admin.begin() as conn:
        _create(conn, "DATETIME NULL")
    admin.dispose()

    def drop():
        with server.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()

    return Vendor("mariadb", url, url, drop)


def postgres_vendor() -> Vendor:
    schema = f"vendor_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    server = create_engine(PG_URL)
    with server.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'SET search_path TO "{schema}"'))
        _create(conn, "TIMESTAMP NULL")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"

    def drop():
        with server.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        server.dispose()

    return Vendor("postgresql", url, url, drop)
