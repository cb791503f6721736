"""PostgreSQL's catalog for the drift check: triggers from pg_trigger (and whether they are enabled), trigger
functions from pg_proc, partial-index predicates from pg_index. Alembic sees the ASC/DESC of index columns
here itself."""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa

from dpro_migrate import DOMAINS
from dpro_migrate.dialects import POSTGRES, get_dialect
from dpro_migrate.handoff.differences import Difference, LiveIndex, normal_ws, trigger_table
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE
from dpro_migrate.model.schema import Index, TargetSchema
from dpro_migrate.safety.alembic_version import VERSION_TABLE

_PG = get_dialect(POSTGRES)
# dpro-migrate's bookkeeping and Alembic's version table: in the system schema, never drift.
BOOKKEEPING = {_PG.physical_name(LEDGER_TABLE), _PG.physical_name(QUARANTINE_TABLE),
               f"{_PG.version_table_schema}.{VERSION_TABLE}"}


def include_name(tables: set[str]) -> Callable[[str | None, str, dict], bool]:
    """The seven domain schemas (not public, where compat views live, nor any other), every table in them
    but the bookkeeping: a table someone adds to a domain schema is drift. tables: unused (the schemas say
    which tables are ours)."""

    def include(name: str | None, type_: str, parent_names: dict) -> bool:
        if type_ == "schema":
            return name in DOMAINS
        if type_ == "table":
            full = f"{parent_names.get('schema_name')}.{name}"
            return parent_names.get("schema_name") in DOMAINS and full not in BOOKKEEPING
        return True

    return include


def _function_body(sql: str) -> str | None:
    m = re.search(r"AS\s+\$(\w*)\$(.*)\$\1\$", sql, re.S | re.I)
    return m.group(2) if m else None


def trigger_differences(conn: sa.engine.Connection, schema: TargetSchema) -> list[Difference]:
    """Every trigger of ddl/ exists, enabled, on its table, and every trigger function with its body as
    written; no other trigger sits in a domain schema."""
    expected = [t for t in schema.triggers[POSTGRES] if t.kind == "trigger"]
    out: list[Difference] = []
    live = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(sa.text(
        "SELECT n.nspname, t.tgname, c.relname, t.tgenabled FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND n.nspname = ANY(:schemas)"), {"schemas": list(DOMAINS)})}
    by_name = {name: (nsp, rel, enabled) for (nsp, name), (rel, enabled) in live.items()}
    for trig in expected:
        table = trigger_table(trig.sql, POSTGRES)
        found = by_name.get(trig.name)
        if found is None or f"{found[0]}.{found[1]}" != table:
            if found is None:
                out.append(Difference("missing_trigger", trig.name, f"trigger on {table} in ddl/, not in the database"))
            else:
                out.append(Difference("changed_trigger", trig.name,
                                      f"on {found[0]}.{found[1]} in the database, on {table} in ddl/"))
        elif found[2] == "D":
            out.append(Difference("changed_trigger", trig.name, f"on {table}: disabled in the database"))
    names = {t.name for t in expected}
    for name, (nsp, rel, _) in sorted(by_name.items()):
        if name not in names:
            out.append(Difference("unexpected_trigger", name, f"trigger on {nsp}.{rel} in the database, not in ddl/"))
    functions = {f"{r[0]}.{r[1]}": r[2] for r in conn.execute(sa.text(
        "SELECT n.nspname, p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = ANY(:schemas)"), {"schemas": list(DOMAINS)})}
    for fn in (t for t in schema.triggers[POSTGRES] if t.kind == "function"):
        if fn.name not in functions:
            out.append(Difference("missing_function", fn.name, "trigger function in ddl/, not in the database"))
        elif (body := _function_body(fn.sql)) is not None and normal_ws(body) != normal_ws(functions[fn.name]):
            # prosrc is the text between the dollar quotes, as written.
            out.append(Difference("changed_function", fn.name, "body differs from ddl/triggers.postgresql.sql"))
    return out


def live_index(conn: sa.engine.Connection, index: Index) -> LiveIndex | None:
    """The predicate of an index as pg_get_expr renders it; None when it is missing (Alembic reports that)."""
    row = conn.execute(sa.text(
        "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname = :n"),
        {"s": index.table.split(".")[0], "n": index.name}).fetchone()
    if row is None:
        return None
    return LiveIndex(where=row[0])
