"""What a legacy file holds that a migration in place cannot carry through apply and rollback exactly.

Each is refused before anything changes, with one line that names the object and what the DBA can do:
better a file left as it was than one that verify, rollback or status cannot work on.
"""

from __future__ import annotations

import re

from dpro_migrate.model.legacy import LegacyDatabase, connect_readonly, fold
from dpro_migrate.model.mapping import Resolution
from dpro_migrate.model.schema import TargetSchema
from dpro_migrate.sqlnames import quote_ident

# The words of a CREATE VIRTUAL TABLE's arguments: names bare or quoted ('...', "...", [...], `...`).
_WORD = re.compile(r"'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"|\[([^\]]*)\]|`((?:[^`]|``)*)`|([A-Za-z_][\w$]*)")


def _words(text: str) -> set[str]:
    return {fold(next(g for g in m.groups() if g is not None)) for m in _WORD.finditer(text)}


def _module_arguments(sql: str) -> str:
    head = re.search(r"\bUSING\s+\w+\s*\(", sql, re.I)
    return sql[head.end():] if head else ""


def in_place_obstacles(legacy: LegacyDatabase, res: Resolution, schema: TargetSchema) -> list[str]:
    """Why the file cannot be migrated in place (empty: it can). The legacy tables apply replaces must be
    ordinary rowid tables whose id is the rowid (rollback puts rows back by id: any other rowid would be
    renumbered); STRICT is carried, and so is a generated column unless its name is taken by a column of the
    domain table. Nothing else in the file may depend on the legacy tables by name."""
    moved = {fold(t) for t in res.legacy_tables}
    out = []
    for name in res.legacy_tables:
        table = legacy.tables[name]
        if table.without_rowid:
            out.append(f"legacy table {name} is WITHOUT ROWID, which dpro-migrate cannot carry; rebuild it as an "
                       "ordinary table with `id INTEGER PRIMARY KEY` before migrating")
        elif not table.rowid_alias:
            pk = [c for c in table.columns if c.pk]
            declared = ", ".join(f"{c.name} {c.decl_type}".strip() for c in pk) or "none"
            out.append(f"legacy table {name}: its id is not an INTEGER PRIMARY KEY (primary key: {declared}), so "
                       "its rowids and id values cannot be carried; rebuild it with `id INTEGER PRIMARY KEY` before "
                       "migrating")
        canonical = {fold(c) for m in res.moves_from(name) for c in schema.table(m.target).column_names}
        for column in table.generated:
            if fold(column.name) in canonical or not column.expression:
                out.append(f"legacy table {name}: column {column.name} is generated (GENERATED ALWAYS AS) and its "
                           "domain table has a column of that name; drop it (ALTER TABLE "
                           f"{name} DROP COLUMN {column.name}) before migrating and add it back after")
    for name, table in legacy.tables.items():
        if fold(name) in moved:
            continue
        if table.kind == "virtual" and moved & _words(_module_arguments(table.sql or "")):
            read = sorted(t for t in res.legacy_tables if fold(t) in _words(_module_arguments(table.sql)))
            out.append(f"virtual table {name} reads the legacy table {', '.join(read)}, which apply replaces; "
                       f"drop {name} (and the triggers that keep it in sync) before migrating and recreate it "
                       "after")
        for parent in table.references:
            if fold(parent) in moved:
                out.append(f"table {name}: its FOREIGN KEY references the legacy table {parent}, which apply "
                           f"replaces; rebuild {name} without that foreign key before migrating")
    return out


# PostgreSQL cuts a longer identifier to NAMEDATALEN - 1 bytes, silently: two names could become one.
PG_MAX_IDENTIFIER_BYTES = 63
# Every PostgreSQL table has these columns already: CREATE TABLE refuses a column of one of these names.
PG_SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})


def postgres_obstacles(legacy: LegacyDatabase, res: Resolution, schema: TargetSchema) -> list[str]:
    """Why the file cannot be loaded into PostgreSQL (empty: it can): a name PostgreSQL would cut short, ids its
    primary key refuses (rows are told apart by id, so such a row cannot be quarantined either), and a
    generated column (its SQLite expression is not PostgreSQL's; carrying its values as a plain column would
    leave the domain table with a column rollback cannot write back)."""
    out = []
    for move in res.moves:
        for column, _ in move.extra_columns:
            if len(column.encode()) > PG_MAX_IDENTIFIER_BYTES:
                out.append(f"legacy table {move.legacy}: column {column} is {len(column.encode())} bytes long and "
                           f"PostgreSQL cuts names to {PG_MAX_IDENTIFIER_BYTES}; rename it (ALTER TABLE {move.legacy} "
                           "RENAME COLUMN ... TO ...) before migrating")
            if column in PG_SYSTEM_COLUMNS:
                out.append(f"legacy table {move.legacy}: column {column} has the name of a PostgreSQL system column, "
                           f"which no table may use; rename it (ALTER TABLE {move.legacy} RENAME COLUMN {column} "
                           "TO ...) before migrating")
    out += _ids_postgres_refuses(legacy, res)
    for name in res.legacy_tables:
        for column in legacy.tables[name].generated:
            out.append(f"legacy table {name}: column {column.name} is generated (GENERATED ALWAYS AS "
                       f"({' '.join(column.expression.split())})), which dpro-migrate does not carry to PostgreSQL; drop it (ALTER TABLE "
                       f"{name} DROP COLUMN {column.name}) before migrating and add it to the domain table after")
    return out


def _ids_postgres_refuses(legacy: LegacyDatabase, res: Resolution) -> list[str]:
    """A legacy table whose id is not its rowid (INTEGER PRIMARY KEY) may hold an id twice, or NULL."""
    loose = [name for name in res.legacy_tables if not legacy.tables[name].rowid_alias]
    if not loose:
        return []
    out = []
    conn = connect_readonly(legacy.path)
    try:
        for name in loose:
            t = quote_ident(name)
            null, repeated = conn.execute(
                f'SELECT (SELECT count(*) FROM {t} WHERE "id" IS NULL), '
                f'(SELECT count(*) FROM (SELECT 1 FROM {t} WHERE "id" IS NOT NULL GROUP BY "id" HAVING count(*) > 1))'
            ).fetchone()
            if null or repeated:
                out.append(f"legacy table {name}: its id is not an INTEGER PRIMARY KEY and {repeated} ids appear more "
                           f"than once, {null} rows have none; PostgreSQL's primary key takes each id once: give those "
                           "rows ids of their own before migrating")
    finally:
        conn.close()
    return out
