"""Alembic's version table, as far as apply and rollback care: the dpro baseline stamp goes with the schema
it describes, and a database Alembic has moved beyond it is never rolled back silently."""

from __future__ import annotations

import re

import sqlalchemy as sa

from dpro_migrate.dialects import get_dialect
from dpro_migrate.errors import ChecksFailed
from dpro_migrate.sqlnames import quote_ident

VERSION_TABLE = "alembic_version"
# Baseline revision ids are "dpro" + Alembic's 12 hex digits: recognisable without the Alembic directory,
# and within alembic_version's VARCHAR(32).
BASELINE_PREFIX = "dpro"
BASELINE_ID = re.compile(r"^dpro[0-9a-f]{12}$")


def version_table_sql(dialect: str) -> str:
    schema = get_dialect(dialect).version_table_schema
    return f"{quote_ident(schema)}.{quote_ident(VERSION_TABLE)}" if schema else quote_ident(VERSION_TABLE)


def release_baseline(connection, dialect: str) -> bool:
    """For rollback, inside its transaction: drop Alembic's version table if it records only the dpro baseline.

    connection: a SQLAlchemy Connection, or a DB-API connection/cursor with execute() (sqlite3, psycopg).
    Returns True when a table was dropped, False when there was none. Raises ChecksFailed when Alembic has
    moved the database beyond the baseline: a rollback would silently undo those migrations. Needed on
    PostgreSQL because the version table lives in the system schema, which rollback drops (without CASCADE).
    """
    def run(sql: str, fetch: bool = True) -> list:
        execute = connection.exec_driver_sql if isinstance(connection, sa.engine.Connection) else connection.execute
        result = execute(sql)
        return list(result.fetchall()) if fetch else []

    impl = get_dialect(dialect)
    if not run(impl.table_exists_sql(impl.version_table_schema, VERSION_TABLE)):
        return False
    revisions = [r[0] for r in run(f'SELECT "version_num" FROM {version_table_sql(dialect)}')]
    beyond = [r for r in revisions if not BASELINE_ID.match(r or "")]
    if beyond:
        raise ChecksFailed(f"Alembic has migrated this database beyond the dpro baseline (revision "
                           f"{', '.join(beyond)}); a rollback would undo those migrations: nothing was changed")
    run(f"DROP TABLE {version_table_sql(dialect)}", fetch=False)
    return True



