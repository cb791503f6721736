"""Handoff to Alembic: metadata from ddl/, schema drift, an Alembic environment that autogenerates nothing.

Every drift test runs on both dialects against a database migrated by the real apply (SQLite in place, and
a throwaway PostgreSQL database from the pg_url fixture).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from dpro_migrate import DOMAINS, verbs
from dpro_migrate.model.search import load_search
from dpro_migrate.dialects import POSTGRES, SQLITE
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.handoff.applied import Applied
from dpro_migrate.handoff.connect import sqlalchemy_url
from dpro_migrate.handoff.drift import context_options, schema_drift
from dpro_migrate.handoff.environment import URL_ENV, alembic_init, baseline_revision, stamp_baseline
from dpro_migrate.handoff.metadata import metadata_for
from dpro_migrate.model.schema import load_schema
from dpro_migrate.safety.alembic_version import VERSION_TABLE, release_baseline
from dpro_migrate.targets import parse_target

# These tests reach pg_url through request.getfixturevalue, which the conftest hook cannot see: mark here.
DIALECTS = [SQLITE, pytest.param(POSTGRES, marks=pytest.mark.postgres)]




# --- helpers ------------------------------------------------------------------------------------


class Migrated:
    """A database migrated by apply: .url (for SQLAlchemy/Alembic), .dialect, .sql(statement) to tamper with it."""

    def __init__(self, dialect: str, url: str, path: Path):
        self.dialect, self.url, self.path = dialect, url, path

    def sql(self, *statements: str) -> None:
        if self.dialect == SQLITE:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                for s in statements:
                    conn.execute(s)
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            for s in statements:
                conn.execute(s)

    def t(self, qualified: str) -> str:
        """The table as written in SQL for this dialect."""
        return qualified if self.dialect == POSTGRES else qualified.replace(".", "_")

    def query(self, sql: str) -> list:
        engine = sa.create_engine(sqlalchemy_url(self.url), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return list(conn.exec_driver_sql(sql))
        finally:
            engine.dispose()


def _migrate(dialect: str, legacy_db, tmp_path: Path, request, **kwargs) -> Migrated:
    source = legacy_db(**kwargs)
    if dialect == SQLITE:
        verbs.apply(source, backup_dir=tmp_path / "backups")
        return Migrated(SQLITE, f"sqlite:///{source}", source)
    url = request.getfixturevalue("pg_url")
    verbs.apply(source, parse_target(url), backup_dir=tmp_path / "backups")
    return Migrated(POSTGRES, url, source)


@pytest.fixture(params=DIALECTS)
def migrated(request, legacy_db, tmp_path) -> Migrated:
    """A freshly migrated database with what real installations carry (extras: ride-along columns, an
    unknown legacy table, a legacy view and trigger)."""
    return _migrate(request.param, legacy_db, tmp_path, request, extras=True)


def _kinds(diffs) -> set[tuple[str, str]]:
    return {(d.kind, d.object) for d in diffs}


def _upgrade_body(path: Path) -> list[str]:
    text = path.read_text()
    body = text.split("def upgrade() -> None:", 1)[1].split("def downgrade", 1)[0]
    return [line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")]


# --- metadata_for -------------------------------------------------------------------------------


def test_metadata_mirrors_ddl_on_postgresql():
    schema = load_schema()
    meta = metadata_for(POSTGRES)
    assert set(meta.tables) == set(schema.tables)  # iam.users: Table("users", schema="iam")
    users = meta.tables["iam.users"]
    assert users.schema == "iam" and users.name == "users"
    assert isinstance(users.c.id.identity, sa.Identity) and users.c.id.identity.always is False
    assert str(users.c.preferences.type.compile(dialect=sa.dialects.postgresql.dialect())) == "JSONB"
    assert str(users.c.created_at.type.compile(dialect=sa.dialects.postgresql.dialect())) == "TIMESTAMP WITH TIME ZONE"
    assert users.c.username.type.length == 50 and not users.c.username.nullable
    assert users.c.is_active.server_default.arg.text == "TRUE"
    names = {c.name for t in meta.tables.values() for c in t.constraints}
    ddl_names = {c.name for t in schema.tables.values() for c in t.constraints}
    assert names == ddl_names  # every constraint, by its ddl/ name (users_pkey included)
    fk = next(c for c in meta.tables["iam.authentication_logs"].constraints if c.name == "fk_authentication_logs_user")
    assert fk.ondelete == "SET NULL" and fk.elements[0].target_fullname == "iam.users.id"
    indexes = {i.name: i for t in meta.tables.values() for i in t.indexes}
    # ddl/'s indexes, and ddl/search.toml's trigram index (GIN, gin_trgm_ops)
    assert set(indexes) == {i.name for i in schema.indexes} | {s.name for s in load_search(schema)}
    assert indexes["idx_msg_content_trgm"].dialect_options["postgresql"]["using"] == "gin"
    partial = indexes["idx_board_executions_running"]
    assert str(partial.dialect_options["postgresql"]["where"]) == "\"status\" = 'running'"
    assert [str(e) for e in indexes["idx_iam_users_created_at"].expressions] == ["iam.users.created_at DESC"]


def test_metadata_mirrors_ddl_on_sqlite():
    schema = load_schema()
    meta = metadata_for(SQLITE)
    assert set(meta.tables) == {q.replace(".", "_") for q in schema.tables}
    users = meta.tables["iam_users"]
    assert users.schema is None and users.dialect_options["sqlite"]["autoincrement"] is True
    ddl = str(sa.schema.CreateTable(users).compile(dialect=sa.dialects.sqlite.dialect()))
    assert "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in ddl or "id INTEGER PRIMARY KEY AUTOINCREMENT" in ddl
    for fragment in ("username VARCHAR(50) NOT NULL", "is_active BOOLEAN DEFAULT 1", "preferences JSON",
                     "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP", "CONSTRAINT uq_users_email UNIQUE (email)",
                     "CONSTRAINT chk_users_username_length CHECK (LENGTH(\"username\") >= 3)"):
        assert fragment in ddl
    agents = str(sa.schema.CreateTable(meta.tables["ai_agents_agents"]).compile(dialect=sa.dialects.sqlite.dialect()))
    assert "temperature REAL DEFAULT (0.7)" in agents and "user_id INTEGER NOT NULL" in agents
    assert "REFERENCES iam_users (id) ON DELETE CASCADE" in agents
    partial = next(i for i in meta.tables["iam_user_sessions"].indexes if i.name == "idx_iam_sessions_user_active")
    assert str(partial.dialect_options["sqlite"]["where"]) == '"is_active" = 1'  # as applications write it


def test_metadata_extra_columns_ride_along():
    meta = metadata_for(SQLITE, {"iam.users": [("nickname", "VARCHAR(40)")]})
    assert str(meta.tables["iam_users"].c.nickname.type) == "VARCHAR(40)"
    meta = metadata_for(POSTGRES, {"iam.users": [("nickname", "VARCHAR(40)")]})
    assert str(meta.tables["iam.users"].c.nickname.type) == "TEXT"  # as apply declares it (schema.pg_type_for_legacy)


def test_metadata_rejects_unknown_dialect():
    with pytest.raises(BadInput):
        metadata_for("mysql")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_metadata_create_all_is_the_ddl_schema(dialect, tmp_path, request):
    """The metadata, created on an empty database, is what ddl/ describes: drift finds only the triggers
    (which SQLAlchemy metadata does not hold)."""
    if dialect == SQLITE:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        if dialect == POSTGRES:
            for domain in DOMAINS:
                conn.exec_driver_sql(f'CREATE SCHEMA "{domain}"')
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # the search index's operator class
        metadata_for(dialect).create_all(conn)
    engine.dispose()
    diffs = schema_drift(url, dialect)
    assert diffs and {d.kind for d in diffs} <= {"missing_trigger", "missing_function"}, diffs


# --- schema_drift: none after apply -------------------------------------------------------------


def test_no_drift_after_apply(migrated):
    assert schema_drift(migrated.url, migrated.dialect) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_drift_after_apply_with_dirty_data_quarantine_and_compat_views(dialect, legacy_db, tmp_path, request):
    """Quarantine tables, compat views (public on PostgreSQL), a hand-added column named 'due "soon" at' that
    rides along, a legacy table named like SQL injection: bookkeeping and leftovers, not drift."""
    from dpro_migrate.dirty import HOSTILE_COLUMN, add_dirty_data

    source = legacy_db(extras=True)
    add_dirty_data(source)
    if dialect == SQLITE:
        verbs.apply(source, backup_dir=tmp_path / "bk", on_reject="quarantine", compat_views=True)
        url = f"sqlite:///{source}"
    else:
        url = request.getfixturevalue("pg_url")
        verbs.apply(source, parse_target(url), backup_dir=tmp_path / "bk", on_reject="quarantine", compat_views=True)
    assert schema_drift(url) == []
    tasks = "tasks.tasks" if dialect == POSTGRES else "tasks_tasks"
    assert (("unexpected_column", f"{tasks}.{HOSTILE_COLUMN}")) in _kinds(schema_drift(url, extra_columns={}))
    ini = alembic_init(tmp_path / "alembic", url)
    stamp_baseline(url, tmp_path / "alembic")
    assert _upgrade_body(_autogenerate(ini)) == ["pass"]


@pytest.mark.parametrize("shape", ["18", "13", "14"])
def test_no_drift_after_apply_sqlite_shapes(shape, legacy_db, tmp_path, request):
    db = _migrate(SQLITE, legacy_db, tmp_path, request, shape=shape)
    assert schema_drift(db.path) == []  # a bare path is a SQLite file


@pytest.mark.slow  # ~1.5s: the quick subset (-m 'not postgres and not slow') leaves it to the full run
def test_odd_sqlite_file_names(legacy_db, tmp_path, request):
    db = _migrate(SQLITE, legacy_db, tmp_path, request)
    odd = tmp_path / "a dir #1 %20" / "dpro agent's.db"
    odd.parent.mkdir()
    shutil.copyfile(db.path, odd)
    assert schema_drift(odd) == [] and schema_drift(sqlalchemy_url(odd)) == []
    ini = alembic_init(tmp_path / "alembic", odd)
    stamp_baseline(odd, tmp_path / "alembic")
    assert _upgrade_body(_autogenerate(ini)) == ["pass"]


def test_drift_accepts_connection_and_engine(migrated):
    engine = sa.create_engine(sqlalchemy_url(migrated.url), poolclass=sa.pool.NullPool)
    try:
        assert schema_drift(engine) == []
        with engine.connect() as conn:
            assert schema_drift(conn, migrated.dialect) == []
            with pytest.raises(BadInput, match="not"):
                schema_drift(conn, SQLITE if migrated.dialect == POSTGRES else POSTGRES)
    finally:
        engine.dispose()


def test_ride_along_columns_are_expected_not_drift(migrated):
    # Read from the ledger by default; without them the legacy columns apply carried along are unexpected.
    diffs = schema_drift(migrated.url, extra_columns={})
    users = "iam.users" if migrated.dialect == POSTGRES else "iam_users"
    assert ("unexpected_column", f"{users}.nickname") in _kinds(diffs)


def test_drift_on_sqlite_never_writes(legacy_db, tmp_path, request):
    db = _migrate(SQLITE, legacy_db, tmp_path, request)
    before = db.path.read_bytes()
    assert schema_drift(db.path) == []
    assert db.path.read_bytes() == before
    with pytest.raises(BadInput, match="no such SQLite file"):
        schema_drift(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


# --- schema_drift: real drift -------------------------------------------------------------------


def test_drift_dropped_index(migrated):
    name = "idx_iam_users_created_at"
    migrated.sql(f"DROP INDEX {'iam.' if migrated.dialect == POSTGRES else ''}{name}")
    diffs = schema_drift(migrated.url)
    assert _kinds(diffs) == {("missing_index", f"{name} on {migrated.t('iam.users')}")}
    assert "(created_at DESC)" in diffs[0].detail


def test_drift_added_column(migrated):
    migrated.sql(f"ALTER TABLE {migrated.t('tasks.tasks')} ADD COLUMN estimated_hours REAL")
    diffs = schema_drift(migrated.url)
    assert _kinds(diffs) == {("unexpected_column", f"{migrated.t('tasks.tasks')}.estimated_hours")}


def test_drift_dropped_trigger(migrated):
    on = f" ON {migrated.t('tasks.tasks')}" if migrated.dialect == POSTGRES else ""
    migrated.sql(f"DROP TRIGGER trg_tasks_tasks_updated_at{on}")
    diffs = schema_drift(migrated.url)
    assert _kinds(diffs) == {("missing_trigger", "trg_tasks_tasks_updated_at")}
    assert migrated.t("tasks.tasks") in diffs[0].detail


def test_drift_changed_check_name(migrated):
    old, new = "chk_tasks_priority_values", "chk_tasks_priority"
    if migrated.dialect == POSTGRES:
        migrated.sql(f"ALTER TABLE tasks.tasks RENAME CONSTRAINT {old} TO {new}")
    else:
        # SQLite has no ALTER ... CONSTRAINT. A constraint name is not part of the on-disk format, so the
        # documented writable_schema edit (lang_altertable.html, section 7) renames it in place.
        migrated.sql("PRAGMA writable_schema = ON",
                     f"UPDATE sqlite_master SET sql = replace(sql, '{old}', '{new}') WHERE name = 'tasks_tasks'",
                     "PRAGMA writable_schema = OFF")
        assert migrated.query("PRAGMA integrity_check") == [("ok",)]
    diffs = schema_drift(migrated.url)
    table = migrated.t("tasks.tasks")
    assert _kinds(diffs) == {("missing_check_constraint", f"{old} on {table}"),
                             ("unexpected_check_constraint", f"{new} on {table}")}


def test_drift_changed_partial_predicate(migrated):
    """Alembic does not compare partial-index predicates (Alembic #1112); schema_drift does."""
    t = migrated.t("tasks.tasks")
    prefix = "tasks." if migrated.dialect == POSTGRES else ""
    migrated.sql(f"DROP INDEX {prefix}idx_tasks_open_due",
                 f"CREATE INDEX idx_tasks_open_due ON {t} (due_date) WHERE status <> 'cancelled'")
    diffs = schema_drift(migrated.url)
    assert _kinds(diffs) == {("changed_index", f"idx_tasks_open_due on {t}")}
    assert "cancelled" in diffs[0].detail and "completed" in diffs[0].detail


def test_drift_lost_desc(migrated):
    """On SQLite, SQLAlchemy's reflection drops DESC (Alembic cannot see it); schema_drift reads index_xinfo."""
    t = migrated.t("system.audit_logs")
    prefix = "system." if migrated.dialect == POSTGRES else ""
    migrated.sql(f"DROP INDEX {prefix}idx_audit_user_time", f"CREATE INDEX idx_audit_user_time ON {t} (user_id, created_at)")
    diffs = schema_drift(migrated.url)
    assert _kinds(diffs) == {("changed_index", f"idx_audit_user_time on {t}")}
    assert "created_at DESC" in diffs[0].detail


@pytest.mark.postgres
def test_drift_changed_type_default_and_nullability_postgresql(legacy_db, tmp_path, request):
    db = _migrate(POSTGRES, legacy_db, tmp_path, request)
    db.sql("ALTER TABLE iam.users ALTER COLUMN full_name TYPE text",
           "ALTER TABLE iam.users ALTER COLUMN is_admin SET DEFAULT true",
           "ALTER TABLE iam.users ALTER COLUMN password_hash DROP NOT NULL",
           "ALTER TABLE iam.user_sessions DROP CONSTRAINT fk_user_sessions_user",
           "ALTER TABLE iam.users DISABLE TRIGGER trg_iam_users_audit")
    assert _kinds(schema_drift(db.url)) == {
        ("changed_type", "iam.users.full_name"), ("changed_default", "iam.users.is_admin"),
        ("changed_nullable", "iam.users.password_hash"),
        ("missing_foreign_key", "fk_user_sessions_user on iam.user_sessions"),
        ("changed_trigger", "trg_iam_users_audit"),
    }


@pytest.mark.postgres
def test_drift_trigger_functions_postgresql(legacy_db, tmp_path, request):
    db = _migrate(POSTGRES, legacy_db, tmp_path, request)
    db.sql("CREATE OR REPLACE FUNCTION system.set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$ "
           "BEGIN RETURN NEW; END; $$")
    assert _kinds(schema_drift(db.url)) == {("changed_function", "system.set_updated_at")}


def test_drift_changed_and_unexpected_trigger_sqlite(legacy_db, tmp_path, request):
    db = _migrate(SQLITE, legacy_db, tmp_path, request)
    db.sql("DROP TRIGGER trg_workflow_boards_updated_at",
           "CREATE TRIGGER trg_workflow_boards_updated_at AFTER UPDATE ON workflow_boards FOR EACH ROW "
           "BEGIN UPDATE workflow_boards SET updated_at = 0 WHERE id = NEW.id; END",
           "CREATE TRIGGER trg_extra AFTER INSERT ON tasks_tasks BEGIN SELECT 1; END")
    assert _kinds(schema_drift(db.path)) == {("changed_trigger", "trg_workflow_boards_updated_at"),
                                             ("unexpected_trigger", "trg_extra")}


@pytest.mark.postgres
def test_drift_unexpected_table_postgresql(legacy_db, tmp_path, request):
    db = _migrate(POSTGRES, legacy_db, tmp_path, request)
    db.sql("CREATE TABLE iam.api_keys (id bigint PRIMARY KEY)", "CREATE TABLE public.anything (id int)")
    assert _kinds(schema_drift(db.url)) == {("unexpected_table", "iam.api_keys")}


def test_legacy_leftovers_and_ledger_are_not_drift(legacy_db, tmp_path, request):
    """SQLite keeps unknown legacy tables (legacy_feedback) and the ledger beside the domain tables; a table
    someone adds is seen, as on PostgreSQL (an application's table must be visible to Alembic)."""
    db = _migrate(SQLITE, legacy_db, tmp_path, request, extras=True)
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"legacy_feedback", "system_migration_ledger"} <= tables
    assert schema_drift(db.path) == []
    db.sql("CREATE TABLE notes_of_someone (id INTEGER PRIMARY KEY)")
    assert _kinds(schema_drift(db.path)) == {("unexpected_table", "notes_of_someone")}


# --- Alembic environment ------------------------------------------------------------------------


def _autogenerate(ini: Path, message: str = "check") -> Path:
    config = Config(str(ini))
    script = command.revision(config, message=message, autogenerate=True)
    return Path(script.path)


def test_alembic_autogenerate_is_empty_after_apply_and_stamp(migrated, tmp_path):
    ini = alembic_init(tmp_path / "alembic", migrated.url)
    rev = stamp_baseline(migrated.url, tmp_path / "alembic")
    assert rev == baseline_revision(tmp_path / "alembic") and re.fullmatch(r"dpro[0-9a-f]{12}", rev)
    version_table = "system.alembic_version" if migrated.dialect == POSTGRES else VERSION_TABLE
    assert migrated.query(f"SELECT version_num FROM {version_table}") == [(rev,)]
    generated = _autogenerate(ini)
    assert _upgrade_body(generated) == ["pass"], generated.read_text()
    # The stamp is bookkeeping, not drift.
    assert schema_drift(migrated.url) == []


def test_alembic_files(tmp_path):
    ini = alembic_init(tmp_path / "env", "postgresql://app:s3cr%25t@db.example:5432/dpro", extra_columns={})
    text = ini.read_text()
    assert "s3cr" not in text and "sqlalchemy.url = postgresql+psycopg://app@db.example:5432/dpro" in text
    env = (tmp_path / "env" / "env.py").read_text()
    assert URL_ENV in env and "target_metadata = [baseline_metadata]" in env and "VERSION_TABLE_SCHEMA = 'system'" in env
    assert "options.context_options(schemas=SCHEMAS, excluded=EXCLUDED" in env
    assert "'system.migration_ledger': \"dpro-migrate's ledger" in env  # excluded, with the reason
    (baseline,) = (tmp_path / "env" / "versions").glob("*_dpro_baseline.py")
    rev = baseline_revision(tmp_path / "env")
    assert baseline.name == f"{rev}_dpro_baseline.py"
    assert _upgrade_body(baseline) == ["pass"]
    assert "raise RuntimeError" in baseline.read_text().split("def downgrade", 1)[1]
    assert (tmp_path / "env" / "script.py.mako").exists()
    with pytest.raises(BadInput, match="not an empty directory"):
        alembic_init(tmp_path / "env", "postgresql://app@db.example/dpro", extra_columns={})


def test_context_options():
    pg = context_options(POSTGRES, Applied.from_plan(None, POSTGRES))
    assert pg["version_table_schema"] == "system" and pg["include_schemas"] is True
    assert "alembic.ext.checkconstraint_byname" in pg["autogenerate_plugins"]
    include = pg["include_name"]
    assert include("iam", "schema", {}) and not include("public", "schema", {})
    assert include("users", "table", {"schema_name": "iam"})
    assert not include("migration_ledger", "table", {"schema_name": "system"})
    assert not include("alembic_version", "table", {"schema_name": "system"})
    assert not include("quarantine", "table", {"schema_name": "system"})
    assert not include("users", "table", {"schema_name": "public"})
    assert include("someone_elses", "table", {"schema_name": "iam"})  # a table added to a domain schema is drift
    # The schemas the environment's metadata names are compared too: an application's models in public.
    app = sa.MetaData()
    sa.Table("notes", app, sa.Column("id", sa.Integer, primary_key=True))
    include = context_options(POSTGRES, Applied.from_plan(None, POSTGRES),
                              metadata=[metadata_for(POSTGRES), app])["include_name"]
    assert include(None, "schema", {}) and include("notes", "table", {"schema_name": None})
    lite = context_options(SQLITE, Applied.from_plan(None, SQLITE))
    assert "version_table_schema" not in lite and lite["render_as_batch"] is True
    include = lite["include_name"]
    assert include(None, "schema", {}) and include("iam_users", "table", {"schema_name": None})
    for bookkeeping in ("system_migration_ledger", "alembic_version"):
        assert not include(bookkeeping, "table", {"schema_name": None})
    assert include("app_notes", "table", {"schema_name": None})  # an application's table is seen
    # Legacy tables apply left in place come from its plan (test_legacy_leftovers_and_ledger_are_not_drift).
    include = context_options(SQLITE, Applied(SQLITE, excluded={"legacy_feedback": "left in place"}))["include_name"]
    assert not include("legacy_feedback", "table", {"schema_name": None})
    # Without what apply built (an env.py written before it was known): ddl/'s tables, nothing else.
    for dialect, ours, other in ((SQLITE, ("iam_users", None), ("legacy_feedback", None)),
                                 (POSTGRES, ("users", "iam"), ("messages_y2024m03", "communication"))):
        include = context_options(dialect)["include_name"]
        assert include(ours[0], "table", {"schema_name": ours[1]})
        assert not include(other[0], "table", {"schema_name": other[1]})


@pytest.mark.postgres
def test_alembic_url_from_environment(legacy_db, tmp_path, request, monkeypatch):
    """alembic.ini holds no password; env.py takes the whole URL from DPRO_MIGRATE_DATABASE_URL."""
    db = _migrate(POSTGRES, legacy_db, tmp_path, request)
    from dpro_migrate.handoff.applied import Applied
    from dpro_migrate.handoff.connect import Bind, applied_plan

    with Bind(db.url, read_only=True) as conn:  # what the ledger says, given instead of read at init
        applied = Applied.from_plan(applied_plan(conn, POSTGRES), POSTGRES)
    ini = alembic_init(tmp_path / "alembic", "postgresql://nobody:pw@127.0.0.1:1/nowhere", applied=applied)
    stamp_baseline(db.url, tmp_path / "alembic")
    monkeypatch.setenv(URL_ENV, db.url)
    assert _upgrade_body(_autogenerate(ini)) == ["pass"]


def test_alembic_sees_drift_and_its_migration_repairs_it(migrated, tmp_path):
    """The metadata renders real DDL: Alembic's own migration re-creates a dropped DESC/partial index."""
    ini = alembic_init(tmp_path / "alembic", migrated.url)
    stamp_baseline(migrated.url, tmp_path / "alembic")
    prefix = "iam." if migrated.dialect == POSTGRES else ""
    migrated.sql(f"DROP INDEX {prefix}idx_iam_sessions_user_active")
    generated = _autogenerate(ini, "repair")
    body = "\n".join(_upgrade_body(generated))
    assert "create_index(" in body and "idx_iam_sessions_user_active" in body
    # SQLite writes the predicate as applications query it (is_active = 1), so its planner uses the index
    where = {SQLITE: "'\"is_active\" = 1'", POSTGRES: "'\"is_active\"'"}[migrated.dialect]
    assert "expires_at DESC" in body and f"{migrated.dialect}_where=sa.text({where})" in body
    command.upgrade(Config(str(ini)), "head")
    assert schema_drift(migrated.url) == []
    assert _upgrade_body(_autogenerate(ini, "again")) == ["pass"]


def test_baseline_downgrade_refuses(legacy_db, tmp_path, request):
    db = _migrate(SQLITE, legacy_db, tmp_path, request)
    ini = alembic_init(tmp_path / "alembic", db.url)
    stamp_baseline(db.url, tmp_path / "alembic")
    with pytest.raises(RuntimeError, match="dpro-migrate rollback"):
        command.downgrade(Config(str(ini)), "base")


def test_stamp_refuses_drift_unmigrated_and_foreign_revisions(legacy_db, tmp_path, request):
    db = _migrate(SQLITE, legacy_db, tmp_path, request)
    directory = tmp_path / "alembic"
    alembic_init(directory, db.url)
    db.sql("DROP INDEX idx_iam_users_created_at")
    with pytest.raises(ChecksFailed, match="differs from the baseline"):
        stamp_baseline(db.url, directory)
    assert VERSION_TABLE not in {r[0] for r in db.query("SELECT name FROM sqlite_master")}
    rev = stamp_baseline(db.url, directory, check=False)
    assert stamp_baseline(db.url, directory, check=False) == rev  # idempotent
    db.sql(f"UPDATE {VERSION_TABLE} SET version_num = 'abcdef123456'")
    with pytest.raises(BadInput, match="already at Alembic revision abcdef123456"):
        stamp_baseline(db.url, directory, check=False)
    legacy = legacy_db()
    with pytest.raises(BadInput, match="not migrated"):
        stamp_baseline(legacy, directory)
    with pytest.raises(BadInput, match="no dpro baseline|not an Alembic environment"):
        stamp_baseline(db.url, tmp_path)


@pytest.mark.postgres
def test_release_baseline_lets_postgresql_rollback_run(legacy_db, tmp_path, request):
    """The version table lives in the system schema: rollback releases the baseline stamp, and refuses
    when Alembic has moved the database beyond it (rolling back would silently undo those migrations)."""
    import psycopg

    db = _migrate(POSTGRES, legacy_db, tmp_path, request)
    alembic_init(tmp_path / "alembic", db.url)
    stamp_baseline(db.url, tmp_path / "alembic")
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("UPDATE system.alembic_version SET version_num = 'abcdef123456'")
    with pytest.raises(ChecksFailed, match="beyond the dpro baseline"):
        verbs.rollback(db.path, parse_target(db.url), backup_dir=tmp_path / "backups")
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("UPDATE system.alembic_version SET version_num = %s", (baseline_revision(tmp_path / "alembic"),))
    verbs.rollback(db.path, parse_target(db.url), backup_dir=tmp_path / "backups")
    with psycopg.connect(db.url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('system.alembic_version')").fetchone()[0] is None


def test_release_baseline_sqlite(legacy_db, tmp_path, request):
    db = _migrate(SQLITE, legacy_db, tmp_path, request)
    alembic_init(tmp_path / "alembic", db.url)
    stamp_baseline(db.path, tmp_path / "alembic")
    conn = sqlite3.connect(db.path)
    try:
        assert release_baseline(conn, SQLITE) is True
        conn.commit()
    finally:
        conn.close()
    assert VERSION_TABLE not in {r[0] for r in db.query("SELECT name FROM sqlite_master")}


def test_sqlalchemy_reflects_every_constraint_name_on_sqlite(legacy_db, tmp_path, request):
    """SQLAlchemy's SQLite reflection reads names out of the table's SQL line by line: apply writes one column
    or constraint a line, so every foreign key, CHECK and UNIQUE comes back under its ddl/ name (a batch
    rebuild writes what reflection read)."""
    db = _migrate(SQLITE, legacy_db, tmp_path, request)
    engine = sa.create_engine(sqlalchemy_url(db.url), poolclass=sa.pool.NullPool)
    try:
        inspector = sa.inspect(engine)
        for qualified, table in load_schema().tables.items():
            name = qualified.replace(".", "_")
            reflected = {"foreign_key": {f["name"] for f in inspector.get_foreign_keys(name)},
                         "check": {c["name"] for c in inspector.get_check_constraints(name)},
                         "unique": {u["name"] for u in inspector.get_unique_constraints(name)}}
            for kind, names in reflected.items():
                assert names == {c.name for c in table.constraints if c.kind == kind}, (name, kind)
    finally:
        engine.dispose()
