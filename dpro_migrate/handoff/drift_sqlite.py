"""SQLite's catalog for the drift check: sqlite_master keeps each trigger's CREATE text as written, and
PRAGMA index_xinfo keeps the ASC/DESC of index columns that SQLAlchemy's SQLite reflection drops."""

from __future__ import annotations

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dpro_migrate.dialects import SQLITE, physical_name
from dpro_migrate.handoff.differences import Difference, LiveIndex, normal_ws, trigger_table
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.model.schema import Index, TargetSchema
from dpro_migrate.plan.build_sqlite import quarantine_table
from dpro_migrate.plan.operations import CreateQuarantine, CreateTable, DropLegacyTable, QuarantineRows
from dpro_migrate.safety.alembic_version import VERSION_TABLE
from dpro_migrate.sqlnames import quote_ident


DIALECT = SQLITE
# No schemas: Alembic sees the one database (None) with every table in it but those excluded.
SCHEMAS: set[str | None] = {None}
# SQLite's DDL is transactional (Alembic assumes not, after pysqlite): with the environment's engine
# (runtime.migration_engine) a migration that fails halfway leaves nothing behind.
ALEMBIC_OPTIONS = {"transactional_ddl": True}


def bookkeeping(plan) -> dict[str, str]:
    """Tables of the file Alembic leaves alone, with the reason: dpro-migrate's ledger and quarantine, Alembic's
    version table, and the legacy tables apply left in place (unknown ones such as legacy_feedback, under any
    name). plan: the last apply's (None: no ledger)."""
    out = {physical_name(LEDGER_TABLE, SQLITE): "dpro-migrate's ledger: what apply did, read by verify and rollback",
           VERSION_TABLE: "Alembic's version table"}
    if plan is None:
        return out
    for op in plan.of_type(CreateQuarantine):
        out[op.name] = "dpro-migrate's quarantine: rows apply refused, put back by rollback"
    for op in plan.of_type(QuarantineRows):
        for legacy in op.tables:
            out[quarantine_table(legacy)] = f"dpro-migrate's quarantine: the refused rows of legacy {legacy}"
    created = {physical_name(op.table, SQLITE) for op in plan.of_type(CreateTable)}
    dropped = {op.name for op in plan.of_type(DropLegacyTable)}
    for legacy in sorted((set(plan.legacy_tables) | set(plan.unknown_tables)) - dropped - created):
        out[legacy] = "legacy table apply left in place (not migrated); rollback and old readers may need it"
    return out


def policy_differences(conn: sa.engine.Connection, policies: dict[str, str]) -> list[Difference]:
    return []  # SQLite has no row-level security


def trigger_differences(conn: sa.engine.Connection, schema: TargetSchema) -> list[Difference]:
    """Every trigger of ddl/ exists in sqlite_master, on its table, as written; no other on a domain table."""
    expected = [t for t in schema.triggers[SQLITE] if t.kind == "trigger"]
    out: list[Difference] = []
    tables = {physical_name(q, SQLITE) for q in schema.tables}
    live = {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql(
        "SELECT name, tbl_name, sql FROM main.sqlite_master WHERE type = 'trigger'")}
    for trig in expected:
        table = trigger_table(trig.sql, SQLITE)
        if trig.name not in live:
            out.append(Difference("missing_trigger", trig.name, f"trigger on {table} in ddl/, not in the database"))
            continue
        live_table, live_sql = live[trig.name]
        if live_table != table:
            out.append(Difference("changed_trigger", trig.name, f"on {live_table} in the database, on {table} in ddl/"))
        elif normal_ws(live_sql or "") != normal_ws(trig.sql):
            # SQLite keeps the CREATE TRIGGER text as written: any other text is another trigger.
            out.append(Difference("changed_trigger", trig.name, "definition differs from ddl/triggers.sqlite.sql"))
    names = {t.name for t in expected}
    for name, (table, _) in sorted(live.items()):
        if name not in names and table in tables:
            out.append(Difference("unexpected_trigger", name, f"trigger on {table} in the database, not in ddl/"))
    return out


def live_index(conn: sa.engine.Connection, index: Index) -> LiveIndex | None:
    """The predicate (from the CREATE INDEX text) and the column order (index_xinfo) of an index; None when
    it is missing (Alembic reports that)."""
    row = conn.exec_driver_sql("SELECT sql FROM main.sqlite_master WHERE type = 'index' AND name = ?",
                               (index.name,)).fetchone()
    if row is None or not row[0]:
        return None
    xinfo = conn.exec_driver_sql(f"PRAGMA main.index_xinfo({quote_ident(index.name)})").fetchall()
    columns = [(r[2], bool(r[3])) for r in xinfo if r[5]]  # (name, desc) of the key columns
    params = sqlglot.parse_one(row[0], read="sqlite").find(exp.IndexParameters)
    where = params.args.get("where") if params else None
    return LiveIndex(where=where.this.sql("sqlite") if where is not None else None, columns=columns)
