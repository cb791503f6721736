"""The verbs on a PostgreSQL target: the source is only read; the seven schemas live in the server."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import psycopg

import dpro_migrate.safety.ledger as ledger
from dpro_migrate import DOMAINS
from dpro_migrate.backends import postgres as backend
from dpro_migrate.backends.sqlite import ApplyResult, RollbackResult
from dpro_migrate.db.connections import connect
from dpro_migrate.dialects import POSTGRES
from dpro_migrate.errors import BadInput
from dpro_migrate.features.archive import archive_rows, unarchive_rows
from dpro_migrate.features.partitions import partition_maintenance
from dpro_migrate.model.mapping import load_mapping
from dpro_migrate.plan.document import Plan, refuse_other_source
from dpro_migrate.safety.state import read_file
from dpro_migrate.targets import Target
from dpro_migrate.verbs.sqlite import StatusReport, history_of
from dpro_migrate.verify.postgres import has_ledger, read_ledger, verify_postgres
from dpro_migrate.verify.report import VerifyReport


class PostgresSite:
    dialect = POSTGRES

    def __init__(self, source: Path, target: Target):
        self.source, self.target = Path(source), target

    def claimed(self):
        """PostgreSQL: the verbs take dpro-migrate's lock on their own connection (db.connections.claim_session)."""
        return nullcontext()

    def already_applied(self) -> ApplyResult | None:
        return None  # apply reads the target's ledger under its own connection

    def apply(self, plan: Plan, *, backup_dir: Path, replace_existing: bool = False, progress=None,
              rows_progress=None) -> ApplyResult:
        return backend.apply_postgres(plan, self.target, backup_dir=backup_dir, replace_existing=replace_existing,
                                      progress=progress, rows_progress=rows_progress)

    def apply_script(self, plan: Plan) -> str:
        return backend.apply_script(plan)

    def rollback_script(self, plan: Plan) -> str:
        conn, entry = read_ledger(self.target)
        conn.close()
        replaced = (entry.state.get("replaced") if entry else None) or []
        return backend.rollback_script(plan, replaced, entry.backup if replaced else None)

    def verify(self, *, backup: Path | None = None, strict: bool = False) -> VerifyReport:
        self._same_source()
        return verify_postgres(self.target, strict=strict)

    def rollback(self, *, write_back: bool = False, on_conflict: str = "refuse", backup_dir: Path, progress=None,
                 rows_progress=None) -> RollbackResult:
        self._same_source()
        return backend.rollback_postgres(self.target, write_back=write_back, backup_dir=backup_dir, progress=progress,
                                         on_conflict=on_conflict)

    def finalize(self) -> list[str]:
        return backend.finalize_postgres(self.target)

    def database_url(self) -> str:
        return self.target.conninfo

    def archive(self, table: str, older_than):
        if older_than is None:
            return unarchive_rows(self.target, POSTGRES, table)
        return archive_rows(self.target, POSTGRES, table, older_than)

    def _same_source(self) -> None:
        """The file named is the one the target was migrated from (nothing to check when it is not migrated)."""
        try:
            conn, entry = read_ledger(self.target)
        except psycopg.Error:
            return  # the verb reads the ledger again and says what this failure is
        conn.close()
        if entry is not None and entry.plan is not None:
            refuse_other_source(entry.plan, self.source, self.target.display)

    def partitions(self, ahead: int):
        self._same_source()  # the history line goes beside the file named: it must be the one migrated here
        return partition_maintenance(self.target, ahead=ahead)

    def recorded_plan(self) -> Plan:
        conn, entry = read_ledger(self.target)
        conn.close()
        if entry is None:
            raise BadInput(f"{self.target.display}: is not migrated; nothing to roll back")
        return entry.plan

    def status(self) -> StatusReport:
        conn = connect(self.target)
        try:
            conn.execute("SET default_transaction_read_only = on")  # status only reads: a hot standby answers too
            schemas = backend.existing_schemas(conn)
            entries = ledger.read_entries(conn, POSTGRES) if has_ledger(conn) else []
        finally:
            conn.close()
        state = "migrated" if entries and len(schemas) == len(DOMAINS) else "partly migrated" if schemas else "legacy"
        db = read_file(self.source)
        return StatusReport(self.target.display, state, [t for t in load_mapping().legacy_tables if t in db.tables],
                            schemas, history_of(entries))
