"""Logical identity of two SQLite files: same objects, same rows, same values with the same storage classes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dpro_migrate.model.legacy import connect_readonly
from dpro_migrate.sqlnames import quote_ident


def logical_differences(a: Path, b: Path, limit: int = 20) -> list[str]:
    conn = connect_readonly(Path(a))
    try:
        conn.execute("ATTACH DATABASE ? AS other", (Path(b).resolve().as_uri() + "?mode=ro",))
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
            rowid = "" if name == "sqlite_sequence" else "rowid, "
            # hex() of text keeps NUL bytes and exact encoding in the comparison.
            select = ", ".join(
                f"typeof({quote_ident(c)}), CASE typeof({quote_ident(c)}) WHEN 'text' THEN hex({quote_ident(c)}) "
                f"ELSE {quote_ident(c)} END" for c in cols)
            try:
                n = conn.execute(
                    f"SELECT count(*) FROM (SELECT {rowid}{select} FROM main.{quote_ident(name)} EXCEPT "
                    f"SELECT {rowid}{select} FROM other.{quote_ident(name)})").fetchone()[0]
                n += conn.execute(
                    f"SELECT count(*) FROM (SELECT {rowid}{select} FROM other.{quote_ident(name)} EXCEPT "
                    f"SELECT {rowid}{select} FROM main.{quote_ident(name)})").fetchone()[0]
            except sqlite3.OperationalError:  # WITHOUT ROWID tables
                n = conn.execute(
                    f"SELECT count(*) FROM (SELECT {select} FROM main.{quote_ident(name)} EXCEPT "
                    f"SELECT {select} FROM other.{quote_ident(name)})").fetchone()[0]
            if n:
                out.append(f"rows differ: {name} ({n})")
        return out[:limit]
    finally:
        conn.close()
