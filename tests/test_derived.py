"""Nothing invented: a column the legacy row lacks gets a value derived from the row (declared in ddl/mapping.toml,
shown by plan) or NULL, never the cutover time or a default; rollback gives back the legacy file as it was."""

from __future__ import annotations

import shutil
import sqlite3

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.model.mapping import MoveRule, derivations
from dpro_migrate.model.schema import load_schema
from dpro_migrate.targets import parse_target

# (text that is not JSON is left out: PostgreSQL refuses it in jsonb)
LEVELS = [('{"level": "error"}', "error"), ('{"log_level": "warning", "level": "x"}', "warning"),
          ('{"level": "ERROR"}', None), ('{"level": 5}', None), ("[1, 2]", None), (None, None)]


def _legacy_with_levels(legacy_db):
    """Audit rows whose details state a level (or something that is not one), and one stored as a blob."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    ids = [r[0] for r in conn.execute("SELECT id FROM activity_logs WHERE action NOT LIKE '%login%' AND action NOT "
                                      "LIKE '%auth%' ORDER BY id LIMIT ?", (len(LEVELS),))]
    for (details, _), id_ in zip(LEVELS, ids, strict=True):
        conn.execute("UPDATE activity_logs SET details = ? WHERE id = ?", (details, id_))
    conn.commit()
    conn.close()
    return db, dict(zip(ids, [want for _, want in LEVELS], strict=True))


def _expected(db) -> dict:
    conn = sqlite3.connect(db)
    out = {"messages": dict(conn.execute("SELECT id, created_at FROM messages")),
           "tasks": {i: (100 if s == "completed" else None) for i, s in conn.execute("SELECT id, status FROM tasks")}}
    conn.close()
    return out


def test_plan_states_each_derivation(legacy_db):
    plan = verbs.make_plan(legacy_db())
    moves = {op.target: op for op in plan.moves}
    assert moves["communication.messages"].derived == {"updated_at": '"created_at"'}
    assert moves["tasks.tasks"].derived == {"completion_percentage": "CASE WHEN \"status\" = 'completed' THEN 100 END"}
    assert "log_level" in moves["system.audit_logs"].derived
    assert "(derived: updated_at = \"created_at\")" in moves["communication.messages"].describe()
    assert "derived" not in moves["iam.users"].describe()


def test_a_derivation_reading_a_missing_column_gives_null_and_a_wrong_one_is_refused():
    schema = load_schema()
    tasks = schema.table("tasks.tasks")
    rule = MoveRule("tasks", "tasks.tasks", derive=(("completion_percentage", "CASE WHEN status = 'x' THEN 1 END"),))
    assert derivations(rule, tasks, [c for c in tasks.column_names if c not in ("status", "completion_percentage")]) \
        == {"status": "NULL", "completion_percentage": "NULL"}  # status's default 'pending' would be invented too
    with pytest.raises(BadInput, match="does not have"):
        derivations(MoveRule("tasks", "tasks.tasks", derive=(("nope", "1"),)), tasks, tasks.column_names)


def test_sqlite_derives_from_the_row_and_rollback_gives_the_file_back(legacy_db, tmp_path):
    db, levels = _legacy_with_levels(legacy_db)
    want = _expected(db)
    original = tmp_path / "original.db"
    shutil.copyfile(db, original)
    verbs.apply(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db)
    assert dict(conn.execute("SELECT id, updated_at FROM communication_messages")) == want["messages"]
    assert dict(conn.execute("SELECT id, completion_percentage FROM tasks_tasks")) == want["tasks"]
    got = dict(conn.execute("SELECT id, log_level FROM system_audit_logs"))
    assert {i: got[i] for i in levels} == levels
    assert set(got.values()) <= {None, "error", "warning"}  # no 'info' invented for rows that say nothing
    conn.close()
    assert verbs.verify(db).ok
    verbs.rollback(db)
    assert logical_differences(original, db) == []


@pytest.mark.postgres
def test_postgresql_derives_from_the_row(legacy_db, tmp_path, pg_url):
    db, levels = _legacy_with_levels(legacy_db)
    want = _expected(db)
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path)
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        same = conn.execute("SELECT count(*), count(*) FILTER (WHERE updated_at IS NOT DISTINCT FROM created_at) "
                            "FROM communication.messages").fetchone()
        tasks = dict(conn.execute("SELECT id, completion_percentage FROM tasks.tasks").fetchall())
        got = dict(conn.execute("SELECT id, log_level FROM system.audit_logs").fetchall())
    assert same[0] == same[1] == len(want["messages"])
    assert tasks == want["tasks"]
    assert {i: got[i] for i in levels} == levels and set(got.values()) <= {None, "error", "warning"}
    assert verbs.verify(db, target).ok
    verbs.rollback(db, target, backup_dir=tmp_path)

