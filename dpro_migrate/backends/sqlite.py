"""Execute a plan on SQLite: apply in place in one transaction, and roll it back the same way."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .. import ledger
from ..backup import NAME_MAX, BackupResult, copy_file, sealing
from ..config import load_settings
from ..errors import BadInput, ChecksFailed
from ..legacy import check_sqlite_file, schema_fingerprint
from ..mapping import LEDGER_TABLE
from ..plan import Plan, Step
from ..schema import SQLITE, physical_name, table_sql
from ..verify import per_legacy, unaccounted

# Called as progress(step_index, total_steps, step) before each step runs;
# rows_progress(step, rows) as rows move.
Progress = Callable[[int, int, Step], None]


@dataclass
class ApplyResult:
    already_migrated: bool
    backup: BackupResult | None = None
    rows_moved: dict[str, int] = field(default_factory=dict)  # "legacy -> target" -> rows
    seconds: float = 0.0
    applied_at: str | None = None


@dataclass
class RollbackResult:
    nothing_to_do: bool
    backup: BackupResult | None = None
    rows_restored: dict[str, int] = field(default_factory=dict)
    renumbered: int = 0
    seconds: float = 0.0


def lock_timeout_ms() -> int:
    """How long to wait for another writer (the application, another dpro-migrate) before refusing."""
    return load_settings().busy_timeout_ms


def open_for_write(path: Path) -> sqlite3.Connection:
    check_sqlite_file(path)
    busy_timeout_ms = lock_timeout_ms()
    if len(os.fsencode(path.name + "-journal")) > NAME_MAX:
        raise BadInput(f"{path}: the name is too long for the -journal file SQLite writes beside it "
                       f"(at most {NAME_MAX - len('-journal')} bytes); rename the file")
    if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222:  # root too respects a chmod a-w
        raise BadInput(f"{path}: is read-only; dpro-migrate needs to write it")
    if not os.access(path.resolve().parent, os.W_OK):
        raise BadInput(f"{path.resolve().parent}: is read-only; SQLite needs to write its journal there")
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Room for the sorts of index builds and the copies: bounded, so memory stays flat with size.
        conn.execute("PRAGMA cache_size = -40000")
        # Builds that overwrite freed pages with zeros (Debian's) would write and journal every page of the
        # dropped tables; FAST zeroes only what is written anyway. The rows of a dropped table live on in the
        # table that replaced it, so no deleted content is left behind that the file does not still hold.
        conn.execute("PRAGMA secure_delete = FAST")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path}: is not a usable SQLite database ({exc})") from None
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    """Foreign keys off (it cannot change inside a transaction, and with it on DROP TABLE cascades),
    BEGIN IMMEDIATE for the write lock, and everything undone unless the block ends cleanly."""
    fk_before = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise BadInput(f"{path}: is locked by another writer ({exc}); nothing was changed") from None
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(fk_before)}")


def _run(conn: sqlite3.Connection, statements: list[str]) -> int:
    rows = 0
    for stmt in statements:
        cur = conn.execute(stmt)
        rows += max(cur.rowcount, 0)
    return rows


def _sequences(conn: sqlite3.Connection, names: list[str]) -> int | None:
    marks = ", ".join("?" * len(names))
    row = conn.execute(f"SELECT max(seq) FROM sqlite_sequence WHERE name IN ({marks})", names).fetchone()
    return row[0] if row else None


def _has_sequence_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone() is not None


def foreign_key_violations(conn: sqlite3.Connection, limit: int = 20) -> tuple[int, list[dict]]:
    rows = conn.execute("PRAGMA foreign_key_check").fetchall()
    sample = [{"table": t, "rowid": r, "parent": p} for t, r, p, _ in rows[:limit]]
    return len(rows), sample


def apply_in_place(plan: Plan, *, path: Path | None = None, backup_dir: Path | None = None,
                   progress: Progress | None = None, rows_progress=None, backup_progress=None) -> ApplyResult:
    """Migrate the file in place (the plan's source, or `path`, a copy of it), in one transaction."""
    path = Path(path or plan.source)
    started = time.monotonic()
    conn = open_for_write(path)
    try:
        try:
            with write_transaction(conn, path):
                # Checked under the lock: another apply may have finished while this one waited for it.
                if ledger.sqlite_has_ledger(conn):
                    last = ledger.latest_apply(ledger.read_entries(conn))
                    return ApplyResult(True, applied_at=last.at if last else None)
                if schema_fingerprint(conn) != plan.source_fingerprint:
                    raise BadInput(f"{path}: its schema changed since the plan was made (fingerprint differs); "
                                   "make a new plan")
                copied = copy_file(path, backup_dir, backup_progress)
                with sealing(copied) as sealed:  # checked while the plan runs, waited for before the commit
                    moved = _run_plan(conn, plan, copied.tables, sealed, progress, rows_progress)
                    backup = sealed()
        except (sqlite3.IntegrityError, _Refused) as refused:
            raise explain_refusal(conn, plan, refused) from None
        return ApplyResult(False, backup, moved, time.monotonic() - started)
    finally:
        conn.close()


def _run_plan(conn: sqlite3.Connection, plan: Plan, source_counts: dict[str, int], backup: Callable[[], BackupResult],
              progress, rows_progress) -> dict[str, int]:
    """The steps, the checks (rows add up, foreign keys hold) and the ledger, inside apply's transaction.
    `backup()` waits for the sealed backup: the ledger names it, so nothing commits without it."""
    keep = plan.steps_of("keep_sequence")
    has_seq = _has_sequence_table(conn)
    state = {"sequences": {s.info["legacy"]: {"legacy": _sequences(conn, [s.info["legacy"]]) if has_seq else None}
                           for s in keep}}
    moved: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    for i, step in enumerate(plan.steps):
        if progress:
            progress(i, len(plan.steps), step)
        if step.kind == "quarantine_rows":
            quarantined = _quarantine(conn, step)
            continue
        rows = _run(conn, step.sql)
        if step.kind == "move_rows":
            moved[step.name] = rows
            if rows_progress:
                rows_progress(step, rows)
    _check_counts(plan, moved, source_counts, quarantined)
    for step in keep:
        names = [physical_name(t, SQLITE) for t in step.info["targets"]]
        state["sequences"][step.info["legacy"]]["cutover"] = _sequences(conn, names)
    count, sample = foreign_key_violations(conn)
    if count:
        raise _Refused(f"{count} rows would break a foreign key of the target", sample)
    conn.execute(ledger.create_sql(SQLITE))
    conn.execute(ledger.insert_sql(SQLITE), ledger.entry_values("apply", plan, str(backup().path), state))
    return moved


class _Refused(Exception):
    """The target refused rows (a constraint, or foreign_key_check): the transaction is rolled back."""

    def __init__(self, message: str, sample=None):
        super().__init__(message)
        self.sample = sample


def explain_refusal(conn: sqlite3.Connection, plan: Plan, error: Exception) -> ChecksFailed:
    """After the rollback: which rows, under which rules. Under policy fail apply does not run the preflight
    first (SQLite enforces every rule itself, atomically); it runs it only to explain a refusal."""
    from ..preflight import refuse_if_found

    refuse_if_found(conn, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
    return ChecksFailed(f"the target refused rows ({error}); nothing was changed",
                        details={"foreign_key_violations": getattr(error, "sample", None)})


def _quarantine(conn: sqlite3.Connection, step) -> dict[str, int]:
    """Run the refusal (foreign keys repeated until no cascade is left), then copy the refused rows out."""
    from ..preflight import REFUSED, run_refusal

    start, end = step.info["repeat"]
    run_refusal(conn, step.sql[:start], step.sql[start:end])
    refused = dict(conn.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
    unplanned = sorted(set(refused) - set(step.info["tables"]))
    if unplanned:
        raise ChecksFailed(f"rows of {', '.join(unplanned)} break rules now but did not when the plan was made; "
                           "nothing was changed: make a new plan")
    _run(conn, step.sql[end:])
    return refused


def _check_counts(plan: Plan, moved: dict[str, int], source_rows: dict[str, int],
                  quarantined: dict[str, int]) -> None:
    """Every legacy row went somewhere: the parts of a split, and the quarantine, add up to the table."""
    wrong = unaccounted(per_legacy((s.info["legacy"], moved.get(s.name, 0)) for s in plan.steps_of("move_rows")),
                        quarantined, lambda name: source_rows.get(name, 0))
    if wrong:
        raise ChecksFailed(f"rows moved do not add up to the legacy tables ({', '.join(wrong)}); nothing was changed")


def rows_without_legacy_home(conn: sqlite3.Connection, plan: Plan) -> dict[str, int]:
    """Domain tables with rows although no legacy table of this file maps to them (written after the cutover)."""
    fed = {s.info["target"] for s in plan.steps_of("move_rows")}
    out = {}
    for step in plan.steps_of("create_table"):
        if step.info["table"] not in fed and not step.info.get("archive_of"):
            n = conn.execute(f"SELECT count(*) FROM {table_sql(step.info['table'], SQLITE)}").fetchone()[0]
            if n:
                out[step.name] = n
    return out


def rollback_in_place(path: Path, *, backup_dir: Path | None = None, progress: Progress | None = None,
                      rows_progress=None, backup_progress=None) -> RollbackResult:
    started = time.monotonic()
    conn = open_for_write(path)
    try:
        if not ledger.sqlite_has_ledger(conn):
            return RollbackResult(True)
        entry = ledger.latest_apply(ledger.read_entries(conn))
        if entry is None or entry.plan is None:
            raise BadInput(f"{path}: its ledger holds no apply to roll back")
        plan = entry.plan
        with write_transaction(conn, path):
            stranded = rows_without_legacy_home(conn, plan)
            if stranded:
                names = ", ".join(f"{t} ({n} rows)" for t, n in stranded.items())
                raise ChecksFailed(f"rows written after the cutover have no legacy table to go back to: {names}; "
                                   "nothing was changed", details={"stranded": stranded})
            copied = copy_file(path, backup_dir, backup_progress)
            with sealing(copied) as sealed:  # checked while the reverses run, waited for before the commit
                restored, renumbered = _run_reverses(conn, plan, progress, rows_progress)
                backup = sealed()
            from ..handoff import release_baseline  # Alembic only when rolling back

            release_baseline(conn, SQLITE)  # Alembic's stamp goes with the schema it described
            conn.execute(f"DROP TABLE {table_sql(LEDGER_TABLE, SQLITE)}")
        return RollbackResult(False, backup, restored, renumbered, time.monotonic() - started)
    finally:
        conn.close()


def _run_reverses(conn: sqlite3.Connection, plan: Plan, progress, rows_progress) -> tuple[dict[str, int], int]:
    """Every step's reverse, last step first: (rows restored per legacy table, rows renumbered)."""
    steps = list(reversed(plan.steps))
    restored: dict[str, int] = {}
    renumbered = 0
    for i, step in enumerate(steps):
        if progress:
            progress(i, len(steps), step)
        if step.kind == "move_rows":
            for j, stmt in enumerate(step.reverse):
                n = max(conn.execute(stmt).rowcount, 0)
                restored[step.info["legacy"]] = restored.get(step.info["legacy"], 0) + n
                renumbered += n if j == 1 else 0
                if rows_progress:
                    rows_progress(step, n)
        else:
            _run(conn, step.reverse)
    return restored, renumbered


def finalize_in_place(path: Path) -> list[str]:
    """End of the cutover window: drop the compatibility views (rollback would drop them too)."""
    conn = open_for_write(path)
    try:
        if not ledger.sqlite_has_ledger(conn):
            raise BadInput(f"{path}: is not migrated; nothing to finalize")
        plan = ledger.latest_apply(ledger.read_entries(conn)).plan
        views = [s for s in plan.steps_of("create_compat_view")
                 if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'view' AND name = ?", (s.name,)).fetchone()]
        with write_transaction(conn, path):
            for step in views:
                _run(conn, step.reverse)
            conn.execute(ledger.insert_sql(SQLITE), ledger.entry_values("finalize", plan, None, {"dropped": [s.name for s in views]}))
        return [s.name for s in views]
    finally:
        conn.close()
