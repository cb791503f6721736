"""SQLite's catalog for the drift check: sqlite_master keeps each trigger's CREATE text as written, and
PRAGMA index_xinfo keeps the ASC/DESC of index columns that SQLAlchemy's SQLite reflection drops."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dpro_migrate.dialects import SQLITE, physical_name
from dpro_migrate.handoff.differences import Difference, LiveIndex, normal_ws, trigger_table
from dpro_migrate.model.schema import Index, TargetSchema
from dpro_migrate.sqlnames import quote_ident


def include_name(tables: set[str]) -> Callable[[str | None, str, dict], bool]:
    """The domain tables by name, nothing else: the file also holds legacy tables a migration leaves behind
    (unknown ones such as legacy_feedback, under any name), the ledger, the quarantine tables and
    alembic_version. tables: the physical names of ddl/'s tables."""

    def include(name: str | None, type_: str, parent_names: dict) -> bool:
        if type_ == "schema":
            return name is None
        if type_ == "table":
            return name in tables
        return True

    return include


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
