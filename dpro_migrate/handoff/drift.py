"""Schema drift: how a live database differs from ddl/, through Alembic's own comparison and the checks
Alembic cannot make.

schema_drift() compares the database with handoff.metadata's MetaData through Alembic's autogenerate
comparison (so "no drift" here means "`alembic revision --autogenerate` finds nothing"), with the options the
written env.py uses too (context_options). Alembic sees tables, columns, types, nullability, server defaults,
indexes, unique/foreign keys and (with the checkconstraint_byname plugin) named CHECKs. It does not see
triggers or trigger functions; it does not compare partial-index predicates on any dialect (Alembic #1112);
on SQLite it cannot see DESC in an index, because SQLAlchemy's SQLite reflection drops it. Those are read from
each dialect's catalog (drift_sqlite.py, drift_postgresql.py) and checked against ddl/ here.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dpro_migrate.dialects import POSTGRES, SQLITE, expression_sql, get_dialect, physical_name
from dpro_migrate.handoff import drift_postgresql, drift_sqlite
from dpro_migrate.handoff.connect import Bind, applied_plan, dialect_of, ride_along_columns, shared_id_columns
from dpro_migrate.handoff.differences import Difference, from_alembic
from dpro_migrate.handoff.metadata import metadata_for
from dpro_migrate.model.schema import TargetSchema, load_new, load_schema
from dpro_migrate.plan.archived import archive_index_name
from dpro_migrate.plan.operations import CreateArchive, CreatePartition, CreateTable, ShareIdSpace
from dpro_migrate.safety.alembic_version import VERSION_TABLE

__all__ = [
    "Difference",
    "catalog_for",
    "context_options",
    "from_alembic",
    "include_name_filter",
    "index_differences",
    "schema_drift",
    "trigger_differences",
]

# Each reads its dialect's catalog: include_name(tables), trigger_differences(conn, schema),
# live_index(conn, index) -> LiveIndex | None.
CATALOGS: dict[str, ModuleType] = {SQLITE: drift_sqlite, POSTGRES: drift_postgresql}


def catalog_for(dialect: str) -> ModuleType:
    return CATALOGS[get_dialect(dialect).name]  # BadInput for an unknown name


# --- Alembic options shared by schema_drift and the written env.py --------------------------------


def include_name_filter(dialect: str, schema: TargetSchema | None = None) -> Callable[[str | None, str, dict], bool]:
    """Alembic include_name: what of the live database is compared with ddl/.

    PostgreSQL: the seven domain schemas, every table in them but dpro-migrate's bookkeeping and Alembic's
    version table. SQLite: the domain tables by name, nothing else (see drift_sqlite.include_name).
    """
    catalog = catalog_for(dialect)
    schema = schema or load_schema()
    return catalog.include_name({physical_name(q, dialect) for q in schema.tables})


AUTOGENERATE_PLUGINS = [
    "alembic.autogenerate.*",
    # Compares named CHECK constraints by name (added, removed; not their expressions). Opt-in since Alembic
    # 1.19.2 ("recommended only for schemas that name all constraints", which ddl/ and NAMING_CONVENTION do).
    # Without it a renamed or dropped CHECK is invisible to autogenerate.
    "alembic.ext.checkconstraint_byname",
]


def _autogenerate_plugins() -> list[str] | None:
    try:
        import alembic.ext.checkconstraint_byname  # noqa: F401  (Alembic >= 1.19.2)
    except ImportError:
        return None  # older Alembic: its defaults (and no CHECK comparison)
    return list(AUTOGENERATE_PLUGINS)


def context_options(dialect: str, schema: TargetSchema | None = None) -> dict[str, Any]:
    """Keyword arguments for MigrationContext.configure(opts=...) / EnvironmentContext.configure(**...)."""
    impl = get_dialect(dialect)
    opts: dict[str, Any] = {
        "include_schemas": True,
        "include_name": include_name_filter(dialect, schema),
        "compare_type": True,
        "compare_server_default": True,
        "version_table": VERSION_TABLE,
    }
    if (plugins := _autogenerate_plugins()) is not None:
        opts["autogenerate_plugins"] = plugins
    if impl.version_table_schema:
        opts["version_table_schema"] = impl.version_table_schema
    # SQLite's render_as_batch (no ALTER for most changes: Alembic's copy-and-move). Caution: a batch recreate
    # loses the triggers and the DESC of indexes (schema_drift reports both).
    opts.update(impl.alembic_options)
    return opts


# --- what apply promised beyond ddl/*.sql -------------------------------------------------------


def _expected_schema(plan, schema: TargetSchema) -> tuple[TargetSchema, set[str]]:
    """What apply promised beyond ddl/*.sql: the new tables (ddl/new/) join the expected schema; archive
    tables and monthly partitions are the plan's own, compared by verify, not here (names returned)."""
    if plan is None:
        return schema, set()
    if "new-tables" in plan.features:
        new = load_new()
        schema = TargetSchema({**schema.tables, **new.tables}, schema.indexes + list(new.indexes), schema.triggers)
    own = {op.name for op in plan.operations if isinstance(op, (CreateArchive, CreatePartition))}
    own |= {t for op in plan.of_type(ShareIdSpace) for t in op.triggers}  # SQLite: the shared-id triggers
    own |= {name.split(".")[-1] for name in own}
    own |= {archive_index_name(op.archive_of) for op in plan.of_type(CreateArchive)}
    # Partitioning makes the partition key NOT NULL (it is in the primary key).
    own |= {f"{op.name}.created_at" for op in plan.of_type(CreateTable) if op.partition_months is not None}
    return schema, own


def _planned_object(difference, planned: set[str]) -> bool:
    """A difference about an archive table or a partition the plan created (or their indexes and keys)."""
    words = f"{difference.object} {difference.detail}".replace(",", " ").split()
    return any(w in planned or w.split(".")[-1] in planned for w in words)


# --- what Alembic cannot see --------------------------------------------------------------------


def trigger_differences(conn: sa.engine.Connection, dialect: str, schema: TargetSchema) -> list[Difference]:
    """Every trigger (and, on PostgreSQL, trigger function) of ddl/ exists, on its table, as written; no other
    trigger sits on a domain table. SQLite: sqlite_master; PostgreSQL: pg_trigger and pg_proc."""
    return catalog_for(dialect).trigger_differences(conn, schema)


def _normal_expr(sql: str, dialect: str) -> str:
    """A predicate in a comparable form: parsed, casts and parentheses dropped (the tree keeps precedence),
    every identifier quoted. PostgreSQL reflects `status = 'running'` as ((status)::text = 'running'::text)."""
    read = get_dialect(dialect).sqlglot_name
    tree = sqlglot.parse_one(sql, read=read)
    while (node := tree.find(exp.Cast, exp.Paren)) is not None:
        if node is tree:
            tree = node.this.pop()
        else:
            node.replace(node.this)
    return tree.sql(read, identify=True)


def _expected_where(index, dialect: str) -> str | None:
    where = index.node.find(exp.IndexParameters).args.get("where")
    return None if where is None else expression_sql(where.this, dialect)


def index_differences(conn: sa.engine.Connection, dialect: str, schema: TargetSchema,
                      skip: set[str]) -> list[Difference]:
    """Partial-index predicates (both dialects) and, where Alembic cannot see it (SQLite), the ASC/DESC of each
    column. skip: index names Alembic already reported (missing, unexpected or changed)."""
    catalog = catalog_for(dialect)
    out: list[Difference] = []
    for index in schema.indexes:
        if index.name in skip:
            continue
        on = physical_name(index.table, dialect)
        want_where = _expected_where(index, dialect)
        live = catalog.live_index(conn, index)
        if live is None:
            continue  # missing: Alembic reports it
        if live.columns is not None:
            want_cols = [(o.this.name, bool(o.args.get("desc")))
                         for o in index.node.find(exp.IndexParameters).args["columns"]]
            if [c for c, _ in live.columns] == [c for c, _ in want_cols] and live.columns != want_cols:
                show = lambda cols: ", ".join(c + (" DESC" if d else "") for c, d in cols)  # noqa: E731
                out.append(Difference("changed_index", f"{index.name} on {on}",
                                      f"columns ({show(live.columns)}) in the database, ({show(want_cols)}) in ddl/"))
        live_where = live.where
        same = (live_where is None and want_where is None) or (
            live_where is not None and want_where is not None
            and _normal_expr(live_where, dialect) == _normal_expr(want_where, dialect))
        if not same:
            out.append(Difference("changed_index", f"{index.name} on {on}",
                                  f"predicate {('WHERE ' + live_where) if live_where else 'none'} in the database, "
                                  f"{('WHERE ' + want_where) if want_where else 'none'} in ddl/"))
    return out


# --- drift --------------------------------------------------------------------------------------


def schema_drift(connection_or_url: Any, dialect: str | None = None, *,
                 extra_columns: dict[str, list[tuple[str, str]]] | None = None) -> list[Difference]:
    """How the live database differs from ddl/: empty on a database dpro-migrate apply has just migrated.

    connection_or_url: a SQLAlchemy Connection or Engine, a URL (postgresql://..., sqlite:///path) or a SQLite
    file path; the database is only read. dialect: checked against the connection (None: taken from it).
    extra_columns: the legacy columns apply carried along; None reads them from the ledger in the database.
    """
    with Bind(connection_or_url, read_only=True) as conn:
        live = dialect_of(conn, dialect)
        schema, planned = _expected_schema(applied_plan(conn, live), load_schema())
        if extra_columns is None:
            extra_columns = ride_along_columns(conn, live)
        metadata = metadata_for(live, extra_columns, schema, shared_id_columns(conn, live))
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        # Rendering options (batch mode) are for writing migrations, not for comparing.
        opts = {k: v for k, v in context_options(live, schema).items() if k != "render_as_batch"}
        context = MigrationContext.configure(conn, opts=opts)
        differences = from_alembic(compare_metadata(context, metadata))
        reported = {d.object.split(" on ")[0] for d in differences if d.kind.endswith("_index")}
        differences += index_differences(conn, live, schema, reported)
        differences += trigger_differences(conn, live, schema)
        differences = [d for d in differences if not _planned_object(d, planned)]
        if conn.in_transaction() and not isinstance(connection_or_url, sa.engine.Connection):
            conn.rollback()
        return differences
