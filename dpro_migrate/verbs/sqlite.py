"""The verbs on a SQLite target: the legacy file migrated in place, or a separate new file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import dpro_migrate.safety.ledger as ledger
from dpro_migrate.backends import sqlite as backend
from dpro_migrate.db.connections import lock_errors_named, migrate_lock
from dpro_migrate.dialects import SQLITE, physical_name
from dpro_migrate.errors import BadInput
from dpro_migrate.features.archive import archive_rows, unarchive_rows
from dpro_migrate.model.legacy import connect_readonly, fold
from dpro_migrate.model.schema import load_schema
from dpro_migrate.model.mapping import load_mapping
from dpro_migrate.plan.document import Plan, refuse_other_source
from dpro_migrate.safety.backup import backup_file
from dpro_migrate.safety.state import domain_tables, file_state, read_file
from dpro_migrate.targets import Target
from dpro_migrate.verify.report import VerifyReport
from dpro_migrate.verify.sqlite import verify_sqlite


@dataclass
class StatusReport:
    path: str
    state: str
    legacy_tables: list[str]
    domain_tables: list[str]
    history: list[dict]  # the ledger's entries: inside the migrated database, gone after a rollback
    history_file: list[dict] = field(default_factory=list)  # safety/history.py's lines: they stay
    history_path: str | None = None


def history_of(entries: list[ledger.LedgerEntry]) -> list[dict]:
    return [{"id": e.id, "action": e.action, "at": e.at, "tool_version": e.tool_version, "backup": e.backup,
             "operations": len(e.plan.operations) if e.plan else 0} for e in entries]


class SQLiteSite:
    """Where the migrated schema lives: the source itself (in place), or the separate file of --target."""

    dialect = SQLITE

    def __init__(self, source: Path, target: Target):
        self.source, self.target = Path(source), target
        self.path = target.path if target.path else self.source  # what verify, rollback and status look at

    def claimed(self):
        """The file's dpro-migrate lock, held across a whole verb (reentrant: the verb's own steps take it too),
        so that a second dpro-migrate refuses before it reads anything the first is changing."""
        return migrate_lock(self.source)

    def already_applied(self) -> backend.ApplyResult | None:
        """In place, a migrated file is a finished apply: its time, from the ledger. Read under the file's
        dpro-migrate lock: while a rollback runs, its state is about to change, and apply refuses."""
        if self.target.path:
            return None
        with migrate_lock(self.source), lock_errors_named(self.source):
            if file_state(read_file(self.source)) != "migrated":
                return None
            applies = [h for h in self.status().history if h["action"] == "apply"]
        return backend.ApplyResult(True, applied_at=applies[-1]["at"] if applies else None)

    def apply(self, plan: Plan, *, backup_dir: Path, replace_existing: bool = False, progress=None,
              rows_progress=None) -> backend.ApplyResult:
        if not self.target.path:
            return backend.apply_in_place(plan, backup_dir=backup_dir, progress=progress, rows_progress=rows_progress)
        return self._apply_to_file(plan, self.target.path, backup_dir, progress, rows_progress)

    @staticmethod
    def _apply_to_file(plan: Plan, path: Path, backup_dir: Path, progress, rows_progress) -> backend.ApplyResult:
        """A separate SQLite target is a verified copy of the source, migrated in place; the source is only read.
        The target's dpro-migrate lock is held throughout: two applies never copy into the same file."""
        with migrate_lock(path):
            return SQLiteSite._copy_and_apply(plan, path, backup_dir, progress, rows_progress)

    @staticmethod
    def _copy_and_apply(plan: Plan, path: Path, backup_dir: Path, progress, rows_progress) -> backend.ApplyResult:
        if path.exists():
            if file_state(read_file(path)) == "migrated":
                return backend.apply_in_place(plan, path=path)
            raise BadInput(f"{path}: already exists; a SQLite target must be a new file")
        copy = backup_file(Path(plan.source), path.resolve().parent)
        os.replace(copy.path, path)
        try:
            return backend.apply_in_place(plan, path=path, backup_dir=backup_dir, progress=progress,
                                          rows_progress=rows_progress)
        except BaseException:
            path.unlink(missing_ok=True)  # the copy was ours: nothing half-done stays behind
            raise

    def apply_script(self, plan: Plan) -> str:
        return backend.apply_script(plan)

    def rollback_script(self, plan: Plan) -> str:
        return "\n".join(backend.rollback_program(plan)) + "\n"

    def verify(self, *, backup: Path | None = None, strict: bool = False) -> VerifyReport:
        with lock_errors_named(self.path):
            if self.target.path and self.path.exists():  # a separate file holds the migration of one source
                try:
                    recorded = self._recorded_plan()
                except BadInput:
                    recorded = None  # not migrated: verify says so itself
                if recorded is not None:
                    refuse_other_source(recorded, self.source, str(self.path))
            return verify_sqlite(self.path, backup=backup, strict=strict)

    def rollback(self, *, write_back: bool = False, on_conflict: str = "refuse", backup_dir: Path, progress=None,
                 rows_progress=None) -> backend.RollbackResult:
        # in place, every row is already in the one file: nothing to write back, nothing to conflict
        return backend.rollback_in_place(self.path, backup_dir=backup_dir, progress=progress,
                                         rows_progress=rows_progress)

    def finalize(self) -> list[str]:
        return backend.finalize_in_place(self.path)

    def database_url(self) -> str:
        return str(self.path.resolve())

    def archive(self, table: str, older_than):
        if older_than is None:
            return unarchive_rows(self.path, SQLITE, table)
        return archive_rows(self.path, SQLITE, table, older_than)

    def partitions(self, ahead: int):
        raise BadInput("partitions: SQLite has no partitions (--with partition-by-month is PostgreSQL only)")

    def recorded_plan(self) -> Plan:
        with lock_errors_named(self.path):
            return self._recorded_plan()

    def _recorded_plan(self) -> Plan:
        conn = connect_readonly(self.path)
        try:
            if not ledger.sqlite_has_ledger(conn):
                raise BadInput(f"{self.source}: is not migrated; nothing to roll back")
            entry = ledger.latest_apply(ledger.read_entries(conn))
            if entry is None or entry.plan is None:
                raise BadInput(f"{self.source}: its ledger holds no apply")
            return entry.plan
        finally:
            conn.close()

    def status(self) -> StatusReport:
        with lock_errors_named(self.path):
            return self._status()

    def _status(self) -> StatusReport:
        db = read_file(self.path)
        history = []
        conn = connect_readonly(self.path)
        try:
            if ledger.sqlite_has_ledger(conn):
                history = history_of(ledger.read_entries(conn))
        finally:
            conn.close()
        mapping, state = load_mapping(), file_state(db)
        domain = domain_tables(db)
        legacy = [t for t in mapping.legacy_tables if t in db.tables]
        if state == "migrated":  # a name both use (marketplace_tools: marketplace.tools on SQLite) is the domain's now
            own = {fold(physical_name(t, SQLITE)) for t in load_schema().tables}
            domain = sorted(t for t in db.tables if fold(t) in own)
            legacy = [t for t in legacy if fold(t) not in own]
        return StatusReport(str(self.path), state, legacy, domain, history)
