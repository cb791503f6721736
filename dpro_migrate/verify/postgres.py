"""Prove the move on PostgreSQL: the source rows, converted as apply converted them, compared in the server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

import dpro_migrate.safety.ledger as ledger
from dpro_migrate.db.connections import connect, open_source
from dpro_migrate.db.pgcopy import copy_into, prefetched, stream_lines
from dpro_migrate.dialects import POSTGRES, get_dialect, table_sql
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE
from dpro_migrate.plan.archived import rows_with_archive_sql
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.operations import CopyRows, QuarantineRows
from dpro_migrate.plan.preflight import REFUSED, SETUP_SQL
from dpro_migrate.sqlnames import quote_ident
from dpro_migrate.targets import Target
from dpro_migrate.verify.report import (SAMPLE, MoveCount, VerifyReport, accounting_check, move_check,
                                         promises_check, source_since_snapshot)

DIALECT = get_dialect(POSTGRES)


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def has_ledger(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table_sql(LEDGER_TABLE, POSTGRES),)).fetchone()[0]


def read_ledger(target: Target):
    conn = connect(target)
    try:
        if not has_ledger(conn):
            return conn, None
        return conn, ledger.latest_apply(ledger.read_entries(conn, POSTGRES))
    except BaseException:
        conn.close()
        raise


def load_source_rows(cur, src: sqlite3.Connection, move: CopyRows, temp: str) -> None:
    """The source rows of one move, converted exactly as apply converts them, in a temporary table."""
    cur.execute(f"DROP TABLE IF EXISTS {temp}")
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in move.types.items())
    cur.execute(f"CREATE TEMP TABLE {temp} ({cols}) ON COMMIT DROP")
    try:
        copy_into(cur, DIALECT.copy_statement(temp, move.columns), prefetched(stream_lines(src, move.source_sql)))
    except psycopg.Error as exc:  # the source changed since apply, into values apply would have refused
        raise ChecksFailed(f"rows of {move.legacy} in the source no longer convert as apply converted them "
                           f"(the file changed after apply?): {first_line(exc)}") from None
    cur.execute(f"CREATE INDEX ON {temp} (\"id\")")
    cur.execute(f"ANALYZE {temp}")


def rows_of(move: CopyRows, archived: set[str]) -> str:
    """The domain table of a move, with its archive's rows when it has one."""
    if move.target in archived:
        return rows_with_archive_sql(move.target, move.columns, POSTGRES)
    return table_sql(move.target, POSTGRES)


def compare_move(cur, move: CopyRows, archived: set[str], apply_xid: str | None) -> tuple[MoveCount, list]:
    """One move, the snapshot's rows (in _dpro_source) against the domain table, in one join. A row that
    differs and still carries apply's transaction id (xmin) is one apply wrote wrongly; one with another
    xmin was written after the cutover (an UPDATE writes a new row version). Without a recorded id (an
    apply by an older dpro-migrate) every difference counts as apply's."""
    target = rows_of(move, archived)
    with_xmin = (rows_with_archive_sql(move.target, move.columns, POSTGRES, also="xmin AS dpro_xmin")
                 if move.target in archived else f"(SELECT *, xmin AS dpro_xmin FROM {target})")
    left = ", ".join(f"s.{quote_ident(c)}" for c in move.columns)
    right = ", ".join(f"t.{quote_ident(c)}" for c in move.columns)
    joined = f"FROM _dpro_source s LEFT JOIN {with_xmin} t ON t.\"id\" = s.\"id\""
    differs = f"t.\"id\" IS NOT NULL AND ({left}) IS DISTINCT FROM ({right})"
    by_apply = f"t.dpro_xmin = {_xid(apply_xid)}" if apply_xid else "true"
    wrong = f"({differs} AND {by_apply})"
    source_rows, found, bad, changed = cur.execute(
        f"SELECT count(*), count(t.\"id\"), count(*) FILTER (WHERE {wrong}), "
        f"count(*) FILTER (WHERE {differs} AND NOT {wrong}) {joined}").fetchone()
    sample = [r[0] for r in cur.execute(f"SELECT s.\"id\" {joined} WHERE {wrong} ORDER BY 1 LIMIT {SAMPLE}")] if bad else []
    added = cur.execute(f"SELECT count(*) FROM {target} t").fetchone()[0] - found
    deleted = source_rows - found
    return MoveCount(move.legacy, move.target, source_rows, found - bad - changed, bad, added, changed, deleted), sample


def _xid(xid: str) -> str:
    return f"{int(xid)}::text::xid"


def open_source_as_applied(cur, plan: Plan, path: Path | None = None) -> sqlite3.Connection:
    """The source (or the snapshot of it apply loaded: `path`), with the rows apply quarantined marked again
    (read back from system.quarantine), so the plan's source queries select exactly the rows apply moved."""
    src = open_source(path or Path(plan.source))
    for stmt in SETUP_SQL:
        src.execute(stmt)
    if plan.of_type(QuarantineRows):
        rows = cur.execute(f"SELECT source_table, source_pk, rule FROM {table_sql(QUARANTINE_TABLE, POSTGRES)}").fetchall()
        src.executemany(f"INSERT INTO {REFUSED} VALUES (?, ?, ?)", rows)
    return src


def verify_postgres(target: Target, *, strict: bool = False) -> VerifyReport:
    """Against the snapshot apply loaded (the source as it was then). Changes made in PostgreSQL since the
    cutover are reported as such, and fail only with `strict`; what apply wrote differently never passes."""
    conn, entry = read_ledger(target)
    try:
        if entry is None:
            raise BadInput(f"{target.display}: is not migrated (no ledger); nothing to verify")
        plan = entry.plan
        snapshot = Path(entry.state["snapshot"]) if entry.state.get("snapshot") else None
        if snapshot and not snapshot.exists():
            raise BadInput(f"the snapshot apply loaded is gone: {snapshot}; verify compares with it")
        checks, counts = [], []
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            src = open_source_as_applied(cur, plan, snapshot)
            try:
                quarantined = dict(src.execute(
                    f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
                for move in plan.of_type(CopyRows):
                    load_source_rows(cur, src, move, "_dpro_source")
                    count, sample = compare_move(cur, move, plan.archived_tables(), entry.state.get("xid"))
                    counts.append(count)
                    checks.append(move_check(f"rows {move.name}", count, sample, strict))
                checks.append(accounting_check(counts, quarantined, lambda name: count_rows(src, name)))
            finally:
                src.close()
            checks.append(promises_check(plan, DIALECT.catalog(cur)))
        if snapshot:
            checks.append(source_since_snapshot(Path(plan.source), snapshot, list(plan.legacy_tables)))
        return VerifyReport(target.display, entry.backup, checks, counts)
    finally:
        conn.close()


def count_rows(src: sqlite3.Connection, table: str) -> int:
    return src.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0]
