"""The example-database generator: shapes, counts, clean data, determinism, extras."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpro_migrate.example import SCHEMA_FILE, SHAPES, generate_legacy_db, row_plan

MESSAGES = 700

# (table, column, referenced table, nullable)
REFERENCES = [
    ("user_settings", "user_id", "users", False),
    ("user_profiles", "user_id", "users", False),
    ("user_sessions", "user_id", "users", False),
    ("activity_logs", "user_id", "users", True),
    ("agents", "user_id", "users", False),
    ("agents", "parent_agent_id", "agents", True),
    ("conversations", "user_id", "users", False),
    ("conversations", "agent_id", "agents", True),
    ("messages", "conversation_id", "conversations", False),
    ("messages", "user_id", "users", True),
    ("messages", "agent_id", "agents", True),
    ("chat_session_history", "conversation_id", "conversations", True),
    ("chat_session_history", "user_id", "users", True),
    ("tasks", "user_id", "users", False),
    ("tasks", "assigned_to", "users", True),
    ("tasks", "agent_id", "agents", True),
    ("boards", "user_id", "users", False),
    ("board_nodes", "board_id", "boards", False),
    ("board_connections", "board_id", "boards", False),
    ("board_connections", "source_node_id", "board_nodes", False),
    ("board_connections", "target_node_id", "board_nodes", False),
    ("board_executions", "board_id", "boards", False),
    ("board_executions", "user_id", "users", True),
    ("board_templates", "created_by", "users", True),
    ("workflows", "board_id", "boards", True),
    ("workflows", "user_id", "users", False),
    ("legacy_feedback", "user_id", "users", True),
]

TS_GLOB = "[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]"


def schema_tables() -> list[str]:
    return re.findall(r"^CREATE TABLE (\w+)", SCHEMA_FILE.read_text(encoding="utf-8"), re.M)


def schema_statements() -> dict[str, str]:
    """name -> statement text as sqlite_master stores it (no trailing semicolon)."""
    out = {}
    for stmt in SCHEMA_FILE.read_text(encoding="utf-8").split(";"):
        lines = [ln for ln in stmt.strip().splitlines()]
        while lines and lines[0].lstrip().startswith("--"):
            lines.pop(0)
        text = "\n".join(lines).strip()
        m = re.match(r"CREATE (?:UNIQUE )?(?:TABLE|INDEX) (\w+)", text)
        if m:
            out[m.group(1)] = text
    return out


def tables_of(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


def columns_by_type(conn: sqlite3.Connection, table: str, decl: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[2].upper() == decl]


def scalar(conn: sqlite3.Connection, sql: str, *params):
    return conn.execute(sql, params).fetchone()[0]


@pytest.fixture(scope="module")
def make(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    cache: dict[tuple, tuple[Path, dict[str, int]]] = {}

    def _make(shape: str = "18", messages: int = MESSAGES, seed: int = 0, extras: bool = False):
        key = (shape, messages, seed, extras)
        if key not in cache:
            path = root / f"legacy-{shape}-{messages}-{seed}-{int(extras)}.db"
            cache[key] = (path, generate_legacy_db(path, messages=messages, shape=shape, seed=seed, extras=extras))
        return cache[key]

    return _make


ALL_CASES = [(shape, extras) for shape in SHAPES for extras in (False, True)]


def open_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


# --------------------------------------------------------------------------------------------------


def test_shapes_are_the_legacy_releases():
    assert SHAPES["18"] == tuple(schema_tables())
    assert len(SHAPES["18"]) == 18 and len(SHAPES["13"]) == 13 and len(SHAPES["14"]) == 14
    for tables in SHAPES.values():
        assert set(tables) <= set(SHAPES["18"])
    assert set(SHAPES["14"]) - set(SHAPES["13"]) == {
        "chat_session_history", "board_nodes", "board_connections", "board_executions", "board_templates"}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shape_has_exactly_its_tables_verbatim(make, shape):
    path, counts = make(shape)
    conn = open_db(path)
    assert tables_of(conn) == set(SHAPES[shape])
    assert set(counts) == set(SHAPES[shape])
    statements = schema_statements()
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                                  "AND name NOT LIKE 'sqlite_%'"):
        assert sql == statements[name], name
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert indexes == {"idx_messages_conversation", "idx_users_email"}  # both tables are in every shape
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE type IN ('view', 'trigger')").fetchall()


@pytest.mark.parametrize("shape,extras", ALL_CASES)
def test_counts_match_the_file(make, shape, extras):
    path, counts = make(shape, extras=extras)
    conn = open_db(path)
    assert set(counts) == tables_of(conn)
    for table, n in counts.items():
        assert scalar(conn, f"SELECT count(*) FROM {table}") == n, table
    assert counts["messages"] == MESSAGES
    for table in counts:
        assert counts[table] > 0, table


def test_file_is_a_plain_rollback_journal_database(make):
    path, _ = make("18", extras=True)
    conn = sqlite3.connect(path)
    try:
        assert scalar(conn, "PRAGMA journal_mode") == "delete"
        assert scalar(conn, "PRAGMA integrity_check") == "ok"
        names = tables_of(conn) | {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "sqlite_stat1" not in names and "_lex" not in names
        assert not Path(str(path) + "-journal").exists() and not Path(str(path) + "-wal").exists()
    finally:
        conn.close()


@pytest.mark.parametrize("shape,extras", ALL_CASES)
def test_unique_values(make, shape, extras):
    conn = open_db(make(shape, extras=extras)[0])
    for table, column in [("users", "username"), ("users", "email"), ("user_sessions", "session_token"),
                          ("system_info", "key")]:
        if table in SHAPES[shape]:
            dup = scalar(conn, f"SELECT count(*) - count(DISTINCT {column}) FROM {table}")
            assert dup == 0, f"{table}.{column}"
            assert scalar(conn, f"SELECT count(*) FROM {table} WHERE {column} IS NULL") == 0


@pytest.mark.parametrize("shape,extras", ALL_CASES)
def test_no_orphan_references(make, shape, extras):
    path, counts = make(shape, extras=extras)
    conn = open_db(path)
    present = set(counts)
    checked = 0
    for table, column, ref, nullable in REFERENCES:
        if table not in present:
            continue
        assert ref in present, f"{table}.{column} references missing table {ref}"
        orphans = scalar(conn, f"SELECT count(*) FROM {table} t LEFT JOIN {ref} r ON r.id = t.{column} "
                               f"WHERE t.{column} IS NOT NULL AND r.id IS NULL")
        assert orphans == 0, f"{table}.{column}"
        if not nullable:
            assert scalar(conn, f"SELECT count(*) FROM {table} WHERE {column} IS NULL") == 0
        checked += 1
    assert checked >= 10


def test_references_are_coherent(make):
    conn = open_db(make("18")[0])
    # Connections join nodes of their own board; a parent agent belongs to the same user.
    assert scalar(conn, """SELECT count(*) FROM board_connections c JOIN board_nodes s ON s.id = c.source_node_id
                           JOIN board_nodes t ON t.id = c.target_node_id
                           WHERE s.board_id <> c.board_id OR t.board_id <> c.board_id""") == 0
    assert scalar(conn, """SELECT count(*) FROM agents a JOIN agents p ON p.id = a.parent_agent_id
                           WHERE p.user_id <> a.user_id OR p.id = a.id""") == 0
    # A conversation's messages come from its user and from agents; conversation agents belong to the user.
    assert scalar(conn, """SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
                           WHERE m.user_id IS NOT NULL AND m.user_id <> c.user_id""") == 0
    assert scalar(conn, """SELECT count(*) FROM conversations c JOIN agents a ON a.id = c.agent_id
                           WHERE a.user_id <> c.user_id""") == 0
    assert scalar(conn, "SELECT count(*) FROM agents WHERE parent_agent_id IS NOT NULL") > 0


@pytest.mark.parametrize("shape", list(SHAPES))
def test_value_rules(make, shape):
    conn = open_db(make(shape, extras=True)[0])
    present = set(SHAPES[shape])

    def none(sql: str) -> None:
        assert scalar(conn, f"SELECT count(*) FROM {sql}") == 0, sql

    none("users WHERE email NOT GLOB '[a-z]*@example.com' OR substr(email, 1, instr(email, '@') - 1) "
         "GLOB '*[^a-z0-9._-]*' OR length(username) < 3 OR username GLOB '*[^a-z0-9._-]*'")
    none("users WHERE password_hash NOT LIKE 'pbkdf2_sha256$%$%$%'")
    none("users WHERE subscription_type NOT IN ('free', 'pro', 'team', 'enterprise')")
    none("agents WHERE typeof(temperature) <> 'real' OR temperature < 0 OR temperature > 2")
    none("agents WHERE typeof(performance_score) <> 'real' OR performance_score < 0 OR performance_score > 1")
    none("tasks WHERE priority NOT IN ('low', 'medium', 'high', 'urgent') "
         "OR status NOT IN ('pending', 'in_progress', 'completed', 'cancelled')")
    none("tasks WHERE (status = 'completed') <> (completed_at IS NOT NULL)")
    none("messages WHERE sender_type NOT IN ('user', 'agent', 'system') OR content IS NULL OR content = ''")
    none("messages WHERE sender_type = 'agent' AND agent_id IS NULL")
    none("messages WHERE sender_type = 'user' AND user_id IS NULL")
    none("user_sessions WHERE expires_at <= created_at")
    if "board_executions" in present:
        none("board_executions WHERE finished_at IS NOT NULL AND finished_at < started_at")
    assert {r[0] for r in conn.execute("SELECT DISTINCT sender_type FROM messages")} == {"user", "agent", "system"}
    assert {r[0] for r in conn.execute("SELECT DISTINCT status FROM tasks")} == {
        "pending", "in_progress", "completed", "cancelled"}

    actions = {r[0] for r in conn.execute("SELECT DISTINCT action FROM activity_logs")}
    assert {"login", "logout", "auth_failed", "password_reset"} <= actions
    assert {"create_task", "update_board", "send_message"} <= actions
    auth = scalar(conn, "SELECT count(*) FROM activity_logs WHERE action LIKE '%login%' OR action LIKE '%auth%'")
    total = scalar(conn, "SELECT count(*) FROM activity_logs")
    assert 0 < auth < total

    for table in present | {"legacy_feedback"}:
        for col in columns_by_type(conn, table, "TIMESTAMP"):
            none(f"{table} WHERE {col} IS NOT NULL AND (typeof({col}) <> 'text' OR {col} NOT GLOB '{TS_GLOB}' "
                 f"OR datetime({col}) IS NOT {col} OR {col} < '2023-01-01 00:00:00' OR {col} > '2025-12-31 23:59:59')")
        for col in columns_by_type(conn, table, "BOOLEAN"):
            none(f"{table} WHERE {col} IS NULL OR typeof({col}) <> 'integer' OR {col} NOT IN (0, 1)")
        for col in columns_by_type(conn, table, "JSON"):
            none(f"{table} WHERE {col} IS NOT NULL AND (typeof({col}) <> 'text' OR NOT json_valid({col}))")
            # JSON columns hold objects, and each has some values.
            assert scalar(conn, f"SELECT count(*) FROM {table} WHERE json_type({col}) = 'object'") > 0, \
                f"{table}.{col}"


@pytest.mark.parametrize("shape", list(SHAPES))
def test_text_fits_declared_varchar_lengths(make, shape):
    """PostgreSQL enforces VARCHAR(n) in characters; SQLite does not, so the generator must."""
    conn = open_db(make(shape, extras=True)[0])
    checked = 0
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        for _, col, decl, *_ in conn.execute(f"PRAGMA table_info({table})").fetchall():
            m = re.fullmatch(r"VARCHAR\((\d+)\)", decl.upper())
            if m:
                longest = scalar(conn, f"SELECT max(length({col})) FROM {table}")
                assert longest is None or longest <= int(m.group(1)), f"{table}.{col}: {longest} > {decl}"
                checked += 1
    assert checked > 20

def test_text_is_realistic_unicode(make):
    conn = open_db(make("18")[0])
    contents = [r[0] for r in conn.execute("SELECT content FROM messages")]
    assert any(any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in c) for c in contents)  # CJK
    assert any(any(ord(ch) >= 0x1F300 for ch in c) for c in contents)  # emoji
    assert any(any(ch in "éèàçñüöß" for ch in c) for c in contents)  # accents
    assert len(set(contents)) > 50
    names = [r[0] for r in conn.execute("SELECT full_name FROM users WHERE full_name IS NOT NULL")]
    assert names and all(name.strip() for name in names)
    prefs = [json.loads(r[0]) for r in conn.execute("SELECT preferences FROM users WHERE preferences IS NOT NULL")]
    assert all(isinstance(p, dict) for p in prefs)


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.mark.parametrize("shape,extras", [("18", False), ("14", True)])
def test_deterministic_for_a_seed(tmp_path, shape, extras):
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    ca = generate_legacy_db(a, messages=400, shape=shape, seed=7, extras=extras)
    cb = generate_legacy_db(b, messages=400, shape=shape, seed=7, extras=extras)
    cc = generate_legacy_db(c, messages=400, shape=shape, seed=8, extras=extras)
    assert ca == cb == cc
    assert dump(a) == dump(b)
    assert dump(a) != dump(c)


def test_extras(make):
    path, counts = make("18", extras=True)
    conn = open_db(path)
    assert "nickname" in [r[1] for r in conn.execute("PRAGMA table_info(users)")]
    assert "sentiment" in [r[1] for r in conn.execute("PRAGMA table_info(messages)")]
    assert 0 < scalar(conn, "SELECT count(nickname) FROM users") < counts["users"] or counts["users"] < 3
    assert scalar(conn, "SELECT count(sentiment) FROM messages") > 0
    assert scalar(conn, "SELECT count(*) FROM messages WHERE sentiment < -1 OR sentiment > 1") == 0
    assert counts["legacy_feedback"] == scalar(conn, "SELECT count(*) FROM legacy_feedback") > 0
    objects = {(r[0], r[1]) for r in conn.execute("SELECT type, name FROM sqlite_master")}
    assert ("view", "active_users") in objects
    assert ("trigger", "trg_legacy_tasks_touch") in objects
    assert scalar(conn, "SELECT count(*) FROM active_users") == scalar(conn, "SELECT count(*) FROM users WHERE is_active = 1")
    trigger_sql = scalar(conn, "SELECT sql FROM sqlite_master WHERE name = 'trg_legacy_tasks_touch'")
    assert "AFTER UPDATE ON tasks" in trigger_sql
    # Without extras none of it is there.
    plain = open_db(make("18", extras=False)[0])
    assert "nickname" not in [r[1] for r in plain.execute("PRAGMA table_info(users)")]
    assert "legacy_feedback" not in tables_of(plain)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_zero_messages(tmp_path, shape):
    path = tmp_path / "empty.db"
    counts = generate_legacy_db(path, messages=0, shape=shape, extras=True)
    conn = sqlite3.connect(path)
    assert counts["messages"] == 0 == scalar(conn, "SELECT count(*) FROM messages")
    assert counts["users"] >= 5 and counts["agents"] >= 5 and counts["conversations"] >= 1
    for table, n in counts.items():
        assert scalar(conn, f"SELECT count(*) FROM {table}") == n
        if table != "messages":
            assert n > 0, table
    conn.close()


def test_existing_path_raises(tmp_path):
    path = tmp_path / "there.db"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        generate_legacy_db(path, messages=10)
    assert path.read_bytes() == b"precious"
    with pytest.raises(FileExistsError):
        generate_legacy_db(tmp_path, messages=10)  # a directory


def test_bad_arguments_create_nothing(tmp_path):
    path = tmp_path / "x.db"
    with pytest.raises(ValueError):
        generate_legacy_db(path, shape="15")
    with pytest.raises(ValueError):
        generate_legacy_db(path, messages=-1)
    assert not path.exists()


def test_progress_is_reported(tmp_path):
    seen: list[tuple[str, int]] = []
    counts = generate_legacy_db(tmp_path / "p.db", messages=300, shape="14", progress=lambda t, n: seen.append((t, n)))
    last = {}
    for table, n in seen:
        assert n >= last.get(table, 0)
        last[table] = n
    assert last == {t: n for t, n in counts.items() if n}


def test_proportions():
    plan = row_plan(1_000_000)
    assert plan["messages"] == 1_000_000
    others = sum(n for t, n in plan.items() if t != "messages")
    assert 440_000 <= others <= 480_000
    assert plan["users"] == 5000 and plan["conversations"] == 50_000 and plan["agents"] == 2 * plan["users"]
    small = row_plan(0)
    assert small["messages"] == 0 and small["users"] >= 5 and small["system_info"] >= 10
    assert row_plan(5_000_000)["messages"] == 5_000_000


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.integers(0, 250), seed=st.integers(0, 2**31), shape=st.sampled_from(sorted(SHAPES)))
def test_any_size_and_seed_is_clean(tmp_path_factory, messages, seed, shape):
    path = tmp_path_factory.mktemp("prop") / "db.db"
    counts = generate_legacy_db(path, messages=messages, shape=shape, seed=seed)
    conn = sqlite3.connect(path)
    try:
        for table, n in counts.items():
            assert scalar(conn, f"SELECT count(*) FROM {table}") == n
        for table, column, ref, _ in REFERENCES:
            if table in counts:
                assert scalar(conn, f"SELECT count(*) FROM {table} t LEFT JOIN {ref} r ON r.id = t.{column} "
                                    f"WHERE t.{column} IS NOT NULL AND r.id IS NULL") == 0
        assert scalar(conn, "SELECT count(*) - count(DISTINCT email) FROM users") == 0
        assert scalar(conn, "SELECT count(*) FROM messages WHERE sender_type = 'agent' AND agent_id IS NULL") == 0
    finally:
        conn.close()
