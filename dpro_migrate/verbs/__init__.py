"""One function per verb. The CLI parses flags, calls one of these, and renders what it returns.

Each verb asks the site of its target (`site_for`: a SQLite file, in place or separate, or a PostgreSQL
database: verbs/sqlite.py, verbs/postgresql.py) and never which database it is.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dpro_migrate import DOMAINS
from dpro_migrate.backends.sqlite import ApplyResult, RollbackResult
from dpro_migrate.compare import logical_differences
from dpro_migrate.dialects import POSTGRES, SQLITE
from dpro_migrate.dirty import add_dirty_data
from dpro_migrate.errors import BadInput
from dpro_migrate.example import SHAPES, generate_legacy_db
from dpro_migrate.model.mapping import Resolution, load_mapping, resolve
from dpro_migrate.model.schema import load_schema
from dpro_migrate.plan.document import Plan, load_plan, looks_like_plan
from dpro_migrate.planning import make_plan
from dpro_migrate.safety.backup import BackupResult, backup_file, default_backup_dir
from dpro_migrate.safety.state import file_state, read_file
from dpro_migrate.targets import Target, parse_target
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
    findings: list[dict] = field(default_factory=list)  # rows the target would refuse, every id


def inspect(source: Path) -> InspectReport:
    db = read_file(source)
    state = file_state(db)
    res: Resolution | None = None
    summary: dict[str, int] = {}
    findings: list[dict] = []
    if state == "legacy":
        plan = make_plan(source)
        res = resolve(db, load_schema(), load_mapping())
        for op in plan.operations:
            summary[op.kind] = summary.get(op.kind, 0) + 1
        findings = plan.preflight["findings"]
    tables = []
    for name, t in sorted(db.tables.items()):
        moves = res.moves_from(name) if res else []
        tables.append(TableInfo(name, t.rows, [{"name": c.name, "type": c.decl_type, "not_null": c.notnull}
                                               for c in t.columns],
                                [m.target for m in moves], [c for c, _ in (moves[0].extra_columns if moves else [])]))
    objs = lambda kind: [{"name": o.name, "table": o.table} for o in db.objects if o.type == kind]  # noqa: E731
    return InspectReport(str(source), state, db.fingerprint, source.stat().st_size, tables, objs("index"),
                         objs("trigger"), objs("view"), res.unknown_tables if res else {},
                         res.missing_legacy if res else [], summary, findings)


# --- plan, apply, verify, rollback -------------------------------------------------------------


def planned(source_or_plan: Path, target: Target, **options) -> Plan:
    """A plan file as written by `plan --out` (for its own target), or a new plan for the source."""
    if looks_like_plan(source_or_plan):
        plan = load_plan(source_or_plan)
        if plan.target != target.display:
            raise BadInput(f"the plan was made for {plan.target}, not {target.display}: pass the plan's --target")
        return plan
    return make_plan(source_or_plan, target, **options)


def apply_script(source_or_plan: Path, target: Target | None = None, **options) -> str:
    """Exactly what apply runs, framing included, as a script (`plan --sql`, `apply --sql`)."""
    target = target or parse_target(None)
    plan = planned(source_or_plan, target, **options)
    return site_for(Path(plan.source), target).apply_script(plan)


def apply(source_or_plan: Path, target: Target | None = None, *, backup_dir: Path | None = None,
          on_reject: str = "fail", compat_views: bool = False, features: tuple[str, ...] = (),
          replace_existing: bool = False, progress=None, rows_progress=None) -> tuple[Plan | None, ApplyResult]:
    target = target or parse_target(None)
    if not looks_like_plan(source_or_plan):
        done = site_for(source_or_plan, target).already_applied()
        if done:
            return None, done
    plan = planned(source_or_plan, target, on_reject=on_reject, compat_views=compat_views, features=features,
                   find_now=False)
    source = Path(plan.source)
    return plan, site_for(source, target).apply(plan, backup_dir=backup_dir or default_backup_dir(source),
                                                replace_existing=replace_existing, progress=progress,
                                                rows_progress=rows_progress)


def finalize(source: Path, target: Target | None = None) -> list[str]:
    """Drop the compatibility views once no old reader needs them; returns the views dropped."""
    return site_for(source, target).finalize()


def database_url(source: Path, target: Target | None = None) -> str:
    """What Alembic connects to: the PostgreSQL target, or the migrated SQLite file."""
    return site_for(source, target).database_url()


def schema_drift(source: Path, target: Target | None = None) -> list:
    """Every difference between the live schema and ddl/ (tables, columns, indexes, keys, checks, triggers)."""
    from dpro_migrate.handoff.environment import schema_drift as drift  # Alembic only when asked

    return drift(database_url(source, target))


def alembic_handoff(directory: Path, source: Path, target: Target | None = None, *,
                    stamp: bool = True) -> tuple[Path, str | None]:
    """Write the Alembic environment whose baseline is the migrated schema, and stamp the database with it."""
    from dpro_migrate.handoff.environment import alembic_init, stamp_baseline  # Alembic only when asked

    url = database_url(source, target)
    ini = Path(directory) / "alembic.ini"
    if not ini.exists():
        ini = alembic_init(directory, url)
    return ini, stamp_baseline(url, directory) if stamp else None


def archive(source: Path, target: Target | None = None, *, table: str, older_than=None):
    """Move rows older than the cutoff into the table's archive (None: every archived row back), one transaction."""
    return site_for(source, target).archive(table, older_than)


def verify(source: Path, target: Target | None = None, *, backup: Path | None = None, strict: bool = False) -> VerifyReport:
    """`strict`: a change made after the cutover fails the check too (by default it is reported)."""
    return site_for(source, target).verify(backup=backup, strict=strict)


def rollback(source: Path, target: Target | None = None, *, write_back: bool = False, on_conflict: str = "refuse",
             backup_dir: Path | None = None, progress=None, rows_progress=None) -> RollbackResult:
    return site_for(source, target).rollback(write_back=write_back, on_conflict=on_conflict,
                                             backup_dir=backup_dir or default_backup_dir(source), progress=progress,
                                             rows_progress=rows_progress)


def rollback_script(source: Path, target: Target | None = None) -> str:
    site = site_for(source, target)
    return site.rollback_script(site.recorded_plan())


def recorded_plan(source: Path, target: Target | None = None) -> Plan:
    """The plan apply recorded in the ledger (what rollback inverts)."""
    return site_for(source, target).recorded_plan()


def backup(source: Path, to: Path | None = None, progress=None) -> BackupResult:
    return backup_file(source, to, progress)


def status(source: Path, target: Target | None = None) -> StatusReport:
    return site_for(source, target).status()


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
    verified = verify(db)
    rolled = rollback(db, backup_dir=workdir / "backups", progress=progress)
    diffs = logical_differences(applied.backup.path, db)
    return DemoResult(str(workdir), str(db), generated, report, plan, applied, verified, rolled, diffs)


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
