"""Real files differ in their schema, not only in their values (issue 13): each variation either survives
apply, verify and rollback as a logically identical file, or is refused up front with the file unchanged."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput

from tests.conftest import file_digest, refused_in_one_line


def variant(legacy_db, script: str, **kwargs) -> Path:
    """A generated legacy file changed the way a real installation was (statements run by sqlite3)."""
    db = legacy_db(**kwargs)
    conn = sqlite3.connect(db)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return db


def rebuild(db: Path, table: str, rewrite) -> None:
    """Rebuild `table` with the declaration `rewrite(create_sql)` (lang_altertable's 12 steps): rows, rowids,
    indexes and the AUTOINCREMENT counter kept."""
    conn = sqlite3.connect(db, isolation_level=None)
    create = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
    indexes = [r[0] for r in conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    new = rewrite(create)
    staged = re.sub(r"^CREATE TABLE \"?\w+\"?", f'CREATE TABLE "{table}_rebuilt"', new, count=1)
    conn.execute("BEGIN")
    conn.execute(staged)
    has_rowid = "WITHOUT ROWID" not in new.upper()
    cols = ", ".join(f'"{r[1]}"' for r in conn.execute(f'PRAGMA table_xinfo("{table}")') if r[6] == 0)
    rowid = "rowid, " if has_rowid else ""
    conn.execute(f'INSERT INTO "{table}_rebuilt" ({rowid}{cols}) SELECT {rowid}{cols} FROM "{table}"')
    conn.execute(f'DROP TABLE "{table}"')
    conn.execute(f'ALTER TABLE "{table}_rebuilt" RENAME TO "{table}"')
    for sql in indexes:
        conn.execute(sql)
    if seq and conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (seq[0], table))
    conn.execute("COMMIT")
    conn.close()


def round_trip(db: Path, tmp_path: Path, moved: dict[str, str] | None = None, *, on_reject: str = "fail",
               after_apply=None) -> None:
    """apply, verify, rollback: verify passes and the file comes back logically identical. `moved`: legacy
    table -> domain table that must hold all its rows after apply; `after_apply(plan)`: what else must hold then."""
    original = tmp_path / "original.db"
    shutil.copyfile(db, original)
    rows = {legacy: count(db, f'SELECT count(*) FROM "{legacy}"') for legacy in moved or {}}
    plan, _ = verbs.apply(db, backup_dir=tmp_path / "bk", on_reject=on_reject)
    if after_apply:
        after_apply(plan)
    for legacy, target in (moved or {}).items():
        assert count(db, f'SELECT count(*) FROM "{target}"') == rows[legacy] > 0
    report = verbs.verify(db)
    assert report.ok, report.failures
    assert verbs.status(db).state == "migrated"
    verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert logical_differences(original, db) == []
    assert verbs.status(db).state == "legacy"


def refused(db: Path, tmp_path: Path, *words: str) -> str:
    """inspect, plan and apply each refuse with one line naming what is wrong; the file stays byte-identical."""
    digest = file_digest(db)
    messages = refused_in_one_line((lambda: verbs.inspect(db), lambda: verbs.make_plan(db),
                                    lambda: verbs.apply(db, backup_dir=tmp_path / "bk")), *words)
    assert file_digest(db) == digest
    assert not list((tmp_path / "bk").glob("*.bak"))  # no backup was made (the history says it was refused)
    return messages[0]


def count(db: Path, sql: str):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


# --- 1. names compared the way SQLite compares them -----------------------------------------------


def test_a_table_named_Messages_is_the_messages_table(legacy_db, tmp_path):
    # SQLite refuses a rename that only changes the case: through a third name
    db = variant(legacy_db, "ALTER TABLE messages RENAME TO m_tmp; ALTER TABLE m_tmp RENAME TO Messages;")
    rows = count(db, "SELECT count(*) FROM Messages")

    def applied(plan):
        assert "Messages" in plan.legacy_tables and "Messages" not in plan.unknown_tables
        assert count(db, "SELECT count(*) FROM communication_messages") == rows > 0

    round_trip(db, tmp_path, after_apply=applied)


def test_a_table_named_Marketplace_Tools_is_the_marketplace_tools_table(legacy_db, tmp_path):
    db = variant(legacy_db, "ALTER TABLE marketplace_tools RENAME TO mt_tmp; "
                            "ALTER TABLE mt_tmp RENAME TO Marketplace_Tools;")
    round_trip(db, tmp_path, moved={"Marketplace_Tools": "marketplace_tools"})


def test_triggers_and_indexes_named_in_another_case_go_with_their_table(legacy_db, tmp_path):
    db = variant(legacy_db, "ALTER TABLE tasks RENAME TO t_tmp; ALTER TABLE t_tmp RENAME TO TASKS;"
                            "CREATE TRIGGER trg_app_touch AFTER UPDATE ON tasks BEGIN SELECT 1; END;"
                            "CREATE INDEX idx_app_tasks_title ON tasks (title);", extras=True)
    round_trip(db, tmp_path, moved={"TASKS": "tasks_tasks"})


def test_a_column_named_in_another_case_lands_in_its_canonical_column(legacy_db, tmp_path):
    db = variant(legacy_db, "ALTER TABLE messages RENAME COLUMN content TO Content;"
                            "ALTER TABLE users RENAME COLUMN email TO EMAIL;")

    def applied(plan):
        assert plan.extra_columns == {}
        assert count(db, "SELECT count(*) FROM communication_messages WHERE content IS NULL") == 0

    round_trip(db, tmp_path, after_apply=applied)


def test_postgres_finds_tables_and_columns_named_in_another_case(legacy_db, tmp_path, pg_url):
    from dpro_migrate.targets import parse_target

    db = variant(legacy_db, "ALTER TABLE messages RENAME TO m_tmp; ALTER TABLE m_tmp RENAME TO Messages;"
                            "ALTER TABLE users RENAME COLUMN email TO EMAIL;")
    original = tmp_path / "original.db"
    shutil.copyfile(db, original)
    target = parse_target(pg_url)
    plan, _ = verbs.apply(db, target, backup_dir=tmp_path / "bk")
    assert "Messages" in plan.legacy_tables and plan.extra_columns == {}
    assert verbs.verify(db, target).ok
    verbs.rollback(db, target, backup_dir=tmp_path / "bk")
    assert logical_differences(original, db) == []


def test_every_obstacle_is_named_on_one_line(legacy_db, tmp_path):
    db = variant(legacy_db, "CREATE TABLE app_a (id INTEGER PRIMARY KEY, m INTEGER REFERENCES messages (id));"
                            "CREATE TABLE app_b (id INTEGER PRIMARY KEY, u INTEGER REFERENCES Users (id));")
    refused(db, tmp_path, "app_a", "app_b")


# --- 2. dpro-migrate's own names never collide with the application's ------------------------------


@pytest.mark.parametrize("table", ["system_migration_ledger", "System_Migration_Ledger", "system_quarantine",
                                   "system_quarantine__messages", "marketplace_tools__dpro_new", "notes__DPRO_NEW"])
def test_a_table_with_one_of_dpro_migrates_own_names_is_refused(legacy_db, tmp_path, table):
    db = variant(legacy_db, f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, "action" TEXT, "plan" TEXT); '
                            f'INSERT INTO "{table}" VALUES (1, \'apply\', \'not json\');')
    message = refused(db, tmp_path, table, "rename")
    assert "dpro-migrate" in message


def test_status_and_verify_refuse_a_foreign_ledger_table_with_one_line(legacy_db, tmp_path):
    db = variant(legacy_db, 'CREATE TABLE system_migration_ledger (id INTEGER PRIMARY KEY, "action" TEXT, note TEXT);'
                            "INSERT INTO system_migration_ledger VALUES (1, 'apply', 'ours');")
    digest = file_digest(db)
    for verb in (verbs.status, verbs.verify):
        with pytest.raises(BadInput, match="system_migration_ledger"):
            verb(db)
    assert file_digest(db) == digest


# --- 3. each target column keeps the declared type of its legacy column -----------------------------


def test_a_column_declared_text_keeps_its_values_as_text(legacy_db, tmp_path):
    db = legacy_db()
    rebuild(db, "messages", lambda sql: sql.replace("metadata JSON", "metadata TEXT"))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE messages SET metadata = CASE id % 4 WHEN 0 THEN '1.50' WHEN 1 THEN '007' "
                 "WHEN 2 THEN '1e3' ELSE metadata END")
    conn.commit()
    conn.close()

    def applied(plan):
        conn = sqlite3.connect(db)
        assert {r[0] for r in conn.execute("SELECT DISTINCT typeof(metadata) FROM communication_messages")} <= {"text", "null"}
        assert conn.execute("SELECT count(*) FROM communication_messages WHERE metadata IN ('1.50', '007', '1e3')").fetchone()[0] > 0
        conn.close()

    round_trip(db, tmp_path, after_apply=applied)


@pytest.mark.parametrize("declared", ["", "BLOB", "NUMERIC", "REAL", "INT", "TEXT", "VARCHAR(3)", "DATETIME"])
def test_any_declared_type_of_a_canonical_column_keeps_every_storage_class(legacy_db, tmp_path, declared):
    db = legacy_db()
    rebuild(db, "messages", lambda sql: sql.replace("response_time_ms INTEGER", f"response_time_ms {declared}"))
    conn = sqlite3.connect(db)
    values = ["0.5", "007", 3, 2.0, b"\x01", "x", None, "1e3", " 12"]
    for i, value in enumerate(values, start=1):
        conn.execute("UPDATE messages SET response_time_ms = ? WHERE id = ?", (value, i))
    conn.commit()
    conn.close()
    round_trip(db, tmp_path)


def test_a_type_less_id_holding_text_and_reals_is_refused(legacy_db, tmp_path):
    db = legacy_db()
    rebuild(db, "marketplace_tools", lambda sql: sql.replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id PRIMARY KEY"))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE marketplace_tools SET id = '6' WHERE id = 6")
    conn.execute("UPDATE marketplace_tools SET id = 7.0 WHERE id = 7")
    conn.commit()
    conn.close()
    refused(db, tmp_path, "marketplace_tools", "id", "INTEGER PRIMARY KEY")


# --- 4. objects dpro-migrate cannot carry: refused up front -----------------------------------------


def test_a_generated_column_on_a_legacy_table_comes_along(legacy_db, tmp_path):
    db = variant(legacy_db, "ALTER TABLE messages ADD COLUMN content_length INTEGER "
                            "GENERATED ALWAYS AS (length(content)) VIRTUAL;")
    round_trip(db, tmp_path, moved={"messages": "communication_messages"})
    verbs.apply(db, backup_dir=tmp_path / "bk2")
    assert count(db, "SELECT count(*) FROM communication_messages WHERE content_length IS NOT length(content)") == 0


def test_a_generated_column_with_quarantined_rows_makes_the_round_trip(legacy_db, tmp_path):
    """Quarantined rows are copied without their generated columns and put back the same way (rollback
    failed with "12 columns but 14 values")."""
    db = legacy_db()
    rebuild(db, "system_info", lambda sql: sql.rstrip().rstrip(")") +
            ", key_upper TEXT GENERATED ALWAYS AS (upper(key)) STORED, \"key, lower\" AS (lower(key)))")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE system_info SET key = (SELECT key FROM system_info WHERE id = 1) WHERE id = 2")
    conn.commit()
    conn.close()

    def applied(plan):
        assert count(db, "SELECT count(*) FROM system_configurations WHERE key_upper IS NOT upper(key)") == 0

    round_trip(db, tmp_path, on_reject="quarantine", after_apply=applied)


def test_a_generated_column_named_like_a_domain_column_is_refused(legacy_db, tmp_path):
    db = variant(legacy_db, "ALTER TABLE messages ADD COLUMN updated_at TEXT GENERATED ALWAYS AS (created_at) VIRTUAL;")
    refused(db, tmp_path, "messages", "updated_at", "generated")


def test_an_external_content_fts5_table_over_messages_is_refused(legacy_db, tmp_path):
    db = variant(legacy_db, """
        CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id');
        INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
        CREATE TRIGGER messages_fts_sync AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;""")
    refused(db, tmp_path, "messages_fts", "messages", "virtual")


def test_a_virtual_table_of_its_own_survives(legacy_db, tmp_path):
    db = variant(legacy_db, """
        CREATE VIRTUAL TABLE notes_fts USING fts5(body);
        INSERT INTO notes_fts(body) VALUES ('first note'), ('second note');""")
    round_trip(db, tmp_path)


def test_an_application_table_referencing_a_legacy_table_is_refused(legacy_db, tmp_path):
    db = variant(legacy_db, """
        CREATE TABLE app_notes (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), note TEXT);
        INSERT INTO app_notes (user_id, note) SELECT id, 'note ' || id FROM users;""")
    refused(db, tmp_path, "app_notes", "users", "FOREIGN KEY")


def test_an_application_table_referencing_a_legacy_table_in_another_case_is_refused(legacy_db, tmp_path):
    db = variant(legacy_db, """
        CREATE TABLE app_notes (id INTEGER PRIMARY KEY, user_id INTEGER, note TEXT,
                                FOREIGN KEY (user_id) REFERENCES "USERS" (id));""")
    refused(db, tmp_path, "app_notes", "USERS", "FOREIGN KEY")


def test_an_int_primary_key_that_is_not_a_rowid_alias_is_refused(legacy_db, tmp_path):
    db = legacy_db()
    rebuild(db, "marketplace_tools", lambda sql: sql.replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id INT PRIMARY KEY"))
    refused(db, tmp_path, "marketplace_tools", "INTEGER PRIMARY KEY")


def test_an_integer_primary_key_desc_is_not_a_rowid_alias_and_is_refused(legacy_db, tmp_path):
    db = legacy_db()
    rebuild(db, "marketplace_tools",
            lambda sql: sql.replace("id INTEGER PRIMARY KEY AUTOINCREMENT", "id INTEGER PRIMARY KEY DESC"))
    refused(db, tmp_path, "marketplace_tools", "INTEGER PRIMARY KEY")


def test_a_without_rowid_legacy_table_is_refused(legacy_db, tmp_path):
    db = legacy_db()
    rebuild(db, "system_info", lambda sql: sql.replace("AUTOINCREMENT", "").rstrip() + " WITHOUT ROWID")
    refused(db, tmp_path, "system_info", "WITHOUT ROWID")


def _strict_system_info(db: Path) -> None:
    rebuild(db, "system_info", lambda sql: re.sub(r"VARCHAR\(\d+\)|BOOLEAN|TIMESTAMP", "TEXT", sql)
            .replace("is_public TEXT DEFAULT 0", "is_public INTEGER DEFAULT 0").replace("value TEXT", "value ANY")
            .rstrip() + " STRICT")
    conn = sqlite3.connect(db)
    for i, value in enumerate(["007", 7, 7.5, b"\x01", "1e3", None], start=1):
        conn.execute("UPDATE system_info SET value = ? WHERE id = ?", (value, i))
    conn.commit()
    conn.close()


def test_a_strict_legacy_table_makes_the_round_trip(legacy_db, tmp_path):
    """An ANY column of a STRICT table keeps every value as it is: its domain column is declared without a
    type (in an ordinary table, ANY would have NUMERIC affinity and turn '007' into 7)."""
    db = legacy_db()
    _strict_system_info(db)
    round_trip(db, tmp_path, moved={"system_info": "system_configurations"})


def test_a_strict_legacy_table_with_quarantined_rows_makes_the_round_trip(legacy_db, tmp_path):
    db = legacy_db()
    _strict_system_info(db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE system_info SET key = (SELECT key FROM system_info WHERE id = 1) WHERE id IN (5, 6)")
    conn.commit()
    conn.close()

    def applied(plan):
        assert count(db, 'SELECT count(*) FROM "system_quarantine__system_info"') == 2

    round_trip(db, tmp_path, on_reject="quarantine", after_apply=applied)


# --- 5. views with main. qualifiers ---------------------------------------------------------------


def test_views_with_main_qualifiers_survive_and_verify(legacy_db, tmp_path):
    db = variant(legacy_db, """
        CREATE VIEW recent_messages AS SELECT m.id, m.content FROM main.messages AS m WHERE m.id > 10;
        CREATE VIEW feedback_view AS SELECT * FROM main.legacy_feedback;
        CREATE VIEW user_tasks AS SELECT u.username, t.title FROM main.users u JOIN main.tasks t ON t.user_id = u.id;
        """, extras=True)
    round_trip(db, tmp_path)


# --- 6. ANALYZE statistics -------------------------------------------------------------------------


def test_sqlite_stat1_survives_the_round_trip(legacy_db, tmp_path):
    db = variant(legacy_db, "ANALYZE;", extras=True)
    assert count(db, "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'users'") > 0
    round_trip(db, tmp_path)
    assert count(db, "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'users'") > 0


# --- 7. rows counted as multisets, both directions ------------------------------------------------


def _pair(tmp_path, first: str, second: str) -> tuple[Path, Path]:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for path, script in ((a, first), (b, second)):
        conn = sqlite3.connect(path)
        conn.executescript(script)
        conn.close()
    return a, b


def test_the_file_comparison_counts_duplicate_rows(tmp_path):
    table = "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, x); INSERT INTO t (x) VALUES (1);"
    a, b = _pair(tmp_path, table, table + "INSERT INTO sqlite_sequence VALUES ('t', 1);")
    assert logical_differences(a, b) == ["rows differ: sqlite_sequence (1)"]


def test_the_file_comparison_sees_rows_only_in_the_second_file_of_a_without_rowid_table(tmp_path):
    a, b = _pair(tmp_path, "CREATE TABLE t (k PRIMARY KEY, x) WITHOUT ROWID; INSERT INTO t VALUES (1, 'a');",
                 "CREATE TABLE t (k PRIMARY KEY, x) WITHOUT ROWID; INSERT INTO t VALUES (1, 'a'), (2, 'b');")
    assert logical_differences(a, b) == ["rows differ: t (1)"]
    assert logical_differences(b, a) == ["rows differ: t (1)"]


def test_the_file_comparison_tells_an_integer_from_a_real_both_ways(tmp_path):
    a, b = _pair(tmp_path, "CREATE TABLE t (k, x, PRIMARY KEY (k)) WITHOUT ROWID; INSERT INTO t VALUES (1, 1);",
                 "CREATE TABLE t (k, x, PRIMARY KEY (k)) WITHOUT ROWID; INSERT INTO t VALUES (1, 1.0);")
    assert logical_differences(a, b) == ["rows differ: t (2)"]


def test_verify_sees_a_duplicate_row_added_to_an_unknown_table_without_a_key(legacy_db, tmp_path):
    db = variant(legacy_db, "CREATE TABLE app_counts (name TEXT, n INTEGER);"
                            "INSERT INTO app_counts VALUES ('a', 1), ('b', 2);")
    verbs.apply(db, backup_dir=tmp_path / "bk")
    assert verbs.verify(db).ok
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO app_counts VALUES ('a', 1)")
    conn.commit()
    conn.close()
    report = verbs.verify(db)
    assert not report.ok
    assert any("app_counts" in str(c.detail) or "app_counts" in str(c.items) for c in report.failures)


# --- a property over generated schemas -------------------------------------------------------------
# Declared types per column (any affinity, type-less), case variants of table and column names, tables the application
# added (their own declared types, WITHOUT ROWID, STRICT, a foreign key to a legacy table), a view with
# main. qualifiers, ANALYZE statistics, a generated column on a legacy table. The file either makes the round trip to a
# logically identical file, or is refused up front byte-identical; refused exactly when it holds something
# in-place apply cannot carry.

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402



def fold(name: str) -> str:
    """As SQLite compares names: ASCII letters case-insensitively."""
    return "".join(c.lower() if c.isascii() else c for c in name)


TOOL_COLUMNS = ["description", "category", "version", "author", "rating", "download_count", "is_active",
                "is_verified", "created_at"]
DECLARED = st.sampled_from(["", "TEXT", "BLOB", "INT", "INTEGER", "REAL", "NUMERIC", "JSON", "VARCHAR(5)", "DATETIME",
                            "FLOAT", "BOOLEAN", "DECIMAL(10,2)", "CLOB", "any thing", "UNSIGNED BIG INT"])
STRICT_TYPES = st.sampled_from(["INT", "INTEGER", "REAL", "TEXT", "BLOB", "ANY"])
small_values = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.binary(max_size=8),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    st.sampled_from(["007", "1.50", "1e3", " 12", "0x10", "-0", "+5", "9223372036854775808", "1.0"]))
RESERVED = {"users", "user_settings", "user_profiles", "user_sessions", "activity_logs", "agents", "conversations",
            "messages", "chat_session_history", "boards", "board_nodes", "board_connections", "board_executions",
            "board_templates", "workflows", "tasks", "system_info", "marketplace_tools", "alembic_version", "v_hyp"}


def case_variant(name: str):
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda flips: "".join(c.upper() if flip else c for c, flip in zip(name, flips, strict=True)))


def _free(name: str) -> bool:
    from dpro_migrate.model.schema import load_schema

    folded = fold(name)
    own = {fold(t.replace(".", "_")) for t in load_schema().tables}
    return not (folded in RESERVED or folded in own or folded.startswith(("sqlite_", "system_quarantine"))
                or folded.endswith("__dpro_new") or folded == "system_migration_ledger")


app_name = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                   max_size=12).filter(_free)


@st.composite
def app_tables(draw):
    strict = draw(st.booleans())
    names = draw(st.lists(st.sampled_from(["a", "B", "c d", "True", "x.y"]), min_size=1, max_size=3, unique_by=fold))
    columns = [(n, draw(STRICT_TYPES if strict else DECLARED)) for n in names]
    return {"name": draw(app_name), "columns": columns, "strict": strict,
            "without_rowid": draw(st.booleans()),
            "references": draw(st.sampled_from([None, None, None, "users", "MESSAGES", "marketplace_tools"])),
            "rows": draw(st.lists(st.tuples(*[small_values] * len(columns)), max_size=4))}


@st.composite
def legacy_schemas(draw):
    return {
        "tools": draw(case_variant("marketplace_tools")),
        "messages": draw(case_variant("messages")),
        "declared": draw(st.dictionaries(st.sampled_from(TOOL_COLUMNS), DECLARED, max_size=3)),
        "values": draw(st.lists(st.tuples(st.sampled_from(TOOL_COLUMNS), small_values), max_size=6)),
        "column_case": draw(st.sampled_from(TOOL_COLUMNS).flatmap(lambda c: st.tuples(st.just(c), case_variant(c)))),
        "apps": draw(st.lists(app_tables(), max_size=2, unique_by=lambda t: fold(t["name"]))),
        "view": draw(st.booleans()),
        "analyze": draw(st.booleans()),
        "generated": draw(st.sampled_from([False, False, False, True])),
    }


def _make(db: Path, spec: dict) -> None:
    if spec["declared"]:
        def redeclare(sql: str) -> str:
            for column, declared in spec["declared"].items():
                sql = re.sub(rf"^(\s*){column} [^,\n]*", lambda m, c=column, d=declared: f"{m.group(1)}{c} {d}", sql,
                             flags=re.M)
            return sql
        rebuild(db, "marketplace_tools", redeclare)
    conn = sqlite3.connect(db)
    for i, (column, value) in enumerate(spec["values"], start=1):
        conn.execute(f'UPDATE marketplace_tools SET "{column}" = ? WHERE id = ?', (value, i))
    column, spelled = spec["column_case"]
    if spelled != column:
        conn.execute(f'ALTER TABLE marketplace_tools RENAME COLUMN "{column}" TO "{column}_tmp"')
        conn.execute(f'ALTER TABLE marketplace_tools RENAME COLUMN "{column}_tmp" TO "{spelled}"')
    if spec["generated"]:
        conn.execute("ALTER TABLE messages ADD COLUMN content_size INTEGER GENERATED ALWAYS AS (length(content)) VIRTUAL")
    for old, new in (("marketplace_tools", spec["tools"]), ("messages", spec["messages"])):
        if new != old:  # SQLite refuses a rename that only changes the case: through a third name
            conn.execute(f'ALTER TABLE "{old}" RENAME TO "{old}_case_tmp"')
            conn.execute(f'ALTER TABLE "{old}_case_tmp" RENAME TO "{new}"')
    for app in spec["apps"]:
        cols = ", ".join(f'"{n.replace(chr(34), chr(34) * 2)}" {t}'.rstrip() for n, t in app["columns"])
        first = app["columns"][0][0].replace('"', '""')
        fk = f', FOREIGN KEY ("{first}") REFERENCES "{app["references"]}" (id)' if app["references"] else ""
        pk = f', PRIMARY KEY ("{first}")' if app["without_rowid"] else ""
        options = ", ".join(o for o, on in (("WITHOUT ROWID", app["without_rowid"]), ("STRICT", app["strict"])) if on)
        name = app["name"].replace('"', '""')
        conn.execute(f'CREATE TABLE "{name}" ({cols}{pk}{fk}) {options}')
        for row in app["rows"]:
            try:
                conn.execute(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(row))})', row)
            except (sqlite3.IntegrityError, sqlite3.OperationalError):
                pass  # a STRICT column's type or a repeated key: the application could not have written it either
    if spec["view"]:
        conn.execute(f'CREATE VIEW v_hyp AS SELECT m.id, m.content FROM main."{spec["messages"]}" AS m WHERE m.id < 5')
    if spec["analyze"]:
        conn.execute("ANALYZE")
    conn.commit()
    conn.close()


@pytest.mark.slow  # hypothesis: 15 generated schemas, ~10 s
@settings(max_examples=int(os.environ.get("DPRO_MIGRATE_SCHEMA_EXAMPLES", 15)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=legacy_schemas())
def test_any_generated_schema_makes_the_round_trip_or_is_refused_unchanged(_generated, tmp_path_factory, spec):
    work = tmp_path_factory.mktemp("schema")
    db = work / "dpro_agent.db"
    shutil.copyfile(_generated(messages=30), db)
    _make(db, spec)
    cannot_carry = any(a["references"] for a in spec["apps"])
    if cannot_carry:
        digest = file_digest(db)
        with pytest.raises(BadInput, match="cannot be migrated"):
            verbs.apply(db, backup_dir=work / "bk")
        assert file_digest(db) == digest
        return
    round_trip(db, work, moved={spec["tools"]: "marketplace_tools", spec["messages"]: "communication_messages"})
