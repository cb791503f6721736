"""What a SQLite file is: legacy, migrated, partly migrated, or not a DPRO database at all."""

from __future__ import annotations

from pathlib import Path

from dpro_migrate.dialects import SQLITE, physical_name
from dpro_migrate.errors import BadInput
from dpro_migrate.model.legacy import LegacyDatabase, connect_readonly, read_database
from dpro_migrate.model.mapping import LEDGER_TABLE, is_dpro_database, load_mapping
from dpro_migrate.model.schema import load_schema


def read_file(source: Path) -> LegacyDatabase:
    conn = connect_readonly(source)
    try:
        return read_database(conn, source)
    finally:
        conn.close()


def domain_tables(db: LegacyDatabase) -> list[str]:
    """Domain tables present; a name shared with a legacy table (marketplace_tools) counts as legacy."""
    own = {physical_name(t, SQLITE) for t in load_schema().tables} - set(load_mapping().legacy_tables)
    return sorted(t for t in db.tables if t in own)


def file_state(db: LegacyDatabase) -> str:
    mapping = load_mapping()
    has_ledger = physical_name(LEDGER_TABLE, SQLITE) in db.tables
    domain = domain_tables(db)
    own = {physical_name(t, SQLITE) for t in load_schema().tables}
    legacy = [t for t in mapping.legacy_tables if t in db.tables and t not in own]
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
