"""One function per verb. The CLI parses flags, calls one of these, and renders what it returns.

Each verb asks the site of its target (`site_for`: a SQLite file, in place or separate, or a PostgreSQL
database: verbs/sqlite.py, verbs/postgresql.py) and never which database it is.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from dpro_migrate import DOMAINS
from dpro_migrate.backends.sqlite import ApplyResult, RollbackResult
from dpro_migrate.compare import logical_differences
from dpro_migrate.config import MAX_PARTITION_MONTHS_AHEAD, load_settings
from dpro_migrate.dialects import POSTGRES, SQLITE, table_sql
from dpro_migrate.dirty import add_dirty_data
from dpro_migrate.errors import BadInput, ChecksFailed, DproMigrateError, OutcomeUnknown
from dpro_migrate.example import SHAPES, generate_legacy_db
from dpro_migrate.model.mapping import QUARANTINE_TABLE, Resolution, load_mapping, resolve
from dpro_migrate.model.schema import load_schema
from dpro_migrate.plan.document import Plan, load_plan, looks_like_plan
from dpro_migrate.plan.preflight import REFUSED, run_refusal
from dpro_migrate.planning import make_plan
from dpro_migrate.safety import history
from dpro_migrate.safety.backup import BackupResult, backup_file, default_backup_dir
from dpro_migrate.safety.partial_files import remove_left_overs
from dpro_migrate.safety.state import file_state, read_file
from dpro_migrate.model.legacy import connect_readonly
from dpro_migrate.results import DirtyReport
from dpro_migrate.sqlnames import quote_ident
from dpro_migrate.targets import Target, parse_target, recorded_target
from dpro_migrate.verbs.postgresql import PostgresSite
from dpro_migrate.verbs.sqlite import SQLiteSite, StatusReport
from dpro_migrate.verify.report import VerifyReport

__all__ = ["make_plan", "load_plan", "looks_like_plan", "StatusReport"]

SITES = {SQLITE: SQLiteSite, POSTGRES: PostgresSite}


def site_for(source: Path, target: Target | None = None) -> SQLiteSite | PostgresSite:
    target = target or parse_target(None)
    return SITES[target.dialect](Path(source), target)


# --- inspect ------------------------------------------------------------------------------------


@dataclass
class TableInfo:
    name: str
    rows: int
    columns: list[dict]
    maps_to: list[str]
    extra_columns: list[str]


@dataclass
class InspectReport:
    path: str
    state: str
    fingerprint: str
    size_bytes: int
    tables: list[TableInfo]
    indexes: list[dict]
    triggers: list[dict]
    views: list[dict]
    unknown_tables: dict[str, str | None]
    missing_legacy_tables: list[str]
    plan_summary: dict[str, int] = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)  # rows the target would refuse, every id, per rule
    dirty: dict = field(default_factory=dict)  # the same, explained: results.DirtyReport.to_json()


def inspect(source: Path) -> InspectReport:
    db = read_file(source)
    state = file_state(db)
    res: Resolution | None = None
    summary: dict[str, int] = {}
    findings: list[dict] = []
    dirty: dict = {}
    if state == "legacy":
        plan = make_plan(source)
        res = resolve(db, load_schema(), load_mapping())
        summary = plan_phases(plan)
        findings = plan.preflight["findings"]
        dirty = plan.preflight.get("dirty") or {}
    tables = []
    for name, t in sorted(db.tables.items()):
        moves = res.moves_from(name) if res else []
        tables.append(TableInfo(name, t.rows, [{"name": c.name, "type": c.decl_type, "not_null": c.notnull}
                                               for c in t.columns],
                                [m.target for m in moves], [c for c, _ in (moves[0].extra_columns if moves else [])]))
    objs = lambda kind: [{"name": o.name, "table": o.table} for o in db.objects if o.type == kind]  # noqa: E731
    return InspectReport(str(source), state, db.fingerprint, source.stat().st_size, tables, objs("index"),
                         objs("trigger"), objs("view"), res.unknown_tables if res else {},
                         res.missing_legacy if res else [], summary, findings, dirty)


def plan_phases(plan: Plan) -> dict[str, int]:
    """The plan's operations counted by phase, in words ("indexes": 59), in the order they run."""
    from dpro_migrate.results import PHASE_OF_KIND

    phases: dict[str, int] = {}
    for op in plan.operations:
        phase = PHASE_OF_KIND.get(op.kind, op.kind.replace("_", " "))
        phases[phase] = phases.get(phase, 0) + 1
    return phases


def move_rows(plan: Plan) -> dict[str, int]:
    """Rows each move takes from its legacy table, counted on the source now: the halves of a split
    (activity_logs) separately; quarantined rows (--on-reject quarantine) not."""
    conn = connect_readonly(Path(plan.source))
    try:
        # --on-reject quarantine: the moves leave out the refused rows, which apply will have found (SQLite in
        # place: in the quarantine table it makes); found here the same way
        kept_out = f"FROM {table_sql(QUARANTINE_TABLE, SQLITE)} WHERE"
        wheres = {m.name: (m.where or "").replace(kept_out, f"FROM {REFUSED} WHERE") for m in plan.moves}
        if any(REFUSED in w for w in wheres.values()):
            run_refusal(conn, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
        return {m.name: conn.execute(f"SELECT count(*) FROM {quote_ident(m.legacy)}"
                                     + (f" WHERE {wheres[m.name]}" if m.where else "")).fetchone()[0]
                for m in plan.moves}
    finally:
        conn.close()


def dirty_of(plan: Plan) -> DirtyReport:
    return DirtyReport.from_json(plan.preflight.get("dirty"))


def target_for(source_or_plan: Path, url: str | None) -> Target:
    """--target when given; else a plan file's own target (its URL less the password: libpq takes that from
    PGPASSWORD or ~/.pgpass), else the file in place."""
    if url or not looks_like_plan(Path(source_or_plan)):
        return parse_target(url)
    return recorded_target(load_plan(Path(source_or_plan)).target)


# --- history: one line per apply, verify, rollback, finalize and archive, beside the backups ------


def _source_of(source_or_plan: Path) -> Path:
    """The legacy file a verb works on: a plan file names its own (apply's `backup_dir` default follows it)."""
    path = Path(source_or_plan)
    if looks_like_plan(path):
        try:
            return Path(json.loads(path.read_text())["source"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not a usable plan: apply itself says why
    return Path(os.path.realpath(path))  # never raises: a symbolic link loop is refused by the verb, in one line


source_of = _source_of  # for the CLI: the legacy file behind a plan file


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, DproMigrateError):
        return line
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _outcome_of(exc: BaseException) -> str:
    if isinstance(exc, OutcomeUnknown):
        return history.OUTCOME_UNKNOWN
    if isinstance(exc, DproMigrateError):  # BadInput, ChecksFailed: the verb refused, its message says what it found
        return history.REFUSED
    return history.FAILED


def recorded(verb: str, summarize: Callable[[object], dict]):
    """Append one history line for every call of the verb, whatever its end: `summarize(result)` gives the
    line's counts, backup and message on success; an exception is recorded and re-raised unchanged.
    The verb takes (source, target, ...) and writes its backups (and so its history) to `backup_dir`.
    `report`: the page the CLI writes for this run (--report), named in the line so later reports link it.
    A history that cannot be written never hides the verb's result: the result's `history_error` says so."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(source, target: Target | None = None, *, report: Path | str | None = None, **options):
            target = target or parse_target(None)
            legacy = _source_of(source)
            directory = Path(options.get("backup_dir") or default_backup_dir(legacy))

            def write(outcome: str, **line) -> str | None:
                try:
                    history.append(directory, history.HistoryLine(verb=verb, source=str(legacy), target=target.display,
                                                                  outcome=outcome, report=str(report) if report else None,
                                                                  **line))
                    return None
                except Exception as exc:  # whatever it is, the verb's own result comes first
                    return f"the history line was not written to {history.history_path(directory)}: {_first_line(exc)}"

            # partial backups a killed run left in the folder this verb writes (nobody holds them locked)
            left_overs = [str(p) for p in remove_left_overs(directory)]
            try:
                result = fn(source, target, **options)
            except BaseException as exc:
                problem = write(_outcome_of(exc), message=_first_line(exc))
                if problem:
                    exc.add_note(problem)
                raise
            problem = write(**summarize(result))
            carrier = result[1] if isinstance(result, tuple) else result
            if left_overs and hasattr(carrier, "left_overs"):
                carrier.left_overs[:0] = left_overs
            if problem:
                if hasattr(carrier, "history_error"):  # a plain list (finalize's views) has nowhere to say it
                    carrier.history_error = problem
            return result

        return run

    return wrap


def _backup_path(backup: BackupResult | None) -> str | None:
    return str(backup.path) if backup else None


def _applied(result: tuple[Plan | None, ApplyResult]) -> dict:
    _, r = result
    if r.already_migrated:
        return {"outcome": history.OK, "message": f"already migrated (applied {r.applied_at}); nothing changed"}
    return {"outcome": history.OK, "counts": {"rows_moved": sum(r.rows_moved.values())}, "backup": _backup_path(r.backup)}


def _verified(r: VerifyReport) -> dict:
    counts = {"checks": len(r.checks), "checks_failed": len(r.failures)}
    if r.ok:
        return {"outcome": history.OK, "counts": counts, "backup": r.backup}
    return {"outcome": history.FAILED, "counts": counts, "backup": r.backup,
            "message": f"{len(r.failures)} checks failed: " + "; ".join(c.name for c in r.failures)}


def _rolled_back(r: RollbackResult) -> dict:
    if r.nothing_to_do:
        return {"outcome": history.OK, "message": "not migrated: nothing to roll back"}
    counts = {"rows_restored": sum(r.rows_restored.values())}
    if r.changes:
        counts["rows_written_back"] = sum(n["inserted"] + n["updated"] + n["deleted"] for n in r.changes.values())
    return {"outcome": history.OK, "counts": counts, "backup": _backup_path(r.backup)}


def _finalized(dropped: list[str]) -> dict:
    return {"outcome": history.OK, "counts": {"views_dropped": len(dropped)}}


def _archived(r) -> dict:
    return {"outcome": history.OK, "counts": {"rows_moved": r.moved},
            "message": f"{r.table} -> {r.archive}" if r.cutoff else f"{r.archive} -> {r.table}"}


# --- plan, apply, verify, rollback -------------------------------------------------------------


def _absolute_dir(backup_dir: Path | None) -> Path | None:
    """The ledger records where the backup and the snapshot are: a path relative to today's working directory
    would be "gone" for a verify or rollback run from anywhere else."""
    return Path(os.path.abspath(backup_dir)) if backup_dir else None


def planned(source_or_plan: Path, target: Target, **options) -> Plan:
    """A plan file as written by `plan --out` (for its own target), or a new plan for the source."""
    if looks_like_plan(source_or_plan):
        plan = load_plan(source_or_plan)
        if plan.target != target.display:
            raise BadInput(f"the plan was made for {plan.target}, not {target.display}: pass the plan's --target")
        # apply runs the plan as it was reviewed: an option it was made without is refused, never dropped silently
        asked = [*(["--compat-views"] if options.get("compat_views") and not plan.compat_views else []),
                 *([f"--on-reject {options['on_reject']}"]
                   if options.get("on_reject", "fail") not in ("fail", plan.on_reject) else []),
                 *(f"--with {f}" for f in options.get("features") or () if f not in plan.features)]
        if asked:
            raise BadInput(f"{source_or_plan}: the plan was made without {', '.join(asked)}, and apply runs the plan "
                           "as it is: make the plan again with them (or leave them out here); nothing was changed")
        return plan
    return make_plan(source_or_plan, target, **options)


def apply_script(source_or_plan: Path, target: Target | None = None, **options) -> str:
    """Exactly what apply runs, framing included, as a script (`plan --sql`, `apply --sql`)."""
    target = target or parse_target(None)
    plan = planned(source_or_plan, target, **options)
    return site_for(Path(plan.source), target).apply_script(plan)


@recorded("apply", _applied)
def apply(source_or_plan: Path, target: Target | None = None, *, backup_dir: Path | None = None,
          on_reject: str = "fail", compat_views: bool = False, features: tuple[str, ...] = (),
          replace_existing: bool = False, progress=None, rows_progress=None) -> tuple[Plan | None, ApplyResult]:
    target = target or parse_target(None)
    site = site_for(_source_of(source_or_plan), target)
    with site.claimed():  # from the first read to the commit: a second dpro-migrate refuses, never reads a stale state
        if not looks_like_plan(source_or_plan):
            done = site.already_applied()
            if done:
                return None, done
        plan = planned(source_or_plan, target, on_reject=on_reject, compat_views=compat_views, features=features,
                       find_now=False)
        source = Path(plan.source)
        try:
            result = site_for(source, target).apply(plan, backup_dir=_absolute_dir(backup_dir) or default_backup_dir(source),
                                                    replace_existing=replace_existing, progress=progress,
                                                    rows_progress=rows_progress)
        except ChecksFailed as refused:
            _explain(refused, source, target, plan)
            raise
        if not result.already_migrated and result.applied_at is None:
            result.applied_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return plan, result


def _explain(refused: ChecksFailed, source: Path, target: Target, plan: Plan) -> None:
    """A refusal that lists rules and counts gets the rules explained and every id (results.DirtyReport), from
    the preflight run again on the source, only read: nothing was changed."""
    details = refused.details if isinstance(refused.details, dict) else None
    if not details or "findings" not in details or "dirty" in details:
        return
    try:
        again = make_plan(source, target, features=tuple(plan.features), compat_views=plan.compat_views)
    except Exception:  # noqa: BLE001 - the refusal as it was is still the answer
        return
    details["dirty"] = again.preflight.get("dirty")


@recorded("finalize", _finalized)
def finalize(source: Path, target: Target | None = None) -> list[str]:
    """Drop the compatibility views once no old reader needs them; returns the views dropped."""
    return site_for(source, target).finalize()


def database_url(source: Path, target: Target | None = None) -> str:
    """What Alembic connects to: the PostgreSQL target, or the migrated SQLite file."""
    return site_for(source, target).database_url()


def schema_drift(source: Path, target: Target | None = None, *, environment: Path | None = None) -> list:
    """Every difference between the live schema and what apply built (tables, columns, indexes, keys, checks,
    triggers, policies); environment: an Alembic environment whose models are compared instead of ddl/."""
    from dpro_migrate.handoff.environment import schema_drift as drift  # Alembic only when asked

    return drift(database_url(source, target), environment=environment)


def alembic_handoff(directory: Path, source: Path, target: Target | None = None, *,
                    stamp: bool = True) -> tuple[Path, str | None]:
    """Write the Alembic environment whose baseline is the migrated schema, and stamp the database with it."""
    from dpro_migrate.handoff.environment import alembic_init, stamp_baseline  # Alembic only when asked

    url = database_url(source, target)
    ini = Path(directory) / "alembic.ini"
    if not ini.exists():
        ini = alembic_init(directory, url)
    return ini, stamp_baseline(url, directory) if stamp else None


@recorded("archive", _archived)
def archive(source: Path, target: Target | None = None, *, table: str, older_than=None):
    """Move rows older than the cutoff into the table's archive (None: every archived row back), one transaction."""
    return site_for(source, target).archive(table, older_than)


def _kept(r) -> dict:
    return {"outcome": history.OK, "counts": {"partitions_created": len(r.created), "rows_moved": sum(r.moved.values())}}


@recorded("partitions", _kept)
def partitions(source: Path, target: Target | None = None, *, ahead: int | None = None, backup_dir: Path | None = None):
    """PostgreSQL, --with partition-by-month: the current month's partition and `ahead` more (default
    DPRO_MIGRATE_PARTITION_MONTHS_AHEAD), and rows sitting in DEFAULT moved into their month's; one transaction.
    `backup_dir`: where the history line goes."""
    months = load_settings().partition_months_ahead if ahead is None else ahead
    if not 0 <= months <= MAX_PARTITION_MONTHS_AHEAD:
        raise BadInput(f"--ahead {months}: choose 0 to {MAX_PARTITION_MONTHS_AHEAD} months")
    return site_for(source, target).partitions(months)


@recorded("verify", _verified)
def verify(source: Path, target: Target | None = None, *, backup: Path | None = None, strict: bool = False,
           backup_dir: Path | None = None) -> VerifyReport:
    """`strict`: a change made after the cutover fails the check too (by default it is reported).
    `backup_dir`: where the history line goes (verify writes no backup)."""
    return site_for(source, target).verify(backup=backup, strict=strict)


@recorded("rollback", _rolled_back)
def rollback(source: Path, target: Target | None = None, *, write_back: bool = False, on_conflict: str = "refuse",
             backup_dir: Path | None = None, progress=None, rows_progress=None) -> RollbackResult:
    return site_for(source, target).rollback(write_back=write_back, on_conflict=on_conflict,
                                             backup_dir=_absolute_dir(backup_dir) or default_backup_dir(source), progress=progress,
                                             rows_progress=rows_progress)


def rollback_script(source: Path, target: Target | None = None) -> str:
    site = site_for(source, target)
    return site.rollback_script(site.recorded_plan())


def recorded_plan(source: Path, target: Target | None = None) -> Plan:
    """The plan apply recorded in the ledger (what rollback inverts)."""
    return site_for(source, target).recorded_plan()


def restore_dump(dump: Path, target: Target | None = None, *, backup_dir: Path | None = None):
    """The seven domain schemas a pg_dump backup holds, back into the PostgreSQL target (what it holds of them
    now backed up first, in the dump's directory unless `backup_dir`)."""
    from dpro_migrate.backends.pg_replace import restore_postgres

    target = target or parse_target(None)
    if not target.conninfo:  # a SQLite target (in place, or a file): a pg_dump goes back into a server only
        raise BadInput(f"{dump}: is a pg_dump backup: name the PostgreSQL database it goes back into with --target "
                       "(or DPRO_MIGRATE_TARGET); nothing was changed")
    return restore_postgres(Path(dump), target, backup_dir=Path(backup_dir) if backup_dir else Path(dump).parent)


def backup(source: Path, to: Path | None = None, progress=None, *, create: bool = False,
           refuse_missing: bool = False) -> BackupResult:
    """A verified backup into the folder `to` (default: dpro-migrate-backups/ beside the file). With
    `refuse_missing` (the CLI), a folder given that does not exist is refused (a typo would scatter backups),
    unless `create`."""
    if to is not None and refuse_missing and not create and not Path(to).is_dir():
        what = "is not a folder" if Path(to).exists() else "does not exist"
        raise BadInput(f"--backup-dir {to}: {what}; nothing was written (pass --create to make it)")
    return backup_file(source, to, progress)


def status(source: Path, target: Target | None = None, *, backup_dir: Path | None = None) -> StatusReport:
    """The state and the ledger, and the history file's lines for this source (which outlive the ledger)."""
    report = site_for(source, target).status()
    directory = Path(backup_dir) if backup_dir else default_backup_dir(Path(source))
    report.history_path = str(history.history_path(directory))
    report.history_file = history.read(directory, Path(source))
    return report


# --- demo ---------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    workdir: str
    database: str
    generated: dict[str, int]
    inspect: InspectReport
    plan: Plan
    apply: ApplyResult
    verify: VerifyReport
    rollback: RollbackResult
    differences_after_rollback: list[str]
    domains: list[str] = field(default_factory=lambda: list(DOMAINS))
    moves: dict[str, int] = field(default_factory=dict)  # rows each move takes ("activity_logs -> ...": 115)
    phases: dict[str, int] = field(default_factory=dict)  # the plan's operations per phase
    backups: str = ""  # the folder of the backups and the history


def demo(workdir: Path | None = None, *, messages: int = 2000, shape: str = "18", progress=None) -> DemoResult:
    """Generate a legacy database, then inspect, plan, apply, verify, roll back and compare with the original."""
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dpro-migrate-demo-"))
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{workdir}: cannot be used as the demo's directory ({exc.strerror})") from None
    db = workdir / "dpro_agent.db"
    if db.exists():
        raise BadInput(f"{db}: already exists; give the demo an empty directory")
    generated = generate_legacy_db(db, messages=messages, shape=shape, extras=True)
    report = inspect(db)
    plan = make_plan(db)
    _, applied = apply(db, backup_dir=workdir / "backups", progress=progress)
    verified = verify(db, backup_dir=workdir / "backups")
    rolled = rollback(db, backup_dir=workdir / "backups", progress=progress)
    diffs = logical_differences(applied.backup.path, db)
    return DemoResult(str(workdir), str(db), generated, report, plan, applied, verified, rolled, diffs,
                      moves=move_rows(plan), phases=plan_phases(plan), backups=str(workdir / "backups"))


def example(path: Path, *, messages: int, shape: str, seed: int = 0, extras: bool = False,
            dirty: bool = False) -> dict[str, int]:
    if shape not in SHAPES:
        raise BadInput(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")
    if dirty and shape != "18":
        raise BadInput("--dirty needs the 18-table shape")
    if os.path.lexists(path):  # a dangling or looping symbolic link too: generating would write through it
        raise BadInput(f"{path}: already exists")
    counts = generate_legacy_db(path, messages=messages, shape=shape, seed=seed, extras=extras or dirty)
    if dirty:
        add_dirty_data(path)
        counts = {n: t.rows for n, t in read_file(Path(path)).tables.items()}
    return counts
