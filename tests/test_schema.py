"""ddl/ is the one source of the target schema: it loads, renders for both dialects and covers the legacy columns."""

import sqlite3
from importlib import resources

import pytest
from dpro_migrate import DOMAINS, verbs
from dpro_migrate.model.mapping import load_mapping
from dpro_migrate.model.schema import load_schema
from dpro_migrate.dialects import POSTGRES, SQLITE, create_index_sql, create_table_sql, physical_name
from dpro_migrate.types import sqlite_affinity


@pytest.fixture(scope="module")
def schema():
    return load_schema()


def legacy_tables():
    """Declared types as SQLite itself reads them from the legacy DDL."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(resources.files("dpro_migrate").joinpath("data/legacy_schema.sql").read_text())
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {n: {r[1]: r[2] for r in conn.execute(f"PRAGMA table_info({n})")} for n in names}


# The target schema in ddl/, counted: a table, index or trigger added or lost is a deliberate change here.
TABLES, INDEXES, PARTIAL_INDEXES, TRIGGERS, PG_TRIGGER_FUNCTIONS = 19, 60, 8, 12, 3
# message search (ddl/search.toml) on SQLite: an FTS5 table, its shadow tables, three triggers
FTS = "communication_messages_fts"
FTS_TABLES = {FTS} | {f"{FTS}_{s}" for s in ("data", "idx", "docsize", "config")}
FTS_TRIGGERS = {f"trg_{FTS}_{e}" for e in ("insert", "delete", "update")}


def test_seven_domains_and_their_tables(schema):
    assert {t.domain for t in schema.tables.values()} == set(DOMAINS)
    assert len(schema.tables) == TABLES


def test_indexes_constraints_and_names(schema):
    assert len(schema.indexes) == INDEXES
    assert sum(i.partial for i in schema.indexes) == PARTIAL_INDEXES
    names = [c.name for t in schema.tables.values() for c in t.constraints] + [i.name for i in schema.indexes]
    assert len(names) == len(set(names)), "constraint and index names are unique"
    kinds = {c.kind for t in schema.tables.values() for c in t.constraints}
    assert kinds == {"primary_key", "unique", "check", "foreign_key"}


def test_every_mapped_legacy_column_lands_in_a_column_of_the_same_affinity(schema):
    legacy = legacy_tables()
    for rule in load_mapping().moves:
        target = schema.table(rule.target)
        for name, _decl in legacy[rule.legacy].items():
            col = target.column(name)
            assert col is not None, f"{rule.legacy}.{name} has no column in {rule.target}"
            rendered = create_table_sql(target, SQLITE)
            assert col.name in rendered
    # affinity of each rendered SQLite column equals the legacy one
    conn = sqlite3.connect(":memory:")
    for table in schema.tables.values():
        conn.execute(create_table_sql(table, SQLITE))
    for rule in load_mapping().moves:
        rendered = {r[1]: r[2] for r in conn.execute(f"PRAGMA table_info({physical_name(rule.target, SQLITE)})")}
        for name, decl in legacy[rule.legacy].items():
            assert sqlite_affinity(rendered[name]) == sqlite_affinity(decl), (rule.target, name, rendered[name], decl)


def test_sqlite_rendering_executes_and_triggers_attach(schema):
    conn = sqlite3.connect(":memory:")
    for table in schema.tables.values():
        conn.execute(create_table_sql(table, SQLITE, [("hand made", "VARCHAR(9)")]))
    for index in schema.indexes:
        conn.execute(create_index_sql(index, SQLITE))
    for trig in schema.triggers[SQLITE]:
        conn.execute(trig.sql)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert names == {t.name for t in schema.triggers[SQLITE]}


def test_trigger_counts_per_dialect(schema):
    """SQLite: one CREATE TRIGGER per trigger. PostgreSQL: the same triggers, plus the functions they call."""
    assert [t.kind for t in schema.triggers[SQLITE]] == ["trigger"] * TRIGGERS
    pg_kinds = [t.kind for t in schema.triggers[POSTGRES]]
    assert (pg_kinds.count("trigger"), pg_kinds.count("function")) == (TRIGGERS, PG_TRIGGER_FUNCTIONS)


def test_applied_sqlite_file_holds_exactly_the_schema(schema, legacy_db, tmp_path):
    """What apply leaves, as sqlite_master and PRAGMA index_list read it."""
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path / "backups")
    conn = sqlite3.connect(db)
    try:
        domain_tables = {physical_name(q, SQLITE) for q in schema.tables}
        master = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        tables = {name for kind, name, _, _ in master if kind == "table"}
        assert len(tables & domain_tables) == TABLES
        # sqlite_stat1: apply's closing ANALYZE
        assert tables - domain_tables == {"sqlite_sequence", "system_migration_ledger", "sqlite_stat1"} | FTS_TABLES
        # explicit indexes only: UNIQUE constraints add sqlite_autoindex_* entries with no SQL
        indexes = {name for kind, name, table, sql in master if kind == "index" and sql is not None}
        assert len(indexes) == INDEXES and indexes == {i.name for i in schema.indexes}
        partial = {row[1] for table in domain_tables for row in conn.execute(f'PRAGMA index_list("{table}")')
                   if row[4]}
        assert len(partial) == PARTIAL_INDEXES and partial == {i.name for i in schema.indexes if i.partial}
        triggers = {name for kind, name, _, _ in master if kind == "trigger"}
        shared = {f"trg_{t}_shared_ids" for t in ("iam_authentication_logs", "system_audit_logs")}  # the split log's ids
        assert len(triggers) == TRIGGERS + len(shared) + len(FTS_TRIGGERS)
        assert triggers == {t.name for t in schema.triggers[SQLITE]} | shared | FTS_TRIGGERS
    finally:
        conn.close()


def test_trigger_sets_agree_between_dialects(schema):
    sqlite_names = {t.name for t in schema.triggers["sqlite"]}
    pg_names = {t.name for t in schema.triggers["postgresql"] if t.kind == "trigger"}
    assert sqlite_names == pg_names
    with_updated_at = {physical_name(q, SQLITE) for q, t in schema.tables.items() if t.column("updated_at")}
    assert {f"trg_{n}_updated_at" for n in with_updated_at} <= sqlite_names
