"""How the environment connects and migrates: the engine, and the migration context's safeguards per database.

The URL as the user wrote it works: postgresql:// means psycopg 3 (SQLAlchemy's default driver for it is
psycopg2), a bare file path means that SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import sqlite_batch

# The driver dpro-migrate installs, where SQLAlchemy's default for the database is another one (psycopg2).
DRIVERS = {"postgresql": "postgresql+psycopg"}

# Per database (SQLAlchemy's name): how the engine is set up (SQLite: one real transaction per migration,
# DDL included) and what the migration context gets (SQLite: ALTER in place where it can, and a batch
# rebuild that keeps triggers, AUTOINCREMENT and indexes). A database without an entry needs nothing.
ENGINE_SETUP: dict[str, Callable[[sa.engine.Engine], sa.engine.Engine]] = {"sqlite": sqlite_batch.transactional}
CONTEXT_SETUP: dict[str, Callable[[Any], None]] = {"sqlite": sqlite_batch.keep_what_apply_built}


def database_url(url: str | Path) -> str:
    """A URL SQLAlchemy opens with psycopg 3 for postgresql://; a bare file path as sqlite:///path.
    Raises sqlalchemy.exc.ArgumentError for text that is no URL."""
    text = str(url)
    if "://" not in text:
        return sa.engine.URL.create("sqlite", database=str(Path(text).resolve())).render_as_string()
    parsed = sa.engine.make_url(text)
    parsed = parsed.set(drivername=DRIVERS.get(parsed.drivername, parsed.drivername))
    return parsed.render_as_string(hide_password=False)


def migration_engine(url: str) -> sa.engine.Engine:
    """The engine Alembic migrates with."""
    engine = sa.create_engine(database_url(url), poolclass=sa.pool.NullPool)
    setup = ENGINE_SETUP.get(engine.dialect.name)
    return setup(engine) if setup else engine


def prepare_context(migration_context) -> None:
    """After context.configure(): the migration context's safeguards, for its database."""
    setup = CONTEXT_SETUP.get(migration_context.dialect.name)
    if setup:
        setup(migration_context)
