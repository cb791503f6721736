"""The application's workload (benchmarks/workload/queries.toml) after migration: the same rows as on the legacy
file, and every query served by an index, on SQLite in place and on PostgreSQL. Plus what the workload leans on:
statistics after apply, the search index kept in step with writes, SQLite's partial indexes in the form the
application queries them."""

from __future__ import annotations

import shutil
import sqlite3

import psycopg
import pytest

from benchmarks.workload.workload import load_queries, run_workload
from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.targets import parse_target

# Large enough that SQLite's and PostgreSQL's planners prefer indexes on the big tables (messages, logs), small
# enough to generate and migrate in a few seconds.
MESSAGES = 6000


@pytest.fixture(scope="module")
def legacy_path(tmp_path_factory):
    from dpro_migrate.example import generate_legacy_db

    path = tmp_path_factory.mktemp("workload") / "legacy.db"
    generate_legacy_db(path, messages=MESSAGES)
    return path


def _failures(outcomes, target: str) -> list[str]:
    return ([f"{o.name}: rows differ" for o in outcomes if not o.same_rows]
            + [f"{o.name}: no index on {target}: {' | '.join(o.plans[target])}" for o in outcomes if not o.indexed[target]])


def test_every_query_of_the_workload_is_indexed_and_answers_the_same_on_sqlite(legacy_path, tmp_path):
    migrated = tmp_path / "migrated.db"
    shutil.copyfile(legacy_path, migrated)
    verbs.apply(migrated, backup_dir=tmp_path)
    legacy, conn = sqlite3.connect(legacy_path), sqlite3.connect(migrated)
    try:
        outcomes = run_workload(legacy, conn, repeat=1)
    finally:
        legacy.close()
        conn.close()
    assert len(outcomes) == len(load_queries()) >= 17
    assert all(o.rows > 0 for o in outcomes), [o.name for o in outcomes if not o.rows]  # each asks a real question
    assert _failures(outcomes, "sqlite") == []


@pytest.mark.postgres
def test_every_query_of_the_workload_is_indexed_and_answers_the_same_on_postgresql(legacy_path, tmp_path, pg_url):
    source = tmp_path / "legacy.db"
    shutil.copyfile(legacy_path, source)
    verbs.apply(source, parse_target(pg_url), backup_dir=tmp_path)
    legacy = sqlite3.connect(source)
    pg = psycopg.connect(pg_url, autocommit=True)
    try:
        outcomes = run_workload(legacy, None, pg, repeat=1)
    finally:
        legacy.close()
        pg.close()
    assert _failures(outcomes, "postgresql") == []


@pytest.mark.slow
@pytest.mark.postgres
def test_the_workload_at_50000_messages_on_both_targets(tmp_path, pg_url):
    """Where the planners' choices settle: bigger tables, the same answer and an index for every query."""
    from dpro_migrate.example import generate_legacy_db

    legacy_path, migrated = tmp_path / "legacy.db", tmp_path / "migrated.db"
    generate_legacy_db(legacy_path, messages=50_000)
    shutil.copyfile(legacy_path, migrated)
    verbs.apply(migrated, backup_dir=tmp_path)
    verbs.apply(legacy_path, parse_target(pg_url), backup_dir=tmp_path)
    legacy, conn, pg = sqlite3.connect(legacy_path), sqlite3.connect(migrated), psycopg.connect(pg_url, autocommit=True)
    try:
        outcomes = run_workload(legacy, conn, pg, repeat=1)
    finally:
        legacy.close()
        conn.close()
        pg.close()
    assert _failures(outcomes, "sqlite") + _failures(outcomes, "postgresql") == []


# --- statistics ---------------------------------------------------------------------------------------------


def test_apply_leaves_statistics_on_sqlite_and_rollback_takes_them_away(legacy_db, tmp_path):
    db = legacy_db()
    original = tmp_path / "original.db"
    shutil.copyfile(db, original)
    verbs.apply(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db)
    analyzed = {r[0] for r in conn.execute("SELECT DISTINCT tbl FROM sqlite_stat1")}
    conn.close()
    assert {"communication_messages", "iam_users", "workflow_board_connections"} <= analyzed
    verbs.rollback(db)
    assert logical_differences(original, db) == []  # the legacy file had no sqlite_stat1: it has none again


@pytest.mark.postgres
def test_apply_leaves_statistics_on_postgresql(legacy_db, tmp_path, pg_url):
    verbs.apply(legacy_db(), parse_target(pg_url), backup_dir=tmp_path)
    with psycopg.connect(pg_url) as conn:
        never = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('iam', 'communication', 'workflow', 'tasks') AND c.relkind = 'r' "
            "AND c.reltuples < 0").fetchall()  # -1: never analyzed (PostgreSQL 14+)
        stats = conn.execute("SELECT count(*) FROM pg_stats WHERE schemaname = 'communication' "
                             "AND tablename = 'messages'").fetchone()[0]
    assert never == [] and stats > 0


# --- search -------------------------------------------------------------------------------------------------


def test_the_fts_table_follows_inserts_updates_and_deletes(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db)

    def found(pattern: str) -> list[int]:
        return [r[0] for r in conn.execute(
            "SELECT id FROM communication_messages WHERE id IN (SELECT rowid FROM communication_messages_fts "
            "WHERE content LIKE ?) ORDER BY id", (pattern,))]

    def scanned(pattern: str) -> list[int]:
        return [r[0] for r in conn.execute("SELECT id FROM communication_messages WHERE content LIKE ? ORDER BY id",
                                           (pattern,))]

    conversation = conn.execute("SELECT id FROM communication_conversations LIMIT 1").fetchone()[0]
    new = conn.execute("INSERT INTO communication_messages (conversation_id, sender_type, content) "
                       "VALUES (?, 'user', 'Where is the Zanzibar ferry?')", (conversation,)).lastrowid
    first, second = (r[0] for r in conn.execute("SELECT id FROM communication_messages ORDER BY id LIMIT 2"))
    conn.execute("UPDATE communication_messages SET content = 'zanzibar spice market' WHERE id = ?", (first,))
    conn.execute("DELETE FROM communication_messages WHERE id = ?", (second,))
    conn.commit()
    assert found("%zanzibar%") == scanned("%zanzibar%") == sorted([new, first])
    for pattern in ("%fried rice%", "%SOY SAUCE%", "%quick%"):
        assert found(pattern) == scanned(pattern)
    conn.execute("INSERT INTO communication_messages_fts (communication_messages_fts) VALUES ('integrity-check')")
    conn.close()


def test_sqlite_partial_indexes_serve_the_applications_own_predicate(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path)
    conn = sqlite3.connect(db)
    partial = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'").fetchall()
    assert partial and all("WHERE \"is_active\" = 1" in sql or "is_active" not in sql for _, sql in partial)
    plan = " ".join(r[3] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM iam_user_sessions WHERE user_id = 3 AND is_active = 1 ORDER BY expires_at DESC"))
    conn.close()
    assert "idx_iam_sessions_user_active" in plan


# --- partitions ---------------------------------------------------------------------------------------------


def test_the_partitions_verb_on_sqlite_is_bad_input_and_changes_nothing(legacy_db, tmp_path):
    from typer.testing import CliRunner

    from dpro_migrate.cli import app
    from tests.conftest import file_digest

    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path)
    before = file_digest(db)
    result = CliRunner().invoke(app, ["partitions", str(db)])
    assert result.exit_code == 2 and "SQLite has no partitions" in result.stderr
    assert file_digest(db) == before


def test_a_sqlite_without_fts5_trigram_is_refused_at_plan_time(legacy_db, monkeypatch):
    from dpro_migrate.dialects import SQLITE, get_dialect
    from dpro_migrate.errors import BadInput

    monkeypatch.setattr(type(get_dialect(SQLITE)), "search_unavailable", lambda self: "no trigram tokenizer here")
    with pytest.raises(BadInput, match="no trigram tokenizer here"):
        verbs.make_plan(legacy_db())
