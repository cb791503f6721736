"""Alembic's comparison options for a database dpro-migrate migrated: what Alembic compares and how.

include_name: the schemas (PostgreSQL: the seven domain schemas and any your models name; SQLite: its one
database) and every table in them but those apply built that Alembic must leave alone (EXCLUDED in env.py,
each with its reason). include_object: a partition of a table apply partitioned is that table's rows, never a
table of its own. Types and server defaults are compared; named CHECK constraints too (Alembic >= 1.19.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from .types import UTCTimestamp

VERSION_TABLE = "alembic_version"

AUTOGENERATE_PLUGINS = [
    "alembic.autogenerate.*",
    # Compares named CHECK constraints by name (added, removed; not their expressions). Opt-in since Alembic
    # 1.19.2 ("recommended only for schemas that name all constraints", which the baseline and its naming
    # convention do). Without it a renamed or dropped CHECK is invisible to autogenerate.
    "alembic.ext.checkconstraint_byname",
]


def _metadatas(metadata: sa.MetaData | Sequence[sa.MetaData] | None) -> list[sa.MetaData]:
    return [metadata] if isinstance(metadata, sa.MetaData) else list(metadata or [])


def include_name_filter(schemas: Iterable[str | None], excluded: Iterable[str],
                        metadata: sa.MetaData | Sequence[sa.MetaData] | None = None,
                        known: Iterable[str] | None = None) -> Callable[[str | None, str, dict], bool]:
    """Alembic include_name. schemas: those compared (None: SQLite's one database), and every schema the
    metadata names (the application's models) with them; excluded: physical table names ("iam.users_archive"
    on PostgreSQL, "iam_users_archive" on SQLite) left alone. known: when given, only these tables are
    compared (an environment that does not know what apply built)."""
    schemas = set(schemas) | {t.schema for meta in _metadatas(metadata) for t in meta.tables.values()}
    excluded = set(excluded)
    known = set(known) if known is not None else None

    def include(name: str | None, type_: str, parent_names: dict) -> bool:
        if type_ == "schema":
            return name in schemas
        if type_ == "table":
            schema_name = parent_names.get("schema_name")
            full = f"{schema_name}.{name}" if schema_name else name
            if known is not None:
                return full in known
            return schema_name in schemas and full not in excluded
        return True

    return include


def partition_parent(table: sa.Table) -> str | None:
    """The table a reflected table is a partition of (SQLAlchemy reflects PostgreSQL's pg_inherits as
    postgresql_inherits; a partition lives in its parent's schema), or None."""
    parents = table.dialect_options["postgresql"].get("inherits")
    if not parents:
        return None
    return f"{table.schema}.{parents[0]}" if table.schema else str(parents[0])


def include_object_filter(partition_parents: Iterable[str]) -> Callable[..., bool]:
    """Alembic include_object: a partition of a table apply partitioned (partition_parents: physical names) is
    that table's rows, whatever its name (a month's partition added after the cutover too)."""
    parents = set(partition_parents)

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and reflected and compare_to is None and parents:
            return partition_parent(obj) not in parents
        return True

    return include


def render_item(type_: str, obj: Any, autogen_context) -> str | bool:
    """Alembic render_item: a column of UTCTimestamp in a revision is written with its import (Alembic would
    write the module's dotted name and no import); everything else as Alembic renders it."""
    if type_ == "type" and isinstance(obj, UTCTimestamp):
        autogen_context.imports.add(f"from {UTCTimestamp.__module__} import UTCTimestamp")
        return "UTCTimestamp()" if obj.impl.timezone else "UTCTimestamp(timezone=False)"
    return False


def autogenerate_plugins() -> list[str] | None:
    try:
        import alembic.ext.checkconstraint_byname  # noqa: F401  (Alembic >= 1.19.2)
    except ImportError:
        return None  # older Alembic: its defaults (and no CHECK comparison)
    return list(AUTOGENERATE_PLUGINS)


def context_options(*, schemas: Iterable[str | None], excluded: Iterable[str], partition_parents: Iterable[str],
                    version_table_schema: str | None, dialect_options: dict[str, Any],
                    metadata: sa.MetaData | Sequence[sa.MetaData] | None = None,
                    known: Iterable[str] | None = None) -> dict[str, Any]:
    """Keyword arguments for EnvironmentContext.configure(**...) / MigrationContext.configure(opts=...).

    dialect_options: the database's own (SQLite: render_as_batch, transactional_ddl)."""
    opts: dict[str, Any] = {
        "include_schemas": True,
        "include_name": include_name_filter(schemas, excluded, metadata, known),
        "include_object": include_object_filter(partition_parents),
        "compare_type": True,
        "compare_server_default": True,
        "version_table": VERSION_TABLE,
        "render_item": render_item,
    }
    if (plugins := autogenerate_plugins()) is not None:
        opts["autogenerate_plugins"] = plugins
    if version_table_schema:
        opts["version_table_schema"] = version_table_schema
    opts.update(dialect_options)
    return opts
