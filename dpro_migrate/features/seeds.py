"""Issue 7 extras: the new tables of ddl/new/, row-level security and monthly partitioning on PostgreSQL.

Each function returns plan steps (`plan.Step`), every one with its reverse, for the step builders to add:

- `new_table_steps(dialect)`: the tables seed 003 lists as missing that no legacy table feeds
  (ddl/new/*.sql, same conventions as ddl/*.sql); they start empty. Tables, then (PostgreSQL) keys,
  checks and foreign keys, then indexes, as the main plan does. Their create_table steps name their
  table in info["table"], so rollback refuses while they hold rows (rows with no legacy home).
- `rls_steps(schema, extra_tables)`: PostgreSQL row-level security on iam, communication and tasks.
- `partition_plan(steps, source)`: communication.messages and system.audit_logs as monthly range
  partitions (PostgreSQL), replacing their plain create_table and primary-key steps.

ddl/new/ is parsed with schema.py's own parser and model (schema._parse_file, _column, _constraints),
so the SQL renderers (create_table_sql, add_constraint_sql, create_index_sql) work on it unchanged.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Iterable

from sqlglot import exp

from dpro_migrate import DOMAINS
from dpro_migrate.errors import BadInput
from dpro_migrate.plan.document import Step
from dpro_migrate.model.schema import (POSTGRES, SQLITE, Index, Table, TargetSchema, _column, _constraints, _parse_file,
                     create_table_sql, ddl_dir, load_schema, physical_name,
                     table_sql)
from dpro_migrate.backends.pgcopy import copy_statement
from dpro_migrate.sqlnames import quote_ident, quote_literal

NEW_DIR = "new"  # under ddl/


# --- ddl/new/ -----------------------------------------------------------------------------------


@dataclass
class NewSchema:
    tables: dict[str, Table]  # qualified name -> Table, in file order (domains in DOMAINS order)
    indexes: list[Index]


def _index(stmt: exp.Create, domain: str, name: str) -> Index:
    return Index(stmt.this.name, f"{domain}.{name}", bool(stmt.args.get("unique")),
                 stmt.find(exp.IndexParameters).args.get("where") is not None, stmt)


@functools.lru_cache(maxsize=None)
def load_new(directory: str | None = None) -> NewSchema:
    """ddl/new/<domain>.sql parsed like ddl/<domain>.sql. A domain without a file has no new table.

    Refuses (BadInput) a table outside its file's domain, a table ddl/ already has, and a constraint or
    index name ddl/ or another new file already uses (PostgreSQL needs index names unique per schema,
    SQLite per database)."""
    root = Path(directory) if directory else ddl_dir() / NEW_DIR
    base = load_schema()
    tables: dict[str, Table] = {}
    indexes: list[Index] = []
    for domain in DOMAINS:
        path = root / f"{domain}.sql"
        if not path.exists():
            continue
        for stmt in _parse_file(path):
            tbl = stmt.this.find(exp.Table) if stmt.kind == "INDEX" else stmt.this.this
            if tbl.db != domain:
                raise BadInput(f"new/{path.name}: {tbl.sql()} is not in the {domain} domain")
            qualified = f"{domain}.{tbl.name}"
            if stmt.kind == "TABLE":
                if qualified in base.tables or qualified in tables:
                    raise BadInput(f"new/{path.name}: {qualified} is defined twice")
                cols = [_column(c) for c in stmt.this.expressions if isinstance(c, exp.ColumnDef)]
                tables[qualified] = Table(domain, tbl.name, cols, _constraints(tbl.name, stmt), stmt)
            else:
                indexes.append(_index(stmt, domain, tbl.name))
    for index in indexes:
        if index.table not in tables:
            raise BadInput(f"ddl/new/: index {index.name} is on {index.table}, which is not a new table")
    names = [c.name for t in [*base.tables.values(), *tables.values()] for c in t.constraints]
    names += [i.name for i in [*base.indexes, *indexes]]
    names += [physical_name(q, SQLITE) for q in [*base.tables, *tables]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"ddl/new/: names used twice across ddl/ and ddl/new/: {', '.join(dupes)}")
    return NewSchema(tables, indexes)


def new_tables() -> list[Table]:
    return list(load_new().tables.values())


def new_indexes() -> list[Index]:
    return list(load_new().indexes)


def new_table_steps(dialect: str) -> list[Step]:
    """Create the new tables (empty), then their constraints (PostgreSQL), then their indexes.

    SQLite: each table is created whole (its constraints inline, domain as a name prefix), like
    steps_sqlite.build_steps does. PostgreSQL: bare tables, then primary keys, unique, check and foreign
    keys, then indexes, like steps_postgres.build_steps; their foreign keys reference ddl/ tables, so
    these steps go after the main plan's constraint steps (or anywhere after its create_table steps)."""
    if dialect not in (SQLITE, POSTGRES):
        raise BadInput(f"unknown dialect {dialect!r}")
    new = load_new()
    steps: list[Step] = []
    for qualified, table in new.tables.items():
        info = {"table": qualified, "extra_columns": [], "new": True}
        if dialect == SQLITE:
            steps.append(Step("create_table", physical_name(qualified, SQLITE), [create_table_sql(table, SQLITE)],
                              [f"DROP TABLE IF EXISTS {table_sql(qualified, SQLITE)}"], info))
        else:
            steps.append(Step("create_table", qualified, [create_table_sql(table, POSTGRES, constraints=False)],
                              [f"DROP TABLE IF EXISTS {table_sql(qualified, POSTGRES)}"], info))
    from dpro_migrate.plan.build_postgresql import constraint_steps, index_step  # steps_postgres imports this module

    if dialect == POSTGRES:
        steps += constraint_steps(new.tables, {"new": True})
    steps += [index_step(index, dialect, {"new": True}) for index in new.indexes]
    return steps


# --- row-level security (PostgreSQL) ------------------------------------------------------------

RLS_DOMAINS = ("iam", "communication", "tasks")
RLS_SETTING = "dpro.user_id"  # the application sets it per session or transaction: SET dpro.user_id = '42'
RLS_POLICY = "user_isolation"
CONVERSATIONS = "communication.conversations"
ASSIGNEE_COLUMNS = ("assigned_to",)


def current_user_sql() -> str:
    """The application's user id; NULL (no row matches) when the setting is absent or empty."""
    return f"nullif(current_setting({quote_literal(RLS_SETTING)}, true), '')::bigint"


def _conversation_fk(table: Table) -> str | None:
    """The column of a foreign key to communication.conversations, if the table has one."""
    for con in table.constraints:
        if con.kind == "foreign_key" and con.references == CONVERSATIONS and len(con.columns) == 1:
            return con.columns[0]
    return None


def rls_policy_sql(table: Table) -> str | None:
    """The USING expression of the table's user_isolation policy, or None when the table gets none."""
    me = current_user_sql()
    if table.qualified == "iam.users":
        return f"{quote_ident('id')} = {me}"
    if table.column("user_id") is None:
        return None
    own = f"{quote_ident('user_id')} = {me}"
    for col in ASSIGNEE_COLUMNS:
        if any(c.kind == "foreign_key" and c.references == "iam.users" and c.columns == [col] for c in table.constraints):
            # A task assigned to the user is theirs to see too, not only the tasks they created.
            own = f"{own} OR {quote_ident(col)} = {me}"
    conv = _conversation_fk(table) if table.qualified != CONVERSATIONS else None
    if conv and table.column("user_id").nullable:
        # An agent's reply has no user_id (it is the agent's): the user sees every row of the
        # conversations they own, not only the rows they wrote.
        return (f"{own} OR {quote_ident(conv)} IN (SELECT {quote_ident('id')} FROM {table_sql(CONVERSATIONS, POSTGRES)} "
                f"WHERE {quote_ident('user_id')} = {me})")
    return own


def rls_steps(schema: TargetSchema | None = None, extra_tables: Iterable[Table] = ()) -> list[Step]:
    """ENABLE ROW LEVEL SECURITY and a policy `user_isolation` on every table of iam, communication and
    tasks with a user_id column (iam.users on id), ddl/ tables and `extra_tables` (pass new_tables()
    when the new tables are in the plan, after their create_table steps).

    No FORCE: the table owner (the role that ran apply, which verify, rollback and write-back use) and
    roles with BYPASSRLS or superuser keep seeing every row. The application must therefore connect as
    a role that neither owns the tables nor has BYPASSRLS; with FORCE, the owner would see nothing
    without dpro.user_id, and verify would fail. The policy is FOR ALL: USING filters what is read,
    updated and deleted, and (no WITH CHECK given) also what may be inserted or updated into."""
    schema = schema or load_schema()
    steps = []
    for table in [*schema.tables.values(), *extra_tables]:
        if table.domain not in RLS_DOMAINS:
            continue
        using = rls_policy_sql(table)
        if using is None:
            continue
        t = table_sql(table.qualified, POSTGRES)
        steps.append(Step(
            "enable_rls", table.qualified,
            [f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
             f"CREATE POLICY {quote_ident(RLS_POLICY)} ON {t} USING ({using})"],
            [f"DROP POLICY IF EXISTS {quote_ident(RLS_POLICY)} ON {t}",
             f"ALTER TABLE IF EXISTS {t} DISABLE ROW LEVEL SECURITY"],
            {"table": table.qualified, "policy": RLS_POLICY, "setting": RLS_SETTING, "force": False}))
    return steps


# --- monthly range partitions (PostgreSQL) ------------------------------------------------------

PARTITIONABLE = ("communication.messages", "system.audit_logs")
PARTITION_KEY = "created_at"
MAX_MONTHS = 600


def months_between(first: date, last: date) -> list[date]:
    """The first day of every month from first's month to last's month, both included."""
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _next_month(d: date) -> date:
    return date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)


def partition_name(qualified: str, month: date | None) -> str:
    name = qualified.split(".", 1)[1]
    return f"{name}_default" if month is None else f"{name}_y{month.year:04d}m{month.month:02d}"


def partition_steps(qualified: str, create_sql: str, months: list[date]) -> tuple[list[Step], str]:
    """The partitioned variant of one table: (steps, primary-key SQL).

    steps: the parent (`create_sql`, the plain create_table SQL of the plan, bare, with PARTITION BY
    RANGE (created_at) added), then one partition per month [first day, first day of next month) in
    UTC, then a DEFAULT partition (rows outside every month, e.g. written after the cutover beyond the
    last month). The primary key must contain the partition key: PRIMARY KEY (id, created_at), which
    also makes created_at NOT NULL (PostgreSQL: a unique constraint on a partitioned table must include
    all partitioning columns)."""
    if qualified not in PARTITIONABLE:
        raise BadInput(f"{qualified}: only {', '.join(PARTITIONABLE)} are partitioned")
    domain = qualified.split(".")[0]
    parent = table_sql(qualified, POSTGRES)
    steps = [Step("create_table", qualified, [f"{create_sql} PARTITION BY RANGE ({quote_ident(PARTITION_KEY)})"],
                  [f"DROP TABLE IF EXISTS {parent}"],
                  {"table": qualified, "partitioned": {"by": "range", "key": PARTITION_KEY,
                                                       "months": [m.isoformat() for m in months]}})]
    for month in [*months, None]:
        part = f"{quote_ident(domain)}.{quote_ident(partition_name(qualified, month))}"
        if month is None:
            bounds = "DEFAULT"
        else:
            bounds = (f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
                      f"TO ('{_next_month(month).isoformat()} 00:00:00+00')")
        steps.append(Step("create_partition", f"{domain}.{partition_name(qualified, month)}",
                          [f"CREATE TABLE {part} PARTITION OF {parent} {bounds}"], [f"DROP TABLE IF EXISTS {part}"],
                          {"parent": qualified, "month": month.isoformat() if month else None}))
    pk_name = f"{qualified.split('.', 1)[1]}_pkey"
    pk = (f"ALTER TABLE {parent} ADD CONSTRAINT {quote_ident(pk_name)} "
          f"PRIMARY KEY ({quote_ident('id')}, {quote_ident(PARTITION_KEY)})")
    return steps, pk


def source_months(conn: sqlite3.Connection, legacy: str, where: str | None) -> tuple[list[date], int]:
    """(months spanned by the rows' created_at, rows without created_at), read from the legacy table.

    Only text timestamps SQLite can read count for the range; others (numbers, unreadable text) are
    refused by the PostgreSQL preflight or, if they convert, land in the DEFAULT partition."""
    clause = f" WHERE {where}" if where else ""
    c = quote_ident(PARTITION_KEY)
    lo, hi, nulls = conn.execute(
        f"SELECT strftime('%Y-%m-%d', min(d)), strftime('%Y-%m-%d', max(d)), coalesce(sum(n), 0) FROM "
        f"(SELECT CASE WHEN typeof({c}) = 'text' THEN julianday({c}) END AS d, {c} IS NULL AS n "
        f"FROM {quote_ident(legacy)}{clause})").fetchone()
    if lo is None:
        return [], nulls
    return months_between(date.fromisoformat(lo), date.fromisoformat(hi)), nulls


def partition_plan(steps: list[Step], source: Path, tables: Iterable[str] = PARTITIONABLE,
                   max_months: int = MAX_MONTHS, months_ahead: int = 0) -> list[Step]:
    """A PostgreSQL step list (steps_postgres.build_steps) with `tables` partitioned by month.

    Each table's create_table step is replaced, in place, by partition_steps() over the months of its
    source rows (min to max created_at of the legacy rows its move_rows steps take), and its
    primary-key add_constraint step gets PRIMARY KEY (id, created_at). Refuses (BadInput) when a source
    row has no created_at (the partition key is part of the primary key, so NOT NULL: apply would fail)
    or the rows span more than max_months months. `months_ahead` adds partitions for that many months after
    the last one (rows written after the cutover would otherwise all land in the DEFAULT partition, and a
    month's partition cannot be created later while DEFAULT holds rows of that month)."""
    from dpro_migrate.model.legacy import connect_readonly
    from dpro_migrate.plan.preflight import SETUP_SQL

    tables = list(tables)
    by_name = {s.info.get("table"): s for s in steps if s.kind == "create_table"}
    missing = [t for t in tables if t not in by_name]
    if missing:
        raise BadInput(f"the plan creates no {', '.join(missing)}")
    conn = connect_readonly(Path(source))
    try:
        for stmt in SETUP_SQL:  # the (empty) refusal table a quarantine plan's `where` reads
            conn.execute(stmt)
        replaced: dict[str, tuple[list[Step], str]] = {}
        for qualified in tables:
            months: set[date] = set()
            for move in (s for s in steps if s.kind == "move_rows" and s.info["target"] == qualified):
                found, nulls = source_months(conn, move.info["legacy"], move.info.get("where"))
                if nulls:
                    raise BadInput(f"{nulls} rows of {move.info['legacy']} going to {qualified} have no created_at; "
                                   "a partitioned table needs one in every row (it is part of the primary key)")
                months.update(found)
            span = months_between(min(months), max(months)) if months else []
            for _ in range(months_ahead if span else 0):
                span.append(_next_month(span[-1]))
            if len(span) > max_months:
                raise BadInput(f"{qualified}: created_at spans {len(span)} months ({span[0]:%Y-%m} to "
                               f"{span[-1]:%Y-%m}), more than {max_months} partitions")
            replaced[qualified] = partition_steps(qualified, by_name[qualified].sql[0], span)
    finally:
        conn.close()
    out: list[Step] = []
    for step in steps:
        table = step.info.get("table")
        if step.kind == "create_table" and table in replaced:
            new_steps = replaced[table][0]
            new_steps[0].info["extra_columns"] = step.info.get("extra_columns", [])
            out.extend(new_steps)
        elif step.kind == "add_constraint" and table in replaced and step.info.get("kind") == "primary_key":
            out.append(replace(step, sql=[replaced[table][1]], info={**step.info, "columns": ["id", PARTITION_KEY]}))
        elif step.kind == "move_rows" and step.info["target"] in replaced:
            out.append(replace(step, sql=[copy_statement(table_sql(step.info["target"], POSTGRES), step.info["columns"],
                                                         freeze=False)]))
        else:
            out.append(step)
    return out
