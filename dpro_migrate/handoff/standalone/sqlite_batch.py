"""Alembic's batch mode on SQLite without losing what apply built (copied into the Alembic environment).

The environment writes SQLite migrations in batch mode (render_as_batch), as Alembic advises, and Alembic
then rebuilds the table (create a copy, move the rows, drop, rename) for anything but an added column. Its
rebuild reflects the table, and SQLAlchemy's reflection has no triggers, no AUTOINCREMENT and no DESC or
WHERE in an index: a plain `alembic downgrade` of an added column used to drop them all, silently.

keep_what_apply_built(migration_context) gives the migration context an SQLite implementation that
- alters in place what SQLite 3.35+ alters in place (ADD COLUMN, DROP COLUMN, CREATE/DROP INDEX), asking
  SQLite itself first: the batch's operations run in a savepoint that is rolled back, and only if SQLite
  took them all does the batch run them for real, without a rebuild;
- otherwise lets Alembic rebuild, and keeps what the rebuild would drop: the table's triggers (re-created
  as written), AUTOINCREMENT and its counter in sqlite_sequence, and its indexes as written (DESC, WHERE),
  and the foreign keys' names as SQLite has them (not as reflection misreads a table written on one line);
- refuses, before anything changes, a rebuild that would break them: one that drops or renames a column a
  trigger of the table reads, or that drops a table other tables reference while foreign keys are on
  (SQLite's DROP TABLE would delete their rows through ON DELETE CASCADE).

transactional(engine) makes every migration one SQLite transaction (pysqlite otherwise commits DDL as it
goes), so a migration that fails halfway leaves nothing behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.ddl.sqlite import SQLiteImpl
from alembic.util import CommandError
from sqlalchemy.sql.elements import conv

# What SQLite's ALTER TABLE does in place (3.35+), as Alembic's batch records the operations.
IN_PLACE = frozenset({"add_column", "drop_column", "create_index", "drop_index"})
PROBE = "dpro_migrate_probe"
_AUTOINCREMENT = re.compile(r"\bAUTOINCREMENT\b", re.I)
_NAME = r'"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|\w+'
_WORD = re.compile(r'"((?:[^"]|"")*)"|`([^`]*)`|\[([^\]]*)\]|(\w+)')
_STRING = re.compile(r"'(?:[^']|'')*'")
_NAMED_FOREIGN_KEY = re.compile(
    rf"\bCONSTRAINT\s+({_NAME})\s+FOREIGN\s+KEY\s*\(([^)]*)\)\s*REFERENCES\s+({_NAME})", re.I)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unquote(word: str) -> str:
    word = word.strip()
    if word[:1] in "\"`[":
        inner = word[1:-1]
        return inner.replace('""', '"') if word[0] == '"' else inner
    return word


@dataclass
class SavedIndex:
    sql: str
    columns: list[str]


@dataclass
class Rebuilt:
    """What a table had before Alembic's rebuild, to put back after it."""

    table: str
    temp: str  # Alembic's copy, renamed to `table` at the end of the rebuild
    sql: str  # its CREATE TABLE
    triggers: dict[str, str]  # name -> CREATE TRIGGER as written
    indexes: dict[str, SavedIndex]
    autoincrement: bool
    sequence: int | None  # its row in sqlite_sequence
    restored: set[str] = field(default_factory=set)


def _words(sql: str) -> set[str]:
    """The identifiers and keywords of a statement, unquoted, lower case."""
    return {next(g for g in m.groups() if g is not None).replace('""', '"').lower() for m in _WORD.finditer(sql)}


def _saved(conn: sa.engine.Connection, table: str, temp: str) -> Rebuilt:
    master = "SELECT name, sql FROM main.sqlite_master WHERE type = ? AND tbl_name = ? AND sql IS NOT NULL"
    triggers = dict(conn.exec_driver_sql(master, ("trigger", table)).fetchall())
    indexes = {}
    for name, sql in conn.exec_driver_sql(master, ("index", table)).fetchall():
        xinfo = conn.exec_driver_sql(f"PRAGMA main.index_xinfo({quote_ident(name)})").fetchall()
        indexes[name] = SavedIndex(sql, [r[2] for r in xinfo if r[5]])
    row = conn.exec_driver_sql("SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?",
                               (table,)).fetchone()
    has_sequence = conn.exec_driver_sql(
        "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'").fetchone()
    seq = conn.exec_driver_sql("SELECT seq FROM main.sqlite_sequence WHERE name = ?", (table,)).fetchone() \
        if has_sequence else None
    table_sql = row[0] if row and row[0] else ""
    return Rebuilt(table, temp, table_sql, triggers, indexes, bool(_AUTOINCREMENT.search(table_sql)),
                   seq[0] if seq else None)


def _foreign_key_names(table_sql: str) -> dict[tuple[tuple[str, ...], str], str]:
    """{(columns, referenced table): constraint name} of the named table-level foreign keys in a CREATE TABLE,
    read clause by clause (string literals blanked first, so a CHECK's text is never read as one)."""
    text = _STRING.sub("''", table_sql)
    out = {}
    for m in _NAMED_FOREIGN_KEY.finditer(text):
        columns = tuple(_unquote(c) for c in re.findall(_NAME, m.group(2)))
        out[(columns, _unquote(m.group(3)))] = _unquote(m.group(1))
    return out


def _referenced_by(conn: sa.engine.Connection, table: str) -> list[str]:
    names = [r[0] for r in conn.exec_driver_sql("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
    return [n for n in names if n != table and any(
        r[2] == table for r in conn.exec_driver_sql(f"PRAGMA main.foreign_key_list({quote_ident(n)})"))]


class KeepingSQLiteImpl(SQLiteImpl):
    """SQLiteImpl that alters in place where SQLite can and keeps triggers, AUTOINCREMENT and indexes
    through a rebuild. No __dialect__ here: Alembic registers an impl class by that attribute, and this
    one must only serve the migration context it is given to."""

    def requires_recreate_in_batch(self, batch_op) -> bool:
        if not super().requires_recreate_in_batch(batch_op):
            return False
        return not self._sqlite_takes_in_place(batch_op)

    def _sqlite_takes_in_place(self, batch_op) -> bool:
        """Whether SQLite runs every operation of the batch as an ALTER: tried in a savepoint, rolled back."""
        if any(name not in IN_PLACE or {"insert_before", "insert_after"} & set(kw)
               for name, _, kw in batch_op.batch):
            return False
        if self.as_sql:
            return False  # nothing to ask: Alembic's own choice (its batch needs a database anyway)
        conn = self.connection
        conn.exec_driver_sql(f"SAVEPOINT {PROBE}")
        try:
            for name, args, kw in batch_op.batch:
                getattr(self, name)(*args, **kw)
        except sa.exc.DBAPIError:
            return False
        finally:
            conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {PROBE}")
            conn.exec_driver_sql(f"RELEASE SAVEPOINT {PROBE}")
        return True

    # --- a rebuild: ApplyBatchImpl._create calls these, in this order ------------------------

    def prep_table_for_batch(self, batch_impl, table: sa.Table) -> None:
        super().prep_table_for_batch(batch_impl, table)
        if self.as_sql:
            return
        conn = self.connection
        saved = _saved(conn, table.name, batch_impl.temp_table_name)
        kept = {c.name for c in batch_impl.new_table.columns}
        gone = sorted(c.name for c in table.columns if c.name not in kept)
        readers = {t: [c for c in gone if c.lower() in _words(sql)] for t, sql in sorted(saved.triggers.items())}
        if readers := {t: cols for t, cols in readers.items() if cols}:
            columns = sorted({c for cols in readers.values() for c in cols})
            raise CommandError(
                f"rebuilding {table.name} would drop or rename column {', '.join(columns)}, which its trigger "
                f"{', '.join(readers)} reads; nothing was changed. Drop or change the trigger first "
                "(op.execute), in the same migration")
        if conn.exec_driver_sql("PRAGMA foreign_keys").scalar() and (children := _referenced_by(conn, table.name)):
            raise CommandError(
                f"rebuilding {table.name} drops it, and with PRAGMA foreign_keys on SQLite deletes the rows of "
                f"{', '.join(children)} that reference it (ON DELETE CASCADE); nothing was changed. Run this "
                "migration on a connection without PRAGMA foreign_keys")
        # SQLAlchemy reads a foreign key's name from the table's SQL with a pattern that, on a table written
        # on one line (apply before 0.2), runs across the clauses before it: take the name SQLite keeps.
        names = _foreign_key_names(saved.sql)
        for fk in batch_impl.new_table.foreign_key_constraints:
            referred = fk.elements[0].target_fullname.rsplit(".", 1)[0] if fk.elements else ""
            name = names.get((tuple(fk.column_keys), referred))
            if name and fk.name != name:
                fk.name = conv(name)
        if saved.autoincrement:
            # The rebuild's copy is made from reflection, which has no AUTOINCREMENT.
            batch_impl.new_table.dialect_options["sqlite"]["autoincrement"] = True
        self._rebuilt = {**getattr(self, "_rebuilt", {}), table.name: saved}

    def rename_table(self, old_table_name, new_table_name, schema=None) -> None:
        saved = getattr(self, "_rebuilt", {}).get(str(new_table_name))
        if saved is None or old_table_name != saved.temp or self.as_sql:
            return super().rename_table(old_table_name, new_table_name, schema=schema)
        conn = self.connection
        # Views read the table by name: without the legacy rename, SQLite refuses to rename the copy
        # while a view names a table that (for a moment) does not exist.
        legacy = conn.exec_driver_sql("PRAGMA legacy_alter_table").scalar()
        conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
        try:
            super().rename_table(old_table_name, new_table_name, schema=schema)
        finally:
            conn.exec_driver_sql(f"PRAGMA legacy_alter_table = {'ON' if legacy else 'OFF'}")
        for sql in saved.triggers.values():
            conn.exec_driver_sql(sql)
        if saved.sequence is not None:
            # DROP TABLE took the counter; the copy's is the highest id, which reuses deleted ones.
            done = conn.exec_driver_sql("UPDATE main.sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
                                        (saved.sequence, saved.table)).rowcount
            if not done:
                conn.exec_driver_sql("INSERT INTO main.sqlite_sequence (name, seq) VALUES (?, ?)",
                                     (saved.table, saved.sequence))

    def create_index(self, index: sa.Index, **kw: Any) -> None:
        saved = getattr(self, "_rebuilt", {}).get(index.table.name if index.table is not None else "")
        old = saved.indexes.get(index.name) if saved is not None else None
        columns = [getattr(e, "name", None) for e in index.expressions]
        if old is not None and index.name not in saved.restored and old.columns == columns and not self.as_sql:
            # The index as it was written (DESC, WHERE), not as reflection saw it.
            saved.restored.add(index.name)
            self.connection.exec_driver_sql(old.sql)
            return
        super().create_index(index, **kw)



def keep_what_apply_built(migration_context) -> None:
    """Give an SQLite migration context the implementation above (see the module's docstring)."""
    impl = migration_context.impl
    if type(impl) is SQLiteImpl:
        # Alembic picks its impl class by dialect name from a registry for the whole process; swapping the
        # class of this one instance changes this migration context only.
        impl.__class__ = KeepingSQLiteImpl


def transactional(engine: sa.engine.Engine) -> sa.engine.Engine:
    """One SQLite transaction per Alembic transaction, DDL included (SQLAlchemy's recipe for pysqlite:
    the driver's own transaction handling is turned off and BEGIN is emitted where SQLAlchemy begins)."""

    @sa.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine
