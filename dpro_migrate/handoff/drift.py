"""Schema drift: Alembic's differences made readable, and the checks Alembic cannot make.

Alembic's autogenerate comparison (used by handoff.schema_drift) sees tables, columns, types, nullability,
server defaults, indexes, unique/foreign keys and (with the checkconstraint_byname plugin) named CHECKs.
It does not see triggers or trigger functions; it does not compare partial-index predicates on any dialect
(Alembic #1112); on SQLite it cannot see DESC in an index, because SQLAlchemy's SQLite reflection drops it.
This module checks those against ddl/ itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dpro_migrate import DOMAINS
from dpro_migrate.model.schema import TargetSchema
from dpro_migrate.dialects import POSTGRES, SQLITE, expression_sql, physical_name
from dpro_migrate.sqlnames import quote_ident

_SQLGLOT = {SQLITE: "sqlite", POSTGRES: "postgres"}


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


# --- triggers -----------------------------------------------------------------------------------


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def _normal_ws(sql: str) -> str:
    return re.sub(r"\s+", " ", _strip_comments(sql)).strip().rstrip(";").strip()


_TRIGGER_ON = re.compile(r"\bON\s+((?:\"?\w+\"?\.)?\"?\w+\"?)", re.I)


def _trigger_table(sql: str, dialect: str) -> str:
    """The table a ddl/ trigger is created on (the SQLite body, after BEGIN, can name other tables)."""
    head = _strip_comments(sql)
    head = re.split(r"\bBEGIN\b" if dialect == SQLITE else r"\bEXECUTE\b", head, maxsplit=1, flags=re.I)[0]
    head = head[re.search(r"CREATE\s+TRIGGER", head, re.I).end():]
    return _TRIGGER_ON.search(head).group(1).replace('"', "")


def _function_body(sql: str) -> str | None:
    m = re.search(r"AS\s+\$(\w*)\$(.*)\$\1\$", sql, re.S | re.I)
    return m.group(2) if m else None


def trigger_differences(conn: sa.engine.Connection, dialect: str, schema: TargetSchema) -> list[Difference]:
    """Every trigger (and, on PostgreSQL, trigger function) of ddl/ exists, on its table, as written; no other
    trigger sits on a domain table. SQLite: sqlite_master; PostgreSQL: pg_trigger and pg_proc."""
    expected = [t for t in schema.triggers[dialect] if t.kind == "trigger"]
    out: list[Difference] = []
    if dialect == SQLITE:
        tables = {physical_name(q, SQLITE) for q in schema.tables}
        live = {r[0]: (r[1], r[2]) for r in conn.exec_driver_sql(
            "SELECT name, tbl_name, sql FROM main.sqlite_master WHERE type = 'trigger'")}
        for trig in expected:
            table = _trigger_table(trig.sql, SQLITE)
            if trig.name not in live:
                out.append(Difference("missing_trigger", trig.name, f"trigger on {table} in ddl/, not in the database"))
                continue
            live_table, live_sql = live[trig.name]
            if live_table != table:
                out.append(Difference("changed_trigger", trig.name, f"on {live_table} in the database, on {table} in ddl/"))
            elif _normal_ws(live_sql or "") != _normal_ws(trig.sql):
                # SQLite keeps the CREATE TRIGGER text as written: any other text is another trigger.
                out.append(Difference("changed_trigger", trig.name, "definition differs from ddl/triggers.sqlite.sql"))
        names = {t.name for t in expected}
        for name, (table, _) in sorted(live.items()):
            if name not in names and table in tables:
                out.append(Difference("unexpected_trigger", name, f"trigger on {table} in the database, not in ddl/"))
        return out

    live_pg = {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(sa.text(
        "SELECT n.nspname, t.tgname, c.relname, t.tgenabled FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT t.tgisinternal AND n.nspname = ANY(:schemas)"), {"schemas": list(DOMAINS)})}
    by_name = {name: (nsp, rel, enabled) for (nsp, name), (rel, enabled) in live_pg.items()}
    for trig in expected:
        table = _trigger_table(trig.sql, POSTGRES)
        found = by_name.get(trig.name)
        if found is None or f"{found[0]}.{found[1]}" != table:
            if found is None:
                out.append(Difference("missing_trigger", trig.name, f"trigger on {table} in ddl/, not in the database"))
            else:
                out.append(Difference("changed_trigger", trig.name,
                                      f"on {found[0]}.{found[1]} in the database, on {table} in ddl/"))
        elif found[2] == "D":
            out.append(Difference("changed_trigger", trig.name, f"on {table}: disabled in the database"))
    names = {t.name for t in expected}
    for name, (nsp, rel, _) in sorted(by_name.items()):
        if name not in names:
            out.append(Difference("unexpected_trigger", name, f"trigger on {nsp}.{rel} in the database, not in ddl/"))
    functions = {f"{r[0]}.{r[1]}": r[2] for r in conn.execute(sa.text(
        "SELECT n.nspname, p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = ANY(:schemas)"), {"schemas": list(DOMAINS)})}
    for fn in (t for t in schema.triggers[POSTGRES] if t.kind == "function"):
        if fn.name not in functions:
            out.append(Difference("missing_function", fn.name, "trigger function in ddl/, not in the database"))
        elif (body := _function_body(fn.sql)) is not None and _normal_ws(body) != _normal_ws(functions[fn.name]):
            # prosrc is the text between the dollar quotes, as written.
            out.append(Difference("changed_function", fn.name, "body differs from ddl/triggers.postgresql.sql"))
    return out


# --- index details Alembic does not compare ------------------------------------------------------


def _normal_expr(sql: str, dialect: str) -> str:
    """A predicate in a comparable form: parsed, casts and parentheses dropped (the tree keeps precedence),
    every identifier quoted. PostgreSQL reflects `status = 'running'` as ((status)::text = 'running'::text)."""
    tree = sqlglot.parse_one(sql, read=_SQLGLOT[dialect])
    while (node := tree.find(exp.Cast, exp.Paren)) is not None:
        if node is tree:
            tree = node.this.pop()
        else:
            node.replace(node.this)
    return tree.sql(_SQLGLOT[dialect], identify=True)


def _expected_where(index, dialect: str) -> str | None:
    where = index.node.find(exp.IndexParameters).args.get("where")
    return None if where is None else expression_sql(where.this, dialect)


def index_differences(conn: sa.engine.Connection, dialect: str, schema: TargetSchema,
                      skip: set[str]) -> list[Difference]:
    """Partial-index predicates (both dialects) and, on SQLite, the ASC/DESC of each column.
    skip: index names Alembic already reported (missing, unexpected or changed)."""
    out: list[Difference] = []
    for index in schema.indexes:
        if index.name in skip:
            continue
        on = physical_name(index.table, dialect)
        want_where = _expected_where(index, dialect)
        if dialect == SQLITE:
            row = conn.exec_driver_sql("SELECT sql FROM main.sqlite_master WHERE type = 'index' AND name = ?",
                                       (index.name,)).fetchone()
            if row is None or not row[0]:
                continue  # missing: Alembic reports it
            xinfo = conn.exec_driver_sql(f"PRAGMA main.index_xinfo({quote_ident(index.name)})").fetchall()
            live_cols = [(r[2], bool(r[3])) for r in xinfo if r[5]]  # (name, desc) of the key columns
            want_cols = [(o.this.name, bool(o.args.get("desc")))
                         for o in index.node.find(exp.IndexParameters).args["columns"]]
            if [c for c, _ in live_cols] == [c for c, _ in want_cols] and live_cols != want_cols:
                show = lambda cols: ", ".join(c + (" DESC" if d else "") for c, d in cols)  # noqa: E731
                out.append(Difference("changed_index", f"{index.name} on {on}",
                                      f"columns ({show(live_cols)}) in the database, ({show(want_cols)}) in ddl/"))
            live_where_node = sqlglot.parse_one(row[0], read="sqlite").find(exp.IndexParameters)
            live_where = live_where_node.args.get("where") if live_where_node else None
            live_where = live_where.this.sql("sqlite") if live_where is not None else None
        else:
            domain = index.table.split(".")[0]
            row = conn.execute(sa.text(
                "SELECT pg_get_expr(i.indpred, i.indrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname = :n"),
                {"s": domain, "n": index.name}).fetchone()
            if row is None:
                continue
            live_where = row[0]
        same = (live_where is None and want_where is None) or (
            live_where is not None and want_where is not None
            and _normal_expr(live_where, dialect) == _normal_expr(want_where, dialect))
        if not same:
            out.append(Difference("changed_index", f"{index.name} on {on}",
                                  f"predicate {('WHERE ' + live_where) if live_where else 'none'} in the database, "
                                  f"{('WHERE ' + want_where) if want_where else 'none'} in ddl/"))
    return out
