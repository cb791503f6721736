"""Archive tables (seed 000) as the plan, verify and rollback see them: a live table and its archive are one."""

from __future__ import annotations

from typing import Sequence

from dpro_migrate.dialects import table_sql
from dpro_migrate.sqlnames import column_list

SUFFIX = "_archive"


def archive_of(qualified: str) -> str:
    """communication.messages -> communication.messages_archive."""
    return qualified + SUFFIX


def archive_index_name(qualified: str) -> str:
    """The archive's index on created_at: communication.messages -> idx_messages_archive_created_at."""
    return f"idx_{qualified.split('.', 1)[1]}{SUFFIX}_created_at"


def rows_with_archive_sql(qualified: str, columns: Sequence[str], dialect: str, table_expr: str | None = None,
                          *, also: str = "") -> str:
    """A FROM-able subquery: the live table's rows and its archive's, as one table (for verify's comparison,
    PostgreSQL's stranded-row check and write-back). `table_expr` overrides the live table's SQL name
    (SQLite's main.<name>, a staging name); `also`: more to select from each (a system column)."""
    cols = column_list(columns) + (f", {also}" if also else "")
    live = table_expr or table_sql(qualified, dialect)
    arch = table_sql(archive_of(qualified), dialect)
    if table_expr and table_expr.startswith("main."):
        arch = f"main.{arch}"
    return f"(SELECT {cols} FROM {live} UNION ALL SELECT {cols} FROM {arch})"
