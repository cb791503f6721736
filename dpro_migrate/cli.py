"""The dpro-migrate command line: parse flags, call dpro_migrate.verbs, render the result."""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

import dpro_migrate.verbs as verbs
from dpro_migrate import __version__, render
from dpro_migrate.config import TARGET_ENV, load_settings
from dpro_migrate.errors import BAD_INPUT, CHECKS_FAILED, UNEXPECTED, DproMigrateError
from dpro_migrate.plan.document import save_plan
from dpro_migrate.targets import parse_target

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Move the DPRO AI Agent's legacy SQLite database into seven domain schemas, prove it, undo it.")

SOURCE = typer.Argument(..., help="The legacy SQLite file (dpro_agent.db).", show_default=False)
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout, nothing else.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
TARGET = typer.Option(None, "--target", "-t", envvar=TARGET_ENV,
                      help="postgresql://user:pass@host/db (default: migrate the SQLite file in place).")
ON_REJECT = typer.Option("fail", "--on-reject", help="Rows the target would refuse: fail (change nothing, list them) "
                         "or quarantine (keep them whole in system_quarantine; verify counts them; rollback restores them).")
COMPAT_VIEWS = typer.Option(False, "--compat-views", help="Leave read-only views with the legacy table names over "
                            "the domain tables, for old readers during the cutover window (`finalize` drops them).")
WITH = typer.Option([], "--with", help="What the seeds plan beyond the move, repeatable: new-tables (the seeds' missing "
                    "tables, empty), archive-tables, row-level-security and partition-by-month (PostgreSQL).")
BACKUP_DIR = typer.Option(None, "--backup-dir", help="Where backups go (default: dpro-migrate-backups/ beside the file).")


def handled(fn):
    """The error boundary of every command: see report_error. typer's own exits and usage errors pass through."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            render.err.print(f"[red]interrupted:[/] {_state_after_interrupt(fn.__name__, kwargs)}")
            raise typer.Exit(130) from None
        except Exception as exc:
            raise typer.Exit(report_error(exc, as_json=bool(kwargs.get("as_json")))) from None

    return wrapper


_DAMAGED = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes): the file is bad input, not a bug


def report_error(exc: Exception, *, as_json: bool = False) -> int:
    """The one place where an exception becomes a one-line message on stderr and an exit code (returned).
    Errors meant for the user say what is wrong; anything else is unexpected: exit 70, traceback in a log file."""
    details = None
    if isinstance(exc, DproMigrateError):
        message, code, details = str(exc), exc.exit_code, exc.details
    elif isinstance(exc, sqlite3.DatabaseError) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _DAMAGED:
        message, code = f"the database cannot be read: {exc}; nothing was changed", BAD_INPUT  # met past the first checks
    else:
        log = _write_traceback(exc)
        first_line = next(iter(str(exc).splitlines()), "")
        message = f"unexpected {type(exc).__name__}" + (f": {first_line}" if first_line else "") + \
            (f"; the traceback is in {log}" if log else "; the traceback could not be written to a log file")
        code, details = UNEXPECTED, {"log": str(log) if log else None}
    if as_json:
        render.print_json({"error": message, "exit_code": code, "details": details})
    render.err.print(f"[red]error:[/] {escape(message)}")
    if details and code != UNEXPECTED and not as_json:
        render.error_details(details)
    return code


def _write_traceback(exc: BaseException) -> Path | None:
    """The full traceback in a new file (mode 0600) in the state directory, else the temp directory.
    The command line is left out: a --target URL may carry a password."""
    now = datetime.now(timezone.utc)
    text = (f"dpro-migrate {__version__}, Python {sys.version.split()[0]}, {now.isoformat(timespec='seconds')}\n"
            + "".join(traceback.format_exception(exc)))
    try:
        preferred = load_settings().log_dir
    except DproMigrateError:  # an unusable setting elsewhere must not lose the traceback
        preferred = None
    for directory in filter(None, (preferred, Path(tempfile.gettempdir()))):
        for n in range(100):
            path = directory / f"dpro-migrate-{now:%Y%m%dT%H%M%SZ}{f'-{n}' if n else ''}.log"
            try:
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "w", encoding="utf-8",
                               errors="backslashreplace") as f:
                    f.write(text)
                return path
            except FileExistsError:
                continue
            except OSError:
                break
    return None


def _state_after_interrupt(command: str, kwargs) -> str:
    """Say what state the database is in: an unfinished transaction was rolled back, a committed one stays."""
    source, target = kwargs.get("source"), kwargs.get("target")
    try:
        state = verbs.status(source, parse_target(target)).state if source else None
    except (DproMigrateError, sqlite3.Error, OSError):
        state = None
    before = {"apply_cmd": "legacy", "rollback_cmd": "migrated"}.get(command)
    if state and state == before:
        return f"nothing was changed; the database is as before ({state})"
    if state in ("legacy", "migrated"):
        return f"the change had committed; the database is {state}"
    return "an unfinished transaction is rolled back and changes nothing; `dpro-migrate status` tells the state"


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise DproMigrateError(f"{question} needs confirmation: pass --yes (no terminal to ask)")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


@app.command("inspect")
@handled
def inspect_cmd(source: Path = SOURCE, as_json: bool = JSON):
    """Show tables, columns, row counts, indexes, triggers and views, where each legacy table goes,
    what nothing maps, and what the plan would do. Never shows row values."""
    report = verbs.inspect(source)
    render.print_json(report) if as_json else render.inspect_report(report)


@app.command("plan")
@handled
def plan_cmd(source: Path = SOURCE, out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the plan (JSON) here."),
             sql: bool = typer.Option(False, "--sql", help="Print the exact SQL apply would run."),
             target: Optional[str] = TARGET, on_reject: str = ON_REJECT, compat_views: bool = COMPAT_VIEWS,
             extras: list[str] = WITH, as_json: bool = JSON):
    """Make a reviewable plan: every step with its SQL and its reverse, every row the target would refuse,
    and the source's schema fingerprint."""
    dest = parse_target(target)
    plan = verbs.make_plan(source, dest, on_reject=on_reject, compat_views=compat_views, features=tuple(extras))
    if out:
        save_plan(plan, out)
    if sql:
        print(verbs.site_for(source, dest).apply_script(plan), end="")
    elif as_json:
        print(plan.to_json())
    else:
        render.plan_summary(plan, out)


@app.command("backup")
@handled
def backup_cmd(source: Path = SOURCE, to: Optional[Path] = typer.Option(None, "--to", help="Directory for the backup."),
               as_json: bool = JSON):
    """A consistent online backup, checked with integrity_check and row counts before it is reported good."""
    result = verbs.backup(source, to)
    render.print_json(result) if as_json else render.backup_result(result)


@app.command("apply")
@handled
def apply_cmd(source: Path = typer.Argument(..., help="The legacy file, or a plan written by `plan --out`."),
              yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
              sql: bool = typer.Option(False, "--sql", help="Print the SQL and change nothing."),
              target: Optional[str] = TARGET, on_reject: str = ON_REJECT, compat_views: bool = COMPAT_VIEWS,
              extras: list[str] = WITH,
              alembic: Optional[Path] = typer.Option(None, "--alembic", help="After apply, write an Alembic environment "
                                                     "here (if none) and stamp its baseline revision."),
              replace_existing: bool = typer.Option(False, "--replace-existing", help="PostgreSQL: back up (pg_dump) and "
                                                    "replace domain schemas that already exist."),
              backup_dir: Optional[Path] = BACKUP_DIR, as_json: bool = JSON, quiet: bool = QUIET):
    """Back up, then migrate in one transaction: domain tables, rows, indexes, constraints, triggers,
    ledger written; in place, the legacy tables are replaced. All of it or none of it."""
    dest = parse_target(target)
    if sql:
        print(verbs.apply_script(source, dest, on_reject=on_reject, compat_views=compat_views,
                                 features=tuple(extras)), end="")
        return
    confirm(f"Migrate {source} into {dest.display}?", yes or as_json)
    with render.step_progress(not (quiet or as_json), "apply") as (progress, rows):
        plan, result = verbs.apply(source, dest, backup_dir=backup_dir, on_reject=on_reject, compat_views=compat_views,
                                      features=tuple(extras), replace_existing=replace_existing, progress=progress,
                                      rows_progress=rows)
    handoff = verbs.alembic_handoff(alembic, source if plan is None else Path(plan.source), dest) if alembic else None
    if as_json:
        render.print_json({"plan_operations": len(plan.operations) if plan else 0, **render._plain(result),
                           "alembic": {"ini": handoff[0], "revision": handoff[1]} if handoff else None})
    else:
        render.apply_result(plan, result)
        if handoff:
            render.out.print(f"Alembic environment {handoff[0]}, database stamped at baseline {handoff[1]}")


@app.command("verify")
@handled
def verify_cmd(source: Path = SOURCE,
               backup: Optional[Path] = typer.Option(None, "--backup", help="Compare with this backup instead of the one "
                                                     "apply recorded."),
               target: Optional[str] = TARGET,
               schema_only: bool = typer.Option(False, "--schema-only", help="Only compare the live schema with ddl/ "
                                                "(drift: tables, columns, indexes, keys, checks, triggers)."),
               strict: bool = typer.Option(False, "--strict", help="Rows changed, deleted or added after the cutover "
                                           "fail too (by default they are reported)."),
               as_json: bool = JSON):
    """Prove every legacy row is in its domain table value for value (against the backup), counts match,
    foreign_key_check and integrity_check are clean, and every promised object exists. Exit 1 otherwise."""
    if schema_only:
        drift = verbs.schema_drift(source, parse_target(target))
        render.print_json({"ok": not drift, "basis": getattr(drift, "basis", ""), "differences": drift}) if as_json \
            else render.drift_report(drift)
        if drift:
            raise typer.Exit(CHECKS_FAILED)
        return
    report = verbs.verify(source, parse_target(target), backup=backup, strict=strict)
    render.print_json({"ok": report.ok, **render._plain(report)}) if as_json else render.verify_report(report)
    if not report.ok:
        raise typer.Exit(CHECKS_FAILED)


@app.command("rollback")
@handled
def rollback_cmd(source: Path = SOURCE, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                 sql: bool = typer.Option(False, "--sql", help="Print the SQL and change nothing."),
                 target: Optional[str] = TARGET,
                 write_back: bool = typer.Option(False, "--write-back", help="PostgreSQL: first write every row inserted, "
                                                 "updated or deleted there since the cutover back into the legacy file."),
                 on_conflict: str = typer.Option("refuse", "--on-conflict", help="PostgreSQL, with --write-back: a row "
                                                 "changed both in the source and in PostgreSQL since the snapshot: "
                                                 "refuse, postgres (its version wins) or source (the source's stays)."),
                 backup_dir: Optional[Path] = BACKUP_DIR, as_json: bool = JSON, quiet: bool = QUIET):
    """Undo apply. In place: everything back into the legacy tables with their original DDL, indexes, views,
    triggers and AUTOINCREMENT counters, rows written after the cutover included. PostgreSQL: remove
    exactly what apply created; refuses while it holds changes made since the cutover, unless --write-back."""
    dest = parse_target(target)
    if sql:
        print(verbs.rollback_script(source, dest), end="")
        return
    confirm(f"Roll back {dest.display if not dest.in_place else source}?", yes or as_json)
    with render.step_progress(not (quiet or as_json), "rollback") as (progress, rows):
        result = verbs.rollback(source, dest, write_back=write_back, on_conflict=on_conflict, backup_dir=backup_dir,
                                progress=progress, rows_progress=rows)
    render.print_json(result) if as_json else render.rollback_result(result)


@app.command("alembic-init")
@handled
def alembic_init_cmd(directory: Path = typer.Argument(..., help="A new or empty directory for the Alembic environment."),
                     source: Path = SOURCE, target: Optional[str] = TARGET,
                     stamp: bool = typer.Option(True, "--stamp/--no-stamp", help="Stamp the database with the baseline."),
                     as_json: bool = JSON):
    """Hand the migrated schema to the application team: an Alembic environment whose baseline revision is the
    seven-domain schema (metadata built from ddl/), so `alembic revision --autogenerate` starts from an empty diff.
    The URL in alembic.ini carries no password: export DPRO_MIGRATE_DATABASE_URL for that."""
    ini, revision = verbs.alembic_handoff(directory, source, parse_target(target), stamp=stamp)
    render.print_json({"ini": ini, "revision": revision}) if as_json else \
        render.out.print(f"wrote {ini}" + (f"; database stamped at baseline {revision}" if revision else ""))


@app.command("archive")
@handled
def archive_cmd(source: Path = SOURCE, table: str = typer.Option(..., "--table", help="messages or audit_logs"),
                older_than: Optional[datetime] = typer.Option(None, "--older-than", help="Move rows created before this "
                                                              "(UTC unless a zone is given)."),
                back: bool = typer.Option(False, "--back", help="Move every archived row back instead."),
                target: Optional[str] = TARGET, as_json: bool = JSON):
    """Move old rows into the archive table (apply --with archive-tables), in one transaction that never loses a row."""
    if (older_than is None) != back:
        raise DproMigrateError("give --older-than DATE, or --back")
    result = verbs.archive(source, parse_target(target), table=table, older_than=older_than)
    render.print_json(result) if as_json else render.out.print(
        f"moved {result.moved:,} rows {'from ' + result.table + ' to ' + result.archive if not back else 'back to ' + result.table}")


@app.command("partitions")
@handled
def partitions_cmd(source: Path = SOURCE,
                   ahead: Optional[int] = typer.Option(None, "--ahead", help="Months after the current one to create "
                                                       "(default DPRO_MIGRATE_PARTITION_MONTHS_AHEAD, else 3)."),
                   target: Optional[str] = TARGET, as_json: bool = JSON):
    """PostgreSQL, apply --with partition-by-month: create the next months' partitions and move rows out of DEFAULT
    into theirs, in one transaction (run it monthly, e.g. from cron)."""
    result = verbs.partitions(source, parse_target(target), ahead=ahead)
    if as_json:
        render.print_json(result)
        return
    render.out.print(f"created {len(result.created)} partitions" + (f": {', '.join(result.created)}" if result.created else "")
                     + (f"; moved {sum(result.moved.values()):,} rows out of DEFAULT" if result.moved else ""))
    for table, n in result.in_default.items():
        render.out.print(f"{table}: {n:,} rows remain in DEFAULT (no created_at month to put them in)")


@app.command("finalize")
@handled
def finalize_cmd(source: Path = SOURCE, target: Optional[str] = TARGET, as_json: bool = JSON):
    """End the cutover window: drop the compatibility views left by `apply --compat-views`."""
    dropped = verbs.finalize(source, parse_target(target))
    render.print_json({"dropped_views": dropped}) if as_json else \
        render.out.print(f"dropped {len(dropped)} compatibility views" + (f": {', '.join(dropped)}" if dropped else ""))


@app.command("status")
@handled
def status_cmd(source: Path = SOURCE, target: Optional[str] = TARGET, as_json: bool = JSON):
    """Legacy, migrated or partly migrated, with the ledger's history."""
    report = verbs.status(source, parse_target(target))
    render.print_json(report) if as_json else render.status_report(report)


@app.command("demo")
@handled
def demo_cmd(workdir: Optional[Path] = typer.Argument(None, help="An empty directory (default: a new temporary one)."),
             messages: int = typer.Option(2000, help="Messages in the generated database."),
             as_json: bool = JSON, quiet: bool = QUIET):
    """Generate a realistic legacy database and run the whole cycle on it: inspect, plan, apply, verify,
    rollback, and a check that the file is logically identical to the original."""
    with render.step_progress(not (quiet or as_json), "demo") as (progress, _):
        result = verbs.demo(workdir, messages=messages, progress=progress)
    render.print_json(result) if as_json else render.demo_result(result)
    if not result.verify.ok or result.differences_after_rollback:
        raise typer.Exit(CHECKS_FAILED)


@app.command("example")
@handled
def example_cmd(path: Path = typer.Argument(..., help="Where to create the legacy database (must not exist)."),
                messages: int = typer.Option(1000, help="Rows in messages; other tables in proportion."),
                shape: str = typer.Option("18", help="Legacy release: 13, 14 or 18 tables."),
                seed: int = typer.Option(0, help="Random seed."),
                extras: bool = typer.Option(False, help="Add a hand-made column, an unknown table, a view and a trigger."),
                dirty: bool = typer.Option(False, help="Add every kind of dirty row and hostile name (implies --extras)."),
                as_json: bool = JSON):
    """Generate a realistic legacy DPRO database of any size."""
    counts = verbs.example(path, messages=messages, shape=shape, seed=seed, extras=extras, dirty=dirty)
    render.print_json(counts) if as_json else render.out.print(f"created {path}: {sum(counts.values()):,} rows in {len(counts)} tables")


@app.command("restore")
@handled
def restore_cmd(backup: Path = typer.Argument(..., help="A backup written by dpro-migrate (backup, apply, rollback).", show_default=False),
                to: Optional[Path] = typer.Option(None, "--to", help="The database to replace (default: the one the backup was "
                                                  "taken of, when it sits in dpro-migrate-backups/ beside it)."),
                yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
                backup_dir: Optional[Path] = BACKUP_DIR, as_json: bool = JSON):
    """Bring a database back from a backup. The backup is checked first (a SQLite file, integrity_check)
    and only read; the database as it is now is backed up, then replaced in one transaction."""
    from dpro_migrate.safety.restore import default_destination, restore

    dest = to or default_destination(backup)
    confirm(f"Replace {dest} with {backup}?", yes or as_json)
    result = restore(backup, dest, backup_dir=backup_dir)
    if as_json:
        render.print_json(result)
        return
    if result.previous:
        render.out.print(f"the database as it was is kept in [bold]{escape(str(result.previous.path))}[/]")
    if result.previous_damaged_copy:
        render.out.print(f"the unreadable file it replaced is kept in [bold]{escape(str(result.previous_damaged_copy))}[/]")
    render.out.print(f"restored {escape(str(result.destination))} from {escape(str(result.backup))} in {result.seconds:.2f}s: "
                     f"integrity {result.integrity}, {sum(result.tables.values()):,} rows in {len(result.tables)} tables")


@app.command("check")
@handled
def check_cmd(source: Path = SOURCE,
              target: Optional[str] = typer.Option(None, "--target", "-t", help="postgresql://user:pass@host/db: run the "
                                                   "cycle in a throwaway database created through this one (default: a SQLite copy)."),
              junit: Optional[Path] = typer.Option(None, "--junit", help="Also write a JUnit XML report here (one testcase per stage)."),
              as_json: bool = JSON):
    """For CI: plan, apply, verify and rollback on a scratch copy (and a throwaway PostgreSQL database with
    --target), then check the copy is back to the source. The source is only read. Exit 0 all good,
    1 a stage failed, 2 unusable input."""
    from rich.table import Table

    from dpro_migrate import check as checking

    report = checking.run_check(source, parse_target(target))
    if junit:
        checking.write_junit(report, junit)
    if as_json:
        render.print_json({"ok": report.ok, **render._plain(report)})
    else:
        t = Table("stage", "result", "seconds", "detail")
        colors = {"ok": "green", "failed": "red", "skipped": "yellow"}
        for s in report.stages:
            t.add_row(s.name, f"[{colors[s.status]}]{s.status}[/]", f"{s.seconds:.2f}", escape(s.detail))
        render.out.print(t)
        for s in report.failed:
            if s.findings:
                render.out.print(f"[red]{s.name}[/]: " + escape("; ".join(map(str, s.findings[:10]))))
        render.out.print(f"{escape(report.cleanup)}")
        render.out.print(f"[green]check passed[/] in {report.seconds:.1f}s: {escape(report.source)} migrates, verifies "
                         "and rolls back cleanly" if report.ok else "[red]check failed[/]: "
                         + ", ".join(s.name for s in report.failed))
    if not report.ok:
        raise typer.Exit(CHECKS_FAILED)


def main() -> None:
    try:
        app()
    except Exception as exc:  # raised outside any command (while parsing, or by typer itself)
        sys.exit(report_error(exc))
