"""The target databases: one module per dialect behind one interface (dialects/base.py).

The functions here take the dialect's name as a plan records it, and ask the dialect: callers never
branch on which database it is.
"""

from __future__ import annotations

from sqlglot import exp

from dpro_migrate.dialects.base import DIALECTS, Dialect, ViewPart, get_dialect
from dpro_migrate.dialects.postgresql import PostgresDialect
from dpro_migrate.dialects.sqlite import SQLiteDialect
from dpro_migrate.model.schema import Index, Table
from dpro_migrate.types import pg_type_for_legacy  # re-exported: handoff/environment.py reads it here

SQLITE = SQLiteDialect.name
POSTGRES = PostgresDialect.name

__all__ = ["DIALECTS", "Dialect", "ViewPart", "get_dialect", "SQLITE", "POSTGRES", "physical_name", "table_sql",
           "create_table_sql", "create_index_sql", "expression_sql", "predicate_sql", "pg_type_for_legacy"]


def physical_name(qualified: str, dialect: str) -> str:
    """iam.users is iam_users on SQLite, iam.users (schema iam) on PostgreSQL."""
    return get_dialect(dialect).physical_name(qualified)


def table_sql(qualified: str, dialect: str) -> str:
    return get_dialect(dialect).table_sql(qualified)


def create_table_sql(table: Table, dialect: str, extra_columns: list[tuple[str, str]] = (), *,
                     constraints: bool = True) -> str:
    return get_dialect(dialect).create_table_sql(table, extra_columns, constraints=constraints)


def create_index_sql(index: Index, dialect: str) -> str:
    return get_dialect(dialect).create_index_sql(index)


def predicate_sql(where: exp.Where, dialect: str) -> str:
    """The body of a partial index's WHERE as the dialect's CREATE INDEX writes it."""
    return get_dialect(dialect).predicate_sql(where)


def expression_sql(node: exp.Expression, dialect: str) -> str:
    return get_dialect(dialect).render(node)
