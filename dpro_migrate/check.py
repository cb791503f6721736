"""`dpro-migrate check`: the whole cycle on a scratch copy, for CI. The real source is only ever read.

SQLite: the source is copied (SQLite's backup API, read-only) into a temporary directory, and plan, apply,
verify and rollback run on the copy; after rollback the copy must be logically identical to the source as
it was copied. PostgreSQL (--target): the same, into a throwaway database dpro_check_<hex> created through
the URL's database and always dropped afterwards; one a killed check left (no session holds its lock any
more) is dropped by the next check on that server.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import sqlite3
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import dpro_migrate.verbs as verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput, DproMigrateError
from dpro_migrate.model.legacy import check_sqlite_file, connect_readonly
from dpro_migrate.plan.document import save_plan
from dpro_migrate.backends.postgres import existing_schemas
from dpro_migrate.db.connections import connect
from dpro_migrate.targets import Target, parse_target
from dpro_migrate.verbs.summary import apply_summary, rollback_summary, verify_summary

STAGES = ("copy", "plan", "apply", "verify", "rollback", "compare")
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass
class Stage:
    name: str
    status: str  # ok, failed or skipped
    seconds: float = 0.0
    detail: str = ""
    findings: list = field(default_factory=list)
    # apply, verify, rollback: the closing summary the verb prints (results.Summary.to_json()) of its run on the
    # scratch copy: rows and time per table and per phase. Its `next` is empty: the scratch copy is gone.
    summary: dict | None = None


@dataclass
class CheckReport:
    source: str
    target: str  # sqlite:in-place (on the scratch copy) or the server URL given (no password)
    scratch: str  # the scratch copy (and the throwaway database), removed when the check ends
    stages: list[Stage]
    seconds: float
    cleanup: str = ""  # what was removed afterwards, or why it could not be
    started_at: str = ""
    options: dict = field(default_factory=dict)  # apply's options the cycle ran with (on_reject, compat_views, features)
    dirty: dict | None = None  # rows the target would refuse, explained (results.DirtyReport.to_json())
    plan: dict | None = None  # the plan the check made, as `plan --json` prints it (the source's name, not the copy's)
    left_overs: list[str] = field(default_factory=list)  # scratch databases of killed checks dropped first

    @property
    def ok(self) -> bool:
        return all(s.status == OK for s in self.stages) and not self.cleanup.startswith("FAILED")

    @property
    def failed(self) -> list[Stage]:
        return [s for s in self.stages if s.status == FAILED]


class _SourceUnusable(BadInput):
    """Raised by the plan stage: the source cannot be checked at all (exit 2), not a finding."""


class _StageFailed(Exception):
    def __init__(self, detail: str, findings: list | None = None):
        super().__init__(detail)
        self.findings = findings or []


def _findings_of(details) -> list:
    if details is None:
        return []
    if isinstance(details, dict):
        for key in ("findings", "foreign_key_violations", "stranded"):
            if details.get(key):
                value = details[key]
                return value if isinstance(value, list) else [value]
        return [details]
    return details if isinstance(details, list) else [details]


def _copy_source(source: Path, dest: Path) -> dict[str, int]:
    """A consistent copy through a read-only connection: the source is never written."""
    from dpro_migrate.safety.backup import table_counts

    src = connect_readonly(source)
    try:
        src.execute("PRAGMA busy_timeout = 5000")
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        out = sqlite3.connect(dest, isolation_level=None)
        try:
            src.backup(out)
        finally:
            out.close()
        return table_counts(src)
    except sqlite3.DatabaseError as exc:
        hint = ""
        if source.with_name(source.name + "-journal").exists():
            hint = ("; a -journal file beside it means a writer stopped in the middle of a transaction: open the "
                    "database once with a program allowed to write it (the application) so SQLite rolls it back")
        raise BadInput(f"{source}: cannot be read ({exc}){hint}") from None
    finally:
        src.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- a throwaway PostgreSQL database ------------------------------------------------------------


# A scratch database is dpro-migrate's own when its name is dpro_check_<8 hex digits> and its comment is
# SCRATCH_COMMENT. While a check runs, a session of it holds the advisory lock (SCRATCH_LOCK_CLASS, the name's
# 8 hex digits as a signed int4): taken before the database is created, released (the session closed) after it
# is dropped. One whose lock nobody on the server holds was left by a killed check: the next check drops it.
SCRATCH_PREFIX = "dpro_check_"
SCRATCH_NAME = re.compile(r"^dpro_check_(?P<key>[0-9a-f]{8})$")
SCRATCH_COMMENT = "dpro-migrate check: scratch copy, dropped when the check ends"
SCRATCH_LOCK_CLASS = 0x6470726F  # "dpro"

def _lock_key(name: str) -> int:
    """The advisory lock's second key: the name's hex digits as PostgreSQL's int4 (signed)."""
    n = int(SCRATCH_NAME.match(name)["key"], 16)
    return n - (1 << 32) if n >= 1 << 31 else n


def _stale_scratch_databases(admin) -> list[str]:
    """dpro-migrate's own scratch databases (name and comment) whose check holds no lock any more."""
    rows = admin.execute("""
        SELECT d.datname,
               EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                       AND l.classid = %s::bigint::oid
                       AND l.objid = ((('x' || substr(d.datname, 12, 8))::bit(32)::int::bigint) & 4294967295)::oid)
        FROM pg_database d
        WHERE starts_with(d.datname, %s) AND shobj_description(d.oid, 'pg_database') = %s ORDER BY 1""",
                         (SCRATCH_LOCK_CLASS, SCRATCH_PREFIX, SCRATCH_COMMENT)).fetchall()
    return [name for name, held in rows if SCRATCH_NAME.match(name) and not held]


def _drop_stale_scratch_databases(target: Target, admin) -> list[str]:
    """Drop the scratch databases killed checks left on the server (full copies of the legacy data); the
    names dropped, and a FAILED line for one that could not be."""
    dropped = []
    for name in _stale_scratch_databases(admin):
        line = _drop_database(target, name)
        dropped.append(name if line.startswith("dropped") else line)
    return dropped


def _scratch_database(target: Target) -> tuple[Target, str, object, list[str]]:
    """A new scratch database: (its target, its name, the session holding its advisory lock, which stays open
    until it is dropped, the stale scratch databases dropped first)."""
    import psycopg
    from psycopg import sql as pgsql
    from sqlalchemy.engine import make_url

    holder = _admin(target)
    try:
        dropped = _drop_stale_scratch_databases(target, holder)
        for _ in range(10):
            name = f"{SCRATCH_PREFIX}{secrets.token_hex(4)}"
            if holder.execute("SELECT pg_try_advisory_lock(%s, %s)", (SCRATCH_LOCK_CLASS, _lock_key(name))).fetchone()[0]:
                break
        else:
            raise BadInput(f"cannot create a scratch database on {target.display}: no free name")
        try:
            holder.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
            holder.execute(pgsql.SQL("COMMENT ON DATABASE {} IS {}").format(pgsql.Identifier(name),
                                                                           pgsql.Literal(SCRATCH_COMMENT)))
        except psycopg.Error as exc:
            raise BadInput(f"cannot create a scratch database on {target.display}: {_first_line(exc)}") from None
    except BaseException:
        holder.close()
        raise
    url = make_url(target.conninfo).set(database=name).render_as_string(hide_password=False)
    return parse_target(url), name, holder, dropped


def _admin(target: Target):
    return connect(target)


def _drop_database(target: Target, name: str) -> str:
    import psycopg
    from psycopg import sql as pgsql

    try:
        admin = _admin(target)
    except BadInput as exc:
        return f"FAILED to drop scratch database {name}: {exc}"
    try:
        try:
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        except psycopg.errors.SyntaxError:  # before PostgreSQL 13
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(name)))
        return f"dropped scratch database {name}"
    except psycopg.Error as exc:
        return f"FAILED to drop scratch database {name}: {_first_line(exc)}"
    finally:
        admin.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def _schemas_left(target: Target) -> list[str]:
    conn = connect(target)
    try:
        return existing_schemas(conn)
    finally:
        conn.close()


# --- the check ----------------------------------------------------------------------------------


def run_check(source: Path, target: Target | str | None = None, *, workdir: Path | None = None,
              on_stage: Callable[[str], None] | None = None, on_reject: str = "fail", compat_views: bool = False,
              features: tuple[str, ...] = ()) -> CheckReport:
    """plan, apply, verify, rollback and a comparison on a scratch copy; never writes `source`.
    `on_reject`, `compat_views` and `features` are apply's, so CI rehearses the cutover the DBA will run.

    Raises BadInput when the source or the target cannot be used at all (exit 2); everything found
    on the way is in the report's stages (exit 1 when one failed).
    """
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    source = Path(source)
    target = parse_target(target) if isinstance(target, str) or target is None else target
    if target.path is not None:  # a separate SQLite file: the check makes its own copy
        raise BadInput("check --target takes a postgresql:// URL; without one the check runs on a SQLite copy")
    check_sqlite_file(source)
    scratch_dir = Path(tempfile.mkdtemp(prefix="dpro-check-", dir=workdir))
    scratch = scratch_dir / source.name
    reference = scratch_dir / f"{source.name}.as-copied"
    stages: list[Stage] = []
    pg_target, pg_name, holder = None, None, None
    left_overs: list[str] = []
    cleanup = ""
    state: dict = {}
    summaries: dict[str, dict] = {}  # stage -> its verb's closing summary
    try:
        t0 = time.monotonic()
        counts = _copy_source(source, reference)
        shutil.copyfile(reference, scratch)
        reference_sha = _sha256(reference)
        stages.append(Stage("copy", OK, time.monotonic() - t0,
                            f"{sum(counts.values()):,} rows in {len(counts)} tables copied to a scratch file"))
        if target.conninfo:  # a server: the cycle runs in a throwaway database on it
            pg_target, pg_name, holder, left_overs = _scratch_database(target)
        apply_to = pg_target or target

        def stage(name: str, fn: Callable[[], str]) -> bool:
            if on_stage:
                on_stage(name)
            t = time.monotonic()
            try:
                detail = fn()
                stages.append(Stage(name, OK, time.monotonic() - t, detail, summary=summaries.get(name)))
                return True
            except _SourceUnusable:
                raise
            except _StageFailed as exc:
                stages.append(Stage(name, FAILED, time.monotonic() - t, str(exc), exc.findings, summaries.get(name)))
            except DproMigrateError as exc:
                stages.append(Stage(name, FAILED, time.monotonic() - t, _scrub(str(exc), scratch, source),
                                    _findings_of(exc.details)))
            except Exception as exc:  # noqa: BLE001 - an unexpected error is a finding of the check, not a crash
                stages.append(Stage(name, FAILED, time.monotonic() - t,
                                    f"unexpected {type(exc).__name__}: {_scrub(str(exc), scratch, source)}"))
            return False

        def summarized(summary) -> None:
            summaries[summary.verb] = {**summary.to_json(), "source": str(source), "next": []}

        def plan() -> str:
            try:
                made = verbs.make_plan(scratch, apply_to, on_reject=on_reject, compat_views=compat_views,
                                       features=features)
            except BadInput as exc:  # the source itself is unusable: not DPRO, already or partly migrated
                raise _SourceUnusable(_scrub(str(exc), scratch, source), details=exc.details) from None
            state["plan_path"] = save_plan(made, scratch_dir / "plan.json")
            state["plan"] = {**json.loads(made.to_json()), "source": str(source)}
            dirty = verbs.dirty_of(made)
            moves = made.moves
            detail = (f"{len(made.operations)} operations, {len(moves)} row moves, "
                      f"{sum(t['rows'] for t in made.legacy_tables.values()):,} legacy rows")
            if made.unknown_tables:
                detail += f"; unknown tables left as they are: {', '.join(made.unknown_tables)}"
            if not dirty.clean:
                state["dirty"] = dirty
                refused = f"{dirty.rows:,} rows the target would refuse ({_per_table(dirty.tables)})"
                if made.on_reject == "fail":
                    raise _StageFailed(f"{detail}; {refused}", [r.to_json() for r in dirty.rules]
                                       + [c.to_json() for c in dirty.cascades])
                detail += f"; {refused}, to be quarantined"
            return detail

        def apply() -> str:
            plan_, result = verbs.apply(state["plan_path"], apply_to, backup_dir=scratch_dir / "backups")
            summarized(apply_summary(plan_, result, scratch, apply_to))
            if result.already_migrated:
                raise _StageFailed("the scratch copy was already migrated")
            return f"{sum(result.rows_moved.values()):,} rows moved in {len(plan_.operations)} operations"

        def verify() -> str:
            report = verbs.verify(scratch, apply_to)
            summarized(verify_summary(report, scratch, apply_to))
            if not report.ok:
                raise _StageFailed(f"{len(report.failures)} of {len(report.checks)} checks failed: "
                                   + "; ".join(f"{c.name}: {c.detail}" for c in report.failures),
                                   [{"check": c.name, "detail": c.detail, "items": c.items[:10]} for c in report.failures])
            return f"{len(report.checks)} checks passed, {sum(c.source_rows for c in report.counts):,} rows value for value"

        def rollback() -> str:
            result = verbs.rollback(scratch, apply_to, backup_dir=scratch_dir / "backups")
            summarized(rollback_summary(result, scratch, apply_to))
            if result.nothing_to_do:
                raise _StageFailed("rollback found nothing to undo")
            return (f"{sum(result.rows_restored.values()):,} rows back in {len(result.rows_restored)} legacy tables"
                    if result.rows_restored else "everything apply created was removed")

        def compare() -> str:
            if pg_target is not None:
                left = _schemas_left(pg_target)
                if left:
                    raise _StageFailed(f"schemas left in the scratch database after rollback: {', '.join(left)}", left)
                if _sha256(scratch) != reference_sha:
                    raise _StageFailed("the SQLite source was written during a PostgreSQL apply or rollback")
                return "no domain schema left; the SQLite source was not written (same sha256)"
            diffs = logical_differences(reference, scratch)
            if diffs:
                raise _StageFailed(f"after rollback the copy differs from the source: {'; '.join(diffs[:5])}", diffs)
            return "after rollback the copy is logically identical to the source"

        ok = stage("plan", plan)
        ok = ok and stage("apply", apply)
        if ok:
            stage("verify", verify)  # a failed verify still rolls back and compares
            ok = stage("rollback", rollback) and stage("compare", compare)
        for name in STAGES:
            if name not in {s.name for s in stages}:
                stages.append(Stage(name, SKIPPED, 0.0, "an earlier stage failed"))
    finally:
        if pg_name:
            cleanup = _drop_database(target, pg_name)
        if holder is not None:
            holder.close()  # releases the scratch database's lock: only once it is dropped
        shutil.rmtree(scratch_dir, ignore_errors=True)
        cleanup = "; ".join(x for x in (cleanup, f"removed {scratch_dir}") if x)
    dirty = state.get("dirty")
    return CheckReport(str(source), target.display, str(scratch) + (f" and database {pg_name}" if pg_name else ""),
                       stages, time.monotonic() - started, cleanup, started_at,
                       {"on_reject": on_reject, "compat_views": compat_views, "features": list(features)},
                       dirty.to_json() if dirty else None, state.get("plan"), left_overs)


def _per_table(tables: dict[str, int]) -> str:
    return ", ".join(f"{t} {n:,}" for t, n in tables.items())


def _scrub(message: str, scratch: Path, source: Path) -> str:
    """Messages about the scratch copy name the source the user gave."""
    for form in {str(scratch.resolve()), str(scratch)}:
        message = message.replace(form, str(source))
    return message


# --- JUnit XML ------------------------------------------------------------------------------------

_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False, indent=1)
    return _XML_UNSAFE.sub("\ufffd", text)


def junit_xml(report: CheckReport) -> str:
    """One testsuite, one testcase per stage: failures carry the findings, skipped stages say why."""
    failures = sum(s.status == FAILED for s in report.stages)
    skipped = sum(s.status == SKIPPED for s in report.stages)
    suites = ET.Element("testsuites", name="dpro-migrate check", tests=str(len(report.stages)),
                        failures=str(failures), errors="0", skipped=str(skipped), time=f"{report.seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=_xml_text(f"dpro-migrate check {report.source} -> {report.target}"),
                          tests=str(len(report.stages)), failures=str(failures), errors="0", skipped=str(skipped),
                          time=f"{report.seconds:.3f}", timestamp=report.started_at)
    props = ET.SubElement(suite, "properties")
    for key in ("source", "target", "cleanup"):
        ET.SubElement(props, "property", name=key, value=_xml_text(getattr(report, key)))
    for s in report.stages:
        case = ET.SubElement(suite, "testcase", classname="dpro_migrate.check", name=s.name, time=f"{s.seconds:.3f}")
        if s.status == FAILED:
            fail = ET.SubElement(case, "failure", message=_xml_text(s.detail[:500]), type="CheckFailed")
            fail.text = _xml_text(s.findings) if s.findings else _xml_text(s.detail)
        elif s.status == SKIPPED:
            ET.SubElement(case, "skipped", message=_xml_text(s.detail))
        if s.detail:
            ET.SubElement(case, "system-out").text = _xml_text(s.detail)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_junit(report: CheckReport, path: Path) -> Path:
    path = Path(path)
    try:
        path.write_text(junit_xml(report), encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot write the JUnit report ({exc.strerror})") from None
    return path
