"""Connection settings an application needs on a database dpro-migrate migrated, on each target.

    from dpro_baseline.connections import configure
    engine = configure(sa.create_engine(url))

SQLite: PRAGMA foreign_keys = ON on every connection (SQLite's default is OFF: without it no foreign key is
checked and no ON DELETE CASCADE / SET NULL runs). PostgreSQL: TimeZone UTC on every connection (a naive
datetime is then UTC, as on SQLite; timestamptz values come back in UTC). Booleans, JSON and search_path need
nothing: the baseline's tables are schema-qualified (iam.users), and its types are the database's own.
"""

from __future__ import annotations

import sqlalchemy as sa

# Per database (SQLAlchemy's name): what each new DB-API connection runs.
ON_CONNECT: dict[str, tuple[str, ...]] = {
    "sqlite": ("PRAGMA foreign_keys = ON",),
    "postgresql": ("SET TIME ZONE 'UTC'",),
}


def configure(engine: sa.engine.Engine) -> sa.engine.Engine:
    """Run ON_CONNECT's statements on each connection the engine opens; return the engine."""
    statements = ON_CONNECT.get(engine.dialect.name, ())

    @sa.event.listens_for(engine, "connect")
    def _settings(dbapi_connection, connection_record):
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        dbapi_connection.commit()  # a SET inside the driver's implicit transaction would be rolled back with it

    return engine
