"""One function per verb. The CLI parses flags, calls one of these, and renders what it returns."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import DOMAINS, ledger, preflight
from .backends import sqlite as sqlite_backend
from .backup import BackupResult, backup_file, default_backup_dir
from .compare import logical_differences
from .errors import BadInput
from .legacy import LegacyDatabase, connect_readonly, read_database
from .mapping import LEDGER_TABLE, Resolution, is_dpro_database, load_mapping, resolve
from .plan import Plan, load_plan, looks_like_plan  # noqa: F401 (re-exported for the CLI)
from .schema import POSTGRES, SQLITE, load_schema, physical_name
from .steps_sqlite import build_steps
from .targets import Target, parse_target
from .verify import VerifyReport, verify_sqlite


def _read(source: Path) -> LegacyDatabase:
    conn = connect_readonly(source)
    try:
        return read_database(conn, source)
    finally:
        conn.close()


def _domain_tables(db: LegacyDatabase) -> list[str]:
    """Domain tables present; a name shared with a legacy table (marketplace_tools) counts as legacy."""
    own = {physical_name(t, SQLITE) for t in load_schema().tables} - set(load_mapping().legacy_tables)
    return sorted(t for t in db.tables if t in own)


def _state(db: LegacyDatabase) -> str:
    mapping = load_mapping()
    has_ledger = physical_name(LEDGER_TABLE, SQLITE) in db.tables
    domain = _domain_tables(db)
    own = {physical_name(t, SQLITE) for t in load_schema().tables}
    legacy = [t for t in mapping.legacy_tables if t in db.tables and t not in own]
    if has_ledger and not legacy:
        return "migrated"
    if has_ledger or domain:
        return "partly migrated"
    if is_dpro_database(db, mapping):
        return "legacy"
    return "not a DPRO database"


def _require_legacy(db: LegacyDatabase) -> None:
    state = _state(db)
    if state == "not a DPRO database":
        raise BadInput(f"{db.path}: is not a DPRO agent database (no users table with the other legacy tables)")
    if state == "partly migrated":
        raise BadInput(f"{db.path}: is partly migrated (domain tables {', '.join(_domain_tables(db)[:3])} ... "
                       "exist beside legacy ones); run `dpro-migrate status`")


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
    db = _read(source)
    state = _state(db)
    res: Resolution | None = None
    summary: dict[str, int] = {}
    findings: list[dict] = []
    if state == "legacy":
        plan = make_plan(source)
        res = resolve(db, load_schema(), load_mapping())
        for step in plan.steps:
            summary[step.kind] = summary.get(step.kind, 0) + 1
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


# --- plan ---------------------------------------------------------------------------------------


ON_REJECT = ("fail", "quarantine")
# What the seeds plan beyond the move, each asked for by name (`--with`), each undone by rollback.
EXTRAS = ("new-tables", "archive-tables", "row-level-security", "partition-by-month")
POSTGRES_ONLY = ("row-level-security", "partition-by-month")


def make_plan(source: Path, target: Target | None = None, *, on_reject: str = "fail",
              compat_views: bool = False, extras: tuple[str, ...] = (), find_now: bool = True) -> Plan:
    """`find_now=False` leaves the preflight to apply (which always runs it again under its lock):
    for apply straight from the source with --on-reject fail, once is enough."""
    target = target or parse_target(None)
    if on_reject not in ON_REJECT:
        raise BadInput(f"--on-reject {on_reject!r}: choose fail or quarantine")
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        raise BadInput(f"--with {unknown[0]!r}: choose among {', '.join(EXTRAS)}")
    if target.dialect == SQLITE and set(extras) & set(POSTGRES_ONLY):
        raise BadInput(f"--with {', '.join(set(extras) & set(POSTGRES_ONLY))}: PostgreSQL only (SQLite has no such feature)")
    db = _read(source)
    _require_legacy(db)
    if _state(db) == "migrated":
        raise BadInput(f"{source}: is already migrated; see `dpro-migrate status`")
    schema, mapping = load_schema(), load_mapping()
    res = resolve(db, schema, mapping)
    types = None
    if target.dialect == POSTGRES:
        from .steps_postgres import column_types

        types = {f"{m.legacy} -> {m.target}": dict(column_types(schema, m.target, m.columns, m.extra_columns))
                 for m in res.moves}
    rules = preflight.build_rules(schema, res, target.dialect, types)
    found = preflight.PreflightReport([], {})
    if find_now or on_reject != "fail":
        conn = connect_readonly(source)
        try:
            found = preflight.run(conn, rules)
        finally:
            conn.close()
    quarantine = (rules, sorted(found.refused_rows)) if on_reject == "quarantine" and not found.clean else None
    if target.dialect == POSTGRES:
        from .steps_postgres import build_steps as build_pg_steps

        steps = build_pg_steps(db, schema, res, quarantine, compat_views, tuple(extras))
        if "partition-by-month" in extras:
            from .extras import partition_plan

            steps = partition_plan(steps, source)
    else:
        steps = build_steps(db, schema, res, quarantine, compat_views, tuple(extras))
    once, repeat = preflight.refusal_sql(rules)
    return Plan(
        source=str(source.resolve()),
        source_fingerprint=db.fingerprint,
        target=target.display,
        dialect=target.dialect,
        steps=steps,
        legacy_tables={n: {"rows": db.tables[n].rows, "sql": db.tables[n].sql} for n in res.legacy_tables},
        legacy_objects=[{"type": o.type, "name": o.name, "table": o.table, "sql": o.sql} for o in db.objects],
        unknown_tables=res.unknown_tables,
        missing_legacy_tables=res.missing_legacy,
        extra_columns={t: [list(c) for c in cols] for t, cols in res.extra_columns.items()},
        on_reject=on_reject,
        compat_views=compat_views,
        extras=list(extras),
        preflight={"findings": [dataclasses.asdict(f) for f in found.findings], "refused_rows": found.refused_rows,
                   "sql_once": once, "sql_repeat": repeat},
    )


# --- apply, verify, rollback, backup, status ----------------------------------------------------


def apply(source_or_plan: Path, target: Target | None = None, *, backup_dir: Path | None = None,
          on_reject: str = "fail", compat_views: bool = False, extras: tuple[str, ...] = (),
          replace_existing: bool = False, progress=None, rows_progress=None
          ) -> tuple[Plan | None, sqlite_backend.ApplyResult]:
    target = target or parse_target(None)
    if looks_like_plan(source_or_plan):
        plan = load_plan(source_or_plan)
        if plan.target != target.display:
            raise BadInput(f"the plan was made for {plan.target}, not {target.display}: pass the plan's --target")
    elif target.in_place and _state(_read(source_or_plan)) == "migrated":
        history = status(source_or_plan).history
        return None, sqlite_backend.ApplyResult(True, applied_at=next(
            (h["at"] for h in reversed(history) if h["action"] == "apply"), None))
    else:
        plan = make_plan(source_or_plan, target, on_reject=on_reject, compat_views=compat_views, extras=extras,
                         find_now=False)
    source = Path(plan.source)
    backup_dir = backup_dir or default_backup_dir(source)
    if target.path:
        return plan, _apply_to_file(plan, target.path, backup_dir, progress, rows_progress)
    if target.dialect == POSTGRES:
        from .backends.postgres import apply_postgres

        return plan, apply_postgres(plan, target, backup_dir=backup_dir, replace_existing=replace_existing,
                                    progress=progress, rows_progress=rows_progress)
    return plan, sqlite_backend.apply_in_place(plan, backup_dir=backup_dir, progress=progress,
                                               rows_progress=rows_progress)


def _apply_to_file(plan: Plan, path: Path, backup_dir: Path, progress, rows_progress) -> sqlite_backend.ApplyResult:
    """A separate SQLite target is a verified copy of the source, migrated in place; the source is only read."""
    if path.exists():
        if _state(_read(path)) == "migrated":
            return sqlite_backend.apply_in_place(plan, path=path)
        raise BadInput(f"{path}: already exists; a SQLite target must be a new file")
    copy = backup_file(Path(plan.source), path.resolve().parent)
    os.replace(copy.path, path)
    try:
        return sqlite_backend.apply_in_place(plan, path=path, backup_dir=backup_dir, progress=progress,
                                             rows_progress=rows_progress)
    except BaseException:
        path.unlink(missing_ok=True)  # the copy was ours: nothing half-done stays behind
        raise


def finalize(source: Path, target: Target | None = None) -> list[str]:
    """Drop the compatibility views once no old reader needs them; returns the views dropped."""
    target = target or parse_target(None)
    if target.dialect == POSTGRES:
        from .backends.postgres import finalize_postgres

        return finalize_postgres(target)
    return sqlite_backend.finalize_in_place(_migrated_file(source, target))


def database_url(source: Path, target: Target) -> str:
    """What Alembic connects to: the PostgreSQL target, or the migrated SQLite file."""
    return target.conninfo if target.dialect == POSTGRES else str(_migrated_file(source, target).resolve())


def schema_drift(source: Path, target: Target | None = None) -> list:
    """Every difference between the live schema and ddl/ (tables, columns, indexes, keys, checks, triggers)."""
    from .handoff import schema_drift as drift

    target = target or parse_target(None)
    return drift(database_url(source, target))


def alembic_handoff(directory: Path, source: Path, target: Target | None = None, *, stamp: bool = True) -> tuple[Path, str | None]:
    """Write the Alembic environment whose baseline is the migrated schema, and stamp the database with it."""
    from .handoff import alembic_init, stamp_baseline

    target = target or parse_target(None)
    url = database_url(source, target)
    ini = Path(directory) / "alembic.ini"
    if not ini.exists():
        ini = alembic_init(directory, url)
    return ini, stamp_baseline(url, directory) if stamp else None


def archive(source: Path, target: Target | None = None, *, table: str, older_than=None):
    """Move rows older than the cutoff into the table's archive (None: every archived row back), one transaction."""
    from .archive import archive_rows, unarchive_rows

    target = target or parse_target(None)
    where = target.conninfo if target.dialect == POSTGRES else _migrated_file(source, target)
    if older_than is None:
        return unarchive_rows(where, target.dialect, table)
    return archive_rows(where, target.dialect, table, older_than)


def _migrated_file(source: Path, target: Target) -> Path:
    """The file verify, rollback and status look at: the source, or the separate SQLite target."""
    return target.path if target.path else source


def verify(source: Path, target: Target | None = None, *, backup: Path | None = None) -> VerifyReport:
    target = target or parse_target(None)
    if target.dialect == POSTGRES:
        from .backends.postgres import verify_postgres

        return verify_postgres(target)
    return verify_sqlite(_migrated_file(source, target), backup=backup)


def rollback(source: Path, target: Target | None = None, *, write_back: bool = False,
             backup_dir: Path | None = None, progress=None, rows_progress=None) -> sqlite_backend.RollbackResult:
    target = target or parse_target(None)
    backup_dir = backup_dir or default_backup_dir(source)
    if target.dialect == POSTGRES:
        from .backends.postgres import rollback_postgres

        return rollback_postgres(target, write_back=write_back, backup_dir=backup_dir, progress=progress)
    return sqlite_backend.rollback_in_place(_migrated_file(source, target), backup_dir=backup_dir, progress=progress,
                                            rows_progress=rows_progress)


def backup(source: Path, to: Path | None = None, progress=None) -> BackupResult:
    return backup_file(source, to, progress)


@dataclass
class StatusReport:
    path: str
    state: str
    legacy_tables: list[str]
    domain_tables: list[str]
    history: list[dict]


def status(source: Path, target: Target | None = None) -> StatusReport:
    target = target or parse_target(None)
    if target.dialect == POSTGRES:
        return _status_postgres(source, target)
    source = _migrated_file(source, target)
    db = _read(source)
    history = []
    if physical_name(LEDGER_TABLE, SQLITE) in db.tables:
        conn = connect_readonly(source)
        try:
            history = [{"id": e.id, "action": e.action, "at": e.at, "tool_version": e.tool_version,
                        "backup": e.backup, "steps": len(e.plan.steps) if e.plan else 0}
                       for e in ledger.read_entries(conn)]
        finally:
            conn.close()
    mapping = load_mapping()
    return StatusReport(str(source), _state(db), [t for t in mapping.legacy_tables if t in db.tables],
                        _domain_tables(db), history)


def _status_postgres(source: Path, target: Target) -> StatusReport:
    from .backends.postgres import connect, existing_schemas, has_ledger

    conn = connect(target)
    try:
        schemas = existing_schemas(conn)
        entries = ledger.read_entries(conn, POSTGRES) if has_ledger(conn) else []
    finally:
        conn.close()
    state = "migrated" if entries and len(schemas) == len(DOMAINS) else "partly migrated" if schemas else "legacy"
    history = [{"id": e.id, "action": e.action, "at": e.at, "tool_version": e.tool_version, "backup": e.backup,
                "steps": len(e.plan.steps) if e.plan else 0} for e in entries]
    mapping = load_mapping()
    db = _read(source)
    return StatusReport(target.display, state, [t for t in mapping.legacy_tables if t in db.tables], schemas, history)


# --- demo ---------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    workdir: str
    database: str
    generated: dict[str, int]
    inspect: InspectReport
    plan: Plan
    apply: sqlite_backend.ApplyResult
    verify: VerifyReport
    rollback: sqlite_backend.RollbackResult
    differences_after_rollback: list[str]
    domains: list[str] = field(default_factory=lambda: list(DOMAINS))


def demo(workdir: Path | None = None, *, messages: int = 2000, shape: str = "18", progress=None) -> DemoResult:
    """Generate a legacy database, then inspect, plan, apply, verify, roll back and compare with the original."""
    from .example import generate_legacy_db

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


def recorded_plan(source: Path, target: Target | None = None) -> Plan:
    """The plan apply recorded in the ledger (what rollback inverts)."""
    target = target or parse_target(None)
    if target.dialect == POSTGRES:
        from .backends.postgres import read_ledger

        conn, entry = read_ledger(target)
        conn.close()
        if entry is None:
            raise BadInput(f"{target.display}: is not migrated; nothing to roll back")
        return entry.plan
    conn = connect_readonly(_migrated_file(source, target))
    try:
        if not ledger.sqlite_has_ledger(conn):
            raise BadInput(f"{source}: is not migrated; nothing to roll back")
        entry = ledger.latest_apply(ledger.read_entries(conn))
        if entry is None or entry.plan is None:
            raise BadInput(f"{source}: its ledger holds no apply")
        return entry.plan
    finally:
        conn.close()


def example(path: Path, *, messages: int, shape: str, seed: int = 0, extras: bool = False,
            dirty: bool = False) -> dict[str, int]:
    from .dirty import add_dirty_data
    from .example import SHAPES, generate_legacy_db

    if shape not in SHAPES:
        raise BadInput(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")
    if dirty and shape != "18":
        raise BadInput("--dirty needs the 18-table shape")
    if os.path.lexists(path):  # a dangling or looping symbolic link too: generating would write through it
        raise BadInput(f"{path}: already exists")
    counts = generate_legacy_db(path, messages=messages, shape=shape, seed=seed, extras=extras or dirty)
    if dirty:
        add_dirty_data(path)
        counts = {n: t.rows for n, t in _read(Path(path)).tables.items()}
    return counts
