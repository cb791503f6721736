"""The baseline's MetaData as Python source: dpro_baseline/schema.py of the Alembic environment.

The environment must run without dpro-migrate, and its baseline must stay what apply built at the cutover
(not whatever ddl/ a later dpro-migrate carries): so the metadata built from ddl/ and the plan (handoff.applied)
is written out, table by table, as SQLAlchemy Table and Index definitions for the database's dialect.
render_schema() covers what metadata_for() builds (types, identities, server defaults, onupdate, keys, CHECKs,
indexes with DESC and WHERE, table options such as sqlite_autoincrement and postgresql_partition_by); anything
else is refused, so a new kind of object in ddl/ fails loudly here rather than vanishing from the environment.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import conv

from dpro_migrate.handoff.standalone.types import UTCTimestamp

_SA_NAMES = set(dir(sa))


def _prefixed(text: str) -> str:
    """A type's repr with each class named as the schema module imports it (sa.X, postgresql.X)."""
    from sqlalchemy.dialects import postgresql

    pg_names = set(dir(postgresql))

    def prefix(m: re.Match) -> str:
        name = m.group(1)
        if name == UTCTimestamp.__name__:
            return name + "("
        if name in _SA_NAMES and getattr(sa, name, None) is not None:
            return f"sa.{name}("
        if name in pg_names:
            return f"postgresql.{name}("
        raise ValueError(f"cannot write the type {text} into the environment")

    return re.sub(r"(?<![\w.])([A-Za-z_]\w*)\(", prefix, text)


def type_source(type_: sa.types.TypeEngine, dialect: str) -> str:
    """The type as this dialect sees it (a with_variant() resolved), as Python source. _variant_mapping is
    SQLAlchemy's own (not public) record of with_variant(); test_handoff_standalone checks the result compiles
    as the original does, table for table."""
    variant = getattr(type_, "_variant_mapping", {}).get(dialect)
    chosen = variant if variant is not None else type_
    if getattr(chosen, "_variant_mapping", None):
        chosen = chosen.copy()
        chosen._variant_mapping = type(chosen._variant_mapping)()
    return _prefixed(repr(chosen))


def _text(clause: Any) -> str:
    """A TextClause (server default, CHECK, index predicate) as sa.text(...) source."""
    if not isinstance(clause, sa.TextClause):
        raise ValueError(f"cannot write {clause!r} into the environment: not SQL text")
    return f"sa.text({clause.text!r})"


def _name(name: Any) -> str:
    if name is None:
        return "None"
    return f"conv({str(name)!r})" if isinstance(name, conv) else repr(str(name))


def _column(col: sa.Column, dialect: str) -> str:
    args = [repr(col.name), type_source(col.type, dialect)]
    if col.identity is not None:
        ident = col.identity
        if ident.always or ident.on_null or ident.start is not None or ident.increment is not None:
            raise ValueError(f"{col}: identity options are not written into the environment")
        args.append("sa.Identity()")
    kw = []
    if col.server_default is not None and col.server_default is not col.identity:
        kw.append(f"server_default={_text(col.server_default.arg)}")
    if col.onupdate is not None:
        arg = col.onupdate.arg
        if not isinstance(arg, sa.sql.functions.current_timestamp):
            raise ValueError(f"{col}: onupdate {arg!r} is not written into the environment")
        kw.append("onupdate=sa.func.current_timestamp()")
    if col.primary_key:
        kw.append("primary_key=True")
    if col.autoincrement != "auto":
        kw.append(f"autoincrement={col.autoincrement!r}")
    kw.append(f"nullable={col.nullable!r}")
    if col.default is not None or col.server_onupdate is not None or col.comment:
        raise ValueError(f"{col}: a Python default, server_onupdate or comment is not written into the environment")
    return f"sa.Column({', '.join(args + kw)})"


def _constraint(con: sa.Constraint) -> str:
    if isinstance(con, sa.PrimaryKeyConstraint):
        cols = ", ".join(repr(c.name) for c in con.columns)
        return f"sa.PrimaryKeyConstraint({cols}, name={_name(con.name)})"
    if isinstance(con, sa.UniqueConstraint):
        cols = ", ".join(repr(c.name) for c in con.columns)
        return f"sa.UniqueConstraint({cols}, name={_name(con.name)})"
    if isinstance(con, sa.CheckConstraint):
        return f"sa.CheckConstraint({_text(con.sqltext)}, name={_name(con.name)})"
    if isinstance(con, sa.ForeignKeyConstraint):
        kw = "".join(f", {k}={getattr(con, k)!r}" for k in ("ondelete", "onupdate") if getattr(con, k))
        return (f"sa.ForeignKeyConstraint({list(con.column_keys)!r}, {[e.target_fullname for e in con.elements]!r}, "
                f"name={_name(con.name)}{kw})")
    raise ValueError(f"cannot write the constraint {con!r} into the environment")


def _variable(table: sa.Table) -> str:
    return re.sub(r"\W", "_", table.fullname)


def _index(index: sa.Index, var: str) -> str:
    items = []
    for e in index.expressions:
        if isinstance(e, sa.Column):
            items.append(f"{var}.c[{e.name!r}]")
        elif isinstance(e, sa.sql.elements.UnaryExpression) and isinstance(e.element, sa.Column) \
                and e.modifier is sa.sql.operators.desc_op:
            items.append(f"{var}.c[{e.element.name!r}].desc()")
        else:
            raise ValueError(f"index {index.name}: the expression {e} is not written into the environment")
    kw = [f"unique={index.unique!r}"] if index.unique else []
    for key, value in sorted(index.dialect_kwargs.items()):
        if value is not None:
            kw.append(f"{key}={_text(value) if isinstance(value, sa.TextClause) else repr(value)}")
    return f"sa.Index({', '.join([_name(index.name)] + items + kw)})"


def _table(table: sa.Table, dialect: str) -> list[str]:
    var = _variable(table)
    lines = [f"{var} = sa.Table(", f"    {table.name!r},", "    metadata,"]
    lines += [f"    {_column(c, dialect)}," for c in table.columns]
    # In the order they were declared, which is the order CREATE TABLE lists them (ddl/'s).
    constraints = sorted(table.constraints, key=lambda c: c._creation_order)
    lines += [f"    {_constraint(c)}," for c in constraints]
    if table.schema:
        lines.append(f"    schema={table.schema!r},")
    for key, value in sorted(table.dialect_kwargs.items()):
        if value is not None:
            lines.append(f"    {key}={value!r},")
    lines.append(")")
    lines += [_index(ix, var) for ix in sorted(table.indexes, key=lambda i: str(i.name))]
    return lines


def render_schema(metadata: sa.MetaData, dialect: str, qualified: dict[str, str]) -> str:
    """The tables and indexes of metadata as Python source (the body of schema.py, after its imports).

    qualified: {physical table name in metadata: qualified seed name ("iam.users")}, for the `tables` dict."""
    out = [f"metadata = sa.MetaData(naming_convention={dict(metadata.naming_convention)!r})", ""]
    for table in metadata.sorted_tables:
        out += ["", *_table(table, dialect)]
    out += ["", "", "# Every table by its qualified name, the same on both targets: tables[\"iam.users\"] is iam.users on",
            "# PostgreSQL and iam_users on SQLite.", "tables = {"]
    out += [f"    {qualified[t.key]!r}: {_variable(t)}," for t in sorted(metadata.tables.values(),
                                                                      key=lambda t: qualified[t.key])]
    out.append("}")
    return "\n".join(out) + "\n"
