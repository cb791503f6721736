"""Monthly range partitions on PostgreSQL (seed 000): communication.messages and system.audit_logs."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Iterable

from dpro_migrate.dialects import POSTGRES, get_dialect, table_sql
from dpro_migrate.errors import BadInput
from dpro_migrate.features.rls import rls_operation_like
from dpro_migrate.model.legacy import connect_readonly
from dpro_migrate.plan.operations import (AddConstraint, CopyRows, CreatePartition, CreateTable, EnableRowLevelSecurity,
                                          Operation, RowMove)
from dpro_migrate.plan.preflight import SETUP_SQL
from dpro_migrate.sqlnames import quote_ident

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
                   max_months: int = MAX_MONTHS, months_ahead: int = 0) -> list[Operation]:
    """A PostgreSQL plan's operations with `tables` partitioned by month.

    Each table's CreateTable is replaced, in place, by partition_operations() over the months of its
    source rows (min to max created_at of the legacy rows its moves take), and its primary key becomes
    PRIMARY KEY (id, created_at). Refuses (BadInput) when a source row has no created_at (the partition
    key is part of the primary key, so NOT NULL: apply would fail) or the rows span more than max_months
    months. `months_ahead` adds partitions for that many months after the last one (rows written after
    the cutover would otherwise all land in the DEFAULT partition, and a month's partition cannot be
    created later while DEFAULT holds rows of that month).

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
