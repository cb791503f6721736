"""Real files on PostgreSQL (issue 13): any text encoding, exact decimals, every value PostgreSQL would
normalise or reject found per row and named, long names refused up front, quarantine that streams."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
import shutil
from pathlib import Path

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.errors import ChecksFailed
from dpro_migrate.plan.operations import CopyRows
from dpro_migrate.targets import parse_target
from dpro_migrate.verify.postgres import verify_postgres

from tests.conftest import OWN_PEAK_RSS_KB, throwaway_database, file_digest, own_peak_rss_mb, refused_in_one_line
from tests.test_real_files import rebuild, variant


def pg_rows(pg_url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute(sql, params).fetchall()


def quarantined(pg_url: str) -> dict[tuple[str, int], str]:
    """(legacy table, id) -> rule, as system.quarantine holds them (the plan creates it only for refused rows)."""
    if not pg_rows(pg_url, "SELECT to_regclass('system.quarantine') IS NOT NULL")[0][0]:
        return {}
    return {(t, pk): rule for t, pk, rule in pg_rows(pg_url, "SELECT source_table, source_pk, rule FROM system.quarantine")}


def reencoded(db: Path, encoding: str) -> Path:
    """The same file, its text stored in another encoding (PRAGMA encoding, set before anything is written)."""
    out = db.with_name(db.stem + f"-{encoding}.db")
    src = sqlite3.connect(db)
    dst = sqlite3.connect(out)
    dst.execute(f"PRAGMA encoding = '{encoding}'")
    dst.executescript("".join(f"{line}\n" for line in src.iterdump()))
    dst.commit()
    assert dst.execute("PRAGMA encoding").fetchone()[0] == encoding
    src.close()
    dst.close()
    out.replace(db)
    return db


# --- 1. any text encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["UTF-16le", "UTF-16be"])
@pytest.mark.parametrize("on_reject", ["fail", "quarantine"])
def test_a_utf16_file_loads_every_row(legacy_db, tmp_path, pg_url, encoding, on_reject):
    db = reencoded(legacy_db(), encoding)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE messages SET content = 'héllo wörld ✓ 𝄞' WHERE id = 1")
    conn.commit()
    messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    conn.close()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject=on_reject)
    assert pg_rows(pg_url, "SELECT count(*) FROM communication.messages")[0][0] == messages
    assert pg_rows(pg_url, "SELECT content FROM communication.messages WHERE id = 1")[0][0] == "héllo wörld ✓ 𝄞"
    if on_reject == "quarantine":
        assert quarantined(pg_url) == {}
    assert verbs.verify(db, target).ok
    digest = file_digest(db)
    verbs.rollback(db, target, backup_dir=tmp_path / "bk")
    assert file_digest(db) == digest


@pytest.mark.parametrize("encoding, lone_surrogate", [("UTF-16le", "x'00d8'"), ("UTF-16be", "x'd800'")])
@pytest.mark.parametrize("on_reject", ["fail", "quarantine"])
def test_a_utf16_text_holding_a_lone_surrogate_is_refused_by_name(legacy_db, tmp_path, pg_url, encoding,
                                                                   lone_surrogate, on_reject):
    db = reencoded(legacy_db(), encoding)
    conn = sqlite3.connect(db)
    conn.execute(f"UPDATE messages SET content = CAST({lone_surrogate} AS TEXT) WHERE id = 2")
    conn.commit()
    conn.close()
    target = parse_target(pg_url)
    if on_reject == "fail":
        with pytest.raises(ChecksFailed) as refusal:
            verbs.apply(db, target, backup_dir=tmp_path / "bk")
        assert refusal.value.details["findings"] == [
            {"table": "messages", "rule": "type communication.messages.content text", "rows": 1}]
        return
    verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject="quarantine")
    assert quarantined(pg_url) == {("messages", 2): "type communication.messages.content text"}
    assert verbs.verify(db, target).ok


# --- 3. every value PostgreSQL would normalise or reject: found per row, named, quarantined ---------

ODD_VALUES = [  # (column, SQL value, the rule's words)
    ("created_at", "'2024-01-05 24:00:00'", "timestamptz"),
    ("created_at", "'2016-12-31 23:59:60'", "timestamptz"),
    ("created_at", "'2024-02-30 10:00:00'", "timestamptz"),
    ("created_at", "'0000-01-01 00:00:00'", "timestamptz"),
    ("content", "CAST(x'61ff62' AS TEXT)", "text"),
    ("content", "CAST(x'c0af' AS TEXT)", "text"),
    ("content", "'a' || char(0) || 'b'", "text"),
    ("metadata", "'{\"a\": 1, \"a\": 2}'", "jsonb"),
    ("metadata", "CAST(x'7b2261223a2261ff227d' AS TEXT)", "jsonb"),
    ("metadata", "'{\"a\": \"\\ud800\"}'", "jsonb"),
    ("metadata", "'[\"\\ude00\\ud83d\"]'", "jsonb"),
]


def set_message_7(db: Path, column: str, value_sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"UPDATE messages SET {column} = {value_sql} WHERE id = 7")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("column, value, rule", ODD_VALUES)
def test_a_value_postgresql_would_change_or_refuse_is_quarantined_by_name(legacy_db, tmp_path, pg_url, column,
                                                                           value, rule):
    db = legacy_db()
    set_message_7(db, column, value)
    target = parse_target(pg_url)
    plan = verbs.make_plan(db, target, on_reject="quarantine")
    assert any(f["legacy"] == "messages" and 7 in f["ids"] for f in plan.preflight["findings"]), plan.preflight
    verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject="quarantine")
    found = quarantined(pg_url)
    assert found[("messages", 7)].startswith(f"type communication.messages.{column} {rule}")
    assert pg_rows(pg_url, "SELECT count(*) FROM communication.messages WHERE id = 7")[0][0] == 0
    assert verbs.verify(db, target).ok
    digest = file_digest(db)
    verbs.rollback(db, target, backup_dir=tmp_path / "bk")
    assert file_digest(db) == digest


@pytest.mark.parametrize("column, value, rule", ODD_VALUES)
def test_a_value_postgresql_would_change_or_refuse_stops_the_load_by_name(legacy_db, tmp_path, pg_url, column,
                                                                          value, rule):
    db = legacy_db()
    set_message_7(db, column, value)
    target = parse_target(pg_url)
    with pytest.raises(ChecksFailed) as refusal:
        verbs.apply(db, target, backup_dir=tmp_path / "bk")
    findings = refusal.value.details["findings"]
    assert [(f["table"], f["rule"].split(" ")[2]) for f in findings] == [("messages", rule)], findings
    assert pg_rows(pg_url, "SELECT to_regnamespace('communication') IS NULL")[0][0]


# --- 2. NUMERIC/DECIMAL columns arrive as numeric, exactly ------------------------------------------

PRICES = {1: 19.99, 2: 20, 3: 0.1, 4: -12345678.5, 5: None, 6: 99999999.99}


def _priced(legacy_db, declared: str, prices: dict) -> Path:
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute(f"ALTER TABLE messages ADD COLUMN price {declared}")
    for id_, price in prices.items():
        conn.execute("UPDATE messages SET price = ? WHERE id = ?", (price, id_))
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize("declared, pg_type", [("DECIMAL(10,2)", "numeric(10,2)"), ("NUMERIC", "numeric"),
                                               ("numeric(12, 4)", "numeric(12,4)")])
def test_a_decimal_column_arrives_as_numeric_with_exact_values(legacy_db, tmp_path, pg_url, declared, pg_type):
    db = _priced(legacy_db, declared, PRICES)
    target = parse_target(pg_url)
    plan, _ = verbs.apply(db, target, backup_dir=tmp_path / "bk")
    copy = next(op for op in plan.of_type(CopyRows) if op.legacy == "messages")
    assert copy.types["price"] == pg_type.upper() and "numeric" in copy.conversions["price"]  # declared in the plan
    assert pg_rows(pg_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = 'communication.messages'::regclass AND attname = 'price'")[0][0] == pg_type
    stored = dict(pg_rows(pg_url, "SELECT id, price FROM communication.messages WHERE id <= 6"))
    assert {i: (None if v is None else Decimal(str(v))) for i, v in PRICES.items()} == stored
    assert verbs.verify(db, target).ok
    assert verify_postgres(target, streamed=True).ok  # the read-only comparison a standby runs, too
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE communication.messages SET price = price + 1 WHERE id = 1")
    changed = verify_postgres(target, streamed=True)
    assert [c.changed_after_cutover for c in changed.counts if c.legacy == "messages"] == [1]
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE communication.messages SET price = price - 1 WHERE id = 1")
    digest = file_digest(db)
    verbs.rollback(db, target, backup_dir=tmp_path / "bk")
    assert file_digest(db) == digest


def test_a_decimal_written_after_the_cutover_goes_back_with_its_storage_class(legacy_db, tmp_path, pg_url):
    db = _priced(legacy_db, "DECIMAL(10,2)", PRICES)
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE communication.messages SET price = 7.25 WHERE id = 1")
        conn.execute("UPDATE communication.messages SET price = 30 WHERE id = 2")
    verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")
    conn = sqlite3.connect(db)
    back = dict(conn.execute("SELECT id, price FROM messages WHERE id IN (1, 2)"))
    types = dict(conn.execute("SELECT id, typeof(price) FROM messages WHERE id IN (1, 2)"))
    conn.close()
    assert back == {1: 7.25, 2: 30} and types == {1: "real", 2: "integer"}


@pytest.mark.parametrize("value", [1.005, 123456789.5, 10**8, "abc", b"\x01", float("inf")])
def test_a_decimal_that_does_not_fit_is_quarantined_by_name(legacy_db, tmp_path, pg_url, value):
    db = _priced(legacy_db, "DECIMAL(10,2)", {**PRICES, 7: value})
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject="quarantine")
    assert quarantined(pg_url) == {("messages", 7): "type communication.messages.price numeric(10,2)"}
    assert verbs.verify(db, target).ok


@pytest.mark.parametrize("value", [1.005, 123456789.5, 10**8])
def test_a_decimal_that_does_not_fit_stops_the_load_by_name(legacy_db, tmp_path, pg_url, value):
    db = _priced(legacy_db, "DECIMAL(10,2)", {7: value})
    with pytest.raises(ChecksFailed) as refusal:
        verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path / "bk")
    assert refusal.value.details["findings"] == [
        {"table": "messages", "rule": "type communication.messages.price numeric(10,2)", "rows": 1}]


# --- 4, 6. what PostgreSQL cannot hold as it is: refused up front, the file and the server unchanged ------


def refused_for_postgres(db: Path, tmp_path: Path, pg_url: str, *words: str) -> str:
    """plan and apply refuse with one line naming the object; the file stays byte-identical and the server
    empty."""
    digest = file_digest(db)
    target = parse_target(pg_url)
    messages = refused_in_one_line((lambda: verbs.make_plan(db, target),
                                    lambda: verbs.apply(db, target, backup_dir=tmp_path / "bk")), *words)
    assert file_digest(db) == digest
    assert pg_rows(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('iam', 'communication', 'system')")[0][0] == 0
    return messages[0]


def test_a_column_name_longer_than_63_bytes_is_refused(legacy_db, tmp_path, pg_url):
    long = "a_column_the_application_added_with_a_name_far_too_long_for_postgres_xy"
    assert len(long) == 71
    db = variant(legacy_db, f"ALTER TABLE messages ADD COLUMN {long} TEXT;")
    refused_for_postgres(db, tmp_path, pg_url, "messages", long, "63")


def test_a_column_name_of_63_bytes_in_multibyte_characters_is_refused(legacy_db, tmp_path, pg_url):
    name = "é" * 32  # 32 characters, 64 bytes
    db = variant(legacy_db, f'ALTER TABLE messages ADD COLUMN "{name}" TEXT;')
    refused_for_postgres(db, tmp_path, pg_url, name, "64 bytes")


def test_a_column_name_of_exactly_63_bytes_is_carried(legacy_db, tmp_path, pg_url):
    name = "c" * 63
    db = variant(legacy_db, f"ALTER TABLE messages ADD COLUMN {name} TEXT; UPDATE messages SET {name} = 'v' || id;")
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    assert pg_rows(pg_url, f"SELECT count(*) FROM communication.messages WHERE {name} = 'v' || id")[0][0] > 0
    assert verbs.verify(db, target).ok


@pytest.mark.parametrize("kind", ["VIRTUAL", "STORED"])
def test_a_generated_column_is_refused_for_postgresql(legacy_db, tmp_path, pg_url, kind):
    db = variant(legacy_db, f"ALTER TABLE messages ADD COLUMN content_length INTEGER "
                            f"GENERATED ALWAYS AS (length(content)) {kind};") if kind == "VIRTUAL" else legacy_db()
    if kind == "STORED":  # SQLite adds no STORED column to an existing table: rebuilt with it
        rebuild(db, "messages", lambda sql: sql.rstrip().rstrip(")") +
                ", content_length INTEGER GENERATED ALWAYS AS (length(content)) STORED)")
    refused_for_postgres(db, tmp_path, pg_url, "messages", "content_length", "generated", "DROP COLUMN")


# --- the schema-generating property, against PostgreSQL --------------------------------------------
# The same generated legacy schemas as on SQLite (tests/test_real_files.py), plus a column the application added
# to messages with any declared type and values, and values PostgreSQL would change or refuse. The property: the
# file is refused up front (a generated column) with the file unchanged and the server empty, or apply with
# --on-reject quarantine loads it, verify passes value for value, and every source row is either in its domain
# table or in system.quarantine, named with its rule; rollback leaves the file byte-identical.

import os  # noqa: E402

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.test_real_files import DECLARED, _make, legacy_schemas, small_values  # noqa: E402

ODD_SQL = st.sampled_from([value for column, value, _ in ODD_VALUES if column != "content"]
                          + ["CAST(x'61ff62' AS TEXT)", "'a' || char(0)", "'{\"k\": [1, {\"k\": 1, \"k\": 1}]}'"])


@st.composite
def postgres_schemas(draw):
    return {**draw(legacy_schemas()),
            "added": draw(st.tuples(DECLARED, st.lists(small_values, max_size=6))),
            "odd": draw(st.lists(st.tuples(st.sampled_from(["created_at", "metadata", "content"]), ODD_SQL),
                                 max_size=3))}


def _make_for_postgres(db: Path, spec: dict) -> None:
    _make(db, spec)
    declared, values = spec["added"]
    conn = sqlite3.connect(db)
    messages = spec["messages"]
    conn.execute(f'ALTER TABLE "{messages}" ADD COLUMN added_by_app {declared}')
    for i, value in enumerate(values, start=1):
        conn.execute(f'UPDATE "{messages}" SET added_by_app = ? WHERE id = ?', (value, i))
    for i, (column, value) in enumerate(spec["odd"], start=10):
        conn.execute(f'UPDATE "{messages}" SET {column} = {value} WHERE id = ?', (i,))
    conn.commit()
    conn.close()


def _loads_or_is_refused(generated: Path, work: Path, server: str, spec: dict) -> None:
    db = work / "dpro_agent.db"
    shutil.copyfile(generated, db)
    _make_for_postgres(db, spec)
    with throwaway_database(server) as url:
        if spec["generated"]:
            refused_for_postgres(db, work, url, "generated")
            return
        digest = file_digest(db)
        target = parse_target(url)
        plan, _ = verbs.apply(db, target, backup_dir=work / "bk", on_reject="quarantine")
        report = verbs.verify(db, target)
        assert report.ok, report.failures
        kept = quarantined(url)
        assert all(rule for rule in kept.values())
        conn = sqlite3.connect(db)
        for legacy in {move.legacy for move in plan.moves}:  # a legacy table split in parts: its rows in any part
            source = {r[0] for r in conn.execute(f'SELECT id FROM "{legacy}"')}
            loaded = {r[0] for move in plan.moves if move.legacy == legacy
                      for r in pg_rows(url, f"SELECT id FROM {move.target}")}
            named = {pk for (table, pk) in kept if table == legacy}
            assert loaded | named == source and not loaded & named, legacy
        conn.close()
        verbs.rollback(db, target, backup_dir=work / "bk")
        assert file_digest(db) == digest


def _property(examples: int):
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


_PLAIN = {"tools": "marketplace_tools", "messages": "messages", "declared": {}, "values": [],
          "column_case": ("is_active", "is_active"), "apps": [], "view": False, "analyze": False, "generated": False,
          "added": ("", []), "odd": []}


@_property(int(os.environ.get("DPRO_MIGRATE_PG_SCHEMA_EXAMPLES", 12)))
@given(spec=postgres_schemas())
# found by hypothesis: a legacy table split in parts (activity_logs) holds its rows in any of them
@example(spec={**_PLAIN, "tools": "MaRketplACe_ToOlS", "messages": "MEssagEs",
               "column_case": ("is_active", "iS_Active"), "analyze": True})
@example(spec={**_PLAIN, "added": ("DECIMAL(10,2)", [19.99, 20, 1.005, "abc", None, 10**9]),
               "odd": [("created_at", "'2016-12-31 23:59:60'"), ("metadata", "'{\"a\": 1, \"a\": 2}'"),
                       ("content", "CAST(x'61ff62' AS TEXT)")],
               "declared": {"rating": "TEXT", "created_at": "INT"}, "values": [("rating", "1.50"), ("created_at", 7)],
               "apps": [{"name": "app notes", "columns": [("a", "INTEGER"), ("B", "DECIMAL(10,2)")], "strict": False,
                         "without_rowid": False, "references": "users", "rows": [(1, 2.5)]}], "view": True})
@example(spec={**_PLAIN, "generated": True})
# found by hypothesis: a REAL in a varchar column arrives spelled out, longer than the column allows
@example(spec={**_PLAIN, "declared": {"version": "REAL"}, "values": [("version", 1.14e-80)]})
def test_any_generated_schema_loads_into_postgresql_or_is_refused(_generated, tmp_path_factory, pg_server, spec):
    _loads_or_is_refused(_generated(messages=30), tmp_path_factory.mktemp("pgschema"), pg_server, spec)


@pytest.mark.slow
@_property(int(os.environ.get("DPRO_MIGRATE_PG_SCHEMA_EXAMPLES_SLOW", 50)))
@given(spec=postgres_schemas())
def test_many_generated_schemas_load_into_postgresql_or_are_refused(_generated, tmp_path_factory, pg_server, spec):
    _loads_or_is_refused(_generated(messages=30), tmp_path_factory.mktemp("pgschema"), pg_server, spec)


# --- 5. quarantine streams large values ----------------------------------------------------------


def test_a_quarantined_row_keeps_every_value_in_its_json(legacy_db, tmp_path, pg_url):
    """Values longer than a piece (plan/quarantine_lines.CHUNK) are read in pieces and joined back exactly."""
    import json

    text = ("tab\there \"quoted\" back\\slash\nnew line é ✓ 𝄞 " * 60000)[:2_500_000]
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE messages ADD COLUMN extra_blob BLOB")
    conn.execute("UPDATE messages SET content = ?, metadata = 'not json', extra_blob = ?, response_time_ms = 1.5 "
                 "WHERE id = 3", (text, bytes(range(256)) * 5000))
    conn.execute("UPDATE messages SET content = CAST(x'61ff62' AS TEXT), metadata = 'not json' WHERE id = 4")
    conn.commit()
    conn.close()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject="quarantine")
    rows = dict(pg_rows(pg_url, "SELECT source_pk, row_json FROM system.quarantine WHERE source_table = 'messages'"))
    assert set(rows) == {3, 4}
    three, four = json.loads(rows[3]), json.loads(rows[4])
    assert three["content"] == text
    assert three["extra_blob"] == "blob:" + (bytes(range(256)) * 5000).hex().upper()
    assert three["response_time_ms"] == 1.5 and three["id"] == 3 and three["metadata"] == "not json"
    assert four["content"] == "invalid text:61FF62"
    assert verbs.verify(db, target).ok


@pytest.mark.slow
def test_quarantining_a_50_mb_blob_stays_under_200_mb_of_memory(legacy_db, tmp_path, pg_url):
    import subprocess
    import sys

    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE messages SET content = zeroblob(50 * 1024 * 1024) WHERE id = 5")
    conn.commit()
    conn.close()
    program = ("import sys; from pathlib import Path; from dpro_migrate import verbs; "
               "from dpro_migrate.targets import parse_target; "
               "verbs.apply(Path(sys.argv[1]), parse_target(sys.argv[2]), backup_dir=Path(sys.argv[3]), "
               f"on_reject='quarantine'); print({OWN_PEAK_RSS_KB})")
    done = subprocess.run([sys.executable, "-c", program, str(db), pg_url, str(tmp_path / "bk")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    peak_mb = own_peak_rss_mb(done.stdout)  # the apply's own peak, not pytest's (conftest.OWN_PEAK_RSS_KB)
    assert peak_mb < 200, peak_mb
    assert pg_rows(pg_url, "SELECT length(row_json) FROM system.quarantine WHERE source_pk = 5")[0][0] > 100 * 1024 * 1024


# --- 7. ids: each row is told apart by its id -------------------------------------------------------


@pytest.mark.parametrize("change, words", [
    ("INSERT INTO marketplace_tools SELECT * FROM marketplace_tools WHERE id = 2", "1 ids appear more than once"),
    ("UPDATE marketplace_tools SET id = NULL WHERE id = 3", "1 rows have none")])
def test_a_legacy_id_repeated_or_missing_is_refused_up_front(legacy_db, tmp_path, pg_url, change, words):
    db = legacy_db()
    rebuild(db, "marketplace_tools", lambda sql: sql.replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id INTEGER"))
    conn = sqlite3.connect(db)
    conn.execute(change)
    conn.commit()
    conn.close()
    refused_for_postgres(db, tmp_path, pg_url, "marketplace_tools", words)


def test_a_legacy_id_that_is_not_the_rowid_but_unique_loads(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    rebuild(db, "marketplace_tools", lambda sql: sql.replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id INT PRIMARY KEY"))
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    assert verbs.verify(db, target).ok
