"""What a SQLite file is: legacy, migrated, partly migrated, or not a DPRO database at all.

Names are compared the way SQLite compares them (case-insensitively): a file's Messages is the legacy
messages table, and an application's System_Migration_Ledger would be dpro-migrate's ledger.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dpro_migrate.dialects import SQLITE, physical_name
from dpro_migrate.errors import BadInput
from dpro_migrate.model.legacy import LegacyDatabase, connect_readonly, fold, read_database
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE, is_dpro_database, load_mapping
from dpro_migrate.model.schema import load_schema
from dpro_migrate.plan.build_sqlite import STAGING_SUFFIX
from dpro_migrate.safety.ledger import LEDGER_COLUMNS
from dpro_migrate.sqlnames import quote_ident

LEDGER = physical_name(LEDGER_TABLE, SQLITE)
QUARANTINE = physical_name(QUARANTINE_TABLE, SQLITE)


def read_file(source: Path) -> LegacyDatabase:
    conn = connect_readonly(source)
    try:
        refuse_foreign_ledger(conn, source)
        return read_database(conn, source)
    finally:
        conn.close()


def refuse_foreign_ledger(conn: sqlite3.Connection, path: Path) -> None:
    """A table with the ledger's name that is not dpro-migrate's ledger (another set of columns): every verb
    would read the application's rows as apply's records. Refused before anything reads it."""
    row = conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
                       (LEDGER,)).fetchone()
    if row is None:
        return
    columns = tuple(fold(r[1]) for r in conn.execute(f"PRAGMA main.table_info({quote_ident(row[0])})"))
    if columns != ("id",) + LEDGER_COLUMNS:
        raise BadInput(f"{path}: table {row[0]} is the application's, not dpro-migrate's ledger (the name dpro-migrate "
                       f"records its work under); rename it (ALTER TABLE {row[0]} RENAME TO ...) before migrating")


def own_name_collisions(db: LegacyDatabase) -> list[str]:
    """Tables of a file not yet migrated that carry a name dpro-migrate creates: the ledger, the quarantine
    (system_quarantine, system_quarantine__<table>), the staging tables (<table>__dpro_new)."""
    out = []
    for name in db.tables:
        folded = fold(name)
        if folded == LEDGER:
            what = "ledger"
        elif folded.startswith(QUARANTINE):
            what = "quarantine"
        elif folded.endswith(STAGING_SUFFIX):
            what = "staging tables"
        else:
            continue
        out.append(f"table {name} has a name dpro-migrate uses for its own {what}; rename it "
                   f"(ALTER TABLE {name} RENAME TO ...) before migrating")
    return out


def domain_tables(db: LegacyDatabase) -> list[str]:
    """Domain tables present; a name shared with a legacy table (marketplace_tools) counts as legacy."""
    legacy = {fold(t) for t in load_mapping().legacy_tables}
    own = {fold(physical_name(t, SQLITE)) for t in load_schema().tables} - legacy
    return sorted(t for t in db.tables if fold(t) in own)


def file_state(db: LegacyDatabase) -> str:
    mapping = load_mapping()
    has_ledger = LEDGER in db.tables
    domain = domain_tables(db)
    own = {fold(physical_name(t, SQLITE)) for t in load_schema().tables}
    legacy = [t for t in mapping.legacy_tables if t in db.tables and fold(t) not in own]
    if has_ledger and not legacy:
        return "migrated"
    if has_ledger or domain:
        return "partly migrated"
    if is_dpro_database(db, mapping):
        return "legacy"
    return "not a DPRO database"


def require_legacy(db: LegacyDatabase) -> None:
    state = file_state(db)
    if state == "not a DPRO database":
        raise BadInput(f"{db.path}: is not a DPRO agent database (no users table with the other legacy tables)")
    if state == "partly migrated":
        raise BadInput(f"{db.path}: is partly migrated (domain tables {', '.join(domain_tables(db)[:3])} ... "
                       "exist beside legacy ones); run `dpro-migrate status`")
    refuse(db, own_name_collisions(db))


def refuse(db: LegacyDatabase, obstacles: list[str], shown: int = 3) -> None:
    """One line: the first obstacles, and how many more there are."""
    if obstacles:
        more = f"; and {len(obstacles) - shown} more" if len(obstacles) > shown else ""
        raise BadInput(f"{db.path}: cannot be migrated: {'; '.join(obstacles[:shown])}{more}; nothing was changed")
