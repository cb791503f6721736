"""Logical identity of two SQLite files: same objects, same rows, same values with the same storage classes.

Rows are compared as multisets, in both directions: a duplicate row counts, and so does a row only in the
second file. Values are compared by storage class and exact bytes (text as hex: NUL bytes, encodings and
collations such as NOCASE cannot hide a difference).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dpro_migrate.model.legacy import connect_readonly
from dpro_migrate.sqlnames import quote_ident, quote_literal

# Tables whose rowid means nothing: sqlite_sequence is keyed by name.
NO_ROWID_IDENTITY = {"sqlite_sequence"}


def attach_readonly(conn: sqlite3.Connection, path: Path, name: str) -> None:
    """ATTACH another file read-only. A view of that file written with `main.` qualifiers would make SQLite
    refuse its whole schema ("cannot reference objects in database main"); with writable_schema on while it
    is read, such a view is skipped instead. Only its tables are read here, never its views."""
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute(f"ATTACH DATABASE ? AS {quote_ident(name)}", (Path(path).resolve().as_uri() + "?mode=ro",))
        conn.execute(f"SELECT count(*) FROM {quote_ident(name)}.sqlite_master").fetchone()  # read the schema now
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


def row_image(columns: list[str], rowid: bool = False) -> list[str]:
    """What identifies a row's content exactly: each value's storage class and value (text as hex)."""
    parts = ["rowid"] if rowid else []
    for c in columns:
        q = quote_ident(c)
        parts += [f"typeof({q})", f"CASE typeof({q}) WHEN 'text' THEN hex({q}) ELSE {q} END"]
    return parts or ["1"]


def differing_rows(conn: sqlite3.Connection, first: str, second: str, columns: list[str], *,
                   rowid: bool = False) -> int:
    """Rows of `first` not in `second` plus rows of `second` not in `first`, counted as multisets (a
    duplicate counts); `first`, `second` are table references such as main."t" and bak."t"."""
    image = row_image(columns, rowid)
    keys = ", ".join(f"k{i}" for i in range(len(image)))
    labelled = ", ".join(f"{e} AS k{i}" for i, e in enumerate(image))
    return conn.execute(
        f"SELECT coalesce(sum(abs(n)), 0) FROM (SELECT sum(n) AS n FROM (SELECT {labelled}, 1 AS n FROM {first} "
        f"UNION ALL SELECT {labelled}, -1 FROM {second}) GROUP BY {keys} HAVING sum(n) <> 0)").fetchone()[0]


def has_rowid(conn: sqlite3.Connection, schema: str, table: str) -> bool:
    """An ordinary rowid table (not WITHOUT ROWID, not virtual) whose rowid is part of its rows' identity."""
    if table in NO_ROWID_IDENTITY:
        return False
    row = conn.execute(f"PRAGMA {quote_ident(schema)}.table_list({quote_literal(table)})").fetchone()
    return row is not None and row[2] == "table" and not row[4]


def logical_differences(a: Path, b: Path, limit: int = 20) -> list[str]:
    conn = connect_readonly(Path(a))
    try:
        attach_readonly(conn, Path(b), "other")
        out: list[str] = []
        master = "SELECT type, name, tbl_name, sql FROM {}.sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%'"
        for left, right, label in (("main", "other", "only in first"), ("other", "main", "only in second")):
            for row in conn.execute(f"{master.format(left)} EXCEPT {master.format(right)}"):
                out.append(f"{label}: {row[0]} {row[1]}")
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' INTERSECT "
            "SELECT name FROM other.sqlite_master WHERE type = 'table'")]
        for name in tables:
            cols = [r[1] for r in conn.execute(f"PRAGMA main.table_info({quote_ident(name)})")]
            first, second = f"main.{quote_ident(name)}", f"other.{quote_ident(name)}"
            rowid = has_rowid(conn, "main", name) and has_rowid(conn, "other", name)
            try:
                n = differing_rows(conn, first, second, cols, rowid=rowid)
            except sqlite3.OperationalError as exc:  # e.g. a virtual table whose module this build lacks
                out.append(f"rows differ: {name} (cannot be compared: {exc})")
                continue
            if n:
                out.append(f"rows differ: {name} ({n})")
        return out[:limit]
    finally:
        conn.close()
