"""Execute a plan on SQLite: apply in place in one transaction, and roll it back the same way.

`apply_program` is the whole of what apply runs, framing included (transaction, the checks that rows add up
and foreign keys hold, the ledger): apply executes it, `plan --sql` prints it, and `sqlite3 FILE < script`
replays it to the same migrated file.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dpro_migrate.safety.ledger as ledger
from dpro_migrate.db.connections import Waiting, open_for_write, write_transaction
from dpro_migrate.dialects import SQLITE, physical_name, table_sql
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.model.legacy import schema_fingerprint
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE
from dpro_migrate.plan.columns import created_columns, read_back_columns, refuse_changed_columns
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.operations import (CreateCompatView, CreateSearchIndex, DropLegacyTable, KeepSequence, Operation, QuarantineRows,
                                          RowMove)
from dpro_migrate.plan.preflight import REFUSED, refuse_if_found, run_refusal
from dpro_migrate.plan.program import Statement
from dpro_migrate.results import Timings
from dpro_migrate.safety.alembic_version import release_baseline, version_table_sql
from dpro_migrate.safety.backup import BackupResult, copy_under_lock, sealing
from dpro_migrate.safety.state import refuse_foreign_ledger
from dpro_migrate.sqlnames import quote_ident, quote_literal

# Called as progress(index, total, operation) before each operation runs; rows_progress(operation, rows) as rows move.
# While apply or rollback waits for a lock, progress(0, 0, WaitingForLock(...)) says so, unless `waiting` is given.
Progress = Callable[[int, int, "Operation | WaitingForLock"], None]

COUNTS = "temp.dpro_apply_counts"  # (kind, legacy, rows): source rows, moved and quarantined, per legacy table
CHECKS = "temp.dpro_apply_checks"  # a row per check; its CHECK constraint stops the apply when one fails
SEQUENCES = "temp.dpro_legacy_sequences"  # the legacy AUTOINCREMENT counters as they were


@dataclass(frozen=True)
class WaitingForLock:
    """Passed to the progress callback in place of an operation while a lock is waited for."""

    what: str
    name: str = "waiting for a lock"
    moves_rows: bool = False

    def describe(self) -> str:
        return self.what


def _waiting(waiting: Waiting | None, progress: Progress | None) -> Waiting | None:
    if waiting or not progress:
        return waiting
    return lambda what: progress(0, 0, WaitingForLock(what))


@dataclass
class ApplyResult:
    already_migrated: bool
    backup: BackupResult | None = None
    rows_moved: dict[str, int] = field(default_factory=dict)  # "legacy -> target" -> rows
    seconds: float = 0.0
    applied_at: str | None = None
    history_error: str | None = None  # the history line could not be written (the apply itself stands)
    timings: Timings = field(default_factory=Timings)  # per table and per phase, measured while it ran
    quarantined: dict[str, int] = field(default_factory=dict)  # legacy table -> rows kept aside whole
    left_overs: list[str] = field(default_factory=list)  # partial backups of killed runs removed (partial_files)


@dataclass
class RollbackResult:
    nothing_to_do: bool
    backup: BackupResult | None = None
    rows_restored: dict[str, int] = field(default_factory=dict)
    renumbered: int = 0
    seconds: float = 0.0
    changes: dict[str, dict[str, int]] = field(default_factory=dict)  # PostgreSQL: written back, per legacy table
    conflicts: list[dict] = field(default_factory=list)  # rows changed on both sides, settled by --on-conflict
    history_error: str | None = None
    schemas_restored: dict[str, int] = field(default_factory=dict)  # PostgreSQL: tables apply replaced, back, rows
    timings: Timings = field(default_factory=Timings)
    quarantined: dict[str, int] = field(default_factory=dict)  # legacy table -> rows put back from quarantine
    dropped: list[str] = field(default_factory=list)  # PostgreSQL: the schemas rollback dropped
    left_overs: list[str] = field(default_factory=list)  # partial backups of killed runs removed (partial_files)


class SQLiteRunner:
    """What operations run on: one connection, inside apply's (or rollback's) transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.renumbered = 0

    def execute(self, statements: list[str]) -> int:
        return sum(max(self.conn.execute(s).rowcount, 0) for s in statements)

    def copy(self, copy_sql: str, source_sql: str) -> int:
        raise BadInput("this plan was made for PostgreSQL; pass its --target")

    def refuse(self, once: list[str], repeat: list[str], tables: list[str]) -> dict[str, int]:
        run_refusal(self.conn, once, repeat)
        refused = dict(self.conn.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
        unplanned = sorted(set(refused) - set(tables))
        if unplanned:
            raise ChecksFailed(f"rows of {', '.join(unplanned)} break rules now but did not when the plan was made; "
                               "nothing was changed: make a new plan")
        return refused


# --- the program ---------------------------------------------------------------------------------


@dataclass
class Program:
    before: list[Statement]  # transaction, bookkeeping of what the source holds
    operations: list[Operation]
    after_operation: Callable[[Operation], list[Statement]]
    checks: list[Statement]
    finish: Callable[[str | None], list[Statement]]  # given the backup's path: the ledger, the commit


def apply_program(plan: Plan, backup: str | None = None) -> Program:
    """`backup`: where the script's VACUUM INTO writes (apply makes its own backup)."""
    # every legacy table the plan drops is counted, so a plan edited to drop one without moving it is refused
    legacy = list(dict.fromkeys([*plan.legacy_tables, *(op.name for op in plan.of_type(DropLegacyTable))]))
    keep = plan.of_type(KeepSequence)
    before = [
        Statement("PRAGMA foreign_keys = OFF", script_only=True,
                  comment="with foreign keys on, DROP TABLE would cascade; it cannot change inside a transaction"),
        Statement(f"VACUUM INTO {quote_literal(backup or 'backup.db')}", script_only=True,
                  comment="the backup (dpro-migrate copies the file with the online backup API instead, and checks "
                          "the copy before it commits)"),
        Statement("BEGIN IMMEDIATE", script_only=True),
        Statement(f"CREATE TEMP TABLE {COUNTS.split('.')[1]} (kind TEXT NOT NULL, legacy TEXT NOT NULL, rows INTEGER)"),
        Statement(f"CREATE TEMP TABLE {CHECKS.split('.')[1]} (check_name TEXT NOT NULL, ok INTEGER NOT NULL CHECK (ok))"),
    ]
    if legacy:
        counted = " UNION ALL ".join(f"SELECT 'source', {quote_literal(t)}, count(*) FROM {quote_ident(t)}"
                                     for t in legacy)
        before.append(Statement(f"INSERT INTO {COUNTS} {counted}", comment="rows in the source, per legacy table"))
    if keep:
        names = ", ".join(quote_literal(op.legacy) for op in keep)
        before.append(Statement(f"CREATE TEMP TABLE {SEQUENCES.split('.')[1]} AS SELECT name, seq FROM "
                                f"sqlite_sequence WHERE name IN ({names})",
                                comment="the legacy AUTOINCREMENT counters, for rollback"))

    def after_operation(op: Operation) -> list[Statement]:
        if isinstance(op, RowMove):
            return [Statement(f"INSERT INTO {COUNTS} VALUES ('moved', {quote_literal(op.legacy)}, changes())")]
        if isinstance(op, QuarantineRows):
            return [Statement(f"INSERT INTO {COUNTS} SELECT 'quarantined', source_table, count(DISTINCT source_pk) "
                              f"FROM {REFUSED} GROUP BY 2")]
        return []

    checks = [
        Statement(f"INSERT INTO {CHECKS} SELECT 'rows of ' || s.legacy || ' add up', s.rows = coalesce((SELECT "
                  f"sum(m.rows) FROM {COUNTS} AS m WHERE m.legacy = s.legacy AND m.kind <> 'source'), 0) "
                  f"FROM {COUNTS} AS s WHERE s.kind = 'source'",
                  comment="every legacy row went somewhere: the parts of a split and the quarantine add up"),
        Statement(f"INSERT INTO {CHECKS} SELECT 'foreign keys hold', NOT EXISTS (SELECT 1 FROM pragma_foreign_key_check)"),
    ]
    def finish(backup_path: str | None) -> list[Statement]:
        return [Statement(ledger.create_sql(SQLITE)),
                ledger.insert_statement(SQLITE, "apply", plan, backup_path, state_sql=_state_sql(keep)),
                Statement("COMMIT", script_only=True)]

    return Program(before, plan.operations, after_operation, checks, finish)


def _state_sql(keep: list[KeepSequence]) -> str:
    """{"sequences": {legacy: {"legacy": counter before, "cutover": highest domain counter now}}}."""
    parts = []
    for op in keep:
        targets = ", ".join(quote_literal(physical_name(t, SQLITE)) for t in op.targets)
        parts.append(f"{quote_literal(op.legacy)}, json_object('legacy', (SELECT seq FROM {SEQUENCES} WHERE name = "
                     f"{quote_literal(op.legacy)}), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN "
                     f"({targets})))")
    return f"json_object('sequences', json_object({', '.join(parts)}))"


def apply_script(plan: Plan, backup_dir: Path | None = None) -> str:
    """What apply runs, as a script for the sqlite3 shell (`.bail on`: the first failure stops it, and the
    transaction is rolled back)."""
    source = Path(plan.source)
    backup = str((backup_dir or source.parent) / f"{source.name}.before-dpro-migrate.bak")
    program = apply_program(plan, backup)
    lines = [f"-- dpro-migrate {plan.tool_version}: apply {plan.source} ({plan.target})", ".bail on"]
    lines += [s.render("?") for s in program.before]
    for op in program.operations:
        lines += op.script()
        lines += [s.render("?") for s in program.after_operation(op)]
    lines += [s.render("?") for s in program.checks + program.finish(backup)]
    return "\n".join(lines) + "\n"


# --- apply ---------------------------------------------------------------------------------------


def apply_in_place(plan: Plan, *, path: Path | None = None, backup_dir: Path | None = None,
                   progress: Progress | None = None, rows_progress=None, backup_progress=None,
                   waiting: Waiting | None = None) -> ApplyResult:
    """Migrate the file in place (the plan's source, or `path`, a copy of it), in one transaction.
    Waits for the application's readers and writers at most DPRO_MIGRATE_BUSY_TIMEOUT_MS, before it
    does anything (db.connections.write_transaction), then refuses with `Locked`; `waiting` (or progress)
    is told what it waits for."""
    path = Path(path or plan.source)
    waiting = _waiting(waiting, progress)
    started = time.monotonic()
    timings = Timings()
    conn = open_for_write(path, waiting=waiting)
    try:
        try:
            lock_wait = time.monotonic()
            with write_transaction(conn, path, exclusive=True, waiting=waiting) as transaction:
                timings.add_phase("wait for the lock", time.monotonic() - lock_wait)
                # Checked under the lock: another apply may have finished while this one waited for it.
                if ledger.sqlite_has_ledger(conn):
                    last = ledger.latest_apply(ledger.read_entries(conn))
                    return ApplyResult(True, applied_at=last.at if last else None)
                if schema_fingerprint(conn) != plan.source_fingerprint:
                    raise BadInput(f"{path}: its schema changed since the plan was made (fingerprint differs); "
                                   "make a new plan")
                with timings.timed("backup"):
                    copied = copy_under_lock(transaction, backup_dir, backup_progress)
                with sealing(copied) as sealed:  # checked while the plan runs, waited for before the commit
                    moved, quarantined = _run_program(conn, plan, sealed, progress, rows_progress, timings)
                    backup = sealed()
                commit = time.monotonic()
            timings.add_phase("commit", time.monotonic() - commit)
        except sqlite3.IntegrityError as refused:
            raise explain_refusal(conn, plan, refused) from None
        return ApplyResult(False, backup, moved, time.monotonic() - started, timings=timings, quarantined=quarantined)
    finally:
        conn.close()


def _run_program(conn: sqlite3.Connection, plan: Plan, backup: Callable[[], BackupResult],
                 progress, rows_progress, timings: Timings) -> tuple[dict[str, int], dict[str, int]]:
    """The program inside the transaction write_transaction opened (its BEGIN and COMMIT are that one's).
    `backup()` waits for the sealed backup: the ledger names it, so nothing commits without it.
    Returns (rows moved per move, rows quarantined per legacy table)."""
    runner = SQLiteRunner(conn)
    program = apply_program(plan)
    with timings.timed("count the source"):
        for statement in program.before:
            if not statement.script_only:
                conn.execute(statement.sql, statement.params)
    moved: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    for i, op in enumerate(program.operations):
        if progress:
            progress(i, len(program.operations), op)
        began = time.monotonic()
        rows = op.forward(runner)
        for statement in program.after_operation(op):
            conn.execute(statement.sql, statement.params)
        timings.operation(op, time.monotonic() - began, rows)
        if isinstance(op, QuarantineRows):
            quarantined = dict(conn.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
        if op.moves_rows:
            moved[op.name] = rows
            if rows_progress:
                rows_progress(op, rows)
    with timings.timed("checks"):
        for statement in program.checks:
            try:
                conn.execute(statement.sql, statement.params)
            except sqlite3.IntegrityError:
                raise _failed_check(conn) from None
    with timings.timed("backup check"):
        path = str(backup().path)
    with timings.timed("ledger"):
        for statement in program.finish(path):
            if not statement.script_only:
                conn.execute(statement.sql, statement.params)
    return moved, quarantined


def _failed_check(conn: sqlite3.Connection) -> Exception:
    """Which check failed, read back from the bookkeeping before the transaction is rolled back."""
    wrong = [f"{t}: {placed} of {n}" for t, n, placed in conn.execute(
        f"SELECT s.legacy, s.rows, coalesce((SELECT sum(m.rows) FROM {COUNTS} AS m WHERE m.legacy = s.legacy "
        f"AND m.kind <> 'source'), 0) AS placed FROM {COUNTS} AS s WHERE s.kind = 'source' AND s.rows <> placed")]
    if wrong:
        return ChecksFailed(f"rows moved do not add up to the legacy tables ({', '.join(wrong)}); nothing was changed")
    rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    return _Refused(f"{len(rows)} rows would break a foreign key of the target",
                    [{"table": t, "rowid": r, "parent": p} for t, r, p, _ in rows[:20]])


class _Refused(sqlite3.IntegrityError):
    """The target refused rows (foreign_key_check): the transaction is rolled back."""

    def __init__(self, message: str, sample=None):
        super().__init__(message)
        self.sample = sample


def explain_refusal(conn: sqlite3.Connection, plan: Plan, error: Exception) -> ChecksFailed:
    """After the rollback: which rows, under which rules. Under policy fail apply does not run the preflight
    first (SQLite enforces every rule itself, atomically); it runs it only to explain a refusal."""
    refuse_if_found(conn, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
    return ChecksFailed(f"the target refused rows ({error}); nothing was changed",
                        details={"foreign_key_violations": getattr(error, "sample", None)})


def views_made_after_apply(conn: sqlite3.Connection, plan: Plan) -> dict[str, str]:
    """Views neither the legacy file had nor apply made, that name a table rollback drops: SQLite keeps no
    dependencies (PostgreSQL refuses the same drop), so they would be left broken. view -> a table it reads."""
    known = {o["name"].lower() for o in plan.legacy_objects if o.get("type") == "view"}
    made = [p for op in plan.operations for p in op.promises()]
    known |= {p.name.lower() for p in made if p.kind == "view"} | {op.name.lower() for op in plan.of_type(CreateCompatView)}
    dropped = {p.name.lower() for p in made if p.kind == "table"}
    dropped |= {t.lower() for op in plan.of_type(CreateSearchIndex) for t in op.tables}
    found = {}
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"):
        if name.lower() in known:
            continue
        words = {w.lower() for w in re.findall(r"\w+", sql or "")}
        reads = sorted(words & dropped)
        if reads:
            found[name] = reads[0]
    return found


def rows_without_legacy_home(conn: sqlite3.Connection, plan: Plan) -> dict[str, int]:
    """Domain tables with rows although no legacy table of this file maps to them (written after the cutover)."""
    out = {}
    for op in plan.tables_without_legacy_home():
        n = conn.execute(f"SELECT count(*) FROM {table_sql(op.table, SQLITE)}").fetchone()[0]
        if n:
            out[op.name] = n
    return out


def _live_columns(conn: sqlite3.Connection, tables) -> dict[str, set[str]]:
    """The columns each of `tables` (qualified) has now; a table that is gone is left out."""
    out = {}
    for table in tables:
        found = {r[0] for r in conn.execute(
            f"SELECT name FROM pragma_table_info({quote_literal(physical_name(table, SQLITE))})")}
        if found:
            out[table] = found
    return out


def columns_added_after_apply(conn: sqlite3.Connection, plan: Plan) -> dict[str, int]:
    """Columns of the domain tables apply did not create, with how many rows hold a value in them."""
    out = {}
    for table, expected in created_columns(plan).items():
        name = table_sql(table, SQLITE)
        for (column,) in conn.execute(f"SELECT name FROM pragma_table_info({quote_literal(physical_name(table, SQLITE))})"):
            if column not in expected:
                n = conn.execute(f"SELECT count(*) FROM {name} WHERE {quote_ident(column)} IS NOT NULL").fetchone()[0]
                if n:
                    out[f"{table}.{column}"] = n
    return out


# --- rollback ------------------------------------------------------------------------------------


def rollback_program(plan: Plan) -> list[str]:
    """What rollback runs, as a script: every operation's reverse, last first, then the bookkeeping goes."""
    lines = [f"-- dpro-migrate {plan.tool_version}: roll back {plan.source}", ".bail on",
             "PRAGMA foreign_keys = OFF;", "BEGIN IMMEDIATE;"]
    for op in reversed(plan.operations):
        lines += op.reverse_script()
    lines += ["-- Alembic's baseline stamp goes with the schema it described (refused if Alembic moved beyond it)",
              f"DROP TABLE IF EXISTS {version_table_sql(SQLITE)};",
              f"DROP TABLE {table_sql(LEDGER_TABLE, SQLITE)};", "COMMIT;"]
    return lines


def rollback_in_place(path: Path, *, backup_dir: Path | None = None, progress: Progress | None = None,
                      rows_progress=None, backup_progress=None, waiting: Waiting | None = None) -> RollbackResult:
    """Undo apply in one transaction; waits for locks as apply_in_place does."""
    started = time.monotonic()
    timings = Timings()
    waiting = _waiting(waiting, progress)
    conn = open_for_write(path, waiting=waiting)
    try:
        lock_wait = time.monotonic()
        with write_transaction(conn, path, exclusive=True, waiting=waiting) as transaction:
            timings.add_phase("wait for the lock", time.monotonic() - lock_wait)
            refuse_foreign_ledger(conn, path)
            if not ledger.sqlite_has_ledger(conn):
                return RollbackResult(True)
            entry = ledger.latest_apply(ledger.read_entries(conn))
            if entry is None or entry.plan is None:
                raise BadInput(f"{path}: its ledger holds no apply to roll back")
            plan = entry.plan
            refuse_changed_columns(plan, _live_columns(conn, read_back_columns(plan)), columns_added_after_apply(conn, plan),
                                   f"the backup apply took, {entry.backup}" if plan.target == "sqlite:in-place"
                                   else f"{plan.source} (apply only read it)")
            readers = views_made_after_apply(conn, plan)
            if readers:
                raise BadInput(f"{path}: views created after apply read tables rollback drops, and SQLite would leave "
                               f"them broken: {', '.join(f'{v} (reads {t})' for v, t in readers.items())}; nothing was "
                               "changed (drop them, roll back, then create them again over the legacy tables)",
                               details={"views_made_after_apply": readers})
            stranded = rows_without_legacy_home(conn, plan)
            if stranded:
                names = ", ".join(f"{t} ({n} rows)" for t, n in stranded.items())
                raise ChecksFailed(f"rows written after the cutover have no legacy table to go back to: {names}; "
                                   "nothing was changed", details={"stranded": stranded})
            quarantined = _quarantined(conn, plan)
            with timings.timed("backup"):
                copied = copy_under_lock(transaction, backup_dir, backup_progress)
            with sealing(copied) as sealed:  # checked while the reverses run, waited for before the commit
                restored, renumbered = _run_reverses(conn, plan, progress, rows_progress, timings)
                with timings.timed("backup check"):
                    backup = sealed()
            with timings.timed("ledger"):
                release_baseline(conn, SQLITE)  # Alembic's stamp goes with the schema it described
                conn.execute(f"DROP TABLE {table_sql(LEDGER_TABLE, SQLITE)}")
            commit = time.monotonic()
        timings.add_phase("commit", time.monotonic() - commit)
        return RollbackResult(False, backup, restored, renumbered, time.monotonic() - started, timings=timings,
                              quarantined=quarantined)
    finally:
        conn.close()


def _quarantined(conn: sqlite3.Connection, plan: Plan) -> dict[str, int]:
    """Rows in quarantine per legacy table, before rollback puts them back."""
    if not plan.of_type(QuarantineRows):
        return {}
    return dict(conn.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {table_sql(QUARANTINE_TABLE, SQLITE)} "
                             "GROUP BY 1"))


def _run_reverses(conn: sqlite3.Connection, plan: Plan, progress, rows_progress,
                  timings: Timings) -> tuple[dict[str, int], int]:
    """Every operation's reverse, last first: (rows restored per legacy table, rows renumbered)."""
    runner = SQLiteRunner(conn)
    ops = list(reversed(plan.operations))
    restored: dict[str, int] = {}
    for i, op in enumerate(ops):
        if progress:
            progress(i, len(ops), op)
        began = time.monotonic()
        try:
            rows = op.backward(runner)
        except sqlite3.IntegrityError as exc:  # a rule of the legacy table the domain table does not have
            raise ChecksFailed(f"the legacy tables refuse rows written after the cutover ({exc}, undoing "
                               f"{op.describe()}); nothing was changed (change or remove those rows, or drop that "
                               "rule from the legacy table, then roll back)") from None
        timings.operation(op, time.monotonic() - began, rows, backward=True)
        if isinstance(op, RowMove):
            restored[op.legacy] = restored.get(op.legacy, 0) + rows
            if rows_progress:
                rows_progress(op, rows)
    return restored, runner.renumbered


def finalize_in_place(path: Path, *, waiting: Waiting | None = None) -> list[str]:
    """End of the cutover window: drop the compatibility views (rollback would drop them too)."""
    conn = open_for_write(path, waiting=waiting)
    try:
        with write_transaction(conn, path, exclusive=True, waiting=waiting):
            refuse_foreign_ledger(conn, path)
            if not ledger.sqlite_has_ledger(conn):
                raise BadInput(f"{path}: is not migrated; nothing to finalize")
            plan = ledger.latest_apply(ledger.read_entries(conn)).plan
            views = [op for op in plan.of_type(CreateCompatView) if conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?", (op.name,)).fetchone()]
            runner = SQLiteRunner(conn)
            for op in views:
                op.backward(runner)
            statement = ledger.insert_statement(SQLITE, "finalize", plan, None, state={"dropped": [v.name for v in views]})
            conn.execute(statement.sql, statement.params)
        return [op.name for op in views]
    finally:
        conn.close()
