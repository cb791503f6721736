"""The whole cycle against a real PostgreSQL server, checked with the server's own answers."""

import sqlite3

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.targets import parse_target

from tests.conftest import file_digest

pytestmark = pytest.mark.postgres


def q(url, sql, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


@pytest.mark.parametrize("shape", ["13", "14", "18"])
def test_full_cycle(legacy_db, tmp_path, pg_url, shape):
    db = legacy_db(shape=shape, extras=True)
    digest = file_digest(db)
    target = parse_target(pg_url)
    plan, result = verbs.apply(db, target, backup_dir=tmp_path)
    assert not result.already_migrated
    assert file_digest(db) == digest, "a PostgreSQL apply never writes the source"
    schemas = {r[0] for r in q(pg_url, "SELECT nspname FROM pg_namespace")}
    assert {"iam", "ai_agents", "communication", "workflow", "tasks", "system", "marketplace"} <= schemas
    src = sqlite3.connect(db)
    assert q(pg_url, "SELECT count(*) FROM iam.users")[0][0] == src.execute("SELECT count(*) FROM users").fetchone()[0]
    assert q(pg_url, "SELECT data_type FROM information_schema.columns WHERE table_schema = 'iam' "
                     "AND table_name = 'users' AND column_name = 'is_active'")[0][0] == "boolean"
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    _, again = verbs.apply(db, target, backup_dir=tmp_path)
    assert again.already_migrated
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert not {"iam", "system"} & {r[0] for r in q(pg_url, "SELECT nspname FROM pg_namespace")}
    assert file_digest(db) == digest


@pytest.fixture
def migrated_pg(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path)
    return db, pg_url


def test_sequences_continue_after_the_highest_id(migrated_pg):
    db, url = migrated_pg
    top = sqlite3.connect(db).execute("SELECT max(id) FROM messages").fetchone()[0]
    new = q(url, "INSERT INTO communication.messages (conversation_id, sender_type, content) "
                 "SELECT id, 'user', 'x' FROM communication.conversations LIMIT 1 RETURNING id")[0][0]
    assert new > top


@pytest.mark.parametrize("statement", [
    "UPDATE iam.users SET email = 'no-at-sign' WHERE id = 1",
    "UPDATE iam.users SET username = 'ab' WHERE id = 1",
    "UPDATE iam.users SET email = (SELECT email FROM iam.users WHERE id = 2) WHERE id = 1",
    "UPDATE ai_agents.agents SET temperature = 3.5 WHERE id = 1",
    "UPDATE ai_agents.agents SET performance_score = -0.1 WHERE id = 1",
    "UPDATE tasks.tasks SET priority = 'URGENT' WHERE id = 1",
    "UPDATE tasks.tasks SET status = 'done' WHERE id = 1",
    "UPDATE tasks.tasks SET completion_percentage = -1 WHERE id = 1",
    "UPDATE communication.conversations SET satisfaction_rating = 0 WHERE id = 1",
    "UPDATE iam.user_sessions SET session_token = (SELECT session_token FROM iam.user_sessions WHERE id = 2) WHERE id = 1",
    "INSERT INTO system.configurations (key, value) SELECT key, 'x' FROM system.configurations LIMIT 1",
    "INSERT INTO communication.messages (conversation_id, sender_type, content) VALUES (999999999, 'user', 'orphan')",
])
def test_constraints_refuse(migrated_pg, statement):
    _, url = migrated_pg
    with pytest.raises(psycopg.errors.IntegrityError):
        q(url, statement)


def test_triggers_fire(migrated_pg):
    _, url = migrated_pg
    q(url, "UPDATE iam.users SET updated_at = '2000-01-01' WHERE id = 1")
    before = q(url, "SELECT count(*) FROM system.audit_logs WHERE action = 'user_updated'")[0][0]
    q(url, "UPDATE iam.users SET full_name = 'Changed Name' WHERE id = 1")
    assert q(url, "SELECT updated_at > '2001-01-01' FROM iam.users WHERE id = 1")[0][0]
    rows = q(url, "SELECT user_id, details::text FROM system.audit_logs WHERE action = 'user_updated' ORDER BY id")
    assert len(rows) == before + 1 and rows[-1][0] == 1
    assert "Changed Name" in rows[-1][1] and "password_hash" not in rows[-1][1]
    agent, conv = q(url, "SELECT a.id, c.id FROM ai_agents.agents a, communication.conversations c LIMIT 1")[0]
    q(url, "UPDATE ai_agents.agents SET updated_at = '2000-01-01' WHERE id = %s", (agent,))
    q(url, "INSERT INTO communication.messages (conversation_id, agent_id, sender_type, content) "
           "VALUES (%s, %s, 'agent', 'hi')", (conv, agent))
    assert q(url, "SELECT updated_at > '2001-01-01' FROM ai_agents.agents WHERE id = %s", (agent,))[0][0]


def test_rollback_refuses_then_writes_back_post_cutover_rows(migrated_pg, tmp_path):
    db, url = migrated_pg
    target = parse_target(url)
    q(url, "INSERT INTO communication.messages (conversation_id, sender_type, content, metadata, created_at) "
           "SELECT id, 'user', 'after the cutover', '{\"k\": [1, 2]}', '2026-11-23 10:00:00+00' "
           "FROM communication.conversations LIMIT 1")
    q(url, "INSERT INTO iam.authentication_logs (action) VALUES ('login')")
    q(url, "INSERT INTO system.audit_logs (action) VALUES ('create_task')")
    digest = file_digest(db)
    logs_before = sqlite3.connect(db).execute("SELECT count(*) FROM activity_logs").fetchone()[0]
    with pytest.raises(ChecksFailed, match="after the cutover"):
        verbs.rollback(db, target, backup_dir=tmp_path)
    assert file_digest(db) == digest
    assert q(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'")[0][0] == 1
    result = verbs.rollback(db, target, write_back=True, backup_dir=tmp_path)
    assert result.rows_restored == {"messages": 1, "activity_logs": 2}
    src = sqlite3.connect(db)
    row = src.execute("SELECT content, metadata, created_at, typeof(conversation_id) FROM messages "
                      "WHERE content = 'after the cutover'").fetchone()
    assert row == ("after the cutover", '{"k": [1, 2]}', "2026-11-23 10:00:00", "integer")
    assert src.execute("SELECT count(*) FROM activity_logs").fetchone()[0] == logs_before + 2
    assert {r[0] for r in src.execute("SELECT action FROM activity_logs ORDER BY id DESC LIMIT 2")} == {"login", "create_task"}
    assert q(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'")[0][0] == 0


def test_existing_schemas_are_refused_unless_replaced(legacy_db, tmp_path, pg_url):
    q(pg_url, "CREATE SCHEMA iam; CREATE TABLE iam.mine (x int); INSERT INTO iam.mine VALUES (1)")
    db = legacy_db()
    with pytest.raises(BadInput, match="already holds schemas iam"):
        verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path)
    assert q(pg_url, "SELECT x FROM iam.mine") == [(1,)]
    _, result = verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path, replace_existing=True)
    assert result.backup.path.exists() and result.backup.path.stat().st_size > 0


def test_password_never_recorded(legacy_db, tmp_path, pg_url):
    url = pg_url.replace("postgres@", "postgres:s3cret@")
    plan = verbs.make_plan(legacy_db(), parse_target(url))
    assert "s3cret" not in plan.to_json()


def test_unreachable_server_is_bad_input(legacy_db, tmp_path):
    with pytest.raises(BadInput, match="cannot connect"):
        verbs.apply(legacy_db(), parse_target("postgresql://nobody@127.0.0.1:1/x"), backup_dir=tmp_path)


@pytest.mark.slow
def test_full_cycle_at_100k_messages(_generated, tmp_path, pg_url):
    import shutil

    db = tmp_path / "big.db"
    shutil.copyfile(_generated(messages=100_000), db)
    target = parse_target(pg_url)
    _, result = verbs.apply(db, target, backup_dir=tmp_path)
    assert result.rows_moved["messages -> communication.messages"] == 100_000
    assert q(pg_url, "SELECT count(*) FROM communication.messages")[0][0] == 100_000
    assert verbs.verify(db, target).ok
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert q(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'communication'")[0][0] == 0
