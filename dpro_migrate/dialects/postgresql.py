"""PostgreSQL: one schema per domain (iam.users); ddl/ is already written in its syntax."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import conv
from sqlglot import exp

from dpro_migrate.dialects.base import Dialect, SearchObjects, ViewPart
from dpro_migrate import DOMAINS
from dpro_migrate.model.promise import Promise
from dpro_migrate.model.schema import Table, Trigger
from dpro_migrate.model.search import SearchIndex
from dpro_migrate.sqlnames import column_list, quote_ident, quote_literal
from dpro_migrate.types import pg_type_for_legacy

_TRIGGER_TABLE = re.compile(r"\bON\s+((?:\"?\w+\"?\.)?\"?\w+\"?)", re.I)


# Marks the pg_trgm extension apply created, so that rollback never drops one the DBA installed.
TRIGRAM_COMMENT = "dpro-migrate: created by apply for message search; rollback drops it when nothing else uses it"


class PostgresDialect(Dialect):
    name = "postgresql"
    title = "PostgreSQL"
    sqlglot_name = "postgres"
    param = "%s"
    ledger_key = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    has_schemas = True
    trigger_body_starts = r"\bEXECUTE\b"
    features = ("new-tables", "archive-tables", "row-level-security", "partition-by-month", "force-row-level-security",
                "app-roles", "monitoring-views")
    alembic_options = {}
    # Alembic's version table lives in system, with dpro-migrate's own bookkeeping: see handoff/environment.py.
    version_table_schema = "system"
    names_primary_keys = True
    identity_columns = True
    primary_key_declared_nullable = False
    alembic_scope = "the seven domain schemas"

    def table_exists_sql(self, schema: str | None, name: str) -> str:
        return f"SELECT 1 WHERE to_regclass({quote_literal(quote_ident(schema) + '.' + quote_ident(name))}) IS NOT NULL"

    def physical_name(self, qualified: str) -> str:
        return qualified

    def table_sql(self, qualified: str) -> str:
        domain, name = qualified.split(".", 1)
        return f"{quote_ident(domain)}.{quote_ident(name)}"

    def index_sql(self, qualified_table: str, index: str) -> str:
        return f"{quote_ident(qualified_table.split('.')[0])}.{quote_ident(index)}"

    def compat_view_sql(self, legacy: str) -> str:
        return f"\"public\".{quote_ident(legacy)}"

    # The view reads its tables with the rights of whoever queries it, not its owner's (the migrating role,
    # which row-level security does not restrict): the tables' grants and policies apply through it.
    compat_view_options = " WITH (security_invoker = true)"

    def compat_view_body(self, union: str) -> str:
        # OFFSET 0: PostgreSQL would otherwise let writes through a simple view; these are for reading.
        return f"{union} OFFSET 0"

    def compat_view_write_sql(self, view: str, columns: list[str], parts: list[ViewPart],
                              defaults: dict[str, str]) -> list[str]:
        # Read-only (OFFSET 0 above): an application that reaches PostgreSQL was changed to do so, and writes to
        # the domain tables; the views serve the old reports and readers through the window.
        return []

    def search_objects(self, index: SearchIndex) -> SearchObjects:
        """A GIN trigram index (pg_trgm): the planner uses it for `LIKE '%abc%'` and ILIKE as the application
        writes them. The extension is created when absent (a trusted extension: the database owner may) and
        marked, so rollback drops only one apply created, and only while nothing else uses it."""
        lit = quote_literal(TRIGRAM_COMMENT)
        create = (
            "DO $dpro$ BEGIN "
            "IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm') THEN "
            "IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm') THEN "
            "RAISE EXCEPTION 'the extension pg_trgm (message search) is not available on this server: install "
            "PostgreSQL''s contrib modules (Debian: postgresql-contrib), then run apply again' "
            "USING ERRCODE = 'feature_not_supported'; END IF; "
            f"CREATE EXTENSION pg_trgm; COMMENT ON EXTENSION pg_trgm IS {lit}; END IF; END $dpro$")
        drop = (
            "DO $dpro$ BEGIN "
            "IF EXISTS (SELECT FROM pg_extension e WHERE e.extname = 'pg_trgm' "
            f"AND obj_description(e.oid, 'pg_extension') = {lit}) THEN "
            "BEGIN DROP EXTENSION pg_trgm; EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END; "
            "END IF; END $dpro$")
        target = self.table_sql(index.table)
        # the operator class named in the extension's schema: a DBA may have installed pg_trgm in one that is not
        # on the search_path (an `extensions` schema), where the bare name is not found
        ddl = (f"CREATE INDEX {quote_ident(index.name)} ON {target} USING gin ({quote_ident(index.column)} "
               "%s.gin_trgm_ops)")
        sql = [create, "DO $dpro$ BEGIN EXECUTE format(" + quote_literal(ddl) + ", (SELECT quote_ident(n.nspname) "
               "FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm')); "
               "END $dpro$"]
        reverse = [f"DROP INDEX IF EXISTS {self.index_sql(index.table, index.name)}", drop]
        return SearchObjects(sql, reverse, [], [], index.name, prepare=(create,))

    def sa_search_index(self, index: SearchIndex, table: Any) -> Any:
        return sa.Index(conv(index.name), table.c[index.column], postgresql_using="gin",
                        postgresql_ops={index.column: "gin_trgm_ops"})

    def analyze_sql(self, tables: list[str]) -> list[str]:
        # in apply's transaction (ANALYZE may run in a transaction block; VACUUM may not). A partitioned table's
        # ANALYZE samples its partitions too.
        return [f"ANALYZE {', '.join(self.table_sql(t) for t in tables)}"] if tables else []

    def ride_along_column(self, name: str, decl_type: str) -> exp.ColumnDef:
        kind = exp.DataType.build(pg_type_for_legacy(decl_type), dialect="postgres")
        return exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=kind)

    def trigger_sql(self, trigger: Trigger) -> str:
        return trigger.sql

    def drop_trigger_sql(self, trigger: Trigger, table: str) -> str:
        return f"DROP TRIGGER IF EXISTS {quote_ident(trigger.name)} ON {table}"

    def trigger_table(self, trigger: Trigger) -> str:
        """The table a trigger is on, as written in its CREATE TRIGGER."""
        return _TRIGGER_TABLE.search(trigger.sql.split("EXECUTE")[0]).group(1)

    def copy_statement(self, target_sql: str, columns: list[str], *, freeze: bool = True) -> str:
        """FREEZE: the table was created in this transaction, so its rows are written frozen and its pages
        all-visible; the index builds and key checks that follow read them cheaper, and nothing has to rewrite
        every page after the cutover to set hint bits. A partitioned table refuses FREEZE."""
        return f"COPY {target_sql} ({column_list(columns)}) FROM STDIN (FORMAT csv{', FREEZE' if freeze else ''})"

    def catalog(self, cur) -> set[Promise]:
        """What the seven schemas hold, as operations promise it; constraints only once validated, triggers
        only while enabled."""
        domains = (list(DOMAINS),)
        out = {Promise("schema", r[0]) for r in cur.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", domains)}
        out |= {Promise("table", f"{s}.{t}") for s, t in cur.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s)", domains)}
        out |= {Promise("index", r[0]) for r in cur.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = ANY(%s)", domains)}
        out |= {Promise("constraint", r[0]) for r in cur.execute(
            "SELECT c.conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = ANY(%s) AND c.convalidated", domains)}
        out |= {Promise("trigger", r[0]) for r in cur.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON "
            "n.oid = c.relnamespace WHERE n.nspname = ANY(%s) AND NOT t.tgisinternal AND t.tgenabled <> 'D'", domains)}
        out |= {Promise("view", f"{s}.{v}") for s, v in cur.execute(
            "SELECT schemaname, viewname FROM pg_views WHERE schemaname = ANY(%s)", domains)}
        out |= {Promise("function", f"{s}.{f}") for s, f in cur.execute(
            "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = ANY(%s)", domains)}
        return out

    def sa_table_options(self, table: Table, autoincrement: bool) -> dict[str, Any]:
        return {"schema": table.domain}
