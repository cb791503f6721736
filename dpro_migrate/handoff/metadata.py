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
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import conv
from sqlglot import exp

from dpro_migrate.dialects import POSTGRES, SQLITE, expression_sql, get_dialect, pg_type_for_legacy, physical_name
from dpro_migrate.errors import BadInput
from dpro_migrate.model.schema import Constraint, Index, Table, TargetSchema, load_schema

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
    """A ddl/ (PostgreSQL) type as a SQLAlchemy type that renders, on each dialect, what apply declared.

    On SQLite apply declares the names of dialects.sqlite.SQLITE_TYPES (INTEGER, VARCHAR(n), TEXT, BOOLEAN,
    TIMESTAMP, JSON, REAL, BLOB); the variants make the same type compile to exactly those, which is what
    Alembic compares.
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


def _sa_table(meta: sa.MetaData, table: Table, dialect: str, extra: list[tuple[str, str]]) -> sa.Table:
    impl = get_dialect(dialect)
    ident = next((c for c in table.columns if c.identity), None)
    pk = next(c for c in table.constraints if c.kind == "primary_key")
    columns = []
    for col in table.columns:
        kw: dict[str, Any] = {"nullable": col.nullable}
        if col.default is not None:
            default = col.node.find(exp.DefaultColumnConstraint).this
            kw["server_default"] = _sql_text(expression_sql(default, dialect))
        if col.name in pk.columns:
            kw["primary_key"] = True
            kw["autoincrement"] = col is ident
            if impl.primary_key_declared_nullable:
                kw["nullable"] = True  # declared as apply does (see the dialect)
        args: list[Any] = []
        if col is ident and impl.identity_columns:
            args.append(sa.Identity())  # GENERATED BY DEFAULT AS IDENTITY, default options
        columns.append(sa.Column(col.name, sa_type(col.node.args["kind"]), *args, **kw))
    for name, decl in extra:
        columns.append(sa.Column(name, LEGACY_TYPES[impl.name](decl), nullable=True))
    constraints = [_sa_constraint(c, dialect) for c in table.constraints]
    return sa.Table(physical_name(table.qualified, dialect).split(".")[-1], meta, *columns, *constraints,
                    **impl.sa_table_options(table, ident is not None))


def _sa_constraint(con: Constraint, dialect: str) -> sa.Constraint:
    if con.kind == "primary_key":
        named = get_dialect(dialect).names_primary_keys
        return sa.PrimaryKeyConstraint(*con.columns, name=conv(con.name) if named else None)
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
        kw[f"{dialect}_where"] = _sql_text(expression_sql(where.this, dialect))
    return sa.Index(conv(index.name), *exprs, unique=index.unique, **kw)


def metadata_for(dialect: str, extra_columns: dict[str, list[tuple[str, str]]] | None = None,
                 schema: TargetSchema | None = None) -> sa.MetaData:
    """The target schema as SQLAlchemy MetaData: PostgreSQL Table("users", schema="iam"), SQLite Table("iam_users").

    extra_columns: {qualified table: [(column, legacy declared type)]}, the legacy columns apply carried along
    (a plan's create_table steps list them; see handoff.connect.ride_along_columns()).
    """
    dialect = get_dialect(dialect).name  # BadInput for an unknown name
    schema = schema or load_schema()
    meta = sa.MetaData(naming_convention=NAMING_CONVENTION)
    extra_columns = extra_columns or {}
    tables = {q: _sa_table(meta, t, dialect, [tuple(c) for c in extra_columns.get(q, [])])
              for q, t in schema.tables.items()}
    for index in schema.indexes:
        _sa_index(index, tables, dialect)
    return meta
