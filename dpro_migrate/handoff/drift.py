"""Schema drift: how a live database differs from what apply built (ddl/ and the plan's `--with` tables),
through Alembic's own comparison and the checks Alembic cannot make.

schema_drift() compares the database with the metadata of handoff.applied.Applied (built from ddl/ and the
plan in the ledger) through Alembic's autogenerate comparison, with the options the written env.py uses too
(context_options): so "no drift" here means "`alembic check` finds nothing". Alembic sees tables, columns,
types, nullability, server defaults, indexes, unique/foreign keys and (with the checkconstraint_byname plugin)
named CHECKs. It does not see triggers or trigger functions, nor row-level security policies; it does not
compare partial-index predicates on any dialect (Alembic #1112); on SQLite it cannot see DESC in an index,
because SQLAlchemy's SQLite reflection drops it. Those are read from each dialect's catalog (drift_sqlite.py,
drift_postgresql.py) and checked here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dpro_migrate.dialects import get_dialect, physical_name, predicate_sql
from dpro_migrate.handoff.applied import Applied
from dpro_migrate.handoff.catalogs import catalog_for
from dpro_migrate.handoff.connect import Bind, applied_plan, dialect_of, has_table
from dpro_migrate.handoff.differences import Difference, Drift, from_alembic, trigger_table
from dpro_migrate.model.schema import TargetSchema, load_schema
from dpro_migrate.safety.alembic_version import BASELINE_ID, VERSION_TABLE

__all__ = [
    "Applied",
    "Difference",
    "Drift",
    "catalog_for",
    "context_options",
    "from_alembic",
    "include_name_filter",
    "include_object_filter",
    "index_differences",
    "schema_drift",
    "trigger_differences",
]


# --- Alembic options shared by schema_drift and the written env.py --------------------------------


def _applied(dialect: str, applied: Applied | None) -> Applied:
    return applied if applied is not None else Applied.from_plan(None, dialect)


def include_name_filter(dialect: str, applied: Applied | None = None,
                        metadata: sa.MetaData | Sequence[sa.MetaData] | None = None) -> Callable[[str | None, str, dict], bool]:
    """Alembic include_name: what of the live database Alembic compares.

    Schemas: the dialect's (PostgreSQL: the seven domain schemas; SQLite: its one database) and any schema the
    metadata names (an application's own models). Tables: every table in them but those apply built that
    Alembic must leave alone (Applied.excluded: partitions, archives, bookkeeping, legacy leftovers). So a table
    the application adds is seen, as a table someone adds by hand is (drift).
    """
    # Without what apply built (an env.py written by dpro-migrate 0.1 passes none): ddl/'s tables only, so that
    # nothing else the database holds (partitions, archives, legacy leftovers) is ever proposed for dropping.
    known = None if applied is not None else {physical_name(q, dialect) for q in load_schema().tables}
    applied = _applied(dialect, applied)
    schemas = set(catalog_for(dialect).SCHEMAS)
    for meta in [metadata] if isinstance(metadata, sa.MetaData) else metadata or []:
        schemas |= {t.schema for t in meta.tables.values()}
    excluded = set(applied.excluded)

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


def include_object_filter(dialect: str, applied: Applied | None = None) -> Callable[..., bool]:
    """Alembic include_object: a partition of a table apply partitioned is that table's rows, whatever its
    name (a month's partition added after the cutover too), never a table of its own to drop."""
    applied = _applied(dialect, applied)
    catalog = catalog_for(dialect)
    parents = applied.partition_parents()

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and reflected and compare_to is None and parents:
            return catalog.partition_parent(obj) not in parents
        return True

    return include


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


def context_options(dialect: str, applied: Applied | None = None,
                    metadata: sa.MetaData | Sequence[sa.MetaData] | None = None) -> dict[str, Any]:
    """Keyword arguments for MigrationContext.configure(opts=...) / EnvironmentContext.configure(**...).

    applied: what apply built (None: ddl/ alone); metadata: the environment's target_metadata (one MetaData or
    a list), whose schemas Alembic then compares too."""
    impl = get_dialect(dialect)
    opts: dict[str, Any] = {
        "include_schemas": True,
        "include_name": include_name_filter(dialect, applied, metadata),
        "include_object": include_object_filter(dialect, applied),
        "compare_type": True,
        "compare_server_default": True,
        "version_table": VERSION_TABLE,
    }
    if (plugins := _autogenerate_plugins()) is not None:
        opts["autogenerate_plugins"] = plugins
    if impl.version_table_schema:
        opts["version_table_schema"] = impl.version_table_schema
    # SQLite's render_as_batch (no ALTER for most changes: Alembic's copy-and-move, which the environment
    # makes keep triggers, AUTOINCREMENT and indexes: batch_sqlite.py) and its transactional DDL.
    opts.update(impl.alembic_options)
    opts.update(catalog_for(dialect).ALEMBIC_OPTIONS)
    return opts


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
    return None if where is None else predicate_sql(where, dialect)


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


def _still_there(conn: sa.engine.Connection, dialect: str, schema: TargetSchema) -> TargetSchema:
    """The part of the schema whose tables the database still has (with their indexes and triggers)."""
    tables = {q: t for q, t in schema.tables.items() if has_table(conn, dialect, q)}
    physical = {physical_name(q, dialect) for q in tables}
    live = get_dialect(dialect).name
    triggers = [t for t in schema.triggers[live] if t.kind != "trigger" or trigger_table(t.sql, live) in physical]
    return TargetSchema(tables, [i for i in schema.indexes if i.table in tables], {**schema.triggers, live: triggers})


def _alembic_heads(conn: sa.engine.Connection, opts: dict[str, Any]) -> tuple[str, ...]:
    from alembic.migration import MigrationContext

    versions = {k: v for k, v in opts.items() if k in ("version_table", "version_table_schema")}
    return MigrationContext.configure(conn, opts=versions).get_current_heads()


def schema_drift(connection_or_url: Any, dialect: str | None = None, *,
                 extra_columns: dict[str, list[tuple[str, str]]] | None = None) -> Drift:
    """How the live database differs from what apply built: empty on a database apply has just migrated.

    At the dpro baseline (or before the handoff): what `alembic check` finds with the environment alembic_init
    writes (the same metadata and filters, from the plan in the ledger: handoff.applied), and what Alembic
    cannot see: triggers and trigger functions, partial-index predicates, SQLite's index order, row-level
    security policies. Once the application's Alembic revisions have moved the database past the baseline,
    its tables, columns, indexes and keys are what the application's models say (`alembic check` compares
    those), and its additions are its own: then only what Alembic cannot see is compared, for the tables apply
    built that are still there, and nothing the database has beyond them is reported. The result's `basis`
    says which, in one line.

    connection_or_url: a SQLAlchemy Connection or Engine, a URL (postgresql://..., sqlite:///path) or a SQLite
    file path; the database is only read. dialect: checked against the connection (None: taken from it).
    extra_columns: the legacy columns apply carried along; None reads them from the ledger in the database.
    """
    from dataclasses import replace

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with Bind(connection_or_url, read_only=True) as conn:
        live = dialect_of(conn, dialect)
        applied = Applied.from_plan(applied_plan(conn, live), live)
        if extra_columns is not None:
            applied = replace(applied, extra_columns={t: [list(c) for c in cols] for t, cols in extra_columns.items()})
        schema = applied.schema()
        metadata = applied.metadata()
        # Rendering options (batch mode) are for writing migrations, not for comparing.
        opts = {k: v for k, v in context_options(live, applied, metadata).items() if k != "render_as_batch"}
        heads = _alembic_heads(conn, opts)
        beyond = [h for h in heads if not BASELINE_ID.match(h)]
        differences: list[Difference] = []
        if beyond:
            schema = _still_there(conn, live, schema)
            basis = (f"the database is at Alembic revision {', '.join(beyond)}, past the dpro baseline: its tables, "
                     "columns, indexes and keys are the application's models' (`alembic check` compares them); "
                     "compared here: the triggers, trigger functions, policies and index predicates and order "
                     "apply built, on its tables that are still there")
        else:
            differences = from_alembic(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))
            at = f"at the dpro baseline {heads[0]}" if heads else "before any Alembic stamp"
            basis = f"the schema apply built ({at}): ddl/ and the plan's --with tables, as `alembic check` sees it"
        reported = {d.object.split(" on ")[0] for d in differences if d.kind.endswith("_index")}
        differences += index_differences(conn, live, schema, reported)
        differences += [d for d in trigger_differences(conn, live, schema)
                        if not (d.kind == "unexpected_trigger" and d.object in applied.own_triggers)]
        differences += catalog_for(live).policy_differences(conn, applied.policies)
        if beyond:
            differences = [d for d in differences if not d.kind.startswith("unexpected_")]
        if conn.in_transaction() and not isinstance(connection_or_url, sa.engine.Connection):
            conn.rollback()
        return Drift(differences, basis)
