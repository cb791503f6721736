"""The target schema as SQLAlchemy MetaData, built from ddl/ (load_schema()), never from a second copy.

The metadata declares what apply created, type for type and key for key, so that Alembic's autogenerate
comparison of a freshly migrated database with it finds nothing. The dialect names used here (SQLAlchemy's
type variants, the `<dialect>_where` index option) are SQLAlchemy's own, which ours equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import conv
from sqlglot import exp

from dpro_migrate.types import type_class_of_ddl

from dpro_migrate.dialects import (POSTGRES, SQLITE, expression_sql, get_dialect, pg_type_for_legacy, physical_name,
                                   predicate_sql)
from dpro_migrate.handoff.differences import trigger_table
from dpro_migrate.handoff.standalone.types import UTCTimestamp
from dpro_migrate.model.schema import Constraint, Index, Table, TargetSchema, load_schema
from dpro_migrate.model.search import load_search

UPDATED_AT = "updated_at"

# Every constraint in ddl/ is named; conv() marks those names as final. The convention names anything a later
# Alembic migration adds without a name, so autogenerate can always compare constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "%(table_name)s_pkey",
}

_ON_DELETE = re.compile(r"ON\s+DELETE\s+(CASCADE|SET\s+NULL|SET\s+DEFAULT|RESTRICT|NO\s+ACTION)", re.I)
_ON_UPDATE = re.compile(r"ON\s+UPDATE\s+(CASCADE|SET\s+NULL|SET\s+DEFAULT|RESTRICT|NO\s+ACTION)", re.I)

_T = exp.DataType.Type


def sa_type(node: exp.DataType) -> sa.types.TypeEngine:
    """A ddl/ (PostgreSQL) type as a SQLAlchemy type that renders, on each dialect, what apply declared
    (the type class's own, types.py)."""
    return type_class_of_ddl(node).sa_type(node)


# Per dialect, the type a timestamp column gets instead of SQLAlchemy's own, so the application's values keep
# their meaning: SQLite stores UTC text, and an offset must be applied, not dropped (standalone/types.py).
# Compiles to the same TIMESTAMP, so Alembic compares it as that.
TIMESTAMP_TYPES: dict[str, Callable[[sa.TIMESTAMP], sa.types.TypeEngine]] = {
    SQLITE: lambda t: UTCTimestamp(timezone=bool(t.timezone)),
}


def column_type(node: exp.DataType, dialect: str) -> sa.types.TypeEngine:
    """sa_type, with the dialect's timestamp type where it has one."""
    kind = sa_type(node)
    special = TIMESTAMP_TYPES.get(dialect)
    return special(kind) if special and isinstance(kind, sa.TIMESTAMP) else kind


def _updated_at_tables(schema: TargetSchema) -> set[str]:
    """The tables (qualified) whose updated_at a ddl/ trigger keeps: read from SQLite's triggers, where it is an
    AFTER UPDATE that sets the table's own updated_at (PostgreSQL's set_updated_at() does the same)."""
    out = set()
    for trig in schema.triggers.get(SQLITE, []):
        if trig.kind != "trigger":
            continue
        table = trigger_table(trig.sql, SQLITE)
        if re.search(rf"\bUPDATE\s+{re.escape(table)}\s+SET\s+updated_at\s*=", trig.sql, re.I):
            out.add(table)
    return {q for q in schema.tables if physical_name(q, SQLITE) in out}


# --- the type of a ride-along legacy column, as apply declared it (see Dialect.ride_along_column) ---------


def _sqlite_legacy_type(decl_type: str) -> sa.types.TypeEngine:
    # Declared verbatim by apply (any text, or none); resolved by the very function SQLAlchemy's SQLite
    # reflection uses, so both sides agree. No type at all is NullType, which Alembic does not compare.
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    resolve = getattr(SQLiteDialect(), "_resolve_type_affinity", None)
    return resolve(decl_type) if resolve else sa.types.NullType()


def _postgres_legacy_type(decl_type: str) -> sa.types.TypeEngine:
    return sa_type(exp.DataType.build(pg_type_for_legacy(decl_type), dialect="postgres"))


LEGACY_TYPES: dict[str, Callable[[str], sa.types.TypeEngine]] = {
    SQLITE: _sqlite_legacy_type,
    POSTGRES: _postgres_legacy_type,
}


# --- tables, keys, indexes ----------------------------------------------------------------------


def _sql_text(sql: str) -> sa.TextClause:
    """Rendered ddl/ SQL as sa.text, its colons escaped so that none is read as a bind parameter (':x')."""
    return sa.text(re.sub(r"(?<!:):(?!:)", r"\\:", sql))


def _sa_table(meta: sa.MetaData, table: Table, dialect: str, extra: list[tuple[str, str]],
              partitioning: dict[str, Any] | None = None, shared_sequence: str | None = None,
              keeps_updated_at: bool = False) -> sa.Table:
    impl = get_dialect(dialect)
    ident = next((c for c in table.columns if c.identity), None)
    pk = next(c for c in table.constraints if c.kind == "primary_key")
    # A partitioned table's primary key holds its partition key (apply's, see Applied.partitioned).
    key = list(partitioning["primary_key"]) if partitioning and partitioning.get("primary_key") else pk.columns
    columns = []
    for col in table.columns:
        kw: dict[str, Any] = {"nullable": col.nullable and col.name not in key}
        if col.default is not None:
            default = col.node.find(exp.DefaultColumnConstraint).this
            kw["server_default"] = _sql_text(expression_sql(default, dialect))
        if col.name in key:
            kw["primary_key"] = True
            kw["autoincrement"] = col is ident
            if impl.primary_key_declared_nullable:
                kw["nullable"] = True  # declared as apply does (see the dialect)
        if keeps_updated_at and col.name == UPDATED_AT:
            # A trigger sets it after the UPDATE, which SQLite's RETURNING does not see (PostgreSQL's BEFORE
            # trigger it does): SQLAlchemy sets it in the UPDATE itself unless the statement sets it.
            kw["onupdate"] = sa.func.current_timestamp()
        args: list[Any] = []
        if col is ident and shared_sequence:
            # the parts of a split share one sequence (apply's ShareIdSpace) instead of an identity each
            kw["server_default"] = sa.text(f"nextval('{shared_sequence}'::regclass)")
        elif col is ident and impl.identity_columns:
            args.append(sa.Identity())  # GENERATED BY DEFAULT AS IDENTITY, default options
        columns.append(sa.Column(col.name, column_type(col.node.args["kind"], dialect), *args, **kw))
    for name, decl in extra:
        columns.append(sa.Column(name, LEGACY_TYPES[impl.name](decl), nullable=True))
    constraints = [_sa_constraint(c, dialect, key) for c in table.constraints]
    options = impl.sa_table_options(table, ident is not None)
    if partitioning and partitioning.get("partition_by"):
        options["postgresql_partition_by"] = partitioning["partition_by"]  # only PostgreSQL partitions
    return sa.Table(physical_name(table.qualified, dialect).split(".")[-1], meta, *columns, *constraints, **options)


def _sa_constraint(con: Constraint, dialect: str, key: list[str]) -> sa.Constraint:
    if con.kind == "primary_key":
        named = get_dialect(dialect).names_primary_keys
        return sa.PrimaryKeyConstraint(*key, name=conv(con.name) if named else None)
    if con.kind == "unique":
        return sa.UniqueConstraint(*con.columns, name=conv(con.name))
    body = con.node.expressions[0]
    if con.kind == "check":
        return sa.CheckConstraint(_sql_text(expression_sql(body.this, dialect)), name=conv(con.name))
    ref = body.args["reference"]
    ref_table = ref.find(exp.Table)
    ref_cols = [i.name for i in ref.this.expressions]
    target = physical_name(f"{ref_table.db}.{ref_table.name}", dialect)
    options = " ".join(str(o) for o in ref.args.get("options") or [])
    on_delete, on_update = _ON_DELETE.search(options), _ON_UPDATE.search(options)
    return sa.ForeignKeyConstraint(
        con.columns, [f"{target}.{c}" for c in ref_cols], name=conv(con.name),
        ondelete=on_delete.group(1).upper() if on_delete else None,
        onupdate=on_update.group(1).upper() if on_update else None,
    )


def _sa_index(index: Index, tables: dict[str, sa.Table], dialect: str) -> sa.Index:
    table = tables[index.table]
    params = index.node.find(exp.IndexParameters)
    exprs = []
    for item in params.args["columns"]:
        column = table.c[item.this.name]
        exprs.append(column.desc() if item.args.get("desc") else column)
    kw: dict[str, Any] = {}
    where = params.args.get("where")
    if where is not None:
        kw[f"{dialect}_where"] = _sql_text(predicate_sql(where, dialect))
    return sa.Index(conv(index.name), *exprs, unique=index.unique, **kw)


def metadata_for(dialect: str, extra_columns: dict[str, list[tuple[str, str]]] | None = None,
                 schema: TargetSchema | None = None, *,
                 partitioned: dict[str, dict[str, Any]] | None = None,
                 shared_ids: dict[str, str] | None = None) -> sa.MetaData:
    """The target schema as SQLAlchemy MetaData: PostgreSQL Table("users", schema="iam"), SQLite Table("iam_users").

    extra_columns: {qualified table: [(column, legacy declared type)]}, the legacy columns apply carried along
    (a plan's create_table steps list them; see handoff.applied.Applied).
    partitioned: {qualified table: {"partition_by": ..., "primary_key": [columns]}}, the tables apply created
    partitioned (handoff.applied.Applied.partitioned).
    shared_ids: {qualified table: sequence}, the parts of a split whose ids come from one sequence.
    """
    dialect = get_dialect(dialect).name  # BadInput for an unknown name
    schema = schema or load_schema()
    meta = sa.MetaData(naming_convention=NAMING_CONVENTION)
    extra_columns = extra_columns or {}
    partitioned, shared_ids = partitioned or {}, shared_ids or {}
    keeps = _updated_at_tables(schema)
    tables = {q: _sa_table(meta, t, dialect, [tuple(c) for c in extra_columns.get(q, [])], partitioned.get(q),
                           shared_ids.get(q), q in keeps)
              for q, t in schema.tables.items()}
    for index in schema.indexes:
        _sa_index(index, tables, dialect)
    for search in load_search(schema):  # apply creates them on every target (ddl/search.toml)
        get_dialect(dialect).sa_search_index(search, tables[search.table])
    return meta
