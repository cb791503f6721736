"""Execute a plan into PostgreSQL: one transaction, COPY streamed from SQLite, source never written."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

import dpro_migrate.safety.ledger as ledger
from dpro_migrate import DOMAINS
from dpro_migrate.backends.sqlite import ApplyResult, RollbackResult
from dpro_migrate.db.connections import LOCK_KEY, connect, locked_transaction, open_for_write, open_source, write_transaction
from dpro_migrate.db.pgcopy import copy_into, prefetched, stream_lines, stream_rows
from dpro_migrate.dialects import POSTGRES, table_sql
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.model.legacy import schema_fingerprint
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.plan.copy_lines import type_class
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.operations import CopyRows, CreateCompatView, Operation, QuarantineRows
from dpro_migrate.plan.preflight import REFUSED, refuse_if_found, run_refusal
from dpro_migrate.plan.program import Statement
from dpro_migrate.safety.alembic_version import release_baseline, version_table_sql
from dpro_migrate.safety.backup import backup_file
from dpro_migrate.sqlnames import column_list, quote_ident
from dpro_migrate.targets import Target
from dpro_migrate.verify.postgres import (count_rows, first_line, has_ledger, load_source_rows, open_source_as_applied,
                                          read_ledger, rows_of)
from dpro_migrate.verify.report import per_legacy, unaccounted


@dataclass
class PgBackup:
    path: Path
    bytes: int
    tables: dict[str, int] = field(default_factory=dict)
    integrity: str = "pg_dump ok"


def existing_schemas(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1",
                                       (list(DOMAINS),))]


def user_table_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                        "AND n.nspname NOT LIKE 'pg_toast%%'").fetchone()[0]


def pg_dump(target: Target, directory: Path) -> PgBackup:
    """A custom-format dump of the whole target database, written under a temporary name then renamed."""
    if not shutil.which("pg_dump"):
        raise BadInput("the target holds data and pg_dump is not installed to back it up first")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"pg-{stamp}.dump"
    tmp = final.with_name(final.name + ".tmp")
    done = subprocess.run(["pg_dump", "-Fc", "-f", str(tmp), "-d", target.conninfo], capture_output=True, text=True)
    if done.returncode:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"pg_dump of {target.display} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
    tmp.chmod(0o600)
    tmp.replace(final)
    return PgBackup(final, final.stat().st_size)


class PostgresRunner:
    """What operations run on: a cursor inside apply's transaction, and the SQLite source to COPY from."""

    def __init__(self, cur, src: sqlite3.Connection, rows_progress=None):
        self.cur, self.src = cur, src
        self.rows_progress = rows_progress
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
        blocks = prefetched(stream_lines(self.src, source_sql)) if op and op.moves_rows else stream_rows(self.src, source_sql)
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
            Statement("SET LOCAL TIME ZONE 'UTC'", script_only=True),
            Statement("SET LOCAL maintenance_work_mem = '256MB'", script_only=True)]


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
    source = Path(plan.source)
    conn = connect(target)
    src = None
    try:
        if has_ledger(conn):
            last = ledger.latest_apply(ledger.read_entries(conn, POSTGRES))
            return ApplyResult(True, applied_at=last.at if last else None)
        existing = existing_schemas(conn)
        if existing and not replace_existing:
            raise BadInput(f"{target.display} already holds schemas {', '.join(existing)}; nothing was changed "
                           "(pass --replace-existing to back them up with pg_dump and replace them)")
        snapshot = backup_file(source, backup_dir)
        src = open_source(snapshot.path)
        if schema_fingerprint(src) != plan.source_fingerprint:
            snapshot.path.unlink(missing_ok=True)
            raise BadInput(f"{source}: its schema changed since the plan was made (fingerprint differs); make a new plan")
        refused = _refuse(src, plan)
        backup = pg_dump(target, backup_dir) if user_table_count(conn) else None
        moved: dict[str, int] = {}
        with locked_transaction(conn, target), conn.cursor() as cur:
            for name in existing:
                cur.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(name)))
            runner = PostgresRunner(cur, src, rows_progress)
            for i, op in enumerate(plan.operations):
                if progress:
                    progress(i, len(plan.operations), op)
                runner.current = op
                rows = op.forward(runner)
                if op.moves_rows:
                    moved[op.name] = rows
            _check_counts(src, plan, moved, refused)
            cur.execute(ledger.create_sql(POSTGRES))
            # the transaction's id: rows whose xmin is still this one are as apply wrote them (verify)
            xid = cur.execute("SELECT pg_current_xact_id()::xid::text").fetchone()[0]
            insert = ledger.insert_statement(POSTGRES, "apply", plan, str(backup.path) if backup else None,
                                             state={"target": target.display, "snapshot": str(snapshot.path),
                                                    "xid": xid})
            cur.execute(insert.sql, insert.params)
        return ApplyResult(False, backup or snapshot, moved, time.monotonic() - started)
    except psycopg.Error as exc:
        if plan.on_reject == "fail" and src is not None:  # say which rows, under which rules
            refuse_if_found(src, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
        raise ChecksFailed(f"PostgreSQL refused the load, nothing was changed: {first_line(exc)}") from None
    finally:
        conn.close()
        if src is not None:
            src.close()


def _refuse(src: sqlite3.Connection, plan: Plan) -> dict[str, int]:
    """Policy quarantine: the preflight on the source snapshot, into the source connection's temp table the
    loads read. Policy fail runs nothing here: the server enforces every rule atomically and the load's
    encoder refuses what the server would convert silently; a refusal is explained afterwards."""
    if plan.on_reject == "fail":
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
    conn, entry = read_ledger(target)
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


def _stranded(cur, src, plan: Plan) -> dict[str, dict]:
    """Per move: rows in the domain table that the source does not have (written after the cutover);
    per table no legacy table feeds: its rows (move None)."""
    out = {}
    archived = plan.archived_tables()
    for move in plan.of_type(CopyRows):
        load_source_rows(cur, src, move, "_dpro_source")
        n = cur.execute(f"SELECT count(*) FROM {rows_of(move, archived)} t WHERE NOT EXISTS "
                        f"(SELECT 1 FROM _dpro_source s WHERE s.\"id\" = t.\"id\")").fetchone()[0]
        if n:
            out[move.name] = {"move": move, "rows": n}
    for table in plan.tables_without_legacy_home():
        n = cur.execute(f"SELECT count(*) FROM {table_sql(table.table, POSTGRES)}").fetchone()[0]
        if n:
            out[table.name] = {"move": None, "rows": n}
    return out


def _as_sqlite_sql(column: str, pg_type: str) -> str:
    """PostgreSQL -> the legacy SQLite representation, for write-back."""
    c = quote_ident(column)
    cls = type_class(pg_type)
    if cls == "boolean":
        return f"{c}::int"
    if cls == "timestamptz":
        return f"to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    if cls == "jsonb":
        return f"{c}::text"
    return c


def _write_back(cur, source: Path, plan: Plan, stranded: dict[str, dict], backup_dir: Path) -> tuple[dict, int, object]:
    """Copy rows written after the cutover into the legacy SQLite tables, in one SQLite transaction."""
    rows_by_table: dict[str, list[tuple[list[str], list[tuple]]]] = {}
    for item in stranded.values():
        move = item["move"]
        src_conn = open_source_as_applied(cur, plan)
        load_source_rows(cur, src_conn, move, "_dpro_source")
        src_conn.close()
        select = ", ".join(_as_sqlite_sql(c, move.types[c]) for c in move.columns)
        rows = cur.execute(f"SELECT {select} FROM {rows_of(move, plan.archived_tables())} t WHERE NOT EXISTS "
                           f"(SELECT 1 FROM _dpro_source s WHERE s.\"id\" = t.\"id\") ORDER BY \"id\"").fetchall()
        rows_by_table.setdefault(move.legacy, []).append((move.columns, rows))
    conn = open_for_write(source)
    written, renumbered = {}, 0
    try:
        with write_transaction(conn, source):
            backup = backup_file(source, backup_dir)
            for legacy, parts in rows_by_table.items():
                for columns, rows in parts:
                    for row in rows:
                        values = dict(zip(columns, row, strict=True))
                        same = " AND ".join(f"{quote_ident(c)} IS ?" for c in values)
                        if conn.execute(f"SELECT 1 FROM {quote_ident(legacy)} WHERE {same}", row).fetchone():
                            continue  # written back by an earlier, interrupted rollback
                        taken = conn.execute(f"SELECT 1 FROM {quote_ident(legacy)} WHERE \"id\" = ?",
                                             (values["id"],)).fetchone()
                        if taken:  # two split parts handed out the same id after the cutover
                            values.pop("id")
                            renumbered += 1
                        conn.execute(f"INSERT INTO {quote_ident(legacy)} ({column_list(values)}) "
                                     f"VALUES ({', '.join('?' * len(values))})", list(values.values()))
                        written[legacy] = written.get(legacy, 0) + 1
    finally:
        conn.close()
    return written, renumbered, backup


def rollback_postgres(target: Target, *, write_back: bool = False, backup_dir: Path, progress=None) -> RollbackResult:
    started = time.monotonic()
    conn, entry = read_ledger(target)
    try:
        if entry is None:
            return RollbackResult(True)
        plan = entry.plan
        source = Path(plan.source)
        written, renumbered, backup = {}, 0, None
        with locked_transaction(conn, target), conn.cursor() as cur:
            src = open_source_as_applied(cur, plan)
            try:
                stranded = _stranded(cur, src, plan)
            finally:
                src.close()
            homeless = [n for n, item in stranded.items() if item["move"] is None]
            if homeless:
                raise ChecksFailed("rows written after the cutover have no legacy table to go back to: "
                                   + ", ".join(f"{n} ({stranded[n]['rows']} rows)" for n in homeless)
                                   + "; nothing was changed")
            if stranded and not write_back:
                raise ChecksFailed("the domain tables hold rows written after the cutover that the source does not have: "
                                   + ", ".join(f"{n} ({i['rows']} rows)" for n, i in stranded.items())
                                   + "; nothing was changed (pass --write-back to copy them into the legacy file first)",
                                   details={n: i["rows"] for n, i in stranded.items()})
            if stranded:
                written, renumbered, backup = _write_back(cur, source, plan, stranded, backup_dir)
            release_baseline(cur, POSTGRES)  # Alembic's stamp goes with the schema it described
            cur.execute(f"DROP TABLE {table_sql(LEDGER_TABLE, POSTGRES)}")
            runner = PostgresRunner(cur, None)
            ops = list(reversed(plan.operations))
            for i, op in enumerate(ops):
                if progress:
                    progress(i, len(ops), op)
                op.backward(runner)
        return RollbackResult(False, backup, written, renumbered, time.monotonic() - started)
    except psycopg.Error as exc:
        raise ChecksFailed(f"PostgreSQL refused the rollback, nothing was changed: {first_line(exc)}") from None
    finally:
        conn.close()




def rollback_script(plan: Plan) -> str:
    """What rollback runs in PostgreSQL, last operation first (the write-back of rows written after the cutover
    happens before it, in the SQLite file, and only with --write-back)."""
    lines = [f"-- dpro-migrate {plan.tool_version}: roll back {plan.target}",
             *(s.render("%s") for s in apply_program(plan)),
             "-- refused when a domain table holds rows the source lacks, unless --write-back copied them first",
             "-- Alembic's baseline stamp goes with the schema it described (refused if Alembic moved beyond it)",
             f"DROP TABLE IF EXISTS {version_table_sql(POSTGRES)};",
             f"DROP TABLE {table_sql(LEDGER_TABLE, POSTGRES)};"]
    for op in reversed(plan.operations):
        lines += op.reverse_script()
    return "\n".join(lines + ["COMMIT;"]) + "\n"
