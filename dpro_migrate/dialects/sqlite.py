"""SQLite: domains are table-name prefixes (iam_users); types are rendered for the legacy column's affinity."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlglot import exp

from dpro_migrate.dialects.base import Dialect, SearchObjects, ViewPart
from dpro_migrate.errors import BadInput
from dpro_migrate.model.legacy import STAT_TABLES
from dpro_migrate.model.schema import Table, Trigger
from dpro_migrate.model.search import SearchIndex
from dpro_migrate.model.promise import Promise
from dpro_migrate.sqlnames import column_list, quote_ident, quote_literal
from dpro_migrate.types import sqlite_declared_type


class SQLiteDialect(Dialect):
    name = "sqlite"
    title = "SQLite"
    sqlglot_name = "sqlite"
    param = "?"
    ledger_key = "INTEGER PRIMARY KEY"
    has_schemas = False
    trigger_body_starts = r"\bBEGIN\b"
    alembic_options = {"render_as_batch": True}  # SQLite has no ALTER for most changes: Alembic's batch mode
    version_table_schema = None
    # The inline INTEGER PRIMARY KEY keeps no constraint name (nor does Alembic compare primary keys).
    names_primary_keys = False
    identity_columns = False  # INTEGER PRIMARY KEY AUTOINCREMENT: a table option (sqlite_autoincrement)
    # Apply declares `INTEGER PRIMARY KEY AUTOINCREMENT` without NOT NULL (a rowid alias is never NULL anyway)
    # and SQLite reflection reports such a column nullable: metadata declaring NOT NULL would be a false
    # modify_nullable on every table.
    primary_key_declared_nullable = True
    alembic_scope = "the domain tables (legacy leftovers, the ledger and alembic_version are left out)"

    def table_exists_sql(self, schema: str | None, name: str) -> str:
        return f"SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = {quote_literal(name)}"

    def search_unavailable(self) -> str | None:
        """FTS5 with the trigram tokenizer: SQLite 3.34 or later, built with FTS5 (Python's own sqlite3 module is
        the SQLite apply runs in)."""
        conn = sqlite3.connect(":memory:")
        try:
            conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='trigram')")
            return None
        except sqlite3.Error as exc:
            return (f"the SQLite library Python uses ({sqlite3.sqlite_version}) cannot build the message search "
                    f"index (FTS5 with the trigram tokenizer, SQLite 3.34 or later): {exc}")
        finally:
            conn.close()

    def search_objects(self, index: SearchIndex) -> SearchObjects:
        """An FTS5 table with the trigram tokenizer over the table's rows (external content: the text is not
        stored twice), filled once, then kept in step by three triggers. FTS5's trigram tokenizer answers
        `LIKE '%abc%'` and GLOB on the FTS table itself (patterns of three characters or more)."""
        table = self.physical_name(index.table)
        fts = f"{table}_fts"
        t, f, c = quote_ident(table), quote_ident(fts), quote_ident(index.column)
        triggers = [f"trg_{fts}_insert", f"trg_{fts}_delete", f"trg_{fts}_update"]
        new = f"INSERT INTO {f} (\"rowid\", {c}) VALUES (NEW.\"id\", NEW.{c});"
        old = f"INSERT INTO {f} ({f}, \"rowid\", {c}) VALUES ('delete', OLD.\"id\", OLD.{c});"
        sql = [f"CREATE VIRTUAL TABLE {f} USING fts5({c}, content={quote_literal(table)}, content_rowid='id', "
               "tokenize='trigram')",
               f"INSERT INTO {f} ({f}) VALUES ('rebuild')",
               f"CREATE TRIGGER {quote_ident(triggers[0])} AFTER INSERT ON {t} FOR EACH ROW\nBEGIN\n    {new}\nEND",
               f"CREATE TRIGGER {quote_ident(triggers[1])} AFTER DELETE ON {t} FOR EACH ROW\nBEGIN\n    {old}\nEND",
               f"CREATE TRIGGER {quote_ident(triggers[2])} AFTER UPDATE OF \"id\", {c} ON {t} FOR EACH ROW\n"
               f"BEGIN\n    {old}\n    {new}\nEND"]
        reverse = [f"DROP TRIGGER IF EXISTS {quote_ident(n)}" for n in triggers] + [f"DROP TABLE IF EXISTS {f}"]
        shadows = [f"{fts}_{s}" for s in ("data", "idx", "docsize", "config")]
        return SearchObjects(sql, reverse, [fts, *shadows], triggers, None)

    def analyze_sql(self, tables: list[str]) -> list[str]:
        # one table at a time: ANALYZE of the whole file empties sqlite_stat1, legacy rows set aside included
        return [f"ANALYZE {self.table_sql(t)}" for t in tables]

    def analyze_reverse_sql(self, stat_tables: list[str]) -> list[str]:
        # the domain tables' rows go with their tables; a file that had no statistics gets none back
        return [f"DROP TABLE IF EXISTS {quote_ident(s)}" for s in STAT_TABLES if s not in stat_tables]

    def physical_name(self, qualified: str) -> str:
        domain, name = qualified.split(".", 1)
        return f"{domain}_{name}"

    def table_sql(self, qualified: str) -> str:
        return quote_ident(self.physical_name(qualified))

    def index_sql(self, qualified_table: str, index: str) -> str:
        return quote_ident(index)

    def compat_view_sql(self, legacy: str) -> str:
        return quote_ident(legacy)

    def compat_view_body(self, union: str) -> str:
        return union

    def compat_view_write_sql(self, view: str, columns: list[str], parts: list[ViewPart],
                              defaults: dict[str, str]) -> list[str]:
        """INSTEAD OF triggers, so an unchanged legacy application keeps writing through the legacy name: rows
        go to the domain table (of a split table: to the part the mapping's rule names, and an UPDATE that
        changes which part a row belongs to moves it). SQLite drops them with the view."""
        return [_instead_of_insert(view, columns, parts, defaults), _instead_of_update(view, columns, parts),
                _instead_of_delete(view, parts)]

    def transform(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.DataType) and node.this != exp.DataType.Type.USERDEFINED:
            # declared for the affinity of the legacy column (types.py)
            return exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=sqlite_declared_type(node))
        if isinstance(node, exp.Table) and node.args.get("db"):
            return exp.Table(this=exp.to_identifier(f"{node.db}_{node.name}"))
        if isinstance(node, exp.Boolean):
            return exp.Literal.number(1 if node.this else 0)
        if isinstance(node, exp.Where) and isinstance(node.parent, exp.IndexParameters):
            node.set("this", _as_written(node.this))
        if isinstance(node, exp.Ordered) and isinstance(node.parent, exp.Schema | exp.IndexParameters | exp.Tuple):
            # SQLite indexes take no NULLS FIRST/LAST: ask for SQLite's own order so none is written.
            node.set("nulls_first", not node.args.get("desc"))
        return node

    def predicate_sql(self, where: exp.Where) -> str:
        return self.render(_as_written(where.this.copy()))

    def render(self, node: exp.Expression) -> str:
        """As every dialect renders, but a CREATE TABLE has one column or constraint a line. SQLAlchemy's
        SQLite reflection reads constraint names out of the table's SQL with patterns that stop only at the
        end of a line: with every clause on one line, a CHECK's name and the FOREIGN KEY after it read as one
        garbage foreign-key name (which an Alembic batch rebuild then writes into the schema)."""
        one_line = super().render(node)
        schema = node.this if isinstance(node, exp.Create) and node.kind == "TABLE" else None
        if not isinstance(schema, exp.Schema) or not schema.expressions:
            return one_line
        tree = node.copy().transform(self.transform)
        items = [item.sql(self.sqlglot_name, identify=True, comments=False) for item in tree.this.expressions]
        body = ", ".join(items)
        if one_line.count(f"({body})") != 1:
            return one_line  # rendered otherwise than item by item: leave it as it is
        return one_line.replace(f"({body})", "(\n  " + ",\n  ".join(items) + "\n)")

    def ride_along_column(self, name: str, decl_type: str) -> exp.ColumnDef:
        # declared verbatim: the legacy declaration keeps the legacy affinity
        kind = exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=decl_type) if decl_type else None
        return exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=kind)

    def trigger_sql(self, trigger: Trigger) -> str:
        if not sqlite3.complete_statement(trigger.sql):
            raise BadInput(f"ddl/triggers.sqlite.sql: statement is not complete: {trigger.sql[:60]}")
        return trigger.sql

    def drop_trigger_sql(self, trigger: Trigger, table: str) -> str:
        return f"DROP TRIGGER IF EXISTS {quote_ident(trigger.name)}"

    def catalog(self, conn) -> set[Promise]:
        """What the file holds, as operations promise it: (table | index | trigger | view, name)."""
        return {Promise(kind, name) for kind, name in conn.execute("SELECT type, name FROM main.sqlite_master")}

    def sa_table_options(self, table: Table, autoincrement: bool) -> dict[str, Any]:
        return {"sqlite_autoincrement": autoincrement}


# --- writable compatibility views ---------------------------------------------------------------


def _trigger(view: str, event: str, body: list[str]) -> str:
    statements = "".join(f"\n    {s};" for s in body)
    return (f"CREATE TRIGGER {quote_ident(f'compat_{view}_{event.lower()}')} INSTEAD OF {event} ON {quote_ident(view)} "
            f"FOR EACH ROW\nBEGIN{statements}\nEND")


def _row(view: str, values: dict[str, str]) -> str:
    """The row written through the view as a one-row table under the legacy table's name, for the mapping's
    rule (written against the legacy table) to read."""
    return f"(SELECT {', '.join(f'{v} AS {quote_ident(c)}' for c, v in values.items())}) AS {quote_ident(view)}"


def _held_by_another(part: ViewPart, parts: list[ViewPart], id_sql: str) -> str:
    return " OR ".join(f"EXISTS (SELECT 1 FROM {o.table} WHERE \"id\" = {id_sql})" for o in parts if o is not part)


def _instead_of_insert(view: str, columns: list[str], parts: list[ViewPart], defaults: dict[str, str]) -> str:
    # A view has no defaults: a column the INSERT leaves out arrives as NULL and gets the domain table's default.
    row = _row(view, {c: f"coalesce(NEW.{quote_ident(c)}, {defaults[c]})" if c in defaults else f"NEW.{quote_ident(c)}"
                      for c in columns})
    cols = column_list(columns)
    if len(parts) == 1:
        where = f" WHERE {parts[0].where}" if parts[0].where else ""
        return _trigger(view, "INSERT", [f"INSERT INTO {parts[0].table} ({cols}) SELECT {cols} FROM {row}{where}"])
    # The part the rule names; an id another part holds is left to the second step, which refuses it as the
    # legacy table's primary key would (or, under INSERT OR REPLACE, replaces that row).
    given_id = 'NEW."id"'
    body = [f"INSERT INTO {p.table} ({cols}) SELECT {cols} FROM {row} WHERE ({p.where}) "
            f"AND NOT ({_held_by_another(p, parts, given_id)})" for p in parts]
    # SQLite holds each AUTOINCREMENT counter in memory for a whole statement and writes it back at its end,
    # over what the shared-id triggers wrote meanwhile: one INSERT of several rows into several parts would
    # leave a part's counter below ids another part handed out. Writing the new id into every other part
    # (and removing it at once) moves their counters along.
    new_id = 'coalesce(NEW."id", last_insert_rowid())'
    rest = [c for c in columns if c != "id"]
    for p in parts:
        same = " AND ".join(f"{p.table}.{quote_ident(c)} IS {quote_ident(view)}.{quote_ident(c)}" for c in rest)
        body += [f"INSERT INTO {p.table} (\"id\", {column_list(rest)}) SELECT {new_id}, {column_list(rest)} FROM {row} "
                 f"WHERE NOT ({p.where})",
                 f"DELETE FROM {p.table} WHERE \"id\" = {new_id} AND EXISTS (SELECT 1 FROM {row} WHERE NOT ({p.where}) "
                 f"AND {same}) AND ({_held_by_another(p, parts, new_id)})"]
    return _trigger(view, "INSERT", body)


def _instead_of_update(view: str, columns: list[str], parts: list[ViewPart]) -> str:
    sets = ", ".join(f"{quote_ident(c)} = NEW.{quote_ident(c)}" for c in columns)
    if len(parts) == 1:
        return _trigger(view, "UPDATE", [f"UPDATE {parts[0].table} SET {sets} WHERE \"id\" = OLD.\"id\""])
    row = _row(view, {c: f"NEW.{quote_ident(c)}" for c in columns})
    cols = column_list(columns)
    old_id = 'OLD."id"'
    # in place when the row stays in its part; else into the part its new values belong to, out of the old one
    body = [f"UPDATE {p.table} SET {sets} WHERE \"id\" = {old_id} AND EXISTS (SELECT 1 FROM {row} WHERE {p.where})"
            for p in parts]
    body += [f"INSERT INTO {p.table} ({cols}) SELECT {cols} FROM {row} WHERE ({p.where}) "
             f"AND ({_held_by_another(p, parts, old_id)})" for p in parts]
    body += [f"DELETE FROM {p.table} WHERE \"id\" = {old_id} AND NOT EXISTS (SELECT 1 FROM {row} WHERE {p.where})"
             for p in parts]
    return _trigger(view, "UPDATE", body)


def _instead_of_delete(view: str, parts: list[ViewPart]) -> str:
    return _trigger(view, "DELETE", [f"DELETE FROM {p.table} WHERE \"id\" = OLD.\"id\"" for p in parts])


def _as_written(predicate: exp.Expression) -> exp.Expression:
    """A partial index's predicate as the application writes it: a bare boolean column `is_active` becomes
    `is_active = 1`. SQLite uses a partial index only when the query's WHERE implies the index's predicate
    term by term, and it does not see `is_active = 1` (what applications write) as implying `is_active`."""
    if isinstance(predicate, exp.Column):
        return exp.EQ(this=predicate, expression=exp.Literal.number(1))
    if isinstance(predicate, exp.And | exp.Or):
        return predicate.__class__(this=_as_written(predicate.this), expression=_as_written(predicate.expression))
    if isinstance(predicate, exp.Paren):
        return exp.Paren(this=_as_written(predicate.this))
    return predicate
