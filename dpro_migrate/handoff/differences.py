"""One way the live database differs from ddl/, and Alembic's own differences in that form.

Below the drift check and its per-dialect catalog readers (drift_sqlite.py, drift_postgresql.py), which all
report Differences; also the readings of ddl/ text that every catalog compares against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from dpro_migrate.dialects import get_dialect


@dataclass(frozen=True)
class Difference:
    """One way the live database differs from ddl/.

    kind: missing_* (ddl/ has it, the database does not), unexpected_* (the other way round), changed_*
    (both have it, differently); object: the table, column, index, constraint or trigger as the database
    names it (iam.users on PostgreSQL, iam_users on SQLite); detail: one readable line.
    """

    kind: str
    object: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.object}: {self.detail}"


class Drift(list):
    """The Differences schema_drift found (a list of them), and `basis`: what the database was compared
    with, in one readable line."""

    def __init__(self, differences=(), basis: str = ""):
        super().__init__(differences)
        self.basis = basis


# --- Alembic's diff tuples ----------------------------------------------------------------------


def _table_name(table: sa.Table | None, schema: str | None = None, name: str | None = None) -> str:
    if table is not None:
        schema, name = table.schema, table.name
    return f"{schema}.{name}" if schema else str(name)


def _constraint_kind(con) -> str:
    if isinstance(con, sa.UniqueConstraint):
        return "unique constraint"
    if isinstance(con, sa.CheckConstraint):
        return "check constraint"
    if isinstance(con, sa.ForeignKeyConstraint):
        return "foreign key"
    if isinstance(con, sa.PrimaryKeyConstraint):
        return "primary key"
    return type(con).__name__


def _columns(obj) -> str:
    items = []
    for e in getattr(obj, "expressions", None) or list(obj.columns):
        if isinstance(e, sa.Column):
            items.append(e.name)
        elif isinstance(e, str):
            items.append(e)
        else:
            items.append(str(e.compile(compile_kwargs={"include_table": False})))
    return ", ".join(items)


def _fk_detail(fk: sa.ForeignKeyConstraint) -> str:
    cols = ", ".join(c.name for c in fk.columns) if fk.columns else ", ".join(fk.column_keys)
    target = fk.elements[0].target_fullname.rsplit(".", 1)[0] if fk.elements else "?"
    ref_cols = ", ".join(e.target_fullname.rsplit(".", 1)[1] for e in fk.elements)
    return f"({cols}) REFERENCES {target} ({ref_cols})" + (f" ON DELETE {fk.ondelete}" if fk.ondelete else "")


def _default_text(default) -> str:
    """A server default as Alembic hands it over (DefaultClause, TextClause, str or None), as SQL text."""
    arg = getattr(default, "arg", default)
    if arg is None or arg is False:
        return "none"
    if isinstance(arg, sa.sql.ClauseElement):
        return str(arg.compile(compile_kwargs={"literal_binds": True}))
    return str(arg)


def _one(diff: tuple) -> Difference:
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        t = diff[1]
        where = "in ddl/, not in the database" if kind == "add_table" else "in the database, not in ddl/"
        return Difference("missing_table" if kind == "add_table" else "unexpected_table", _table_name(t), where)
    if kind in ("add_column", "remove_column"):
        _, schema, tname, col = diff
        name = f"{_table_name(None, schema, tname)}.{col.name}"
        where = "in ddl/, not in the database" if kind == "add_column" else "in the database, not in ddl/"
        return Difference("missing_column" if kind == "add_column" else "unexpected_column", name, f"{col.type} {where}")
    if kind in ("add_index", "remove_index"):
        ix = diff[1]
        obj = f"{ix.name} on {_table_name(ix.table)}"
        where = "in ddl/, not in the database" if kind == "add_index" else "in the database, not in ddl/"
        return Difference("missing_index" if kind == "add_index" else "unexpected_index", obj,
                          f"{'unique ' if ix.unique else ''}index ({_columns(ix)}) {where}")
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        con = diff[1]
        what = _constraint_kind(con)
        obj = f"{con.name} on {_table_name(con.table)}"
        where = "in ddl/, not in the database" if kind.startswith("add") else "in the database, not in ddl/"
        if isinstance(con, sa.ForeignKeyConstraint):
            body = _fk_detail(con)
        elif isinstance(con, sa.CheckConstraint):
            body = f"CHECK ({con.sqltext})"
        else:
            body = f"({_columns(con)})"
        return Difference(("missing_" if kind.startswith("add") else "unexpected_") + what.replace(" ", "_"),
                          obj, f"{what} {body} {where}")
    if kind in ("modify_type", "modify_nullable", "modify_default", "modify_comment"):
        _, schema, tname, cname, _info, existing, new = diff
        name = f"{_table_name(None, schema, tname)}.{cname}"
        if kind == "modify_default":
            existing, new = _default_text(existing), _default_text(new)
        if kind == "modify_nullable":
            existing, new = ("NULL" if existing else "NOT NULL"), ("NULL" if new else "NOT NULL")
        field = kind.split("_", 1)[1]
        return Difference(f"changed_{field}", name, f"{field}: {existing} in the database, {new} in ddl/")
    return Difference(str(kind), "?", repr(diff[1:]))


def from_alembic(diffs: list) -> list[Difference]:
    """Alembic's compare_metadata() output as Differences; a removed and an added object of the same kind and
    name (Alembic's way of saying "changed") become one changed_* difference."""
    flat: list[Difference] = []
    for d in diffs:
        if isinstance(d, list):  # column modifications come grouped per column
            flat.extend(_one(x) for x in d)
        else:
            flat.append(_one(d))
    out: list[Difference] = []
    for d in flat:
        if d.kind.startswith("missing_"):
            twin = next((u for u in flat if u.kind == "unexpected_" + d.kind[8:] and u.object == d.object), None)
            if twin is not None:
                out.append(Difference("changed_" + d.kind[8:], d.object,
                                      f"{twin.detail.replace(' in the database, not in ddl/', '')} in the database, "
                                      f"{d.detail.replace(' in ddl/, not in the database', '')} in ddl/"))
                continue
        elif d.kind.startswith("unexpected_"):
            if any(m.kind == "missing_" + d.kind[11:] and m.object == d.object for m in flat):
                continue
        out.append(d)
    return out


# --- ddl/ text as the catalogs compare it -------------------------------------------------------


def strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def normal_ws(sql: str) -> str:
    return re.sub(r"\s+", " ", strip_comments(sql)).strip().rstrip(";").strip()


_TRIGGER_ON = re.compile(r"\bON\s+((?:\"?\w+\"?\.)?\"?\w+\"?)", re.I)


def trigger_table(sql: str, dialect: str) -> str:
    """The table a ddl/ trigger is created on, from its head (a SQLite body, after BEGIN, can name other tables)."""
    head = strip_comments(sql)
    head = re.split(get_dialect(dialect).trigger_body_starts, head, maxsplit=1, flags=re.I)[0]
    head = head[re.search(r"CREATE\s+TRIGGER", head, re.I).end():]
    return _TRIGGER_ON.search(head).group(1).replace('"', "")


@dataclass(frozen=True)
class LiveIndex:
    """What a catalog says of an index beyond what Alembic compares. where: the partial-index predicate as the
    database renders it (None: not partial); columns: (name, descending) of the key columns, where Alembic
    cannot see the order itself (None where it can)."""

    where: str | None
    columns: list[tuple[str, bool]] | None = None
