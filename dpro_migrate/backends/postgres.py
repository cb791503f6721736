"""Execute a plan into PostgreSQL: one transaction, COPY streamed from SQLite, source never written."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

import dpro_migrate.safety.ledger as ledger
from dpro_migrate import DOMAINS
from dpro_migrate.backends.sqlite import ApplyResult, RollbackResult
from dpro_migrate.compare import attach_readonly
from dpro_migrate.db.connections import (LOCK_KEY, claim_session, connect, copy_producers, locked_transaction,
                                         open_for_write, open_source, transaction_settings_sql, write_transaction)
from dpro_migrate.db.pgerrors import classify, refused_rows
from dpro_migrate.db.copy_producers import Producers, ProducerFailed, change_counter, open_producers
from dpro_migrate.db.pgcopy import copy_into, prefetched, stream_lines, stream_rows
from dpro_migrate.dialects import POSTGRES, table_sql
from dpro_migrate.errors import BadInput, Blocked, ChecksFailed, DproMigrateError, OutcomeUnknown
from dpro_migrate.model.legacy import schema_fingerprint
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.types import type_class_of_pg
from dpro_migrate.plan.columns import created_columns, read_back_columns, refuse_changed_columns
from dpro_migrate.plan.document import Plan, refuse_other_source
from dpro_migrate.plan.operations import CopyRows, CreateArchive, CreateCompatView, CreateTable, Operation, QuarantineRows
from dpro_migrate.plan.preflight import REFUSED, refuse_if_found, run_refusal
from dpro_migrate.results import Timings
from dpro_migrate.plan.program import Statement
from dpro_migrate.safety.alembic_version import release_baseline, version_table_sql
from dpro_migrate.backends.pg_replace import (check_replaced_dump, outside_dependents, refuse_outside, replace_schemas,
                                              restore_command, restore_replaced)
from dpro_migrate.safety.backup import backup_file
from dpro_migrate.safety.pg_dump import PgBackup, libpq_command, pg_dump  # noqa: F401 (PgBackup, libpq_command: their old home)
from dpro_migrate.sqlnames import column_list, quote_ident
from dpro_migrate.targets import Target
from dpro_migrate.verify.postgres import (count_rows, first_line, has_ledger, load_source_rows, open_source_as_applied,
                                          read_ledger, rows_of)
from dpro_migrate.verify.report import per_legacy, unaccounted


def existing_schemas(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1",
                                       (list(DOMAINS),))]


def user_table_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                        "AND n.nspname NOT LIKE 'pg_toast%%'").fetchone()[0]


class PostgresRunner:
    """What operations run on: a cursor inside apply's transaction, and the SQLite source to COPY from."""

    def __init__(self, cur, src: sqlite3.Connection, rows_progress=None, producers: Producers | None = None):
        self.cur, self.src = cur, src
        self.rows_progress = rows_progress
        self.producers = producers  # processes building the moves' lines; None: a thread of this process
        self.current: Operation | None = None
        self.renumbered = 0

    def execute(self, statements: list[str]) -> int:
        rows = 0
        for statement in statements:
            self.cur.execute(statement)
            rows += max(self.cur.rowcount, 0)
        return rows

    def copy(self, copy_sql: str, source_sql: str) -> int:
        op = self.current
        report = (lambda n: self.rows_progress(op, n)) if self.rows_progress and op and op.moves_rows else None
        if not (op and op.moves_rows):
            blocks = stream_rows(self.src, source_sql)
        elif self.producers:
            blocks = self.producers.blocks(source_sql)
        else:
            blocks = prefetched(stream_lines(self.src, source_sql))
        return copy_into(self.cur, copy_sql, blocks, report)

    def refuse(self, once: list[str], repeat: list[str], tables: list[str]) -> dict[str, int]:
        # Policy quarantine ran the refusal on the source before the transaction (see _refuse): its ids are
        # what the quarantined rows' COPY reads.
        return dict(self.src.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))


def apply_program(plan: Plan) -> list[Statement]:
    """The framing around the operations, as the script shows it (the executor runs the same)."""
    return [Statement("BEGIN", script_only=True),
            Statement(f"SELECT pg_try_advisory_xact_lock({LOCK_KEY})", script_only=True,
                      comment="one dpro-migrate at a time: apply refuses when this answers false"),
            *(Statement(s, script_only=True) for s in transaction_settings_sql())]


def apply_script(plan: Plan, backup_dir: Path | None = None) -> str:
    lines = [f"-- dpro-migrate {plan.tool_version}: apply {plan.source} into {plan.target}",
             "-- The rows of each COPY are read from the SQLite source with the query shown above it, in one "
             "snapshot; a DBA can run those queries with the sqlite3 shell to see exactly what is sent."]
    lines += [s.render("%s") for s in apply_program(plan)]
    for op in plan.operations:
        lines += op.script()
    lines.append("-- checked before the commit: the rows copied per legacy table, plus those quarantined, equal the "
                 "rows in the source; else nothing is committed")
    lines += [Statement(ledger.create_sql(POSTGRES)).render("%s"),
              ledger.insert_statement(POSTGRES, "apply", plan, None, state={"target": plan.target}).render("%s"),
              "COMMIT;"]
    return "\n".join(lines) + "\n"


def apply_postgres(plan: Plan, target: Target, *, backup_dir: Path, replace_existing: bool = False,
                   progress=None, rows_progress=None) -> ApplyResult:
    """The source is copied first (SQLite's online backup API, checked): the load reads the copy, so the
    application is held up for the copy only, and the copy is the snapshot rollback later reconciles against
    (rows written on either side after it)."""
    started = time.monotonic()
    timings = Timings()
    source = Path(plan.source)
    conn = connect(target)
    src = None
    runner: PostgresRunner | None = None
    committing = False
    try:
        claim_session(conn, target)  # before the ledger is read: a second dpro-migrate refuses, never reads a stale state
        if has_ledger(conn):
            last = ledger.latest_apply(ledger.read_entries(conn, POSTGRES))
            if last is not None and last.plan is not None:
                refuse_other_source(last.plan, source, target.display)
            if replace_existing:  # asked to replace: "already migrated, nothing changed" would drop that wish silently
                raise BadInput(f"{target.display}: is already migrated from {source}"
                               + (f" (applied {last.at})" if last else "") + "; --replace-existing does not replace a "
                               "migration: roll it back first (dpro-migrate rollback), then apply; nothing was changed")
            return ApplyResult(True, applied_at=last.at if last else None)
        existing = existing_schemas(conn)
        if existing and not replace_existing:
            raise BadInput(f"{target.display} already holds schemas {', '.join(existing)}; nothing was changed "
                           "(pass --replace-existing to back them up with pg_dump and replace them)")
        refuse_outside(outside_dependents(conn, existing), target.display)  # nothing outside the seven ever goes
        with timings.timed("snapshot of the source"):
            snapshot = backup_file(source, backup_dir)
        counter = change_counter(snapshot.path)  # before src opens it (see db/copy_producers.py)
        src = open_source(snapshot.path)
        if schema_fingerprint(src) != plan.source_fingerprint:
            snapshot.path.unlink(missing_ok=True)
            raise BadInput(f"{source}: its schema changed since the plan was made (fingerprint differs); make a new plan")
        with timings.timed("find refused rows"):
            refused = _refuse(src, plan)
        with timings.timed("backup (pg_dump)"):
            # the dump counts the rows of the schemas it replaces, in its own snapshot
            backup = pg_dump(target, backup_dir, conn, existing) if existing or user_table_count(conn) else None
        moved: dict[str, int] = {}
        with locked_transaction(conn, target), conn.cursor() as cur:
            replace_schemas(cur, existing, target.display, dumped=backup)  # checked again: nothing outside them goes
            producers = _producers(snapshot.path, counter, src, plan)
            try:
                runner = PostgresRunner(cur, src, rows_progress, producers)
                for i, op in enumerate(plan.operations):
                    if progress:
                        progress(i, len(plan.operations), op)
                    runner.current = op
                    began = time.monotonic()
                    rows = op.forward(runner)
                    timings.operation(op, time.monotonic() - began, rows)
                    if op.moves_rows:
                        moved[op.name] = rows
            finally:
                if producers:
                    producers.close()
            with timings.timed("checks"):
                _check_counts(src, plan, moved, refused)
            cur.execute(ledger.create_sql(POSTGRES))
            # the transaction's id: rows whose xmin is still this one are as apply wrote them (verify)
            xid = cur.execute("SELECT pg_current_xact_id()::xid::text").fetchone()[0]
            insert = ledger.insert_statement(POSTGRES, "apply", plan, str(backup.path) if backup else None,
                                             state={"target": target.display, "snapshot": str(snapshot.path),
                                                    "xid": xid, "replaced": existing})
            cur.execute(insert.sql, insert.params)
            committing = True  # what fails from here on fails during COMMIT
            commit = time.monotonic()
        timings.add_phase("commit", time.monotonic() - commit)
        return ApplyResult(False, backup or snapshot, moved, time.monotonic() - started, timings=timings,
                           quarantined=refused)
    except ProducerFailed as exc:
        # a producer killed from outside, or the snapshot written under the copy: the transaction never committed
        raise Blocked(f"the copy into {target.display} stopped: {exc}; nothing was changed") from None
    except psycopg.Error as exc:
        if refused_rows(exc) and not committing and plan.on_reject == "fail" and src is not None:
            refuse_if_found(src, plan.preflight["sql_once"], plan.preflight["sql_repeat"])  # which rows, which rules
        step = "COMMIT" if committing else runner.current.describe() if runner and runner.current else ""
        raise classify(exc, conn, display=target.display, work="the load", step=step, committing=committing) from None
    finally:
        conn.close()
        if src is not None:
            src.close()


def _producers(path: Path, counter: str, src: sqlite3.Connection, plan: Plan) -> Producers | None:
    """Producer processes for the plan's moves, reading the snapshot `src` holds open (see db/copy_producers.py);
    None: the lines are built by a thread of this process."""
    moves = [(op.source_sql, op.legacy) for op in plan.of_type(CopyRows)]
    refused = src.execute(f"SELECT source_table, source_pk, rule FROM {REFUSED}") if plan.on_reject != "fail" else ()
    return open_producers(path, counter, src, moves, copy_producers(), refused)


def _refuse(src: sqlite3.Connection, plan: Plan) -> dict[str, int]:
    """Policy quarantine: the preflight on the source snapshot, into the source connection's temp table the
    loads read. Policy fail runs nothing here for a UTF-8 file: the server enforces every rule atomically and
    the load's encoder refuses what the server would convert silently; a refusal is explained afterwards."""
    if plan.on_reject == "fail":
        if src.execute("PRAGMA encoding").fetchone()[0] != "UTF-8":
            # SQLite builds each COPY line in UTF-8: a UTF-16 text holding a lone surrogate would reach the server
            # already changed (SQLite substitutes it). The preflight reads the text's own bytes: run it first.
            refuse_if_found(src, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
        return {}
    run_refusal(src, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
    refused = dict(src.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
    planned = {t for op in plan.of_type(QuarantineRows) for t in op.tables}
    if set(refused) - planned:
        raise ChecksFailed(f"rows of {', '.join(sorted(set(refused) - planned))} break rules now but did not when "
                           "the plan was made; nothing was changed: make a new plan")
    return refused


def _check_counts(src: sqlite3.Connection, plan: Plan, moved: dict[str, int], refused: dict[str, int]) -> None:
    wrong = unaccounted(per_legacy((m.legacy, moved.get(m.name, 0)) for m in plan.moves),
                        refused, lambda name: count_rows(src, name))
    if wrong:
        raise ChecksFailed(f"rows copied do not add up to the legacy tables ({', '.join(wrong)}); nothing was changed")


def finalize_postgres(target: Target) -> list[str]:
    """End of the cutover window: drop the compatibility views."""
    conn, entry = read_ledger(target, claim=True)
    try:
        if entry is None:
            raise BadInput(f"{target.display}: is not migrated; nothing to finalize")
        plan = entry.plan
        with locked_transaction(conn, target), conn.cursor() as cur:
            views = plan.of_type(CreateCompatView)
            dropped = [v.name for v in views
                       if cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'public."{v.name}"',)).fetchone()[0]]
            runner = PostgresRunner(cur, None)
            for view in views:
                view.backward(runner)
            insert = ledger.insert_statement(POSTGRES, "finalize", plan, None, state={"dropped": dropped})
            cur.execute(insert.sql, insert.params)
        return dropped
    finally:
        conn.close()


# --- rollback -----------------------------------------------------------------------------------


@dataclass
class Changes:
    """What PostgreSQL holds now that the snapshot apply loaded did not, for one legacy table: its rows
    (converted back to the legacy representation) by id; None for a row deleted since."""

    legacy: str
    columns: list[str]
    inserted: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    rows: list[tuple[int, tuple | None]] = field(default_factory=list)  # (legacy id, row or None), in order

    def counts(self) -> dict[str, int]:
        return {"inserted": len(self.inserted), "updated": len(self.updated), "deleted": len(self.deleted)}


def _as_sqlite_sql(column: str, pg_type: str) -> str:
    """PostgreSQL -> the legacy SQLite representation, for write-back (the type class's own conversion)."""
    return type_class_of_pg(pg_type).write_back(column)


def postgres_changes(cur, src: sqlite3.Connection, plan: Plan) -> dict[str, Changes]:
    """Per legacy table, the rows inserted, updated and deleted in PostgreSQL since the snapshot: the source
    rows as apply loaded them (converted as apply converts them) against the domain tables, in the server."""
    out: dict[str, Changes] = {}
    archived = plan.archived_tables()
    for move in plan.of_type(CopyRows):
        load_source_rows(cur, src, move, "_dpro_source")
        target = rows_of(move, archived)
        s = ", ".join(f"s.{quote_ident(c)}" for c in move.columns)
        t_ = ", ".join(f"t.{quote_ident(c)}" for c in move.columns)
        ch = out.setdefault(move.legacy, Changes(move.legacy, move.columns))
        ids = lambda sql: [r[0] for r in cur.execute(sql)]  # noqa: E731
        inserted = ids(f"SELECT t.\"id\" FROM {target} t WHERE NOT EXISTS "
                       f"(SELECT 1 FROM _dpro_source s WHERE s.\"id\" = t.\"id\") ORDER BY 1")
        updated = ids(f"SELECT s.\"id\" FROM _dpro_source s JOIN {target} t ON t.\"id\" = s.\"id\" "
                      f"WHERE ({s}) IS DISTINCT FROM ({t_}) ORDER BY 1")
        deleted = ids(f"SELECT s.\"id\" FROM _dpro_source s WHERE NOT EXISTS "
                      f"(SELECT 1 FROM {target} t WHERE t.\"id\" = s.\"id\") ORDER BY 1")
        ch.inserted += inserted
        ch.updated += updated
        ch.deleted += deleted
        if inserted or updated:
            # a column someone added by hand may be called "10%s": a literal % to psycopg's placeholders
            select = ", ".join(_as_sqlite_sql(c, move.types[c]) for c in move.columns).replace("%", "%%")
            for row in cur.execute(f"SELECT {select} FROM {target} t WHERE t.\"id\" = ANY(%s) ORDER BY t.\"id\"",
                                   (inserted + updated,)):
                ch.rows.append((row[move.columns.index("id")], tuple(row)))
        ch.rows += [(i, None) for i in deleted]
    for ch in out.values():
        _moved_between_parts(ch)
    return {name: ch for name, ch in out.items() if ch.inserted or ch.updated or ch.deleted}


def _moved_between_parts(ch: Changes) -> None:
    """A row of a split table the application moved from one part to the other (deleted there, inserted here
    under its id) is, for the legacy table, one row updated."""
    present = {i for i, row in ch.rows if row is not None}
    moved = set(ch.deleted) & present
    if moved:
        ch.rows = [(i, row) for i, row in ch.rows if row is not None or i not in moved]
        ch.deleted = [i for i in ch.deleted if i not in moved]
        ch.inserted = [i for i in ch.inserted if i not in moved]
        ch.updated = sorted(set(ch.updated) | moved)


def rows_without_legacy_home(cur, plan: Plan) -> dict[str, int]:
    out = {}
    for table in plan.tables_without_legacy_home():
        n = cur.execute(f"SELECT count(*) FROM {table_sql(table.table, POSTGRES)}").fetchone()[0]
        if n:
            out[table.name] = n
    return out


def _live_columns(cur, tables) -> dict[str, set[str]]:
    """The columns each of `tables` (qualified) has now; a table that is gone is left out."""
    out: dict[str, set[str]] = {}
    for schema, name, column in cur.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema || '.' || table_name = ANY(%s)", (list(tables),)):
        out.setdefault(f"{schema}.{name}", set()).add(column)
    return out


def columns_added_after_apply(cur, plan: Plan) -> dict[str, int]:
    """Columns of the domain tables apply did not create, with how many rows hold a value in them."""
    out = {}
    for table, expected in created_columns(plan).items():
        schema, name = table.split(".", 1)
        live = [r[0] for r in cur.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_schema = %s AND table_name = %s", (schema, name))]
        for column in live:
            if column not in expected:
                n = cur.execute(f"SELECT count(*) FROM {table_sql(table, POSTGRES)} "
                                f"WHERE {quote_ident(column)} IS NOT NULL").fetchone()[0]
                if n:
                    out[f"{table}.{column}"] = n
    return out


def _typed(row) -> tuple | None:
    """A row as SQLite holds it, storage class included (1 and 1.0 differ)."""
    return None if row is None else tuple((type(v).__name__, v) for v in row)


@dataclass
class Reconciled:
    written: dict[str, dict[str, int]]  # legacy table -> {"inserted", "updated", "deleted", "renumbered"}
    conflicts: list[dict]
    backup: object = None


def _reconcile(conn: sqlite3.Connection, snapshot: Path | None, changes: dict[str, Changes], on_conflict: str,
               write: bool) -> Reconciled:
    """Inside the source's write transaction: each row PostgreSQL changed goes back to the legacy table
    unless the source changed it too since the snapshot (three ways: snapshot, source now, PostgreSQL now).
    Changed on both sides to the same row: nothing to do (a rerun after an interrupted rollback). Changed on
    both sides differently, or one id used on both sides for different rows: a conflict, settled by
    `on_conflict` (refuse; postgres: its version wins, an id the source used for another row is given a new
    one; source: the source's version stays)."""
    written: dict[str, dict[str, int]] = {}
    conflicts: list[dict] = []
    for legacy, ch in changes.items():
        table = quote_ident(legacy)
        cols = column_list(ch.columns)
        no_id = [c for c in ch.columns if c != "id"]
        done = written.setdefault(legacy, {"inserted": 0, "updated": 0, "deleted": 0, "renumbered": 0})
        claimed: set[int] = set()
        inserted = set(ch.inserted)
        for id_, pg_row in ch.rows:
            try:
                now = conn.execute(f"SELECT {cols} FROM main.{table} WHERE \"id\" = ?", (id_,)).fetchone()
                before = conn.execute(f"SELECT {cols} FROM snap.{table} WHERE \"id\" = ?", (id_,)).fetchone() if snapshot else now
                if id_ in claimed:  # two halves of a split table handed out the same id after the cutover
                    if not _already_written(conn, table, no_id, ch.columns, pg_row, snapshot):
                        _insert(conn, table, no_id, [v for c, v in zip(ch.columns, pg_row, strict=True) if c != "id"], write)
                        done["renumbered"] += 1
                    continue
                claimed.add(id_)
                if _typed(now) == _typed(pg_row):
                    continue  # the same on both sides: nothing to write (or written by an interrupted rollback)
                # PostgreSQL calls the row new, yet the snapshot held its id: a row apply did not load (quarantined)
                # and the application's new row share that id. Two rows, never one written over the other.
                second = pg_row is not None and before is not None and id_ in inserted
                if second or _typed(before) != _typed(now):  # or the source changed this row too
                    conflicts.append({"table": legacy, "id": id_, "postgresql": _plain(ch.columns, pg_row),
                                      "source": _plain(ch.columns, now)})
                    if on_conflict != "postgres":
                        continue
                    if (before is None or second) and now is not None and pg_row is not None:  # one id, two rows
                        if not _already_written(conn, table, no_id, ch.columns, pg_row, snapshot):  # by a rerun
                            _insert(conn, table, no_id, [v for c, v in zip(ch.columns, pg_row, strict=True) if c != "id"],
                                    write)
                            done["renumbered"] += 1
                        continue
                if pg_row is None:
                    if write:
                        conn.execute(f"DELETE FROM {table} WHERE \"id\" = ?", (id_,))
                    done["deleted"] += 1
                elif now is None:
                    _insert(conn, table, ch.columns, list(pg_row), write)
                    done["inserted"] += 1
                else:
                    if write:
                        sets = ", ".join(f"{quote_ident(c)} = ?" for c in no_id)
                        conn.execute(f"UPDATE {table} SET {sets} WHERE \"id\" = ?",
                                     [v for c, v in zip(ch.columns, pg_row, strict=True) if c != "id"] + [id_])
                    done["updated"] += 1
            except sqlite3.IntegrityError as exc:
                raise RefusedByLegacy(f"the legacy table {legacy} refuses the row id {id_} PostgreSQL holds ({exc})") from None
    return Reconciled({t: n for t, n in written.items() if any(n.values())}, conflicts)


class RefusedByLegacy(Exception):
    """A row PostgreSQL holds that a rule of the legacy table (one the domain table lacks) refuses."""


def _insert(conn: sqlite3.Connection, table: str, columns: list[str], values: list, write: bool) -> None:
    if write:
        conn.execute(f"INSERT INTO {table} ({column_list(columns)}) VALUES ({', '.join('?' * len(columns))})", values)


def _already_written(conn, table: str, no_id: list[str], columns: list[str], pg_row: tuple, snapshot: Path | None) -> bool:
    """A renumbered row an interrupted rollback already wrote: the same values, under an id the snapshot lacks."""
    values = [v for c, v in zip(columns, pg_row, strict=True) if c != "id"]
    same = " AND ".join(f"{quote_ident(c)} IS ?" for c in no_id)
    new = f" AND \"id\" NOT IN (SELECT \"id\" FROM snap.{table})" if snapshot else ""
    return conn.execute(f"SELECT 1 FROM main.{table} WHERE {same}{new}", values).fetchone() is not None


def _plain(columns: list[str], row) -> dict | None:
    if row is None:
        return None
    return {c: (v.hex() if isinstance(v, bytes) else v) for c, v in zip(columns, row, strict=True)}


ON_CONFLICT = ("refuse", "postgres", "source")


def rollback_postgres(target: Target, *, write_back: bool = False, backup_dir: Path, progress=None,
                      on_conflict: str = "refuse") -> RollbackResult:
    """Remove what apply created, after writing every change made in PostgreSQL since the snapshot back to
    the legacy file (--write-back). Two commits, in this order: the SQLite file's (write-back), then
    PostgreSQL's (drop). A failure between them leaves PostgreSQL as it was, and a rerun finishes the job
    without writing anything twice (a row already the same on both sides is left alone)."""
    if on_conflict not in ON_CONFLICT:
        raise BadInput(f"--on-conflict {on_conflict!r}: choose {', '.join(ON_CONFLICT)}")
    started = time.monotonic()
    timings = Timings()
    try:
        conn, entry = read_ledger(target, claim=True)
    except psycopg.Error as exc:  # a cancel, a lost connection, a privilege: said as it was, nothing changed
        raise classify(exc, None, display=target.display, work="the rollback") from None
    written_back: Reconciled | None = None
    schemas_restored: dict[str, int] = {}
    dump = None
    committing = False
    try:
        if entry is None:
            return RollbackResult(True)
        plan = entry.plan
        source = Path(plan.source)
        snapshot = Path(entry.state["snapshot"]) if entry.state.get("snapshot") else None
        if snapshot and not snapshot.exists():
            raise BadInput(f"the snapshot apply loaded is gone: {snapshot}; rollback needs it to tell the rows "
                           "written to the source after it from those written to PostgreSQL; nothing was changed")
        replaced = entry.state.get("replaced") or []  # schemas apply replaced: back from its dump, same transaction
        dump = check_replaced_dump(entry.backup, replaced, target.display)
        with locked_transaction(conn, target), conn.cursor() as cur:
            cur.execute("SET LOCAL idle_in_transaction_session_timeout = 0")  # the write-back may take a while
            _lock_domain_tables(cur, plan)  # no application write slips between the comparison and the drop
            refuse_changed_columns(plan, _live_columns(cur, read_back_columns(plan)), columns_added_after_apply(cur, plan),
                                   f"{source} (apply only read it)"
                                   + (f" and the snapshot apply loaded, {snapshot}" if snapshot else ""))
            homeless = rows_without_legacy_home(cur, plan)
            if homeless:
                raise ChecksFailed("rows written after the cutover have no legacy table to go back to: "
                                   + ", ".join(f"{n} ({k} rows)" for n, k in homeless.items()) + "; nothing was changed",
                                   details={"without_legacy_table": homeless})
            # Alembic's stamp goes with the schema it described; a database migrated beyond it is refused here,
            # before the write-back commits anything to the legacy file
            release_baseline(cur, POSTGRES)
            src = open_source_as_applied(cur, plan, snapshot or source)
            try:
                changes = postgres_changes(cur, src, plan)
            finally:
                src.close()
            if changes and not write_back:
                raise ChecksFailed("PostgreSQL holds changes made after the cutover: "
                                   + "; ".join(f"{n}: {c.counts()['inserted']} inserted, {c.counts()['updated']} updated, "
                                               f"{c.counts()['deleted']} deleted" for n, c in changes.items())
                                   + "; nothing was changed (pass --write-back to write them into the legacy file first)",
                                   details={n: {**c.counts(), "inserted_ids": c.inserted, "updated_ids": c.updated,
                                                "deleted_ids": c.deleted} for n, c in changes.items()})
            if changes:
                began = time.monotonic()
                with timings.timed("write back"):
                    written_back = _write_back(source, snapshot, plan, changes, backup_dir, on_conflict)
                _time_write_back(timings, plan, written_back, time.monotonic() - began)
            cur.execute(f"DROP TABLE {table_sql(LEDGER_TABLE, POSTGRES)}")
            runner = PostgresRunner(cur, None)
            ops = list(reversed(plan.operations))
            for i, op in enumerate(ops):
                if progress:
                    progress(i, len(ops), op)
                began = time.monotonic()
                op.backward(runner)
                timings.operation(op, time.monotonic() - began)
            if dump:
                try:
                    schemas_restored = restore_replaced(cur, dump.path, replaced, (dump.manifest or {}).get("tables"))
                except DproMigrateError as exc:
                    if written_back:  # the file's commit came first: say so
                        exc.args = (f"{exc.args[0]}; the changes made in PostgreSQL after the cutover are already in "
                                    f"{source} (backup {written_back.backup.path}); run rollback again to finish "
                                    "(nothing is written twice)",)
                    raise
            committing = True
            commit = time.monotonic()
        timings.add_phase("commit", time.monotonic() - commit)
        restored = {t: n["inserted"] + n["updated"] + n["deleted"] + n["renumbered"]
                    for t, n in (written_back.written if written_back else {}).items()}
        return RollbackResult(False, written_back.backup if written_back else None, restored,
                              sum(n["renumbered"] for n in (written_back.written if written_back else {}).values()),
                              time.monotonic() - started,
                              changes={t: n for t, n in (written_back.written if written_back else {}).items()},
                              conflicts=written_back.conflicts if written_back else [], timings=timings,
                              schemas_restored=schemas_restored,
                              dropped=[op.name for op in plan.operations if op.kind == "create_schema"])
    except psycopg.Error as exc:
        if committing:
            raise OutcomeUnknown(f"the connection to {target.display} failed while PostgreSQL committed the rollback "
                                 f"({first_line(exc)}): whether its schemas were dropped is not known"
                                 + (f"; the changes made in PostgreSQL are already in {source}" if written_back else "")
                                 + f"; run `dpro-migrate status --target {target.display}`, and rollback again if it "
                                 "still says migrated (nothing is written twice)") from None
        if written_back:
            raise ChecksFailed(f"the changes made in PostgreSQL after the cutover were written back to {source} "
                               f"(backup {written_back.backup.path}), but PostgreSQL refused to drop its schemas "
                               f"({first_line(exc)}): they are unchanged; run rollback again to finish "
                               "(nothing is written twice)") from None
        # nothing was written back and PostgreSQL committed nothing: said as the failure was (a lock held past
        # lock_timeout, a missing privilege, a lost connection, ...)
        error = classify(exc, conn, display=target.display, work="the rollback")
        if dump:
            error.args = (f"{error.args[0]}; the schemas apply replaced are in {dump.path}: "
                          f"`{restore_command(dump.path, target.display)}` restores them after a rollback",)
        raise error from None
    finally:
        conn.close()


def _time_write_back(timings: Timings, plan: Plan, written: Reconciled, seconds: float) -> None:
    """The summary's tables: per legacy table, the rows the write-back inserted, updated, deleted or
    renumbered in it (from their domain tables); the write-back's time shared by rows."""
    per_table = {t: n["inserted"] + n["updated"] + n["deleted"] + n["renumbered"] for t, n in written.written.items()}
    total = sum(per_table.values())
    for legacy, rows in per_table.items():
        if not rows:
            continue
        domain = sorted({m.target for m in plan.moves if m.legacy == legacy})
        timings.add_table(legacy, ", ".join(domain), rows, seconds * rows / total)


def _lock_domain_tables(cur, plan: Plan) -> None:
    tables = [table_sql(op.table, POSTGRES) for op in plan.operations if isinstance(op, (CreateTable, CreateArchive))]
    if tables:
        cur.execute(f"LOCK TABLE {', '.join(tables)} IN EXCLUSIVE MODE")


def _write_back(source: Path, snapshot: Path | None, plan: Plan, changes: dict[str, Changes], backup_dir: Path,
                on_conflict: str) -> Reconciled:
    """One SQLite transaction on the legacy file, holding its write lock from the comparison to the commit,
    after a verified backup of it."""
    conn = open_for_write(source)
    try:
        with write_transaction(conn, source):
            if schema_fingerprint(conn) != plan.source_fingerprint:
                raise BadInput(f"{source}: its schema changed since apply (fingerprint differs): the rows cannot be "
                               "compared with what apply loaded; nothing was changed")
            if snapshot:
                attach_readonly(conn, snapshot, "snap")
            found = _reconcile(conn, snapshot, changes, on_conflict, write=False)
            if found.conflicts and on_conflict == "refuse":
                raise ChecksFailed(f"{len(found.conflicts)} rows were changed both in the source and in PostgreSQL "
                                   f"since the snapshot: " + ", ".join(f"{c['table']} id {c['id']}" for c in found.conflicts[:10])
                                   + "; nothing was changed (see --json for both versions; --on-conflict postgres or "
                                   "source settles them)", details={"conflicts": found.conflicts})
            backup = backup_file(source, backup_dir)
            try:
                with _triggers_set_aside(conn):  # PostgreSQL's rows as they are, not what the file's triggers make of them
                    done = _reconcile(conn, snapshot, changes, on_conflict, write=True)
            except RefusedByLegacy as exc:  # a rule of the legacy table the domain table does not have
                raise ChecksFailed(f"{source}: {exc}; nothing was changed (the row is still in PostgreSQL: change "
                                   "or remove it there, or drop that rule from the legacy table, then roll back)",
                                   details={"refused": exc.args[0]}) from None
            if len(done.conflicts) != len(found.conflicts):  # never settle a conflict nobody was asked about
                raise ChecksFailed(f"{source}: the write-back met rows the comparison did not see; nothing was changed")
            done.backup = backup
        return done
    finally:
        conn.close()


@contextmanager
def _triggers_set_aside(conn: sqlite3.Connection):
    """The legacy file's triggers, dropped for the write-back and created again as they were, in its
    transaction: fired by the write-back they would add rows (taking ids PostgreSQL handed out) and
    change values the application wrote."""
    triggers = conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'trigger' AND sql IS NOT NULL "
                            "ORDER BY rowid").fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER main.{quote_ident(name)}")
    yield
    for _, sql in triggers:
        conn.execute(sql)


def rollback_script(plan: Plan, replaced: list[str] | None = None, dump: str | None = None) -> str:
    """What rollback runs in PostgreSQL, last operation first (the write-back of rows written after the cutover
    happens before it, in the SQLite file, and only with --write-back); then the schemas apply replaced, from
    its pg_dump."""
    lines = [f"-- dpro-migrate {plan.tool_version}: roll back {plan.target}",
             *(s.render("%s") for s in apply_program(plan)),
             "-- refused when a domain table holds rows the source lacks, unless --write-back copied them first",
             "-- Alembic's baseline stamp goes with the schema it described (refused if Alembic moved beyond it)",
             f"DROP TABLE IF EXISTS {version_table_sql(POSTGRES)};",
             f"DROP TABLE {table_sql(LEDGER_TABLE, POSTGRES)};"]
    for op in reversed(plan.operations):
        lines += op.reverse_script()
    if replaced:
        lines += [f"-- the schemas apply replaced ({', '.join(replaced)}), as its pg_dump {dump} holds them: the SQL "
                  "`pg_restore -L <their entries> -f - <dump>` writes, run here, in this transaction; then each "
                  "table's rows are counted against the dump's"]
    return "\n".join(lines + ["COMMIT;"]) + "\n"
