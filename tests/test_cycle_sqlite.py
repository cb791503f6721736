"""The whole cycle in place on SQLite, checked against the database's own answers."""

import sqlite3

import pytest

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.plan.document import save_plan

from tests.conftest import add_orphan_message, file_digest


def tables(path):
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("shape", ["13", "14", "18"])
def test_apply_verify_rollback_is_identity(legacy_db, tmp_path, shape):
    db = legacy_db(shape=shape, extras=True)
    original = tmp_path / "original.db"
    original.write_bytes(db.read_bytes())

    plan, result = verbs.apply(db, backup_dir=tmp_path / "bk")
    assert not result.already_migrated
    assert result.backup.path.exists()
    assert logical_differences(original, result.backup.path) == []
    names = tables(db)
    assert {"iam_users", "communication_messages", "system_audit_logs", "marketplace_tools"} <= names
    assert "users" not in names and "messages" not in names
    assert "legacy_feedback" in names  # unknown tables stay

    report = verbs.verify(db)
    assert report.ok, [c for c in report.failures]

    rolled = verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert not rolled.nothing_to_do
    assert logical_differences(original, db) == []


def test_second_apply_changes_nothing(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path)
    digest = file_digest(db)
    _, again = verbs.apply(db, backup_dir=tmp_path)
    assert again.already_migrated
    assert file_digest(db) == digest


def test_plan_for_another_schema_is_refused(legacy_db, tmp_path):
    db = legacy_db()
    plan_path = save_plan(verbs.make_plan(db), tmp_path / "plan.json")
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE users ADD COLUMN late_addition TEXT")
    conn.commit()
    conn.close()
    digest = file_digest(db)
    with pytest.raises(BadInput, match="schema changed"):
        verbs.apply(plan_path, backup_dir=tmp_path)
    assert file_digest(db) == digest


def test_extra_columns_ride_along(legacy_db, tmp_path):
    db = legacy_db(extras=True)
    plan, _ = verbs.apply(db, backup_dir=tmp_path)
    assert "nickname" in plan.extra_columns.get("users", [[None]])[0]
    conn = sqlite3.connect(db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(iam_users)")]
    assert "nickname" in cols
    assert conn.execute("SELECT count(*) FROM iam_users WHERE nickname IS NOT NULL").fetchone()[0] > 0


def test_activity_logs_split_loses_nothing(legacy_db, tmp_path):
    db = legacy_db()
    conn = sqlite3.connect(db)
    total = conn.execute("SELECT count(*) FROM activity_logs").fetchone()[0]
    auth = conn.execute("SELECT count(*) FROM activity_logs WHERE action LIKE '%login%' OR action LIKE '%auth%'").fetchone()[0]
    conn.close()
    verbs.apply(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM iam_authentication_logs").fetchone()[0] == auth
    assert conn.execute("SELECT count(*) FROM system_audit_logs").fetchone()[0] == total - auth
    assert auth > 0 and total - auth > 0


@pytest.fixture
def migrated(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    yield conn
    conn.close()


@pytest.mark.parametrize("statement", [
    "UPDATE iam_users SET email = 'no-at-sign' WHERE id = 1",
    "UPDATE iam_users SET username = 'ab' WHERE id = 1",
    "UPDATE iam_users SET username = (SELECT username FROM iam_users WHERE id = 2) WHERE id = 1",
    "UPDATE iam_users SET email = (SELECT email FROM iam_users WHERE id = 2) WHERE id = 1",
    "UPDATE ai_agents_agents SET temperature = 3.5 WHERE id = 1",
    "UPDATE ai_agents_agents SET performance_score = 1.5 WHERE id = 1",
    "UPDATE tasks_tasks SET priority = 'URGENT' WHERE id = 1",
    "UPDATE tasks_tasks SET status = 'done' WHERE id = 1",
    "UPDATE tasks_tasks SET completion_percentage = 101 WHERE id = 1",
    "UPDATE communication_conversations SET satisfaction_rating = 6 WHERE id = 1",
    "UPDATE iam_user_sessions SET session_token = (SELECT session_token FROM iam_user_sessions WHERE id = 2) WHERE id = 1",
    "INSERT INTO system_configurations (key, value) SELECT key, 'x' FROM system_configurations LIMIT 1",
    "INSERT INTO communication_messages (conversation_id, sender_type, content) VALUES (999999999, 'user', 'orphan')",
])
def test_the_database_refuses_rule_breaking_rows(migrated, statement):
    with pytest.raises(sqlite3.IntegrityError):
        migrated.execute(statement)


def test_cascade_and_set_null(migrated):
    user = migrated.execute("SELECT user_id FROM communication_conversations LIMIT 1").fetchone()[0]
    migrated.execute("DELETE FROM iam_users WHERE id = ?", (user,))
    assert migrated.execute("SELECT count(*) FROM communication_conversations WHERE user_id = ?", (user,)).fetchone()[0] == 0
    agent = migrated.execute("SELECT agent_id FROM tasks_tasks WHERE agent_id IS NOT NULL LIMIT 1").fetchone()
    if agent:
        migrated.execute("DELETE FROM ai_agents_agents WHERE id = ?", agent)
        assert migrated.execute("SELECT count(*) FROM tasks_tasks WHERE agent_id = ?", agent).fetchone()[0] == 0


def test_triggers_fire(migrated):
    migrated.execute("UPDATE iam_users SET updated_at = '2000-01-01 00:00:00' WHERE id = 1")
    before = migrated.execute("SELECT count(*) FROM system_audit_logs WHERE action = 'user_updated'").fetchone()[0]
    migrated.execute("UPDATE iam_users SET full_name = 'Changed Name' WHERE id = 1")
    assert migrated.execute("SELECT updated_at FROM iam_users WHERE id = 1").fetchone()[0] != "2000-01-01 00:00:00"
    rows = migrated.execute("SELECT user_id, details FROM system_audit_logs WHERE action = 'user_updated'").fetchall()
    assert len(rows) == before + 1
    assert rows[-1][0] == 1 and "Changed Name" in rows[-1][1] and "password_hash" not in rows[-1][1]

    agent = migrated.execute("SELECT id FROM ai_agents_agents LIMIT 1").fetchone()[0]
    conv = migrated.execute("SELECT id FROM communication_conversations LIMIT 1").fetchone()[0]
    migrated.execute("UPDATE ai_agents_agents SET updated_at = '2000-01-01 00:00:00' WHERE id = ?", (agent,))
    migrated.execute("INSERT INTO communication_messages (conversation_id, agent_id, sender_type, content) "
                     "VALUES (?, ?, 'agent', 'hello')", (conv, agent))
    assert migrated.execute("SELECT updated_at FROM ai_agents_agents WHERE id = ?", (agent,)).fetchone()[0] > "2000-01-01 00:00:00"


def test_rows_written_after_cutover_survive_rollback(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO communication_messages (conversation_id, sender_type, content) "
                 "SELECT id, 'user', 'written after the cutover' FROM communication_conversations LIMIT 1")
    conn.execute("INSERT INTO iam_authentication_logs (action) VALUES ('login')")
    conn.execute("INSERT INTO system_audit_logs (action) VALUES ('create_task')")
    conn.close()
    report = verbs.verify(db)
    assert report.ok
    assert any(c.added_after_cutover for c in report.counts)
    verbs.rollback(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM messages WHERE content = 'written after the cutover'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM activity_logs WHERE action IN ('login', 'create_task') "
                        "AND id > (SELECT max(id) - 2 FROM activity_logs)").fetchone()[0] == 2
    # the counter never hands out an id twice
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()[0]
    assert seq >= conn.execute("SELECT max(id) FROM messages").fetchone()[0]


def test_failed_apply_leaves_file_unchanged(legacy_db, tmp_path):
    db = legacy_db()
    add_orphan_message(db)
    digest = file_digest(db)
    from dpro_migrate.errors import ChecksFailed
    with pytest.raises(ChecksFailed, match="break rules") as refused:
        verbs.apply(db, backup_dir=tmp_path)
    assert refused.value.details["findings"] == [
        {"table": "messages", "rule": "foreign key fk_messages_conversation", "rows": 1}]
    assert file_digest(db) == digest


def test_sql_script_is_what_apply_runs(legacy_db):
    db = legacy_db()
    plan = verbs.make_plan(db)
    script = verbs.site_for(db).apply_script(plan)
    assert 'CREATE TABLE "iam_users"' in script and 'DROP TABLE "users"' in script
    assert script.index("BEGIN IMMEDIATE;") < script.index('CREATE TABLE "iam_users"') < script.index("COMMIT;")
    back = verbs.site_for(db).rollback_script(plan)
    assert back.index('CREATE TABLE users') < back.index('INSERT INTO "users"')


def test_separate_sqlite_target_file(legacy_db, tmp_path):
    from dpro_migrate.targets import parse_target

    db = legacy_db(extras=True)
    digest = file_digest(db)
    target = parse_target(f"sqlite:///{tmp_path / 'new.db'}")
    plan, result = verbs.apply(db, target, backup_dir=tmp_path / "bk")
    assert plan.target == f"sqlite:///{tmp_path / 'new.db'}"
    assert file_digest(db) == digest, "the source is only read"
    assert "iam_users" in tables(tmp_path / "new.db")
    assert verbs.verify(db, target).ok
    assert verbs.status(db, target).state == "migrated"
    assert verbs.status(db).state == "legacy"
    verbs.rollback(db, target, backup_dir=tmp_path / "bk")
    assert logical_differences(db, tmp_path / "new.db") == []
