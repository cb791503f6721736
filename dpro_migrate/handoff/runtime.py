"""What the env.py that alembic_init writes calls while Alembic runs: the engine it migrates with and the
safeguards of its migration context, each as its database needs them (batch_sqlite.py for SQLite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from dpro_migrate.dialects import SQLITE
from dpro_migrate.handoff import batch_sqlite
from dpro_migrate.handoff.connect import database_dialect, sqlalchemy_url

# Per dialect: how the engine is set up (SQLite: one real transaction per migration, DDL included) and what
# the migration context gets (SQLite: ALTER in place where it can, and a batch rebuild that keeps triggers,
# AUTOINCREMENT and indexes). A dialect without an entry needs nothing.
ENGINE_SETUP: dict[str, Callable[[sa.engine.Engine], sa.engine.Engine]] = {SQLITE: batch_sqlite.transactional}
CONTEXT_SETUP: dict[str, Callable[[Any], None]] = {SQLITE: batch_sqlite.keep_what_apply_built}


def migration_engine(url: str) -> sa.engine.Engine:
    """The engine Alembic migrates with (url as the user wrote it: sqlalchemy_url() picks the driver)."""
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    setup = ENGINE_SETUP.get(database_dialect(engine.dialect.name))
    return setup(engine) if setup else engine


def prepare_context(migration_context) -> None:
    """After context.configure(): the migration context's safeguards, for its database."""
    setup = CONTEXT_SETUP.get(database_dialect(migration_context.dialect.name))
    if setup:
        setup(migration_context)
