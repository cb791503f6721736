"""What apply did, recorded inside the migrated database: the plan (original DDL included), the backup, state."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

from dpro_migrate import __version__
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.plan.document import Plan
from dpro_migrate.model.schema import SQLITE, physical_name, table_sql

LEDGER_COLUMNS = ("action", "at", "tool_version", "source", "source_fingerprint", "backup", "state", "plan")


def create_sql(dialect: str) -> str:
    key = "INTEGER PRIMARY KEY" if dialect == SQLITE else "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    cols = ", ".join(f'"{c}" TEXT' + (" NOT NULL" if c in ("action", "at") else "") for c in LEDGER_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table_sql(LEDGER_TABLE, dialect)} (\"id\" {key}, {cols})"


@dataclass
class LedgerEntry:
    id: int
    action: str
    at: str
    tool_version: str
    source: str
    source_fingerprint: str
    backup: str | None
    state: dict
    plan: Plan | None


def entry_values(action: str, plan: Plan, backup: str | None, state: dict) -> tuple:
    return (action, datetime.now(timezone.utc).isoformat(timespec="seconds"), __version__, plan.source,
            plan.source_fingerprint, backup, json.dumps(state), plan.to_json())


def insert_sql(dialect: str) -> str:
    marks = ", ".join(["?" if dialect == SQLITE else "%s"] * len(LEDGER_COLUMNS))
    return f"INSERT INTO {table_sql(LEDGER_TABLE, dialect)} ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in LEDGER_COLUMNS)}) VALUES ({marks})"


def _entry(row) -> LedgerEntry:
    id_, action, at, version, source, fp, backup, state, plan = row
    return LedgerEntry(id_, action, at, version, source, fp, backup, json.loads(state or "{}"),
                       Plan.from_json(plan) if plan else None)


def sqlite_has_ledger(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?",
                        (physical_name(LEDGER_TABLE, SQLITE),)).fetchone() is not None


def read_entries(conn, dialect: str = SQLITE) -> list[LedgerEntry]:
    cols = ", ".join(f'"{c}"' for c in ("id",) + LEDGER_COLUMNS)
    rows = conn.execute(f"SELECT {cols} FROM {table_sql(LEDGER_TABLE, dialect)} ORDER BY \"id\"").fetchall()
    return [_entry(r) for r in rows]


def latest_apply(entries: list[LedgerEntry]) -> LedgerEntry | None:
    return next((e for e in reversed(entries) if e.action == "apply"), None)
