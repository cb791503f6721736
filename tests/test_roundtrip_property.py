"""Property: for arbitrary legacy values, apply then rollback gives back a logically identical file."""

import shutil

import pytest
import sqlite3

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.sqlnames import quote_ident
from tests.conftest import file_digest

values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(st.characters(blacklist_categories=("Cs",))),
    st.text(min_size=1, max_size=8).map(lambda s: s * (1_000_000 // len(s.encode()) + 1)),  # ~1 MB text
    st.binary(max_size=64),
)
message = st.tuples(values.filter(lambda v: v is not None), values, values, values, values)
unknown_row = st.tuples(values, values)
identifier = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=20)


MESSAGE_COLUMNS = {"id", "content", "metadata", "message_type", "tokens_used", "response_time_ms",
                   "conversation_id", "agent_id", "sender_type", "user_id", "created_at", "updated_at"}


def legacy_with(base, work, messages, column, extra) -> tuple:
    """A copy of a generated legacy file with arbitrary messages and a hand-added messages column."""
    db = work / "dpro_agent.db"
    shutil.copyfile(base, db)
    conn = sqlite3.connect(db)
    conv, agent = conn.execute("SELECT id, agent_id FROM conversations WHERE agent_id IS NOT NULL LIMIT 1").fetchone()
    conn.executemany(
        "INSERT INTO messages (conversation_id, agent_id, sender_type, content, metadata, message_type, "
        "tokens_used, response_time_ms) VALUES (?, ?, 'user', ?, ?, ?, ?, ?)",
        [(conv, agent) + m for m in messages])
    conn.execute(f"ALTER TABLE messages ADD COLUMN {quote_ident(column)} TEXT")
    conn.execute(f"UPDATE messages SET {quote_ident(column)} = ? WHERE id = 1", (extra,))
    conn.commit()
    return db, conn


@pytest.mark.slow  # hypothesis: 25 schemas through apply and rollback, ~25 s
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(messages=st.lists(message, max_size=8), unknown=st.lists(unknown_row, max_size=4),
       table=identifier, column=identifier, extra=values)
# found by this property: SQLite 3.40 cannot resolve s."false" through a subquery (verify numbers the columns)
@example(messages=[], unknown=[], table="0", column="false", extra=None)
@example(messages=[], unknown=[], table="0", column="TRUE", extra="x")
# found by this property: an application table named like an index apply creates (one namespace in SQLite)
@example(messages=[], unknown=[], table="idx_msg_user_time", column="0", extra=None)
def test_apply_then_rollback_is_identity(_generated, tmp_path_factory, messages, unknown, table, column, extra):
    assume(table.lower() not in {"users", "messages"} and not table.lower().startswith("sqlite_"))
    assume(column.lower() not in MESSAGE_COLUMNS)
    work = tmp_path_factory.mktemp("prop")
    db, conn = legacy_with(_generated(messages=50), work, messages, column, extra)
    conn.execute(f'CREATE TABLE {quote_ident(table)} (id INTEGER PRIMARY KEY, "select" BLOB, "a b" TEXT)')
    conn.executemany(f'INSERT INTO {quote_ident(table)} ("select", "a b") VALUES (?, ?)', unknown)
    conn.commit()
    conn.close()
    original = work / "original.db"
    shutil.copyfile(db, original)

    try:
        verbs.apply(db, backup_dir=work / "bk")
    except BadInput as refusal:  # the table takes a name apply would create: refused up front, file as it was
        assert "has the name of" in str(refusal), refusal
        assert file_digest(db) == file_digest(original)
        return
    report = verbs.verify(db)
    assert report.ok, report.failures
    verbs.rollback(db, backup_dir=work / "bk")
    assert logical_differences(original, db) == []


@pytest.mark.postgres
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(messages=st.lists(message, min_size=1, max_size=6), column=identifier, extra=values)
# found by this property: the preflight read a column named True through (SELECT * FROM t), where SQLite 3.40
# reads the string 'True' instead, so it passed a blob the COPY encoder refuses (the rules read the table itself)
@example(messages=[("hi", None, None, None, None)], column="True", extra=b"\x01")
@example(messages=[("hi", None, None, None, None)], column="false", extra="cut" + chr(0) + "short")
# and the report found a type rule back by splitting its name at dots and spaces (rules carry their names now)
@example(messages=[("hi", None, None, None, None)], column="a.b", extra=b"\x01")
@example(messages=[("hi", None, None, None, None)], column="x y.z", extra=b"\x01")
def test_postgres_loses_nothing_whatever_the_values(_generated, tmp_path_factory, pg_url, messages, column, extra):
    """Any value either arrives exactly (verify proves it) or is quarantined; source = target + quarantine."""
    import psycopg

    from dpro_migrate.targets import parse_target

    assume(column.lower() not in MESSAGE_COLUMNS)
    work = tmp_path_factory.mktemp("pgprop")
    db, conn = legacy_with(_generated(messages=50), work, messages, column, extra)
    total = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    conn.close()
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("DROP SCHEMA IF EXISTS iam, ai_agents, communication, workflow, tasks, system, marketplace CASCADE")
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=work / "bk", on_reject="quarantine")
    assert verbs.verify(db, target).ok
    with psycopg.connect(pg_url) as pg:
        moved = pg.execute("SELECT count(*) FROM communication.messages").fetchone()[0]
        kept = pg.execute("SELECT count(DISTINCT source_pk) FROM system.quarantine "
                          "WHERE source_table = 'messages'").fetchone()[0] if pg.execute(
            "SELECT to_regclass('system.quarantine')").fetchone()[0] else 0
    assert moved + kept == total
    verbs.rollback(db, target, backup_dir=work / "bk")
