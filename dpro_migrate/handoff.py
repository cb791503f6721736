"""Hand the migrated database over to Alembic: SQLAlchemy metadata from ddl/, a drift check, an Alembic environment.

ddl/ stays the one source of the target schema: metadata_for() builds SQLAlchemy objects from load_schema(),
never from a second copy. schema_drift() compares a live database with that metadata through Alembic's own
autogenerate comparison (so "no drift" here means "`alembic revision --autogenerate` finds nothing"), plus
the triggers Alembic cannot see. alembic_init() writes an Alembic environment whose env.py uses the same
metadata, filter and comparison options; stamp_baseline() records its baseline revision in the database.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import conv
from sqlglot import exp

from . import DOMAINS
from .errors import BadInput
from .mapping import LEDGER_TABLE
from .schema import (
    POSTGRES,
    SQLITE,
    Constraint,
    Index,
    Table,
    TargetSchema,
    expression_sql,
    load_schema,
    pg_type_for_legacy,
    physical_name,
)

# Alembic's version table. PostgreSQL: in the system schema, beside dpro-migrate's own ledger (see VERSION_TABLE_SCHEMA).
VERSION_TABLE = "alembic_version"
# Why system and not public: the seven domain schemas are the whole application; system already holds
# tool metadata (migration_ledger) and the trigger functions; public may be absent, or not writable by the
# application role (PostgreSQL 15 revokes CREATE on public from PUBLIC), and a rollback that drops the seven
# schemas then also drops the Alembic stamp, so a rolled-back database never claims an Alembic revision.
VERSION_TABLE_SCHEMA = {POSTGRES: "system", SQLITE: None}
BASELINE_REVISION = "dpro0001baseline"
BASELINE_SLUG = "dpro_baseline"
URL_ENV = "DPRO_MIGRATE_DATABASE_URL"

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


def _check_dialect(dialect: str) -> None:
    if dialect not in (SQLITE, POSTGRES):
        raise BadInput(f"unknown dialect {dialect!r}: choose {SQLITE} or {POSTGRES}")


# --- metadata -----------------------------------------------------------------------------------

_T = exp.DataType.Type


def sa_type(node: exp.DataType) -> sa.types.TypeEngine:
    """A ddl/ (PostgreSQL) type as a SQLAlchemy type that renders, on each dialect, what apply declared.

    On SQLite apply declares the names of schema.SQLITE_TYPES (INTEGER, VARCHAR(n), TEXT, BOOLEAN, TIMESTAMP,
    JSON, REAL, BLOB); the variants make the same type compile to exactly those, which is what Alembic compares.
    """
    params = [int(p.name) for p in node.expressions]
    kind = node.this
    if kind == _T.BIGINT:
        # BIGINT on PostgreSQL; INTEGER on SQLite (64-bit there anyway; a rowid alias needs exactly INTEGER).
        return sa.BigInteger().with_variant(sa.INTEGER(), SQLITE)
    if kind == _T.INT:
        return sa.Integer()
    if kind == _T.VARCHAR:
        return sa.String(*params)
    if kind == _T.TEXT:
        return sa.Text()
    if kind == _T.BOOLEAN:
        return sa.Boolean()
    if kind == _T.TIMESTAMPTZ:
        return sa.TIMESTAMP(timezone=True)
    if kind == _T.TIMESTAMP:
        return sa.TIMESTAMP()
    if kind == _T.JSONB:
        return sa.JSON().with_variant(postgresql.JSONB(), POSTGRES)
    if kind == _T.JSON:
        return sa.JSON()
    if kind == _T.DOUBLE:
        # DOUBLE PRECISION on PostgreSQL; SQLite's declared type is REAL (sa.Double would render DOUBLE).
        return sa.Double().with_variant(sa.REAL(), SQLITE)
    if kind == _T.VARBINARY:
        return sa.LargeBinary()
    raise BadInput(f"ddl/ uses a type with no SQLAlchemy mapping: {node.sql('postgres')}")


def _legacy_type(decl_type: str, dialect: str) -> sa.types.TypeEngine:
    """The type of a ride-along legacy column, as apply declared it (see schema._declared)."""
    if dialect == SQLITE:
        # Declared verbatim by apply; resolve it the way SQLAlchemy's SQLite reflection does.
        from sqlalchemy.dialects.sqlite.base import SQLiteDialect

        return SQLiteDialect()._resolve_type_affinity(decl_type)
    return sa_type(exp.DataType.build(pg_type_for_legacy(decl_type), dialect="postgres"))


def _sa_table(meta: sa.MetaData, table: Table, dialect: str, extra: list[tuple[str, str]]) -> sa.Table:
    ident = next((c for c in table.columns if c.identity), None)
    pk = next(c for c in table.constraints if c.kind == "primary_key")
    columns = []
    for col in table.columns:
        kw: dict[str, Any] = {"nullable": col.nullable}
        if col.default is not None:
            default = col.node.find(exp.DefaultColumnConstraint).this
            kw["server_default"] = sa.text(expression_sql(default, dialect))
        if col.name in pk.columns:
            kw["primary_key"] = True
            kw["autoincrement"] = col is ident
            if dialect == SQLITE:
                # Quirk: apply declares `INTEGER PRIMARY KEY AUTOINCREMENT` without NOT NULL (a rowid alias can
                # never be NULL anyway) and SQLite reflection reports such a column nullable; a NOT NULL
                # metadata column would be a false modify_nullable on every table. Declare it as apply does.
                kw["nullable"] = True
        args: list[Any] = []
        if col is ident and dialect == POSTGRES:
            args.append(sa.Identity())  # GENERATED BY DEFAULT AS IDENTITY, default options
        columns.append(sa.Column(col.name, sa_type(col.node.args["kind"]), *args, **kw))
    for name, decl in extra:
        columns.append(sa.Column(name, _legacy_type(decl, dialect), nullable=True))
    constraints = [_sa_constraint(c, dialect) for c in table.constraints]
    kw = {"schema": table.domain} if dialect == POSTGRES else {"sqlite_autoincrement": ident is not None}
    return sa.Table(physical_name(table.qualified, dialect).split(".")[-1], meta, *columns, *constraints, **kw)


def _sa_constraint(con: Constraint, dialect: str) -> sa.Constraint:
    if con.kind == "primary_key":
        # SQLite keeps no name for the inline INTEGER PRIMARY KEY; nor does Alembic compare primary keys.
        return sa.PrimaryKeyConstraint(*con.columns, name=conv(con.name) if dialect == POSTGRES else None)
    if con.kind == "unique":
        return sa.UniqueConstraint(*con.columns, name=conv(con.name))
    body = con.node.expressions[0]
    if con.kind == "check":
        return sa.CheckConstraint(sa.text(expression_sql(body.this, dialect)), name=conv(con.name))
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
        kw[f"{dialect}_where"] = sa.text(expression_sql(where.this, dialect))
    return sa.Index(conv(index.name), *exprs, unique=index.unique, **kw)


def metadata_for(dialect: str, extra_columns: dict[str, list[tuple[str, str]]] | None = None,
                 schema: TargetSchema | None = None) -> sa.MetaData:
    """The target schema as SQLAlchemy MetaData: PostgreSQL Table("users", schema="iam"), SQLite Table("iam_users").

    extra_columns: {qualified table: [(column, legacy declared type)]}, the legacy columns apply carried along
    (a plan's create_table steps list them; see ride_along_columns()).
    """
    _check_dialect(dialect)
    schema = schema or load_schema()
    meta = sa.MetaData(naming_convention=NAMING_CONVENTION)
    extra_columns = extra_columns or {}
    tables = {q: _sa_table(meta, t, dialect, [tuple(c) for c in extra_columns.get(q, [])])
              for q, t in schema.tables.items()}
    for index in schema.indexes:
        _sa_index(index, tables, dialect)
    return meta
