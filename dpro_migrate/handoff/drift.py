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
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dpro_migrate.dialects import get_dialect, physical_name, predicate_sql
from dpro_migrate.errors import BadInput
from dpro_migrate.handoff.applied import Applied
from dpro_migrate.handoff.catalogs import catalog_for
from dpro_migrate.handoff.connect import Bind, applied_plan, dialect_of, has_table
from dpro_migrate.handoff.differences import Difference, Drift, from_alembic, trigger_table
from dpro_migrate.handoff.standalone import options
from dpro_migrate.model.schema import TargetSchema, load_schema
from dpro_migrate.safety.alembic_version import BASELINE_ID

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


def _known(dialect: str, applied: Applied | None) -> set[str] | None:
    # Without what apply built (an env.py written by dpro-migrate 0.1 passes none): ddl/'s tables only, so that
    # nothing else the database holds (partitions, archives, legacy leftovers) is ever proposed for dropping.
    return None if applied is not None else {physical_name(q, dialect) for q in load_schema().tables}


def include_name_filter(dialect: str, applied: Applied | None = None,
                        metadata: sa.MetaData | Sequence[sa.MetaData] | None = None) -> Callable[[str | None, str, dict], bool]:
    """Alembic include_name: what of the live database Alembic compares (standalone/options.py).

    Schemas: the dialect's (PostgreSQL: the seven domain schemas; SQLite: its one database) and any schema the
    metadata names (an application's own models). Tables: every table in them but those apply built that
    Alembic must leave alone (Applied.excluded: partitions, archives, bookkeeping, legacy leftovers). So a table
    the application adds is seen, as a table someone adds by hand is (drift).
    """
    return options.include_name_filter(catalog_for(dialect).SCHEMAS, _applied(dialect, applied).excluded,
                                       metadata, _known(dialect, applied))


def include_object_filter(dialect: str, applied: Applied | None = None) -> Callable[..., bool]:
    """Alembic include_object: a partition of a table apply partitioned is that table's rows, whatever its
    name (a month's partition added after the cutover too), never a table of its own to drop."""
    return options.include_object_filter(_applied(dialect, applied).partition_parents())


AUTOGENERATE_PLUGINS = options.AUTOGENERATE_PLUGINS


def dialect_options(dialect: str) -> dict[str, Any]:
    """The Alembic options a dialect needs: SQLite's render_as_batch (no ALTER for most changes: Alembic's
    copy-and-move, which the environment makes keep triggers, AUTOINCREMENT and indexes: standalone/
    sqlite_batch.py) and its transactional DDL."""
    return {**get_dialect(dialect).alembic_options, **catalog_for(dialect).ALEMBIC_OPTIONS}


def context_options(dialect: str, applied: Applied | None = None,
                    metadata: sa.MetaData | Sequence[sa.MetaData] | None = None) -> dict[str, Any]:
    """Keyword arguments for MigrationContext.configure(opts=...) / EnvironmentContext.configure(**...).

    applied: what apply built (None: ddl/ alone); metadata: the environment's target_metadata (one MetaData or
    a list), whose schemas Alembic then compares too. The written env.py passes the same data, as literals,
    to the same function (standalone/options.py)."""
    impl = get_dialect(dialect)
    done = _applied(dialect, applied)
    return options.context_options(schemas=catalog_for(dialect).SCHEMAS, excluded=done.excluded,
                                   partition_parents=done.partition_parents(),
                                   version_table_schema=impl.version_table_schema,
                                   dialect_options=dialect_options(dialect), metadata=metadata,
                                   known=_known(dialect, applied))


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


def environment_differences(conn: sa.engine.Connection, directory: str | Path) -> tuple[list, tuple[str, ...]]:
    """What `alembic check` finds with the Alembic environment in directory (its env.py, its target_metadata:
    the baseline and the application's models), run on conn; and the environment's heads."""
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    ini = Path(directory) / "alembic.ini"
    if not ini.is_file():
        raise BadInput(f"{directory}: no alembic.ini (an Alembic environment written by alembic-init)")
    config = Config(str(ini))
    config.get_section(config.config_ini_section)  # read alembic.ini now, then hide its name from env.py, which
    config.config_file_name = None  # would otherwise hand this process's logging to the file's [loggers]
    config.attributes["connection"] = conn  # env.py written by dpro-migrate 0.2+ compares on this connection
    try:
        script = ScriptDirectory.from_config(config)
        heads = tuple(script.get_heads())
    except CommandError as exc:
        raise BadInput(f"{directory}: not an Alembic environment ({exc})") from None
    found: list = []

    def compare(rev, context):
        found.extend(compare_metadata(context, context.opts["target_metadata"]))
        return []

    with EnvironmentContext(config, script, fn=compare, as_sql=False, dont_mutate=True):
        script.run_env()
    return found, heads


def schema_drift(connection_or_url: Any, dialect: str | None = None, *,
                 extra_columns: dict[str, list[tuple[str, str]]] | None = None,
                 environment: str | Path | None = None) -> Drift:
    """How the live database differs from what apply built: empty on a database apply has just migrated.

    At the dpro baseline (or before the handoff): what `alembic check` finds with the environment alembic_init
    writes (the same metadata and filters, from the plan in the ledger: handoff.applied), and what Alembic
    cannot see: triggers and trigger functions, partial-index predicates, SQLite's index order, row-level
    security policies. Once the application's Alembic revisions have moved the database past the baseline,
    its tables, columns, indexes and keys are what the application's models say (`alembic check` compares
    those), and its additions are its own: then only what Alembic cannot see is compared, for the tables apply
    built that are still there, and nothing the database has beyond them is reported. Given the Alembic
    environment (environment: its directory), tables, columns, indexes and keys are compared with its models
    instead, at the baseline and past it (what `alembic check` finds there, the application's revisions
    included). The result's `basis` says which, in one line.

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
        alembic_part: list[Difference] = []
        at = f"Alembic revision {', '.join(heads)}" if heads else "no Alembic revision"
        if beyond:
            schema = _still_there(conn, live, schema)
            basis = (f"the database is at Alembic revision {', '.join(beyond)}, past the dpro baseline: its tables, "
                     "columns, indexes and keys are the application's models' (`alembic check` compares them; "
                     "give --alembic DIR to compare them here); compared here: the triggers, trigger functions, "
                     "policies and index predicates and order apply built, on its tables that are still there")
        else:
            alembic_part = from_alembic(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))
            at = f"at the dpro baseline {heads[0]}" if heads else "before any Alembic stamp"
            basis = f"the schema apply built ({at}): ddl/ and the plan's --with tables, as `alembic check` sees it"
        if environment is not None:
            found, env_heads = environment_differences(conn, environment)
            alembic_part = from_alembic(found)
            pending = "" if set(env_heads) == set(heads) else (
                f"; the environment's head is {', '.join(env_heads)}: what its revisions not yet applied change shows "
                "as differences")
            basis = (f"the models of the Alembic environment {environment} (the baseline and the application's, as "
                     f"`alembic check` compares them; the database at {at.replace('at the ', '')}){pending}; and the "
                     "triggers, trigger functions, policies and index predicates and order apply built")
        reported = {d.object.split(" on ")[0] for d in alembic_part if d.kind.endswith("_index")}
        differences += index_differences(conn, live, schema, reported)
        differences += [d for d in trigger_differences(conn, live, schema)
                        if not (d.kind == "unexpected_trigger" and d.object in applied.own_triggers)]
        differences += catalog_for(live).policy_differences(conn, applied.policies)
        if beyond:
            differences = [d for d in differences if not d.kind.startswith("unexpected_")]
        differences = alembic_part + differences
        if conn.in_transaction() and not isinstance(connection_or_url, sa.engine.Connection):
            conn.rollback()
        return Drift(differences, basis)
