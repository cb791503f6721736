"""Dirty data and hostile names: every row the target would refuse is found, kept, and given back."""

import json
import shutil
import sqlite3

import psycopg
import pytest
from typer.testing import CliRunner

from dpro_migrate import verbs
from dpro_migrate.cli import app
from dpro_migrate.compare import logical_differences
from dpro_migrate.dirty import HOSTILE_COLUMN, HOSTILE_TABLE, add_dirty_data
from dpro_migrate.errors import ChecksFailed
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.sqlnames import quote_ident
from dpro_migrate.targets import parse_target

from tests.conftest import file_digest

SQLITE_RULES = {"check chk_agents_temperature_range", "foreign key fk_messages_conversation",
                "check chk_tasks_priority_values", "unique uq_user_sessions_session_token",
                "check chk_users_email_format", "check chk_users_username_length", "unique uq_users_username"}


@pytest.fixture(scope="module")
def dirty_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("dirty") / "template.db"
    generate_legacy_db(path, messages=400, extras=True)
    add_dirty_data(path)
    return path


@pytest.fixture
def dirty(dirty_template, tmp_path):
    path = tmp_path / "dpro_agent.db"
    shutil.copyfile(dirty_template, path)
    original = tmp_path / "original.db"
    shutil.copyfile(dirty_template, original)
    return path, original


def test_plan_lists_every_violation_of_sqlite_rules(dirty):
    db, _ = dirty
    plan = verbs.make_plan(db)
    assert {f["rule"] for f in plan.preflight["findings"]} == SQLITE_RULES
    assert all(f["ids"] for f in plan.preflight["findings"])


def test_default_policy_refuses_and_changes_nothing(dirty, tmp_path):
    db, _ = dirty
    digest = file_digest(db)
    result = CliRunner().invoke(app, ["apply", str(db), "--yes", "--json", "--backup-dir", str(tmp_path / "bk")])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert {f["rule"] for f in out["details"]["findings"]} == SQLITE_RULES
    assert file_digest(db) == digest


def test_quarantine_then_verify_then_rollback_is_identity(dirty, tmp_path):
    db, original = dirty
    plan, result = verbs.apply(db, backup_dir=tmp_path / "bk", on_reject="quarantine")
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(DISTINCT source_pk) FROM system_quarantine WHERE source_table = 'users'").fetchone()[0] >= 3
    # quarantined rows are whole: the NUL byte and storage classes stay as they were
    assert conn.execute("SELECT temperature, typeof(temperature) FROM system_quarantine__agents WHERE id = 9000002").fetchone() == ("warm", "text")
    # what moved keeps its dirty-but-legal values exactly (SQLite accepts them)
    assert conn.execute("SELECT tokens_used, typeof(tokens_used) FROM communication_messages WHERE id = 9000002").fetchone() == ("12abc", "text")
    assert conn.execute("SELECT hex(content) FROM communication_messages WHERE id = 9000006").fetchone()[0] == "6E756C0062797465"
    assert conn.execute(f"SELECT {quote_ident(HOSTILE_COLUMN)} FROM tasks_tasks WHERE id = 1").fetchone()[0] == "tomorrow's \"quote\""
    assert conn.execute(f"SELECT count(*) FROM {quote_ident(HOSTILE_TABLE)}").fetchone()[0] == 2
    assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'active_users'").fetchone()[0].count("iam_users") == 1
    assert conn.execute("SELECT count(*) FROM active_users").fetchone()[0] > 0
    conn.close()
    report = verbs.verify(db)
    assert report.ok, report.failures
    verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert logical_differences(original, db) == []


@pytest.mark.postgres
def test_postgres_refuses_then_quarantines(dirty, tmp_path, pg_url):
    db, _ = dirty
    digest = file_digest(db)
    target = parse_target(pg_url)
    with pytest.raises(ChecksFailed) as refused:
        verbs.apply(db, target, backup_dir=tmp_path)
    rules = {f["rule"] for f in refused.value.details["findings"]}
    assert {"type communication.messages.content text", "type communication.messages.created_at timestamptz",
            "type communication.messages.metadata jsonb", "type communication.messages.tokens_used bigint",
            "type workflow.boards.is_public boolean", "type tasks.tasks.title varchar(200)"} <= rules
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'").fetchone()[0] == 0
    verbs.apply(db, target, backup_dir=tmp_path, on_reject="quarantine")
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    with psycopg.connect(pg_url) as conn:
        rows = dict(conn.execute("SELECT source_pk, row_json FROM system.quarantine WHERE source_table = 'messages'").fetchall())
        assert json.loads(rows[9000006])["content"] == "nul\x00byte"
        assert conn.execute("SELECT tokens_used, response_time_ms FROM communication.messages WHERE id = 9000008").fetchone() \
            == (2**63 - 1, -(2**63))
        assert conn.execute("SELECT content FROM communication.messages WHERE id = 9000009").fetchone()[0] == "שלום ‏🙂‎ done"
        assert conn.execute(f"SELECT {quote_ident(HOSTILE_COLUMN)} FROM tasks.tasks WHERE id = 1").fetchone()[0] == "tomorrow's \"quote\""
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert file_digest(db) == digest


# Values PostgreSQL would accept and change without a word; each alone must stop the load, name its row, and
# leave the target as it was (policy fail runs no preflight before the load: the load's encoder refuses them).
SILENT_CASES = [  # (statement, legacy table, rule the refusal names)
    ("UPDATE boards SET is_public = 'yes' WHERE id = 1", "boards", "type workflow.boards.is_public boolean"),
    ("UPDATE boards SET is_public = 2 WHERE id = 1", "boards", "type workflow.boards.is_public boolean"),
    ("UPDATE messages SET created_at = '2024-01-05T10:00:00Z' WHERE id = 1", "messages",
     "type communication.messages.created_at timestamptz"),
    ("UPDATE messages SET created_at = '2024-01-05' WHERE id = 1", "messages",
     "type communication.messages.created_at timestamptz"),
    ("UPDATE messages SET content = x'68656c6c6f' WHERE id = 1", "messages", "type communication.messages.content text"),
    ("UPDATE messages SET content = 'cut' || char(0) || 'short' WHERE id = 1", "messages",
     "type communication.messages.content text"),
    ("UPDATE agents SET temperature = 'NaN' WHERE id = 1", "agents", "type ai_agents.agents.temperature double precision"),
]


@pytest.mark.postgres
@pytest.mark.parametrize("stmt, table, rule", SILENT_CASES, ids=[c[0][:48] for c in SILENT_CASES])
def test_postgres_refuses_what_it_would_convert_silently(legacy_db, tmp_path, pg_url, stmt, table, rule):
    db = legacy_db()
    with sqlite3.connect(db) as conn:
        conn.execute(stmt)
    conn.close()
    with pytest.raises(ChecksFailed) as refused:
        verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path)
    assert {"table": table, "rule": rule, "rows": 1} in refused.value.details["findings"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = ANY(%s)",
                            (["iam", "communication", "workflow"],)).fetchone()[0] == 0


@pytest.mark.postgres
def test_postgres_verify_tells_a_source_changed_after_the_snapshot_from_a_lost_row(legacy_db, tmp_path, pg_url):
    """verify compares with the snapshot apply loaded: a source row changed since (even into a value apply would
    refuse) is reported as written to the source after the snapshot, not as a failed migration."""
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE boards SET is_public = 'yes' WHERE id = 1")
    conn.close()
    result = CliRunner().invoke(app, ["verify", str(db), "--target", pg_url, "--json"])
    assert result.exit_code == 0, result.output
    since = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "source since the snapshot")
    assert "boards 2 rows" in since["detail"]  # the old version and the new one


def test_postgres_verify_without_its_snapshot_is_refused_in_one_line(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    target = parse_target(pg_url)
    _, applied = verbs.apply(db, target, backup_dir=tmp_path)
    applied.backup.path.unlink()  # the snapshot (the target held no table: no pg_dump)
    result = CliRunner().invoke(app, ["verify", str(db), "--target", pg_url])
    assert result.exit_code == 2 and "snapshot apply loaded is gone" in result.output
