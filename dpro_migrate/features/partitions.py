"""Monthly range partitions on PostgreSQL (seed 000): communication.messages and system.audit_logs."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable

import psycopg

from dpro_migrate.db.connections import claim_session, connect_postgres
from dpro_migrate.db.pgerrors import classify
from dpro_migrate.dialects import POSTGRES, get_dialect, table_sql
from dpro_migrate.errors import BadInput
from dpro_migrate.features.rls import rls_operation_like
from dpro_migrate.model.legacy import connect_readonly
from dpro_migrate.plan.operations import (AddConstraint, CopyRows, CreatePartition, CreateTable, EnableRowLevelSecurity,
                                          Operation, RowMove)
from dpro_migrate.plan.preflight import SETUP_SQL
from dpro_migrate.sqlnames import column_list, quote_ident
from dpro_migrate.targets import Target

DIALECT = get_dialect(POSTGRES)

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


def partition_operations(qualified: str, create_sql: str, months: list[date]) -> tuple[list[Operation], str]:
    """The partitioned variant of one table: (operations, primary-key SQL).

    operations: the parent (`create_sql`, the plain create_table SQL of the plan, bare, with PARTITION BY
    RANGE (created_at) added), then one partition per month [first day, first day of next month) in
    UTC, then a DEFAULT partition (rows outside every month, e.g. written after the cutover beyond the
    last month). The primary key must contain the partition key: PRIMARY KEY (id, created_at), which
    also makes created_at NOT NULL (PostgreSQL: a unique constraint on a partitioned table must include
    all partitioning columns)."""
    if qualified not in PARTITIONABLE:
        raise BadInput(f"{qualified}: only {', '.join(PARTITIONABLE)} are partitioned")
    domain = qualified.split(".")[0]
    parent = table_sql(qualified, POSTGRES)
    ops: list[Operation] = [CreateTable(
        qualified, [f"{create_sql} PARTITION BY RANGE ({quote_ident(PARTITION_KEY)})"], [f"DROP TABLE IF EXISTS {parent}"],
        table=qualified, partition_months=[m.isoformat() for m in months])]
    for month in [*months, None]:
        part = f"{quote_ident(domain)}.{quote_ident(partition_name(qualified, month))}"
        if month is None:
            bounds = "DEFAULT"
        else:
            bounds = (f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
                      f"TO ('{_next_month(month).isoformat()} 00:00:00+00')")
        ops.append(CreatePartition(f"{domain}.{partition_name(qualified, month)}",
                                   [f"CREATE TABLE {part} PARTITION OF {parent} {bounds}"], [f"DROP TABLE IF EXISTS {part}"],
                                   parent=qualified, month=month.isoformat() if month else None))
    pk_name = f"{qualified.split('.', 1)[1]}_pkey"
    pk = (f"ALTER TABLE {parent} ADD CONSTRAINT {quote_ident(pk_name)} "
          f"PRIMARY KEY ({quote_ident('id')}, {quote_ident(PARTITION_KEY)})")
    return ops, pk


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


def partition_plan(ops: list[Operation], source: Path, tables: Iterable[str] = PARTITIONABLE,
                   max_months: int = MAX_MONTHS, months_ahead: int = 0, today: date | None = None) -> list[Operation]:
    """A PostgreSQL plan's operations with `tables` partitioned by month.

    Each table's CreateTable is replaced, in place, by partition_operations() over the months of its
    source rows (min to max created_at of the legacy rows its moves take), and its primary key becomes
    PRIMARY KEY (id, created_at). Refuses (BadInput) when a source row has no created_at (the partition
    key is part of the primary key, so NOT NULL: apply would fail) or the rows span more than max_months
    months. `today` (the planning day, UTC) extends the months to the current one, and `months_ahead` adds
    that many months after the later of the data's last month and the current one: rows written after the
    cutover land in their own month's partition, not in DEFAULT (`dpro-migrate partitions` keeps making
    the next months, see partition_maintenance).

    A table with row-level security in `ops` gets the same on each partition, right after its own: a
    partition is a table an application role can be granted, and reading it directly applies its own
    policies, not its parent's. A partition a DBA adds later needs the same (see README)."""
    tables = list(tables)
    by_name = {op.table: op for op in ops if isinstance(op, CreateTable)}
    missing = [t for t in tables if t not in by_name]
    if missing:
        raise BadInput(f"the plan creates no {', '.join(missing)}")
    conn = connect_readonly(Path(source))
    try:
        for stmt in SETUP_SQL:  # the (empty) refusal table a quarantine plan's `where` reads
            conn.execute(stmt)
        replaced: dict[str, tuple[list[Operation], str]] = {}
        for qualified in tables:
            months: set[date] = set()
            for move in (op for op in ops if isinstance(op, RowMove) and op.target == qualified):
                found, nulls = source_months(conn, move.legacy, move.where)
                if nulls:
                    raise BadInput(f"{nulls} rows of {move.legacy} going to {qualified} have no created_at; "
                                   "a partitioned table needs one in every row (it is part of the primary key)")
                months.update(found)
            if today is not None:
                months.add(date(today.year, today.month, 1))
            span = months_between(min(months), max(months)) if months else []
            for _ in range(months_ahead if span else 0):
                span.append(_next_month(span[-1]))
            if len(span) > max_months:
                raise BadInput(f"{qualified}: created_at spans {len(span)} months ({span[0]:%Y-%m} to "
                               f"{span[-1]:%Y-%m}), more than {max_months} partitions")
            replaced[qualified] = partition_operations(qualified, by_name[qualified].sql[0], span)
    finally:
        conn.close()
    out: list[Operation] = []
    for op in ops:
        if isinstance(op, CreateTable) and op.table in replaced:
            parent, *partitions = replaced[op.table][0]
            out += [replace(parent, extra_columns=op.extra_columns), *partitions]
        elif isinstance(op, AddConstraint) and op.table in replaced and op.constraint == "primary_key":
            out.append(replace(op, sql=[replaced[op.table][1]], columns=["id", PARTITION_KEY]))
        elif isinstance(op, EnableRowLevelSecurity) and op.table in replaced:
            out.append(op)
            secured = {o.table for o in ops if isinstance(o, EnableRowLevelSecurity)}
            out += [rls_operation_like(op, p.name) for p in replaced[op.table][0][1:]
                    if isinstance(p, CreatePartition) and p.name not in secured]
        elif isinstance(op, CopyRows) and op.target in replaced:
            out.append(replace(op, sql=[DIALECT.copy_statement(table_sql(op.target, POSTGRES), op.written_columns,
                                                               freeze=False)]))
        else:
            out.append(op)
    return out


# --- keeping up after the cutover (`dpro-migrate partitions`) ---------------------------------------------


@dataclass
class PartitionsResult:
    created: list[str] = field(default_factory=list)  # qualified partitions made
    moved: dict[str, int] = field(default_factory=dict)  # partition -> rows moved into it out of DEFAULT
    in_default: dict[str, int] = field(default_factory=dict)  # parent -> rows left in DEFAULT (no month: NULL)
    tables: list[str] = field(default_factory=list)  # the partitioned tables found


def month_bounds(month: date) -> str:
    return (f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
            f"TO ('{_next_month(month).isoformat()} 00:00:00+00')")


def months_through(today: date, ahead: int) -> list[date]:
    """The current month and `ahead` months after it."""
    out = [date(today.year, today.month, 1)]
    for _ in range(ahead):
        out.append(_next_month(out[-1]))
    return out


def _default_partition(cur, parent: str) -> str | None:
    row = cur.execute(
        "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'", (parent,)).fetchone()
    return row[0] if row else None


def default_rows(cur, parent: str) -> dict[date | None, int]:
    """Rows in the DEFAULT partition of `parent` (as SQL), per month of created_at (UTC)."""
    default = _default_partition(cur, parent)
    if default is None:
        return {}
    key = quote_ident(PARTITION_KEY)
    # 'infinity', and years a Python date cannot hold (BC, after 9999), have no month a partition could be
    # named after: they stay in DEFAULT (counted under None) instead of stopping the maintenance of every month
    month = (f"CASE WHEN {key} >= '0001-01-01 00:00:00+00' AND {key} < '9999-12-01 00:00:00+00' "
             f"THEN date_trunc('month', {key} AT TIME ZONE 'UTC')::date END")
    return {m: n for m, n in cur.execute(f"SELECT {month}, count(*) FROM {default} GROUP BY 1 ORDER BY 1")}


def partitioned_tables(cur) -> list[str]:
    """The tables of PARTITIONABLE that are partitioned in this database (qualified)."""
    out = []
    for qualified in PARTITIONABLE:
        found = cur.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)",
                            (table_sql(qualified, POSTGRES),)).fetchone()
        if found:
            out.append(qualified)
    return out


def _existing_months(cur, parent: str) -> set[date]:
    """Months some partition of `parent` already covers (from its bounds, whatever its name)."""
    rows = cur.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)", (parent,)).fetchall()
    out = set()
    for (bound,) in rows:
        found = _BOUND.search(bound or "")
        if found:
            lo, hi = date.fromisoformat(found.group(1)), date.fromisoformat(found.group(2))
            out.update(m for m in months_between(lo, hi) if m < hi)
    return out


_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})[^']*'\) TO \('(\d{4}-\d{2}-\d{2})")


def _copy_security(cur, parent: str, partition: str) -> None:
    """A partition is a table of its own to a role that reads it directly: it gets its parent's row-level
    security and policies, as apply gave the partitions it made."""
    (rls, force), = cur.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(%s)",
                                (parent,)).fetchall()
    if not rls:
        return
    cur.execute(f"ALTER TABLE {partition} ENABLE ROW LEVEL SECURITY")
    if force:
        cur.execute(f"ALTER TABLE {partition} FORCE ROW LEVEL SECURITY")
    schema, name = parent.replace('"', "").split(".")
    for pol, permissive, roles, cmd, qual, check in cur.execute(
            "SELECT policyname, permissive, roles, cmd, qual, with_check FROM pg_policies "
            "WHERE schemaname = %s AND tablename = %s", (schema, name)).fetchall():
        to = ", ".join("PUBLIC" if r == "public" else quote_ident(r) for r in roles)
        cur.execute(f"CREATE POLICY {quote_ident(pol)} ON {partition} AS {permissive} FOR {cmd} TO {to}"
                    + (f" USING ({qual})" if qual else "") + (f" WITH CHECK ({check})" if check else ""))


def keep_partitions(conn, *, ahead: int, today: date) -> PartitionsResult:
    """In one transaction (the caller's): for each partitioned table, a partition for the current month and
    `ahead` months after it, and for every month whose rows sit in DEFAULT; those rows move into their new
    partition. While DEFAULT holds rows of a month, that month's partition cannot be created (PostgreSQL checks
    DEFAULT for rows it would have to hold), so DEFAULT is detached, the months created, its rows moved through
    the parent into them, and DEFAULT attached again. A move is not an insert or delete of application data:
    the user triggers on the parent do not fire for it (disabled for this transaction only)."""
    result = PartitionsResult()
    with conn.cursor() as cur:
        # partition bounds are read back as text (pg_get_expr) in the session's time zone: in UTC, their months are
        # the months they were made for (west of UTC, July's partition read as starting in June)
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        result.tables = partitioned_tables(cur)
        for qualified in result.tables:
            parent = table_sql(qualified, POSTGRES)
            domain = quote_ident(qualified.split(".")[0])
            cur.execute(f"LOCK TABLE {parent} IN ACCESS EXCLUSIVE MODE")
            have = _existing_months(cur, parent)
            stranded = default_rows(cur, parent)
            wanted = sorted(({*months_through(today, ahead), *(m for m in stranded if m is not None)}) - have)
            if len(have) + len(wanted) > MAX_MONTHS:  # stray dates (an application bug) would make thousands
                raise BadInput(f"{qualified}: its DEFAULT partition holds rows of {sum(m is not None for m in stranded)} months "
                               f"({wanted[0]:%Y-%m} to {wanted[-1]:%Y-%m}); a partition for each would give it "
                               f"{len(have) + len(wanted)} partitions, more than {MAX_MONTHS}: correct or move those "
                               "rows first; nothing was changed")
            default = _default_partition(cur, parent)
            moving = [m for m in wanted if stranded.get(m)]
            if moving and default:
                cur.execute(f"ALTER TABLE {parent} DETACH PARTITION {default}")
            for month in wanted:
                name = partition_name(qualified, month)
                part = f"{domain}.{quote_ident(name)}"
                cur.execute(f"CREATE TABLE {part} PARTITION OF {parent} {month_bounds(month)}")
                _copy_security(cur, parent, part)
                result.created.append(f"{qualified.split('.')[0]}.{name}")
            if moving and default:
                # each trigger's own state comes back after the move: ENABLE ALWAYS / REPLICA are a DBA's choice
                triggers = cur.execute(
                    "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal "
                    "AND tgenabled <> 'D'", (parent,)).fetchall()
                for t, _ in triggers:
                    cur.execute(f"ALTER TABLE {parent} DISABLE TRIGGER {quote_ident(t)}")
                cols = column_list(r[0] for r in cur.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
                    "ORDER BY attnum", (parent,)))
                key = quote_ident(PARTITION_KEY)
                for month in moving:
                    lo, hi = f"{month.isoformat()} 00:00:00+00", f"{_next_month(month).isoformat()} 00:00:00+00"
                    n = cur.execute(f"WITH moved AS (DELETE FROM {default} WHERE {key} >= %s AND {key} < %s RETURNING {cols}) "
                                    f"INSERT INTO {parent} ({cols}) SELECT {cols} FROM moved", (lo, hi)).rowcount
                    result.moved[f"{qualified.split('.')[0]}.{partition_name(qualified, month)}"] = n
                for t, state in triggers:
                    how = {"A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}.get(state, "ENABLE")
                    cur.execute(f"ALTER TABLE {parent} {how} TRIGGER {quote_ident(t)}")
                cur.execute(f"ALTER TABLE {parent} ATTACH PARTITION {default} DEFAULT")
            left = sum(default_rows(cur, parent).values())
            if left:
                result.in_default[qualified] = left
    return result


def partition_maintenance(target: Target, *, ahead: int, today: date | None = None) -> PartitionsResult:
    """`dpro-migrate partitions`: keep_partitions on the target, one transaction, under dpro-migrate's lock."""
    today = today or datetime.now(timezone.utc).date()
    conn = connect_postgres(target.conninfo, target.display)
    committing = False
    try:
        with conn.transaction():
            claim_session(conn, target)
            result = keep_partitions(conn, ahead=ahead, today=today)
            if not result.tables:
                raise BadInput(f"{target.display}: has no table partitioned by month (apply --with partition-by-month)")
            committing = True
        return result
    except psycopg.Error as exc:
        raise classify(exc, conn, display=target.display, work="the partition maintenance",
                       committing=committing) from None
    finally:
        conn.close()
