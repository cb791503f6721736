"""Archive tables (seed 000): communication.messages_archive and system.audit_logs_archive.

`archive_operations(dialect)` creates them (plan operations with reverses); `archive_rows(...)` moves the rows
older than a cutoff from the live table into its archive in one transaction; `unarchive_rows(...)`
moves every archived row back. A row is always in exactly one of the two tables: each move inserts,
deletes exactly the inserted ids, checks that the counts agree, and rolls everything back otherwise.

Rollback and the archive:
- SQLite: the archive's reverse puts the archived rows back into the live domain table (then drops the
  archive), so the ordinary move-back takes them to the legacy table. In the plan it comes after the live
  table's CreateTable and before the CreateTrigger operations (its reverse then runs once the domain
  triggers are gone; it drops the live table's triggers itself in any case).
- PostgreSQL: verify and rollback read a live table and its archive as one (plan/archived.py).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from sqlglot import exp

import psycopg

import dpro_migrate.safety.ledger as ledger
from dpro_migrate.db.connections import connect_postgres, open_for_write, write_transaction
from dpro_migrate.db.pgerrors import classify
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.plan.archived import SUFFIX, archive_index_name, archive_of
from dpro_migrate.plan.operations import CreateArchive, Operation
from dpro_migrate.model.schema import Table, load_schema
from dpro_migrate.dialects import POSTGRES, SQLITE, create_table_sql, physical_name, table_sql
from dpro_migrate.sqlnames import column_list, quote_ident
from dpro_migrate.targets import Target, parse_target

ARCHIVES = {"messages": "communication.messages", "audit_logs": "system.audit_logs"}
IDS = "_dpro_archive_ids"


@dataclass
class ArchiveResult:
    moved: int  # rows that left `table` for `archive` (unarchive: the other way)
    table: str = ""
    archive: str = ""
    cutoff: str | None = None  # UTC, ISO 8601; None for unarchive
    already_there: int = 0  # of `moved`: identical copies already in the destination (not copied twice)


def _live(table: str) -> str:
    if table not in ARCHIVES:
        raise BadInput(f"archive: unknown table {table!r}: choose {' or '.join(ARCHIVES)}")
    return ARCHIVES[table]


# --- the tables -----------------------------------------------------------------------------------


def _archive_table(table: Table) -> Table:
    """The same columns (types, NOT NULL, defaults), renamed; no constraint but the primary key on id,
    without its identity (an archived row keeps its id; SQLite: INTEGER PRIMARY KEY, no AUTOINCREMENT)."""
    node = table.node.copy()
    schema = node.this
    items = []
    for item in schema.expressions:
        if isinstance(item, exp.Constraint):
            continue
        if isinstance(item, exp.ColumnDef):
            item.set("constraints", [c for c in item.args.get("constraints") or []
                                     if not isinstance(c.args["kind"], exp.GeneratedAsIdentityColumnConstraint)])
        items.append(item)
    schema.set("expressions", items)
    name = table.name + SUFFIX
    schema.set("this", exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(table.domain)))
    return Table(table.domain, name, table.columns, [], node)


_TRIGGER_ON = re.compile(r"\bON\s+\"?(\w+)\"?", re.I)


def _sqlite_triggers_on(physical: str) -> list[str]:
    """Names of the ddl/ SQLite triggers on a table."""
    out = []
    for trig in load_schema().triggers[SQLITE]:
        head = re.sub(r"--[^\n]*", "", trig.sql).split("BEGIN")[0]
        m = _TRIGGER_ON.search(head)
        if trig.kind == "trigger" and m and m.group(1) == physical:
            out.append(trig.name)
    return out


def _sqlite_archive(live: Table, extra: list[tuple[str, str]]) -> CreateArchive:
    """Created whole; its reverse puts the archived rows back into the live table (without its triggers,
    so re-inserting an agent's message does not touch ai_agents_agents.updated_at), then drops it."""
    qualified, arch_q = live.qualified, archive_of(live.qualified)
    arch = table_sql(arch_q, SQLITE)
    cols = column_list(live.column_names + [n for n, _ in extra])
    drop_triggers = [f"DROP TRIGGER IF EXISTS {quote_ident(t)}" for t in _sqlite_triggers_on(physical_name(qualified, SQLITE))]
    return CreateArchive(
        physical_name(arch_q, SQLITE),
        [create_table_sql(_archive_table(live), SQLITE, extra), _created_at_index(live, arch)],
        drop_triggers + [f"INSERT INTO {table_sql(qualified, SQLITE)} ({cols}) SELECT {cols} FROM {arch} "
                         f"ORDER BY {quote_ident('id')}", f"DROP TABLE IF EXISTS {arch}"],
        table=arch_q, archive_of=qualified, extra_columns=[list(c) for c in extra])


def _postgres_archive(live: Table, extra: list[tuple[str, str]]) -> CreateArchive:
    """LIKE copies whatever columns the live table has; rollback reads the archive with the live table."""
    arch_q = archive_of(live.qualified)
    arch = table_sql(arch_q, POSTGRES)
    return CreateArchive(
        arch_q,
        [f"CREATE TABLE {arch} (LIKE {table_sql(live.qualified, POSTGRES)} INCLUDING DEFAULTS)",
         f"ALTER TABLE {arch} ADD CONSTRAINT {quote_ident(live.name + SUFFIX + '_pkey')} PRIMARY KEY ({quote_ident('id')})",
         _created_at_index(live, arch)],
        [f"DROP TABLE IF EXISTS {arch}"], table=arch_q, archive_of=live.qualified)


def _created_at_index(live: Table, arch: str) -> str:
    return f"CREATE INDEX {quote_ident(archive_index_name(live.qualified))} ON {arch} ({quote_ident('created_at')})"


ARCHIVE_BUILDERS = {SQLITE: _sqlite_archive, POSTGRES: _postgres_archive}


def archive_operations(dialect: str, extra_columns: Mapping[str, Sequence[Sequence[str]]] | None = None
                       ) -> list[Operation]:
    """One operation per archive. `extra_columns`: qualified live table -> its ride-along (name, declared
    type) pairs, as the plan's CreateTable operations list them."""
    extra_columns = extra_columns or {}
    schema = load_schema()
    return [ARCHIVE_BUILDERS[dialect](schema.table(q), [tuple(c) for c in extra_columns.get(q, [])])
            for q in ARCHIVES.values()]


# --- moving rows ----------------------------------------------------------------------------------


def _utc(when: datetime) -> datetime:
    """A naive datetime is read as UTC, like the legacy timestamps."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def archive_rows(connection_info, dialect: str, table: str, older_than: datetime) -> ArchiveResult:
    """Move the rows of `table` ("messages" or "audit_logs") with created_at < older_than into its archive.

    One transaction: the ids are fixed first (PostgreSQL: and locked FOR UPDATE), copied, then exactly those
    ids deleted; the counts must agree and every id must be in the archive, else nothing changes
    (ChecksFailed). A rerun moves nothing more. An id already in the archive with the same values counts as
    moved (`already_there`) and leaves the table; with other values the whole move is refused.
    SQLite: only text timestamps SQLite can read (julianday) are compared; NULL, numbers and unreadable
    text stay in the table. connection_info: SQLite: the migrated file (a path or a Target with a path);
    PostgreSQL: a Target, a postgresql:// URL or a libpq conninfo string."""
    live = _live(table)
    cutoff = _utc(older_than)
    result = MOVERS[dialect](connection_info, live, archive_of(live), CUTOFFS[dialect](cutoff))
    result.cutoff = cutoff.isoformat()
    return result


def unarchive_rows(connection_info, dialect: str, table: str) -> ArchiveResult:
    """Move every archived row of `table` back into it (same guarantees as archive_rows), e.g. before a
    rollback that does not read archives. Triggers of the live table do not fire for these rows."""
    live = _live(table)
    result = MOVERS[dialect](connection_info, archive_of(live), live, None)
    result.table, result.archive = live, archive_of(live)
    return result


def _check_counts(n: int, inserted: int, same: int, deleted: int, absent: int, src: str, dst: str) -> None:
    if deleted != n or inserted + same != n or absent:
        raise ChecksFailed(f"archive: {n} rows of {src} chosen, {inserted} copied to {dst} ({same} already there), "
                           f"{deleted} deleted, {absent} missing from {dst}; nothing was changed")


# --- SQLite ---------------------------------------------------------------------------------------


def _sqlite_path(connection_info) -> Path:
    if isinstance(connection_info, Target):
        if connection_info.path is None:
            raise BadInput("archive: an in-place SQLite target needs the file's path")
        return Path(connection_info.path)
    return Path(connection_info)


def _sqlite_columns(conn: sqlite3.Connection, physical: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA main.table_info({quote_ident(physical)})")]


def _move_sqlite(connection_info, src_q: str, dst_q: str, cond: tuple[str, tuple] | None) -> ArchiveResult:
    path = _sqlite_path(connection_info)
    src, dst = physical_name(src_q, SQLITE), physical_name(dst_q, SQLITE)
    s, d = quote_ident(src), quote_ident(dst)
    conn = open_for_write(path)
    try:
        if not ledger.sqlite_has_ledger(conn):
            raise BadInput(f"{path}: is not migrated; nothing to archive")
        src_cols, dst_cols = _sqlite_columns(conn, src), _sqlite_columns(conn, dst)
        if not src_cols or not dst_cols:
            raise BadInput(f"{path}: has no {src if not src_cols else dst} (apply a plan with the archive steps)")
        lacking = [c for c in src_cols if c not in dst_cols]
        if lacking:
            raise BadInput(f"{path}: {dst} lacks columns of {src}: {', '.join(lacking)}; nothing was changed")
        referencing = [t for (t,) in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")
                       if any(r[2] == src for r in conn.execute(f"PRAGMA main.foreign_key_list({quote_ident(t)})"))]
        if referencing:
            raise BadInput(f"{path}: {', '.join(referencing)} reference {src}; moving its rows would orphan theirs")
        cols = column_list(src_cols)
        where, params = cond if cond else ("1", ())
        with write_transaction(conn, path):
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {IDS} (\"id\" INTEGER PRIMARY KEY)")
            conn.execute(f"DELETE FROM temp.{IDS}")
            n = conn.execute(f"INSERT INTO temp.{IDS} (\"id\") SELECT \"id\" FROM main.{s} WHERE {where}", params).rowcount
            same_row = " AND ".join(f"x.{quote_ident(c)} IS y.{quote_ident(c)} AND typeof(x.{quote_ident(c)}) = "
                                    f"typeof(y.{quote_ident(c)})" for c in src_cols)
            both = (f"FROM main.{s} AS x JOIN main.{d} AS y ON y.\"id\" = x.\"id\" "
                    f"WHERE x.\"id\" IN (SELECT \"id\" FROM temp.{IDS})")
            collide = conn.execute(f"SELECT count(*) {both}").fetchone()[0]
            same = conn.execute(f"SELECT count(*) {both} AND {same_row}").fetchone()[0]
            if collide != same:
                raise ChecksFailed(f"archive: {collide - same} ids of {src} are already in {dst} with other values; "
                                   "nothing was changed")
            triggers = conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger' AND tbl_name IN (?, ?)",
                                    (src, dst)).fetchall()
            for name, _ in triggers:  # a move is neither an insert nor a delete of application data
                conn.execute(f"DROP TRIGGER {quote_ident(name)}")
            inserted = conn.execute(
                f"INSERT INTO main.{d} ({cols}) SELECT {cols} FROM main.{s} WHERE \"id\" IN (SELECT \"id\" FROM temp.{IDS}) "
                f"AND \"id\" NOT IN (SELECT \"id\" FROM main.{d} WHERE \"id\" IS NOT NULL) ORDER BY \"id\"").rowcount
            deleted = conn.execute(f"DELETE FROM main.{s} WHERE \"id\" IN (SELECT \"id\" FROM temp.{IDS})").rowcount
            absent = conn.execute(f"SELECT count(*) FROM temp.{IDS} WHERE \"id\" NOT IN "
                                  f"(SELECT \"id\" FROM main.{d} WHERE \"id\" IS NOT NULL)").fetchone()[0]
            for _, sql in triggers:
                conn.execute(sql)
            _check_counts(n, inserted, same, deleted, absent, src, dst)
            conn.execute(f"DROP TABLE temp.{IDS}")
        return ArchiveResult(deleted, src_q, dst_q, None, same)
    except sqlite3.Error as exc:
        raise ChecksFailed(f"SQLite refused the archive move, nothing was changed: {exc}") from None
    finally:
        conn.close()


# --- PostgreSQL -----------------------------------------------------------------------------------


def _pg_target(connection_info) -> tuple[str, str]:
    """(conninfo for psycopg, what may be shown)."""
    if isinstance(connection_info, Target):
        return connection_info.conninfo, connection_info.display
    text = str(connection_info)
    if "://" in text:
        target = parse_target(text)
        if target.conninfo is None:
            raise BadInput(f"archive: {target.display} is not a PostgreSQL target")
        return target.conninfo, target.display
    return text, "the PostgreSQL target"


def _pg_columns(cur, qualified: str) -> list[str]:
    return [r[0] for r in cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", (table_sql(qualified, POSTGRES),))]


def _move_postgres(connection_info, src_q: str, dst_q: str, cond: tuple[str, tuple] | None) -> ArchiveResult:
    conninfo, display = _pg_target(connection_info)
    s, d = table_sql(src_q, POSTGRES), table_sql(dst_q, POSTGRES)
    conn = connect_postgres(conninfo, display)
    committing = False
    try:
        with conn.transaction(), conn.cursor() as cur:
            src_cols, dst_cols = _pg_columns(cur, src_q), _pg_columns(cur, dst_q)
            if not src_cols or not dst_cols:
                raise BadInput(f"{display}: has no {src_q if not src_cols else dst_q} "
                               "(apply a plan with the archive steps)")
            lacking = [c for c in src_cols if c not in dst_cols]
            if lacking:
                raise BadInput(f"{display}: {dst_q} lacks columns of {src_q}: {', '.join(lacking)}; nothing was changed")
            referencing = [r[0] for r in cur.execute(
                "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass(%s)",
                (s,))]
            if referencing:
                raise BadInput(f"{display}: {', '.join(referencing)} reference {src_q}; moving its rows would "
                               "delete or orphan theirs")
            cols = column_list(src_cols)
            where, params = cond if cond else ("true", ())
            cur.execute(f"CREATE TEMP TABLE {IDS} (\"id\" bigint PRIMARY KEY) ON COMMIT DROP")
            # FOR UPDATE: no concurrent UPDATE or DELETE of these rows between the copy and the delete.
            n = cur.execute(f"INSERT INTO {IDS} SELECT \"id\" FROM {s} WHERE {where} FOR UPDATE", params).rowcount
            x = ", ".join(f"x.{quote_ident(c)}" for c in src_cols)
            y = ", ".join(f"y.{quote_ident(c)}" for c in src_cols)
            both = f"FROM {s} x JOIN {d} y ON y.\"id\" = x.\"id\" WHERE x.\"id\" IN (SELECT \"id\" FROM {IDS})"
            collide = cur.execute(f"SELECT count(*) {both}").fetchone()[0]
            same = cur.execute(f"SELECT count(*) {both} AND ROW({x}) IS NOT DISTINCT FROM ROW({y})").fetchone()[0]
            if collide != same:
                raise ChecksFailed(f"archive: {collide - same} ids of {src_q} are already in {dst_q} with other "
                                   "values; nothing was changed")
            # A move is neither an insert nor a delete of application data: the user triggers that would fire
            # (DELETE on the source, INSERT on the destination) are off for this transaction only.
            triggers = cur.execute(
                "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'O' "
                "AND ((tgrelid = to_regclass(%s) AND tgtype & 8 <> 0) OR (tgrelid = to_regclass(%s) AND tgtype & 4 <> 0))",
                (s, d)).fetchall()
            for rel, name in triggers:
                cur.execute(f"ALTER TABLE {rel} DISABLE TRIGGER {quote_ident(name)}")
            inserted = cur.execute(
                f"INSERT INTO {d} ({cols}) SELECT {cols} FROM {s} x WHERE x.\"id\" IN (SELECT \"id\" FROM {IDS}) "
                f"AND NOT EXISTS (SELECT 1 FROM {d} y WHERE y.\"id\" = x.\"id\") ORDER BY x.\"id\"").rowcount
            deleted = cur.execute(f"DELETE FROM {s} WHERE \"id\" IN (SELECT \"id\" FROM {IDS})").rowcount
            absent = cur.execute(f"SELECT count(*) FROM {IDS} i WHERE NOT EXISTS "
                                 f"(SELECT 1 FROM {d} y WHERE y.\"id\" = i.\"id\")").fetchone()[0]
            for rel, name in triggers:
                cur.execute(f"ALTER TABLE {rel} ENABLE TRIGGER {quote_ident(name)}")
            _check_counts(n, inserted, same, deleted, absent, src_q, dst_q)
            committing = True
        return ArchiveResult(deleted, src_q, dst_q, None, same)
    except psycopg.Error as exc:
        raise classify(exc, conn, display=display, work="the archive move", committing=committing) from None
    finally:
        conn.close()


# How each dialect moves rows, and says "created before the cutoff" (SQLite: only text timestamps SQLite
# can read are compared; NULL, numbers and unreadable text stay in the table).
MOVERS = {SQLITE: _move_sqlite, POSTGRES: _move_postgres}
CUTOFFS = {
    SQLITE: lambda cutoff: ("typeof(\"created_at\") = 'text' AND julianday(\"created_at\") < julianday(?)",
                            (cutoff.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],)),
    POSTGRES: lambda cutoff: ("\"created_at\" < %s", (cutoff,)),
}
