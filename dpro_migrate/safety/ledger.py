"""What apply did, recorded inside the migrated database: the plan (original DDL included), the backup, state."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

from dpro_migrate import __version__
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.program import Statement
from dpro_migrate.sqlnames import quote_ident
from dpro_migrate.dialects import SQLITE, get_dialect, physical_name, table_sql

LEDGER_COLUMNS = ("action", "at", "tool_version", "source", "source_fingerprint", "backup", "state", "plan")


def create_sql(dialect: str) -> str:
    key = get_dialect(dialect).ledger_key
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


def insert_statement(dialect: str, action: str, plan: Plan, backup: str | None, *, state: dict | None = None,
                     state_sql: str | None = None) -> Statement:
    """One ledger row. `state_sql`: an SQL expression that computes the state in the transaction itself."""
    param = get_dialect(dialect).param
    values = [param] * len(LEDGER_COLUMNS)
    params = [action, datetime.now(timezone.utc).isoformat(timespec="seconds"), __version__, plan.source,
              plan.source_fingerprint, backup, json.dumps(state or {}), plan.to_json()]
    if state_sql is not None:
        at = LEDGER_COLUMNS.index("state")
        values[at] = state_sql
        del params[at]
    columns = ", ".join(quote_ident(c) for c in LEDGER_COLUMNS)
    return Statement(f"INSERT INTO {table_sql(LEDGER_TABLE, dialect)} ({columns}) VALUES ({', '.join(values)})",
                     tuple(params), comment="the ledger: what was done, with the plan (rollback's instructions)")


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
