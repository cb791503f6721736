"""PostgreSQL's catalog for the drift check: triggers from pg_trigger (and whether they are enabled), trigger
functions from pg_proc, partial-index predicates from pg_index. Alembic sees the ASC/DESC of index columns
here itself."""

from __future__ import annotations

import re
import sqlalchemy as sa

from dpro_migrate import DOMAINS
from dpro_migrate.dialects import POSTGRES, get_dialect
from dpro_migrate.handoff.differences import Difference, LiveIndex, normal_ws, trigger_table
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE
from dpro_migrate.model.schema import Index, TargetSchema
from dpro_migrate.safety.alembic_version import VERSION_TABLE

_PG = get_dialect(POSTGRES)
DIALECT = POSTGRES
# The seven domain schemas (not public, where compat views live, nor any other); the environment adds the
# schemas its metadata names (an application's models).
SCHEMAS: set[str | None] = set(DOMAINS)
ALEMBIC_OPTIONS: dict = {}  # Alembic's defaults (transactional DDL)


def bookkeeping(plan) -> dict[str, str]:
    """Tables of the domain schemas Alembic leaves alone, with the reason: dpro-migrate's bookkeeping and
    Alembic's version table, all in the system schema. plan: unused (the names are fixed)."""
    return {_PG.physical_name(LEDGER_TABLE): "dpro-migrate's ledger: what apply did, read by verify and rollback",
            _PG.physical_name(QUARANTINE_TABLE): "dpro-migrate's quarantine: rows apply refused",
            f"{_PG.version_table_schema}.{VERSION_TABLE}": "Alembic's version table"}


def policy_differences(conn: sa.engine.Connection, policies: dict[str, str]) -> list[Difference]:
    """Every policy apply created (--with row-level-security) exists, on a table with row-level security on."""
    out: list[Difference] = []
    named = ((table, policy.strip()) for table, names in sorted(policies.items()) for policy in names.split(","))
    for table, policy in named:  # a table may have several policies, listed "a, b" by its operation
        schema_name, name = table.split(".", 1)
        row = conn.execute(sa.text(
            "SELECT c.relrowsecurity, EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = :p) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname = :n"),
            {"s": schema_name, "n": name, "p": policy}).fetchone()
        if row is None:
            continue  # the table is missing: Alembic reports that
        if not row[1]:
            out.append(Difference("missing_policy", f"{policy} on {table}", "row-level security policy in the plan, "
                                  "not in the database"))
        elif not row[0]:
            out.append(Difference("changed_policy", f"{policy} on {table}", "row-level security is disabled"))
    return out


def _function_body(sql: str) -> str | None:
    m = re.search(r"AS\s+\$(\w*)\$(.*)\$\1\$", sql, re.S | re.I)
    return m.group(2) if m else None


def trigger_differences(conn: sa.engine.Connection, schema: TargetSchema) -> list[Difference]:
    """Every trigger of ddl/ exists, enabled, on its table, and every trigger function with its body as
    written; no other trigger sits in a domain schema. A partition's triggers are its parent's, cloned."""
    expected = [t for t in schema.triggers[POSTGRES] if t.kind == "trigger"]
    out: list[Difference] = []
    live = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(sa.text(
        "SELECT n.nspname, t.tgname, c.relname, t.tgenabled FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND NOT c.relispartition AND n.nspname = ANY(:schemas)"), {"schemas": list(DOMAINS)})}
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
