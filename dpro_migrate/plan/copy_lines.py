"""The SQL that makes SQLite produce COPY lines for PostgreSQL: one finished CSV line per row.

Each field is its column's type class's COPY encoder, and the plan records the class's conversion (types.py).
"""

from __future__ import annotations

from dpro_migrate.sqlnames import quote_ident
from dpro_migrate.types import TypeClass


def escaped_sql(x: str) -> str:
    """A SQLite expression: the text of x escaped for COPY's text format."""
    return (f"replace(replace(replace(replace(CAST({x} AS TEXT), '\\', '\\\\'), char(10), '\\n'), "
            f"char(13), '\\r'), char(9), '\\t')")


def copy_lines_sql(table: str, columns: list[tuple[str, TypeClass]], where: str | None,
                   derived: dict[str, str] | None = None) -> str:
    """SELECT of (id, one CSV line per row) from the legacy table: one printf() per row, which builds the line
    once where a chain of || copies it once per field (each field is its type class's COPY encoder). `derived`
    columns (computed from the legacy row) come from a subquery under the table's name, which SQLite flattens."""
    template = ",".join(["%s"] * len(columns))
    fields = ", ".join(cls.copy_field(name) for name, cls in columns)
    clause = f" WHERE {where}" if where else ""
    source = quote_ident(table)
    if derived:
        computed = ", ".join(f"{e} AS {quote_ident(c)}" for c, e in derived.items())
        source = f"(SELECT *, {computed} FROM {source}) AS {source}"
    return f"SELECT \"id\", printf('{template}' || char(10), {fields}) AS line FROM {source}{clause}"
