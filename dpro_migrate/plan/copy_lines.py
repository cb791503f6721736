"""The SQL that makes SQLite produce COPY lines for PostgreSQL: one finished CSV line per row.

Conversions are declared here, once, per target type class, and the plan records them.
"""

from __future__ import annotations

import re

from dpro_migrate.sqlnames import quote_ident

# Declared conversions, by target type class (shown in the plan).
CONVERSIONS = {
    "bigint": "integer, unchanged",
    "double": "real, every bit kept (printed with 21 significant digits)",
    "boolean": "1/0 -> true/false",
    "timestamptz": "text 'YYYY-MM-DD HH:MM:SS' read as UTC -> timestamptz",
    "jsonb": "JSON text -> jsonb (keys reordered, whitespace normalised by PostgreSQL)",
    "text": "text, unchanged",
    "bytea": "blob -> bytea",
}


def type_class(pg_type: str) -> str:
    t = pg_type.upper()
    if t in ("BIGINT", "INT", "INTEGER", "SMALLINT"):
        return "bigint"
    if t.startswith("DOUBLE") or t in ("REAL", "FLOAT"):
        return "double"
    if t == "BOOLEAN":
        return "boolean"
    if t.startswith("TIMESTAMP"):
        return "timestamptz"
    if t in ("JSONB", "JSON"):
        return "jsonb"
    if t == "BYTEA":
        return "bytea"
    return "text"


def varchar_length(pg_type: str) -> int | None:
    m = re.match(r"VARCHAR\((\d+)\)", pg_type.upper())
    return int(m.group(1)) if m else None


def escaped_sql(x: str) -> str:
    """A SQLite expression: the text of x escaped for COPY's text format."""
    return (f"replace(replace(replace(replace(CAST({x} AS TEXT), '\\', '\\\\'), char(10), '\\n'), "
            f"char(13), '\\r'), char(9), '\\t')")


# The one timestamp form that round-trips: PostgreSQL reads others too, but as something else.
TIMESTAMP_GLOB = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]'"

# A field no column accepts: the extra delimiter makes the line one column too long, which COPY always
# rejects ("extra data after last expected column"), whatever the column's type or the database's encoding.
REFUSED_FIELD = "'refused,by dpro-migrate'"


def field_sql(column: str, cls: str) -> str:
    """A SQLite expression giving one value as a CSV field for COPY: NULL for NULL (printed as the unquoted
    empty field COPY reads as NULL), text always quoted (so '' stays an empty string), numbers bare.

    Each class passes exactly the storage classes that convert without change and turns anything else into
    REFUSED_FIELD, so the server refuses the load rather than convert silently (a boolean 2 or 'yes', a
    timestamp in another form, a text ' 12' read as a number, a blob read as text). What passes here and still
    breaks a rule (a length, invalid JSON, 2024-02-30) the server refuses by itself.
    Text with a NUL is refused too: PostgreSQL cannot store it, and printf() would cut it short."""
    x = quote_ident(column)
    if cls == "bigint":
        return f"CASE typeof({x}) WHEN 'integer' THEN {x} WHEN 'null' THEN NULL ELSE {REFUSED_FIELD} END"
    if cls == "double":
        return (f"CASE typeof({x}) WHEN 'real' THEN printf('%!.20e', {x}) WHEN 'integer' THEN {x} "
                f"WHEN 'null' THEN NULL ELSE {REFUSED_FIELD} END")
    if cls == "boolean":
        return (f"CASE WHEN typeof({x}) = 'integer' AND {x} IN (0, 1) THEN iif({x}, 't', 'f') "
                f"WHEN {x} IS NULL THEN NULL ELSE {REFUSED_FIELD} END")
    if cls == "timestamptz":  # the canonical form only: PostgreSQL would read other forms, differently
        return (f"CASE WHEN typeof({x}) = 'text' AND {x} GLOB {TIMESTAMP_GLOB} THEN {x} "
                f"WHEN {x} IS NULL THEN NULL ELSE {REFUSED_FIELD} END")
    if cls == "bytea":
        return f"CASE typeof({x}) WHEN 'blob' THEN '\\x' || hex({x}) WHEN 'null' THEN NULL ELSE {REFUSED_FIELD} END"
    return (f"CASE WHEN typeof({x}) = 'text' AND instr({x}, char(0)) = 0 THEN '\"' || replace({x}, '\"', '\"\"') || '\"' "
            f"WHEN {x} IS NULL THEN NULL WHEN typeof({x}) = 'integer' THEN {x} "
            f"WHEN typeof({x}) = 'real' THEN printf('%!.20e', {x}) ELSE {REFUSED_FIELD} END")


def copy_lines_sql(table: str, columns: list[tuple[str, str]], where: str | None) -> str:
    """SELECT of (id, one CSV line per row) from the legacy table: one printf() per row, which builds the line
    once where a chain of || copies it once per field."""
    template = ",".join(["%s"] * len(columns))
    fields = ", ".join(field_sql(name, cls) for name, cls in columns)
    clause = f" WHERE {where}" if where else ""
    return f"SELECT \"id\", printf('{template}' || char(10), {fields}) AS line FROM {quote_ident(table)}{clause}"
