"""Prove the move on SQLite: every legacy row in its domain table value for value, counts, integrity, promised objects.

Every difference is collected; nothing stops at the first one.
"""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dpro_migrate.safety.ledger as ledger
from dpro_migrate.compare import attach_readonly, differing_rows, has_rowid
from dpro_migrate.dialects import SQLITE, get_dialect, physical_name, table_sql
from dpro_migrate.errors import BadInput
from dpro_migrate.model.legacy import connect_readonly
from dpro_migrate.plan.archived import rows_with_archive_sql
from dpro_migrate.plan.build_sqlite import quarantine_table
from dpro_migrate.plan.document import Plan
from dpro_migrate.model.promise import Promise
from dpro_migrate.plan.operations import CreateTable, QuarantineRows, RowMove
from dpro_migrate.safety.state import refuse_foreign_ledger
from dpro_migrate.sqlnames import quote_ident
from dpro_migrate.verify.report import SAMPLE, Check, MoveCount, VerifyReport, accounting_check, move_check, promises_check

DIALECT = get_dialect(SQLITE)

def _same_value(count: int) -> str:
    # IS compares NULLs as equal; typeof() tells 1 from '1' and from 1.0: storage classes must survive too.
    parts = [f"s.c{i} IS t.c{i} AND typeof(s.c{i}) = typeof(t.c{i})" for i in range(count)]
    return " AND ".join(parts) or "1"


def _numbered(columns: list[str], rows: str) -> str:
    """The id and the columns of `rows` as c0, c1, ...: SQLite 3.40 cannot resolve a qualified column named
    true or false (s."false") through a subquery, and a legacy table may have one."""
    cols = "".join(f", {quote_ident(c)} AS c{i}" for i, c in enumerate(columns))
    return f"(SELECT \"id\"{cols} FROM {rows})"


def compare_move(conn: sqlite3.Connection, move: RowMove, source_schema: str, archived: set[str] = frozenset()
                 ) -> tuple[MoveCount, list]:
    where = f" WHERE {move.where}" if move.where else ""
    source = f"{source_schema}.{quote_ident(move.legacy)}{where}"
    target = f"main.{table_sql(move.target, SQLITE)}"
    if move.target in archived:
        target = rows_with_archive_sql(move.target, move.columns, SQLITE, target)
    cols = move.columns
    # One join gives the source count, the ids found and the rows that differ; ids are primary keys on
    # both sides, so what the target holds beyond the ids found was added after the cutover.
    joined = (f"FROM {_numbered(cols, source)} AS s "
              f"LEFT JOIN {_numbered(cols, target)} AS t ON t.\"id\" = s.\"id\"")
    differs = f"t.\"id\" IS NULL OR NOT ({_same_value(len(cols))})"
    source_rows, found, bad = conn.execute(f"SELECT count(*), count(t.\"id\"), coalesce(sum({differs}), 0) {joined}").fetchone()
    sample = [r[0] for r in conn.execute(f"SELECT s.\"id\" {joined} WHERE {differs} LIMIT {SAMPLE}")] if bad else []
    added = conn.execute(f"SELECT count(*) FROM {target} AS t").fetchone()[0] - found
    return MoveCount(move.legacy, move.target, source_rows, source_rows - bad, bad, added), sample


def _structure_checks(path: Path) -> tuple[list, list[str]]:
    """foreign_key_check and integrity_check, on a connection of their own: they run on another thread
    while the rows are compared (SQLite releases the GIL while it works)."""
    conn = connect_readonly(path, any_thread=True)
    try:
        return (conn.execute("PRAGMA main.foreign_key_check").fetchall(),
                [r[0] for r in conn.execute("PRAGMA main.integrity_check")])
    finally:
        conn.close()


def verify_sqlite(path: Path, *, backup: Path | None = None, strict: bool = False) -> VerifyReport:
    """Against the backup apply took. A row that differs from it fails (SQLite keeps no trace of who wrote a
    row: a row the application changed after the cutover cannot be told from one apply wrote wrongly);
    rows added after the cutover are reported, and fail only with `strict`."""
    started = time.monotonic()
    conn = connect_readonly(path)
    pool = ThreadPoolExecutor(1, thread_name_prefix="dpro-migrate-verify")
    try:
        refuse_foreign_ledger(conn, path)
        if not ledger.sqlite_has_ledger(conn):
            raise BadInput(f"{path}: is not migrated (no ledger); nothing to verify")
        entry = ledger.latest_apply(ledger.read_entries(conn))
        plan = entry.plan
        backup = Path(backup or entry.backup)
        checks: list[Check] = []
        if not backup.exists():
            raise BadInput(f"the backup apply recorded is gone: {backup}; pass --backup to name another copy")
        attach_readonly(conn, backup, "bak")
        structure = pool.submit(_structure_checks, path)
        counts = []
        for move in plan.moves:
            began = time.monotonic()
            count, sample = compare_move(conn, move, "bak", plan.archived_tables())
            count.seconds = time.monotonic() - began
            counts.append(count)
            checks.append(move_check(f"rows {move.legacy} -> {physical_name(move.target, SQLITE)}", count, sample, strict))
        quarantine, quarantined = _quarantine_checks(conn, plan, counts)
        checks += quarantine
        checks.append(_unknown_tables_untouched(conn, plan))
        checks.append(promises_check(plan, DIALECT.catalog(conn)))
        domain_names = {op.name for op in plan.of_type(CreateTable)}
        present = DIALECT.catalog(conn)
        left = [n for n in plan.legacy_tables if Promise("table", n) in present and n not in domain_names]
        checks.append(Check("legacy tables replaced", not left, "none left" if not left else "still present", left))
        fk, integrity = structure.result()
        checks.append(Check("foreign_key_check", not fk, f"{len(fk)} violations" if fk else "clean",
                            [{"table": t, "rowid": r, "parent": p} for t, r, p, _ in fk[:SAMPLE]]))
        checks.append(Check("integrity_check", integrity == ["ok"], "; ".join(integrity[:3])))
        legacy = str(path) if plan.target == "sqlite:in-place" else str(plan.source)  # in place: the file itself
        return VerifyReport(legacy, str(backup), checks, counts, seconds=time.monotonic() - started,
                            quarantined=quarantined, database=str(path))
    finally:
        pool.shutdown()
        conn.close()


def _quarantine_checks(conn: sqlite3.Connection, plan: Plan, counts: list[MoveCount]) -> tuple[list[Check], dict[str, int]]:
    """Quarantined rows are whole and unchanged, and source rows = target rows + quarantined rows; and the rows
    in quarantine per legacy table."""
    step = next(iter(plan.of_type(QuarantineRows)), None)
    tables = step.tables if step else []
    changed, quarantined = [], {}
    for name in tables:
        q = quote_ident(quarantine_table(name))
        cols = [r[1] for r in conn.execute(f"PRAGMA bak.table_info({quote_ident(name)})")]
        typed = ", ".join(f"{quote_ident(c)}, typeof({quote_ident(c)})" for c in cols)
        quarantined[name] = conn.execute(f"SELECT count(*) FROM main.{q}").fetchone()[0]
        diff = conn.execute(
            f"SELECT count(*) FROM (SELECT {typed} FROM main.{q} EXCEPT SELECT {typed} FROM bak.{quote_ident(name)} "
            f"WHERE \"id\" IN (SELECT \"id\" FROM main.{q}))").fetchone()[0]
        if diff:
            changed.append(name)
    total = lambda name: conn.execute(f"SELECT count(*) FROM bak.{quote_ident(name)}").fetchone()[0]  # noqa: E731
    return [accounting_check(counts, quarantined, total),
            Check("quarantined rows whole and unchanged", not changed, ", ".join(changed) or "ok", changed)], quarantined


def _unknown_tables_untouched(conn: sqlite3.Connection, plan: Plan) -> Check:
    """Each unknown table holds the rows it held at the cutover, counted as a multiset (a duplicate row
    added to a table without a key counts), rowids included where the table has them."""
    changed = []
    for name in plan.unknown_tables:
        t = quote_ident(name)
        try:
            cols = [r[1] for r in conn.execute(f"PRAGMA bak.table_info({t})")]
            rowid = has_rowid(conn, "bak", name) and has_rowid(conn, "main", name)
            diff = differing_rows(conn, f"bak.{t}", f"main.{t}", cols, rowid=rowid)
        except sqlite3.OperationalError:
            diff = -1
        if diff:
            changed.append(name)
    return Check("unknown tables left as they were", not changed,
                 f"{len(plan.unknown_tables)} unknown tables" + (f", changed: {', '.join(changed)}" if changed else ""),
                 changed)
