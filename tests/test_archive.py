"""Archive tables and archive_rows/unarchive_rows, on real SQLite files and a real PostgreSQL server.

Each test plans with `--with archive-tables` (features=("archive-tables",)), saves the plan and applies the file.
"""

import sqlite3
from datetime import datetime, timezone

import pytest

from dpro_migrate import verbs
from dpro_migrate.features import archive
from dpro_migrate.features.archive import ARCHIVES, archive_operations, archive_rows, unarchive_rows
from dpro_migrate.plan.archived import rows_with_archive_sql
from dpro_migrate.plan.operations import CreateTrigger
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.plan.document import save_plan
from dpro_migrate.dialects import POSTGRES, SQLITE
from dpro_migrate.targets import parse_target

from tests.conftest import file_digest


def median_created_at(db, table, where="1"):
    conn = sqlite3.connect(db)
    try:
        n = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
        cutoff = conn.execute(f"SELECT created_at FROM {table} WHERE {where} ORDER BY created_at LIMIT 1 OFFSET ?",
                              (n // 2,)).fetchone()[0]
        older = conn.execute(f"SELECT count(*) FROM {table} WHERE {where} AND created_at < ?", (cutoff,)).fetchone()[0]
        return datetime.fromisoformat(cutoff), older
    finally:
        conn.close()


def count(db, table, where="1"):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f'SELECT count(*) FROM "{table}" WHERE {where}').fetchone()[0]
    finally:
        conn.close()


AUDIT = "NOT ((action LIKE '%login%' OR action LIKE '%auth%') IS 1)"  # the activity_logs rows of system.audit_logs


# --- SQLite ---------------------------------------------------------------------------------------


@pytest.fixture
def migrated_sqlite(legacy_db, tmp_path):
    db = legacy_db(extras=True)
    original = tmp_path / "original.db"
    original.write_bytes(db.read_bytes())
    plan = verbs.make_plan(db, features=("archive-tables",))
    verbs.apply(save_plan(plan, tmp_path / "plan.json"), backup_dir=tmp_path / "bk")
    return db, original


def test_archive_tables_have_the_columns_of_their_tables(migrated_sqlite):
    db, _ = migrated_sqlite
    conn = sqlite3.connect(db)
    for live in ("communication_messages", "system_audit_logs"):
        info = lambda t: [(r[1], r[2], r[3], r[4]) for r in conn.execute(f"PRAGMA table_info({t})")]  # noqa: E731
        assert info(f"{live}_archive") == info(live)  # name, declared type, NOT NULL, default
        assert conn.execute(f"SELECT count(*) FROM {live}_archive").fetchone()[0] == 0
    assert ("sentiment", "REAL") in [(r[1], r[2]) for r in conn.execute("PRAGMA table_info(communication_messages_archive)")]
    assert not conn.execute("PRAGMA foreign_key_list(communication_messages_archive)").fetchall()
    conn.close()
    report = verbs.verify(db)
    assert report.ok, report.failures


def test_sqlite_archive_then_rollback_loses_nothing(migrated_sqlite, tmp_path):
    db, original = migrated_sqlite
    total = count(original, "messages")
    cutoff, older = median_created_at(original, "messages")
    assert 0 < older < total
    result = archive_rows(db, SQLITE, "messages", cutoff)
    assert (result.moved, result.table, result.archive) == (older, "communication.messages", "communication.messages_archive")
    assert count(db, "communication_messages") == total - older
    assert count(db, "communication_messages_archive") == older
    assert count(db, "communication_messages_archive", "sender_type = 'agent'") > 0
    assert count(db, "communication_messages", f"created_at < '{cutoff:%Y-%m-%d %H:%M:%S}'") == 0
    again = archive_rows(db, SQLITE, "messages", cutoff)
    assert again.moved == 0 and count(db, "communication_messages_archive") == older

    a_cutoff, a_older = median_created_at(original, "activity_logs", AUDIT)
    assert archive_rows(db, SQLITE, "audit_logs", a_cutoff).moved == a_older > 0

    # Value for value and storage class for storage class: live + archive = the legacy rows.
    report = verbs.verify(db)
    assert report.ok, report.failures

    verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert logical_differences(original, db) == []  # archived rows are back in messages and activity_logs


def test_sqlite_unarchive_puts_rows_back_without_firing_triggers(migrated_sqlite):
    db, original = migrated_sqlite
    conn = sqlite3.connect(db)
    agents_before = conn.execute("SELECT id, updated_at FROM ai_agents_agents ORDER BY id").fetchall()
    conn.close()
    cutoff, older = median_created_at(original, "messages")
    archive_rows(db, SQLITE, "messages", cutoff)
    back = unarchive_rows(db, SQLITE, "messages")
    assert back.moved == older and back.archive == "communication.messages_archive"
    assert count(db, "communication_messages_archive") == 0
    assert count(db, "communication_messages") == count(original, "messages")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT id, updated_at FROM ai_agents_agents ORDER BY id").fetchall() == agents_before
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    conn.close()
    assert {"trg_communication_messages_agent_activity", "trg_communication_messages_updated_at"} <= names
    report = verbs.verify(db)
    assert report.ok, report.failures


def test_sqlite_archive_refusals_change_nothing(migrated_sqlite, legacy_db):
    db, original = migrated_sqlite
    cutoff, older = median_created_at(original, "messages")
    with pytest.raises(BadInput, match="unknown table"):
        archive_rows(db, SQLITE, "tasks", cutoff)
    with pytest.raises(BadInput, match="not migrated"):
        archive_rows(legacy_db(), SQLITE, "messages", cutoff)

    # An id already archived with other values: the whole move is refused.
    conn = sqlite3.connect(db)
    first = conn.execute("SELECT min(id) FROM communication_messages").fetchone()[0]
    conn.execute("INSERT INTO communication_messages_archive (id, conversation_id, sender_type, content) "
                 "VALUES (?, 1, 'user', 'other values')", (first,))
    conn.commit()
    conn.close()
    digest = file_digest(db)
    with pytest.raises(ChecksFailed, match="other values"):
        archive_rows(db, SQLITE, "messages", cutoff)
    assert file_digest(db) == digest

    # The same id with the same values: already archived, it only leaves the live table.
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM communication_messages_archive")
    conn.execute("INSERT INTO communication_messages_archive SELECT * FROM communication_messages WHERE id = ?", (first,))
    conn.commit()
    conn.close()
    result = archive_rows(db, SQLITE, "messages", cutoff)
    assert (result.moved, result.already_there) == (older, 1)
    assert count(db, "communication_messages_archive") == older

    # The database refuses part of the move: all of it is undone.
    unarchive_rows(db, SQLITE, "messages")
    conn = sqlite3.connect(db)
    conn.execute("CREATE UNIQUE INDEX one_per_conversation ON communication_messages_archive (conversation_id)")
    conn.commit()
    conn.close()
    digest = file_digest(db)
    with pytest.raises(ChecksFailed, match="nothing was changed"):
        archive_rows(db, SQLITE, "messages", cutoff)
    assert file_digest(db) == digest


def test_sqlite_archive_without_the_ride_along_columns_is_refused(legacy_db, tmp_path):
    db = legacy_db(extras=True)
    plan = verbs.make_plan(db)
    at = next(i for i, op in enumerate(plan.operations) if isinstance(op, CreateTrigger))
    plan.operations[at:at] = archive_operations(SQLITE)  # without the plan's extra columns: no "sentiment"
    verbs.apply(save_plan(plan, tmp_path / "plan.json"), backup_dir=tmp_path / "bk")
    with pytest.raises(BadInput, match="sentiment"):
        archive_rows(db, SQLITE, "messages", datetime(2100, 1, 1))


# --- PostgreSQL -----------------------------------------------------------------------------------


def q(url, sql, params=None):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


@pytest.mark.postgres
@pytest.mark.parametrize("partitioned", [False, True])
def test_postgres_archive_cycle(legacy_db, tmp_path, pg_url, partitioned):

    db = legacy_db(extras=True)
    digest = file_digest(db)
    target = parse_target(pg_url)
    plan = verbs.make_plan(db, target, features=("archive-tables",) + (("partition-by-month",) if partitioned else ()))
    verbs.apply(save_plan(plan, tmp_path / "plan.json"), target, backup_dir=tmp_path)
    cols = lambda t: q(pg_url, "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "  # noqa: E731
                               "WHERE table_schema || '.' || table_name = %s ORDER BY ordinal_position", (t,))
    for live in ARCHIVES.values():
        assert cols(f"{live}_archive") == [c if c[0] != "id" else (c[0], c[1], c[2], None) for c in cols(live)]
    assert verbs.verify(db, target).ok

    total = q(pg_url, "SELECT count(*) FROM communication.messages")[0][0]
    cutoff, older = median_created_at(db, "messages")
    cutoff = cutoff.replace(tzinfo=timezone.utc)
    result = archive_rows(pg_url, POSTGRES, "messages", cutoff)
    assert result.moved == older > 0
    assert q(pg_url, "SELECT count(*) FROM communication.messages_archive")[0][0] == older
    assert q(pg_url, "SELECT count(*) FROM communication.messages")[0][0] == total - older
    assert q(pg_url, "SELECT count(*) FROM communication.messages WHERE created_at < %s", (cutoff,))[0][0] == 0
    assert archive_rows(target, POSTGRES, "messages", cutoff).moved == 0
    a_cutoff, a_older = median_created_at(db, "activity_logs", AUDIT)
    assert archive_rows(pg_url, POSTGRES, "audit_logs", a_cutoff).moved == a_older > 0

    report = verbs.verify(db, target)  # live + archive = the legacy rows
    assert report.ok, report.failures

    # A move the server refuses halfway is undone as a whole.
    q(pg_url, "ALTER TABLE communication.messages_archive ADD CONSTRAINT no_agents CHECK (sender_type <> 'agent') NOT VALID")
    with pytest.raises(ChecksFailed, match="nothing was changed"):
        archive_rows(pg_url, POSTGRES, "messages", datetime(2100, 1, 1))
    assert q(pg_url, "SELECT count(*) FROM communication.messages")[0][0] == total - older
    q(pg_url, "ALTER TABLE communication.messages_archive DROP CONSTRAINT no_agents")

    agents = q(pg_url, "SELECT id, updated_at FROM ai_agents.agents ORDER BY id")
    assert unarchive_rows(pg_url, POSTGRES, "messages").moved == older
    assert unarchive_rows(pg_url, POSTGRES, "audit_logs").moved == a_older
    assert q(pg_url, "SELECT id, updated_at FROM ai_agents.agents ORDER BY id") == agents  # no trigger fired
    assert q(pg_url, "SELECT tgenabled FROM pg_trigger WHERE tgname = 'trg_communication_messages_agent_activity' "
                     "AND tgparentid = 0") == [("O",)]
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert not q(pg_url, "SELECT 1 FROM pg_namespace WHERE nspname IN ('communication', 'system')")
    assert file_digest(db) == digest


def test_rows_with_archive_sql():
    sql = rows_with_archive_sql("communication.messages", ["id", "content"], SQLITE, 'main."communication_messages"')
    assert sql == ('(SELECT "id", "content" FROM main."communication_messages" UNION ALL '
                   'SELECT "id", "content" FROM main."communication_messages_archive")')
    assert archive.archive_of("system.audit_logs") == "system.audit_logs_archive"
