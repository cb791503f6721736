"""Connections for the handoff: a SQLAlchemy URL from what a user passes, a Connection from a Connection, an
Engine, a URL or a SQLite path, and what the ledger in the database says the last apply did."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dpro_migrate.dialects import POSTGRES, SQLITE, get_dialect, physical_name, table_sql
from dpro_migrate.errors import BadInput
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.plan.document import Plan
from dpro_migrate.handoff.standalone.runtime import database_url


def sqlalchemy_url(url: str | Path) -> str:
    """A URL SQLAlchemy can open with what dpro-migrate installs: postgresql:// -> postgresql+psycopg://
    (SQLAlchemy's default PostgreSQL driver is psycopg2); a bare file path -> sqlite:///path. The environment's
    own rule (standalone/runtime.py), so dpro-migrate and Alembic open the same database."""
    try:
        return database_url(url)
    except sa.exc.ArgumentError:
        raise BadInput("not a database URL (postgresql://... or sqlite:///path)") from None


def database_dialect(backend: str) -> str:
    """Our dialect for a database SQLAlchemy calls `backend` (SQLAlchemy's names are ours)."""
    try:
        return get_dialect(backend).name
    except BadInput:
        raise BadInput(f"unsupported database {backend}: only PostgreSQL and SQLite") from None


def dialect_of(bind: sa.engine.Connection, requested: str | None = None) -> str:
    """The dialect of a connected database; BadInput when it is not the one requested (None: any)."""
    live = database_dialect(bind.dialect.name)
    if requested is not None and get_dialect(requested).name != live:
        raise BadInput(f"the database is {live}, not {requested}")
    return live


# --- opening a database -------------------------------------------------------------------------


def _sqlite_file_engine(url: sa.engine.URL, read_only: bool) -> sa.engine.Engine:
    path = Path(url.database or "")
    if not url.database or not path.is_file():
        raise BadInput(f"{url.database or 'sqlite://'}: no such SQLite file")
    # Opened by sqlite3 itself (no URL round trip for odd file names); read-only when only looking,
    # so the file is never created or written.
    target = f"{path.resolve().as_uri()}?mode=ro" if read_only else str(path)
    return sa.create_engine("sqlite://", poolclass=sa.pool.NullPool,
                            creator=lambda: sqlite3.connect(target, uri=read_only))


def _server_engine(url: sa.engine.URL, read_only: bool) -> sa.engine.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


# How each dialect's database is opened from a URL: a SQLite file must exist; a server is asked.
ENGINES: dict[str, Callable[[sa.engine.URL, bool], sa.engine.Engine]] = {
    SQLITE: _sqlite_file_engine,
    POSTGRES: _server_engine,
}


class Bind:
    """A Connection from a Connection (caller's), an Engine, a URL or a SQLite path (ours: disposed on exit)."""

    def __init__(self, connection_or_url: Any, *, read_only: bool):
        self.given = connection_or_url
        self.read_only = read_only
        self.engine: sa.engine.Engine | None = None
        self.conn: sa.engine.Connection | None = None

    def __enter__(self) -> sa.engine.Connection:
        given = self.given
        if isinstance(given, sa.engine.Connection):
            return given
        if isinstance(given, sa.engine.Engine):
            self.conn = given.connect()
            return self.conn
        url = sa.engine.make_url(sqlalchemy_url(given))
        self.engine = ENGINES[database_dialect(url.get_backend_name())](url, self.read_only)
        try:
            self.conn = self.engine.connect()
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[-1] if str(exc.orig).strip() else "connection failed"
            raise BadInput(f"cannot connect to {url.render_as_string(hide_password=True)}: {reason}") from None
        return self.conn

    def __exit__(self, *exc_info) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.engine is not None:
            self.engine.dispose()


# --- the ledger ---------------------------------------------------------------------------------


def has_table(conn: sa.engine.Connection, dialect: str, qualified: str) -> bool:
    schema_name, _, name = physical_name(qualified, dialect).rpartition(".")
    return sa.inspect(conn).has_table(name, schema=schema_name or None)


def applied_plan(conn: sa.engine.Connection, dialect: str | None = None):
    """The plan of the last apply, from the ledger in the database; None when there is none."""

    dialect = dialect or dialect_of(conn)
    if not has_table(conn, dialect, LEDGER_TABLE):
        return None
    row = conn.exec_driver_sql(
        f"SELECT \"plan\" FROM {table_sql(LEDGER_TABLE, dialect)} WHERE \"action\" = 'apply' ORDER BY \"id\" DESC LIMIT 1"
    ).fetchone()
    return Plan.from_json(row[0]) if row and row[0] else None
