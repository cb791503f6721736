"""The dpro-migrate command line: parse flags, call dpro_migrate.verbs, render the result."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sqlite3
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

import dpro_migrate.verbs as verbs
import dpro_migrate.verbs.summary  # noqa: F401 - verbs.summary
from dpro_migrate import __version__, render
from dpro_migrate.backends.postgres import ON_CONFLICT
from dpro_migrate.config import TARGET_ENV, load_settings
from dpro_migrate.errors import (BAD_INPUT, CHECKS_FAILED, DECLINED, EXIT_CODES, INTERRUPTED, LOCKED, OK, OUTCOME_UNKNOWN,
                                 UNEXPECTED, DproMigrateError)
from dpro_migrate.example import SHAPES
from dpro_migrate.features.archive import ARCHIVES
from dpro_migrate.features.registry import FEATURES
from dpro_migrate.plan.document import save_plan
from dpro_migrate.planning import ON_REJECT
from dpro_migrate.targets import parse_target

def _as_switches(params: list) -> list:
    """Switches shown as switches: without a metavar typer's help prints `<bool>` after every flag, which reads
    as if `--json` took a value."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(typer.core.TyperCommand):
    def get_params(self, ctx):
        return _as_switches(super().get_params(ctx))


class Group(typer.core.TyperGroup):
    def get_params(self, ctx):
        return _as_switches(super().get_params(ctx))


def _version(value: bool) -> None:
    if value:
        render.out.print(f"dpro-migrate {__version__}")
        raise typer.Exit()


app = typer.Typer(cls=Group, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=True,
                  rich_markup_mode="rich", context_settings={"help_option_names": ["--help", "-h"]},
                  help="Move the DPRO AI Agent's legacy SQLite database into seven domain schemas, prove it, undo it.",
                  epilog="Start with `dpro-migrate demo`, then `dpro-migrate COMMAND --help`: each shows an example and its "
                         "exit codes.")


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """Move the DPRO AI Agent's legacy SQLite database into seven domain schemas, prove it, undo it."""


OnReject = Enum("OnReject", {name: name for name in ON_REJECT}, type=str)
OnConflict = Enum("OnConflict", {name: name for name in ON_CONFLICT}, type=str)
Feature = Enum("Feature", {name: name for name in FEATURES}, type=str)
Shape = Enum("Shape", {name: name for name in SHAPES}, type=str)
ArchiveTable = Enum("ArchiveTable", {name: name for name in ARCHIVES}, type=str)


def _value(choice) -> str:
    return choice.value if isinstance(choice, Enum) else choice


SOURCE = typer.Argument(..., help="The legacy SQLite file (dpro_agent.db).", show_default=False)
JSON = typer.Option(False, "--json", help="Print one JSON document on stdout and nothing else (keys: see README).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars and no tables: the result in one line, and errors.")
YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (needed without a terminal).")
SQL = typer.Option(False, "--sql", help="Print the exact SQL it would run, and change nothing.")
APPLY_TARGET = typer.Option(None, "--target", "-t", envvar=TARGET_ENV, show_default=False,
                            help="Where to migrate: a postgresql:// or postgres:// URL that names the database, or "
                                 "sqlite:///new.db. Default: the file itself, in place; for a plan file, the target the "
                                 "plan records.")
TARGET = typer.Option(None, "--target", "-t", envvar=TARGET_ENV, show_default=False,
                      help="Where apply migrated to: the same URL apply was given. Default: the file itself, in place.")
ON_REJECT_OPT = typer.Option(OnReject.fail, "--on-reject", help="Rows the target would refuse: fail (change nothing, "
                             "list them) or quarantine (keep them whole aside; verify counts them; rollback restores them).")
COMPAT_VIEWS = typer.Option(False, "--compat-views", help="Leave views with the legacy table names over the domain "
                            "tables, for old readers and writers during the cutover window (`finalize` drops them).")
WITH = typer.Option([], "--with", show_default=False, metavar="<feature>",
                    help="What the seeds plan beyond the move, repeatable; one of: " + ", ".join(FEATURES)
                    + " (the last four: PostgreSQL only).")
BACKUP_DIR = typer.Option(None, "--backup-dir", show_default=False, help="The folder for backups and the history file "
                          "(default: dpro-migrate-backups/ beside the legacy file).")
REPORT = typer.Option(None, "--report", show_default=False, help="Also write a self-contained HTML page here for the "
                      "change ticket (FILE.json: the same data as JSON).")


def _epilog(examples: list[str], codes: tuple[int, ...]) -> str:
    lines = ["[bold]Examples[/]"] + [f"  $ {escape(e)}" for e in examples]
    lines += ["", "[bold]Exit codes[/]"] + [f"  {c:>3}  {escape(EXIT_CODES[c])}" for c in codes]
    return "\n".join(lines)


def verb(name: str, *, examples: list[str], codes: tuple[int, ...] = (OK, BAD_INPUT, UNEXPECTED)):
    """Register a command: its docstring's paragraphs as its help, its examples and exit codes after the options."""

    def register(fn):
        doc = inspect.getdoc(fn) or ""
        help_text = "\n\n".join(escape(" ".join(p.split())) for p in doc.split("\n\n"))
        first = help_text.split(". ")[0].rstrip(".")  # the command list shows this much: a sentence, or its head
        head = first.split(": ")[0]
        first = head if len(first) > 80 and len(head) >= 20 else first
        app.command(name, cls=Command, help=help_text, short_help=first + ".",
                    epilog=_epilog(examples, codes))(handled(fn))
        return fn

    return register


WRITER_CODES = (OK, CHECKS_FAILED, BAD_INPUT, OUTCOME_UNKNOWN, LOCKED, DECLINED, UNEXPECTED, INTERRUPTED)
READER_CODES = (OK, BAD_INPUT, LOCKED, UNEXPECTED)


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
            raise typer.Exit(INTERRUPTED) from None
        except Exception as exc:
            result = error_result(exc)
            code = tell_error(result, as_json=bool(kwargs.get("as_json")))
            if isinstance(exc, DproMigrateError):  # refused: the DBA gets a page for the ticket all the same
                try:
                    _report_refusal(fn.__name__, kwargs, result)
                except Exception as problem:  # noqa: BLE001 - the verb's own message and exit code come first
                    render.err.print(f"[yellow]warning:[/] the report was not written: unexpected "
                                     f"{type(problem).__name__}: {escape(str(problem))}")
            raise typer.Exit(code) from None

    return wrapper


_DAMAGED = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes): the file is bad input, not a bug


def error_result(exc: Exception) -> dict:
    """What an exception tells the user, as `--json` prints it: {"error": one line, "exit_code", "details"}.
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
    return {"error": message, "exit_code": code, "details": details}


def tell_error(result: dict, *, as_json: bool = False) -> int:
    """An error_result as a one-line message on stderr (and the JSON on stdout with --json); its exit code."""
    message, code, details = result["error"], result["exit_code"], result["details"]
    if as_json:
        render.print_json(result)
    render.err.print(f"[red]error:[/] {escape(message)}")
    if details and code != UNEXPECTED and not as_json:
        render.error_details(details)
    return code


def report_error(exc: Exception, *, as_json: bool = False) -> int:
    """The one place where an exception becomes a one-line message on stderr and an exit code (returned)."""
    return tell_error(error_result(exc), as_json=as_json)


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


def can_ask() -> bool:
    return sys.stdin is not None and not sys.stdin.closed and sys.stdin.isatty()  # stdin closed (<&-): None


def confirm(question: str, yes: bool) -> None:
    """Ask, on a terminal; declining exits with its own code and says that nothing changed."""
    if yes:
        return
    if not can_ask():
        raise DproMigrateError(f"{question} needs confirmation: pass --yes (no terminal to ask)")
    if not typer.confirm(question, default=False, err=True):  # stderr: --json keeps stdout for its document
        render.err.print("declined: nothing was changed")
        raise typer.Exit(DECLINED)


def _quiet(quiet: bool, as_json: bool) -> None:
    render.quiet = quiet or as_json


@verb("inspect", examples=["dpro-migrate inspect dpro_agent.db", "dpro-migrate inspect dpro_agent.db --json | jq .dirty"],
      codes=READER_CODES)
def inspect_cmd(source: Path = SOURCE, as_json: bool = JSON, quiet: bool = QUIET):
    """Show what the file holds: each table with its columns (name and type), rows, indexes, triggers and views;
    where each legacy table goes, what nothing maps, what the plan would do, and the rows the target would refuse,
    each rule explained. Never shows row values."""
    _quiet(quiet, as_json)
    report = verbs.inspect(source)
    render.print_json(report) if as_json else render.inspect_report(report)


@verb("plan", examples=["dpro-migrate plan dpro_agent.db --out plan.json",
                        "dpro-migrate plan dpro_agent.db --target postgresql://dba@db:5432/dpro --out plan.json",
                        "dpro-migrate plan dpro_agent.db --sql > apply.sql"],
      codes=(OK, CHECKS_FAILED, BAD_INPUT, LOCKED, UNEXPECTED))
def plan_cmd(source: Path = SOURCE,
             out: Optional[Path] = typer.Option(None, "--out", "-o", show_default=False,
                                                help="Write the plan (a JSON file) here, for review and `apply`."),
             sql: bool = SQL, target: Optional[str] = APPLY_TARGET, on_reject: OnReject = ON_REJECT_OPT,
             compat_views: bool = COMPAT_VIEWS, extras: list[Feature] = WITH, as_json: bool = JSON,
             quiet: bool = QUIET, report_to: Optional[Path] = REPORT):
    """Make a reviewable plan: every step with its SQL and its reverse, the rows each table moves, every row the
    target would refuse (each rule in words and SQL), and the source's schema fingerprint. Changes nothing.
    Exit 0 even when rows would be refused: the plan lists them, and apply refuses them."""
    _quiet(quiet, as_json)
    dest = parse_target(target)
    _report_destination(report_to, taken=(out,) if out else ())
    plan = verbs.make_plan(source, dest, on_reject=_value(on_reject), compat_views=compat_views,
                           features=tuple(_value(e) for e in extras))
    if out:
        save_plan(plan, out)
    _write_report(report_to, "plan", None, source, dest, plan=plan)
    if sql:
        print(verbs.site_for(source, dest).apply_script(plan), end="")
    elif as_json:
        print(plan.to_json())
    else:
        render.plan_summary(plan, out, verbs.move_rows(plan), verbs.plan_phases(plan), verbs.dirty_of(plan), dest)


@verb("backup", examples=["dpro-migrate backup dpro_agent.db --backup-dir /backups",
                          "dpro-migrate backup dpro_agent.db --backup-dir /backups/new --create"],
      codes=(OK, BAD_INPUT, LOCKED, UNEXPECTED))
def backup_cmd(source: Path = SOURCE,
               backup_dir: Optional[Path] = typer.Option(None, "--backup-dir", show_default=False,
                                                         help="The folder for the backup; it must exist unless --create "
                                                              "(default: dpro-migrate-backups/ beside the file)."),
               to: Optional[Path] = typer.Option(None, "--to", hidden=True, help="The old name of --backup-dir."),
               create: bool = typer.Option(False, "--create", "--parents", help="Create the folder if it does not exist."),
               as_json: bool = JSON, quiet: bool = QUIET):
    """A consistent online backup of the file (SQLite's backup API; the application may keep working), checked
    with integrity_check and row counts before it is reported good."""
    _quiet(quiet, as_json)
    if to and backup_dir and to != backup_dir:
        raise DproMigrateError("give the folder once: --backup-dir (--to is its old name)")
    result = verbs.backup(source, backup_dir or to, create=create, refuse_missing=True)
    render.print_json(result) if as_json else render.backup_result(result, source)


@verb("apply", examples=["dpro-migrate apply dpro_agent.db --yes",
                         "dpro-migrate plan dpro_agent.db --out plan.json && dpro-migrate apply plan.json",
                         "dpro-migrate apply dpro_agent.db --target postgresql://dba@db:5432/dpro --on-reject quarantine"],
      codes=WRITER_CODES)
def apply_cmd(source: Path = typer.Argument(..., show_default=False,
                                            help="The legacy file, or a plan written by `plan --out`."),
              yes: bool = YES, sql: bool = SQL, target: Optional[str] = APPLY_TARGET,
              on_reject: OnReject = ON_REJECT_OPT, compat_views: bool = COMPAT_VIEWS, extras: list[Feature] = WITH,
              alembic: Optional[Path] = typer.Option(None, "--alembic", show_default=False,
                                                     help="After apply, write an Alembic environment in this folder "
                                                          "(if none) and stamp its baseline revision."),
              replace_existing: bool = typer.Option(False, "--replace-existing", help="PostgreSQL: back up (pg_dump) "
                                                    "and replace domain schemas that already exist."),
              backup_dir: Optional[Path] = BACKUP_DIR, as_json: bool = JSON, quiet: bool = QUIET,
              report_to: Optional[Path] = REPORT):
    """Back up, then migrate in one transaction: domain tables, rows, indexes, constraints, triggers, ledger;
    in place, the legacy tables are replaced. All of it or none of it. Ends with a summary: rows and time per
    table, time per phase, the backup, the quarantine, and what to run next."""
    _quiet(quiet, as_json)
    dest = verbs.target_for(source, target)
    features = tuple(_value(e) for e in extras)
    if sql:
        print(verbs.apply_script(source, dest, on_reject=_value(on_reject), compat_views=compat_views,
                                 features=features), end="")
        return
    legacy = verbs.source_of(source)
    _report_destination(report_to)
    where = "in place" if dest.in_place else f"into {render.database_name(legacy, dest)}"
    confirm(f"Migrate {legacy} {where}" + (f" (plan {source})" if verbs.looks_like_plan(Path(source)) else "") + "?",
            yes)
    with render.step_progress(not render.quiet, "apply") as (progress, rows):
        plan, result = verbs.apply(source, dest, backup_dir=backup_dir, report=_absolute(report_to),
                                   on_reject=_value(on_reject),
                                   compat_views=compat_views, features=features, replace_existing=replace_existing,
                                   progress=progress, rows_progress=rows)
    summary = verbs.summary.apply_summary(plan, result, legacy, dest)
    handoff = verbs.alembic_handoff(alembic, legacy, dest) if alembic else None
    payload = {**summary.to_json(), "plan_operations": len(plan.operations) if plan else 0,
               "already_migrated": result.already_migrated, "applied_at": result.applied_at,
               "rows_moved": result.rows_moved, "history_error": result.history_error,
               "backup_details": render.plain(result.backup),
               "alembic": {"ini": handoff[0], "revision": handoff[1]} if handoff else None}
    _write_report(report_to, "apply", render.plain(payload), legacy, dest, plan=plan, backup_dir=backup_dir)
    if as_json:
        render.print_json(payload)
    else:
        render.apply_result(plan, result, summary)
        if handoff:
            render.out.print(f"Alembic environment {escape(str(handoff[0]))}, database stamped at baseline {handoff[1]}")


@verb("verify", examples=["dpro-migrate verify dpro_agent.db",
                          "dpro-migrate verify dpro_agent.db --target postgresql://dba@db:5432/dpro --json",
                          "dpro-migrate verify dpro_agent.db --schema-only --alembic migrations"],
      codes=(OK, CHECKS_FAILED, BAD_INPUT, LOCKED, UNEXPECTED))
def verify_cmd(source: Path = SOURCE,
               backup: Optional[Path] = typer.Option(None, "--backup", show_default=False,
                                                     help="A backup file to compare with, instead of the one apply "
                                                          "recorded."),
               target: Optional[str] = TARGET,
               schema_only: bool = typer.Option(False, "--schema-only", help="Only compare the live schema with what "
                                                "apply built (drift: tables, columns, indexes, keys, checks, triggers)."),
               alembic: Optional[Path] = typer.Option(None, "--alembic", show_default=False,
                                                      help="With --schema-only: compare tables, columns, indexes and "
                                                           "keys with this Alembic environment's models (the "
                                                           "application's revisions included)."),
               strict: bool = typer.Option(False, "--strict", help="Rows changed, deleted or added after the cutover "
                                           "fail too (by default they are reported)."),
               backup_dir: Optional[Path] = typer.Option(None, "--backup-dir", show_default=False,
                                                         help="The folder of the history file (default: "
                                                              "dpro-migrate-backups/ beside the legacy file)."),
               as_json: bool = JSON, quiet: bool = QUIET, report_to: Optional[Path] = REPORT):
    """Prove every legacy row is in its domain table value for value (against the backup), counts add up with
    the quarantine, foreign keys and integrity are clean, and every promised object exists. Exit 1 otherwise.
    Ends with a summary: rows and time per table, the backup compared with, what to run next."""
    _quiet(quiet, as_json)
    dest = parse_target(target)
    _report_destination(report_to)
    if schema_only:
        drift = verbs.schema_drift(source, dest, environment=alembic)
        payload = {"ok": not drift, "database": render.database_name(source, dest),
                   "basis": getattr(drift, "basis", ""), "differences": drift}
        _write_report(report_to, "verify", render.plain(payload), source, dest, backup_dir=backup_dir)
        render.print_json(payload) if as_json else render.drift_report(drift, render.database_name(source, dest))
        if drift:
            raise typer.Exit(CHECKS_FAILED)
        return
    report = verbs.verify(source, dest, backup=backup, strict=strict, backup_dir=backup_dir, report=_absolute(report_to))
    summary = verbs.summary.verify_summary(report, source, dest)
    payload = {**render.plain(report), **summary.to_json(), "ok": report.ok}
    _write_report(report_to, "verify", render.plain(payload), source, dest, backup_dir=backup_dir)
    if as_json:
        render.print_json(payload)
    else:
        render.verify_report(report, summary)
    if not report.ok:
        raise typer.Exit(CHECKS_FAILED)


@verb("rollback", examples=["dpro-migrate rollback dpro_agent.db --yes",
                            "dpro-migrate rollback dpro_agent.db --target postgresql://dba@db:5432/dpro --write-back",
                            "dpro-migrate rollback dpro_agent.db --sql"],
      codes=WRITER_CODES)
def rollback_cmd(source: Path = SOURCE, yes: bool = YES, sql: bool = SQL, target: Optional[str] = TARGET,
                 write_back: bool = typer.Option(False, "--write-back", help="PostgreSQL: first write every row "
                                                 "inserted, updated or deleted there since the cutover back into the "
                                                 "legacy file."),
                 on_conflict: OnConflict = typer.Option(OnConflict.refuse, "--on-conflict", help="PostgreSQL, with "
                                                        "--write-back: a row changed both in the source and in "
                                                        "PostgreSQL since the snapshot: refuse, postgres (its version "
                                                        "wins) or source (the source's stays)."),
                 backup_dir: Optional[Path] = BACKUP_DIR, as_json: bool = JSON, quiet: bool = QUIET,
                 report_to: Optional[Path] = REPORT):
    """Undo apply. In place: everything back into the legacy tables with their original DDL, indexes, views,
    triggers and AUTOINCREMENT counters, rows written after the cutover and quarantined rows included. PostgreSQL:
    remove exactly what apply created; refuses while it holds changes made since the cutover, unless --write-back.
    Ends with a summary: rows per table, time per phase, the backup, what to run next."""
    _quiet(quiet, as_json)
    dest = parse_target(target)
    if sql:
        print(verbs.rollback_script(source, dest), end="")
        return
    _report_destination(report_to)
    confirm(f"Roll back {render.database_name(source, dest)}?", yes)
    undone = _recorded_plan(source, dest) if report_to else None  # the ledger that records it goes with the rollback
    with render.step_progress(not render.quiet, "rollback") as (progress, rows):
        result = verbs.rollback(source, dest, write_back=write_back, on_conflict=_value(on_conflict),
                                backup_dir=backup_dir, report=_absolute(report_to), progress=progress,
                                rows_progress=rows)
    summary = verbs.summary.rollback_summary(result, source, dest)
    details = render.plain(result)
    details["backup_details"] = details.pop("backup")  # "backup" is the path, as in every verb's summary
    payload = {**details, **summary.to_json()}
    _write_report(report_to, "rollback", render.plain(payload), source, dest, plan=undone, backup_dir=backup_dir)
    if as_json:
        render.print_json(payload)
    else:
        render.rollback_result(result, summary)


@verb("alembic-init", examples=["dpro-migrate alembic-init migrations dpro_agent.db",
                                "dpro-migrate alembic-init migrations dpro_agent.db --target postgresql://dba@db/dpro"])
def alembic_init_cmd(directory: Path = typer.Argument(..., show_default=False,
                                                      help="A new or empty folder for the Alembic environment."),
                     source: Path = SOURCE, target: Optional[str] = TARGET,
                     stamp: bool = typer.Option(True, "--stamp/--no-stamp", help="Stamp the database with the baseline."),
                     as_json: bool = JSON, quiet: bool = QUIET):
    """Hand the migrated schema to the application team: an Alembic environment whose baseline revision is the
    seven-domain schema, so `alembic revision --autogenerate` starts from an empty diff. The URL in alembic.ini
    carries no password: export DPRO_MIGRATE_DATABASE_URL for that."""
    _quiet(quiet, as_json)
    dest = parse_target(target)
    ini, revision = verbs.alembic_handoff(directory, source, dest, stamp=stamp)
    render.print_json({"ini": ini, "revision": revision, "database": render.database_name(source, dest)}) if as_json \
        else render.out.print(f"wrote {escape(str(ini))}" + (f"; {escape(render.database_name(source, dest))} stamped "
                                                               f"at baseline {revision}" if revision else ""))


@verb("archive", examples=["dpro-migrate archive dpro_agent.db --table messages --older-than 2024-01-01",
                           "dpro-migrate archive dpro_agent.db --table messages --back"],
      codes=(OK, BAD_INPUT, LOCKED, UNEXPECTED))
def archive_cmd(source: Path = SOURCE, table: ArchiveTable = typer.Option(..., "--table", show_default=False,
                                                                          help="The table whose rows move."),
                older_than: Optional[datetime] = typer.Option(None, "--older-than", show_default=False,
                                                              help="Move rows created before this (UTC unless a zone "
                                                                   "is given)."),
                back: bool = typer.Option(False, "--back", help="Move every archived row back instead."),
                target: Optional[str] = TARGET, as_json: bool = JSON, quiet: bool = QUIET):
    """Move old rows into the archive table (apply --with archive-tables), in one transaction that never loses a
    row."""
    _quiet(quiet, as_json)
    if (older_than is None) != back:
        raise DproMigrateError("give --older-than DATE, or --back")
    dest = parse_target(target)
    result = verbs.archive(source, dest, table=_value(table), older_than=older_than)
    where = escape(render.database_name(source, dest))
    render.print_json(result) if as_json else render.out.print(
        f"moved {result.moved:,} rows {'from ' + result.table + ' to ' + result.archive if not back else 'back to ' + result.table}"
        f" in {where}")


@verb("partitions", examples=["dpro-migrate partitions dpro_agent.db --target postgresql://dba@db:5432/dpro",
                              "dpro-migrate partitions dpro_agent.db --ahead 6"],
      codes=(OK, BAD_INPUT, LOCKED, UNEXPECTED))
def partitions_cmd(source: Path = SOURCE,
                   ahead: Optional[int] = typer.Option(None, "--ahead", show_default=False,
                                                       help="Months after the current one to create (default "
                                                            "DPRO_MIGRATE_PARTITION_MONTHS_AHEAD, else 3)."),
                   target: Optional[str] = TARGET, as_json: bool = JSON, quiet: bool = QUIET):
    """PostgreSQL, apply --with partition-by-month: create the next months' partitions and move rows out of DEFAULT
    into theirs, in one transaction (run it monthly, e.g. from cron)."""
    _quiet(quiet, as_json)
    dest = parse_target(target)
    result = verbs.partitions(source, dest, ahead=ahead)
    if as_json:
        render.print_json({**render.plain(result), "database": render.database_name(source, dest)})
        return
    render.out.print(f"created {len(result.created)} partitions in {escape(render.database_name(source, dest))}"
                     + (f": {', '.join(result.created)}" if result.created else "")
                     + (f"; moved {sum(result.moved.values()):,} rows out of DEFAULT" if result.moved else ""))
    for table, n in result.in_default.items():
        render.out.print(f"{table}: {n:,} rows remain in DEFAULT (no created_at month to put them in)")


@verb("finalize", examples=["dpro-migrate finalize dpro_agent.db"], codes=(OK, BAD_INPUT, LOCKED, UNEXPECTED))
def finalize_cmd(source: Path = SOURCE, target: Optional[str] = TARGET, as_json: bool = JSON, quiet: bool = QUIET):
    """End the cutover window: drop the compatibility views left by `apply --compat-views`."""
    _quiet(quiet, as_json)
    dest = parse_target(target)
    dropped = verbs.finalize(source, dest)
    render.print_json({"dropped_views": dropped, "database": render.database_name(source, dest)}) if as_json else \
        render.out.print(f"dropped {len(dropped)} compatibility views in {escape(render.database_name(source, dest))}"
                         + (f": {', '.join(dropped)}" if dropped else ""))


@verb("status", examples=["dpro-migrate status dpro_agent.db",
                          "dpro-migrate status dpro_agent.db --target postgresql://dba@db:5432/dpro --json"],
      codes=READER_CODES)
def status_cmd(source: Path = SOURCE, target: Optional[str] = TARGET,
               backup_dir: Optional[Path] = typer.Option(None, "--backup-dir", show_default=False,
                                                         help="The folder of the history file (default: "
                                                              "dpro-migrate-backups/ beside the legacy file)."),
               as_json: bool = JSON, quiet: bool = QUIET):
    """Legacy, migrated or partly migrated; the ledger's entries and the history file's lines (which outlive a
    rollback). Paths and URLs are printed whole, on lines of their own, to copy into `restore`."""
    _quiet(quiet, as_json)
    report = verbs.status(source, parse_target(target), backup_dir=backup_dir)
    render.print_json(report) if as_json else render.status_report(report)


@verb("demo", examples=["dpro-migrate demo", "dpro-migrate demo ./demo --messages 100000"],
      codes=(OK, CHECKS_FAILED, BAD_INPUT, UNEXPECTED))
def demo_cmd(workdir: Optional[Path] = typer.Argument(None, show_default=False,
                                                      help="An empty folder to work in (default: a new temporary one, "
                                                           "kept and named at the end)."),
             messages: int = typer.Option(2000, "--messages", min=1, help="Messages in the generated database."),
             as_json: bool = JSON, quiet: bool = QUIET):
    """The whole cycle on a generated example, told in stages: make a legacy database, plan, back up, apply,
    verify, roll back, and check that the file is logically identical to the original."""
    _quiet(quiet, as_json)
    with render.step_progress(not render.quiet, "demo") as (progress, _):
        result = verbs.demo(workdir, messages=messages, progress=progress)
    render.print_json(result) if as_json else render.demo_result(result)
    if not result.verify.ok or result.differences_after_rollback:
        raise typer.Exit(CHECKS_FAILED)


@verb("example", examples=["dpro-migrate example dpro_agent.db --messages 100000",
                           "dpro-migrate example dirty.db --dirty"])
def example_cmd(path: Path = typer.Argument(..., show_default=False,
                                            help="Where to create the legacy database (must not exist)."),
                messages: int = typer.Option(1000, "--messages", min=0, help="Rows in messages; other tables in proportion."),
                shape: Shape = typer.Option(Shape["18"], "--shape", help="Legacy release: 13, 14 or 18 tables."),
                seed: int = typer.Option(0, "--seed", help="Random seed."),
                extras: bool = typer.Option(False, "--extras/--no-extras", help="Add a hand-made column, an unknown table, a view "
                                            "and a trigger."),
                dirty: bool = typer.Option(False, "--dirty/--no-dirty", help="Add every kind of dirty row and hostile name "
                                           "(implies --extras)."),
                as_json: bool = JSON, quiet: bool = QUIET):
    """Generate a realistic legacy DPRO database of any size."""
    _quiet(quiet, as_json)
    counts = verbs.example(path, messages=messages, shape=_value(shape), seed=seed, extras=extras, dirty=dirty)
    render.print_json(counts) if as_json else \
        render.out.print(f"created {escape(str(path))}: {sum(counts.values()):,} rows in {len(counts)} tables")


@verb("restore", examples=["dpro-migrate restore dpro-migrate-backups/dpro_agent.db.20250301T091201Z.bak --to dpro_agent.db",
                           "dpro-migrate restore backups/dpro.20250301T091201Z.dump --target postgresql://dba@db1/dpro"],
      codes=(OK, BAD_INPUT, LOCKED, DECLINED, UNEXPECTED))
def restore_cmd(backup: Path = typer.Argument(..., show_default=False,
                                              help="A backup written by dpro-migrate (backup, apply, rollback): a SQLite "
                                                   "file or a pg_dump."),
                to: Optional[Path] = typer.Option(None, "--to", show_default=False,
                                                  help="The database file to replace (default: the one the backup "
                                                       "was taken of, when it sits in dpro-migrate-backups/ beside it)."),
                target: Optional[str] = typer.Option(None, "--target", "-t", envvar=TARGET_ENV, show_default=False,
                                                     help="A pg_dump backup: the PostgreSQL database whose domain "
                                                     "schemas it brings back (postgresql://user@host/db)."),
                yes: bool = YES, backup_dir: Optional[Path] = BACKUP_DIR, as_json: bool = JSON, quiet: bool = QUIET):
    """Bring a database back from a backup. The backup is checked first (a SQLite file, integrity_check; a
    pg_dump: pg_restore reads it, its SHA-256 is the one recorded) and only read; what the database holds now
    is backed up, then replaced in one transaction. A pg_dump brings back the seven domain schemas it holds,
    nothing else."""
    from dpro_migrate.safety.pg_dump import is_pg_dump
    from dpro_migrate.safety.restore import default_destination, restore

    _quiet(quiet, as_json)
    if is_pg_dump(backup):
        dest_db = parse_target(target)
        confirm(f"Replace the domain schemas of {dest_db.display} with those in {backup}?", yes)
        restored = verbs.restore_dump(backup, dest_db, backup_dir=backup_dir)
        render.print_json(restored) if as_json else render.pg_restore_result(restored)
        return
    dest = to or default_destination(backup)
    confirm(f"Replace {dest} with {backup}?", yes)
    result = restore(backup, dest, backup_dir=backup_dir)
    if as_json:
        render.print_json(result)
        return
    render.restore_result(result)


@verb("check", examples=["dpro-migrate check dpro_agent.db --junit report.xml",
                         "dpro-migrate check dpro_agent.db --target postgresql://ci@localhost/postgres --on-reject quarantine"],
      codes=(OK, CHECKS_FAILED, BAD_INPUT, UNEXPECTED))
def check_cmd(source: Path = SOURCE,
              target: Optional[str] = typer.Option(None, "--target", "-t", show_default=False,
                                                   help="postgresql://user:pass@host/db: run the cycle in a throwaway "
                                                        "database created through this one (default: a SQLite copy)."),
              on_reject: OnReject = ON_REJECT_OPT, compat_views: bool = COMPAT_VIEWS, extras: list[Feature] = WITH,
              junit: Optional[Path] = typer.Option(None, "--junit", show_default=False,
                                                   help="Also write a JUnit XML report here (one testcase per stage)."),
              as_json: bool = JSON, quiet: bool = QUIET, report_to: Optional[Path] = REPORT):
    """For CI: plan, apply, verify and rollback on a scratch copy (and a throwaway PostgreSQL database with
    --target), with the options apply will get, then check the copy is back to the source. The source is only
    read. Exit 0 all good, 1 a stage failed, 2 unusable input."""
    from dpro_migrate import check as checking

    _quiet(quiet, as_json)
    _report_destination(report_to)
    report = checking.run_check(source, parse_target(target), on_reject=_value(on_reject), compat_views=compat_views,
                                features=tuple(_value(e) for e in extras))
    if junit:
        checking.write_junit(report, junit)
    _write_report(report_to, "check", render.plain({"ok": report.ok, **render.plain(report)}), source,
                  parse_target(target), plan=report.plan)
    if as_json:
        render.print_json({"ok": report.ok, **render.plain(report)})
    else:
        render.check_report(report)
    if not report.ok:
        raise typer.Exit(CHECKS_FAILED)


# --- --report: the verb's --json data as a page for the change ticket (dpro_migrate/report/) -------


def _report_destination(path: Path | None, *, taken: tuple[Path, ...] = ()) -> None:
    """Refuse an unusable --report before the verb changes anything (exit 2)."""
    if path is not None:
        from dpro_migrate import report

        report.check_destination(path, taken=taken)


def _absolute(path: Path | None) -> Path | None:
    """The report's path as the history line records it: absolute, so a report written anywhere links it."""
    return Path(os.path.abspath(path)) if path is not None else None


def _report_refusal(command: str, kwargs: dict, result: dict) -> None:
    """A verb with --report that raised one of our errors: the page says what was refused and why (the error as
    `--json` prints it), so the DBA has something to attach. Written only where --report itself is usable."""
    verb = command.removesuffix("_cmd")
    path = kwargs.get("report_to")
    from dpro_migrate import report

    if path is None or verb not in report.VERBS:
        return
    if kwargs.get("sql") and verb in ("apply", "rollback"):  # --sql prints a script and writes no page
        return
    from dpro_migrate.targets import Target

    try:
        report.check_destination(path, taken=(kwargs["out"],) if kwargs.get("out") else ())
    except DproMigrateError:
        return  # the refusal may be this very path: the message says so
    source = kwargs.get("source")
    try:
        target = verbs.target_for(source, kwargs.get("target")) if verb == "apply" else parse_target(kwargs.get("target"))
    except Exception:  # noqa: BLE001 - an unusable --target is what was refused: the page says so without it
        target = Target("", "the --target given (not usable: see the error)")
    plan = None
    try:
        legacy = verbs.source_of(source) if source is not None else None
        if verb == "apply" and verbs.looks_like_plan(Path(source)):
            from dpro_migrate.plan.document import load_plan

            plan = load_plan(Path(source))  # the plan the verb was given, as it was reviewed
    except Exception:  # noqa: BLE001 - not a usable plan file: the error says why
        legacy, plan = source, None
    _write_report(path, verb, result, legacy, target, plan=plan, backup_dir=kwargs.get("backup_dir"))


def _recorded_plan(source: Path, target):
    try:
        return verbs.recorded_plan(source, target)
    except (DproMigrateError, sqlite3.Error, OSError):  # not migrated: the verb says so itself
        return None


def _write_report(path: Path | None, verb: str, payload: dict | None, source: Path, target, *, plan=None,
                  backup_dir: Path | None = None) -> None:
    """After the verb: the report is extra, so a failure to write it is said on stderr, not the verb's outcome."""
    if path is None:
        return
    from dpro_migrate import report

    plan_data = json.loads(plan.to_json()) if hasattr(plan, "to_json") else plan
    if plan_data is None and verb in ("apply", "verify", "rollback") and target.dialect:
        recorded = _recorded_plan(source, target)
        plan_data = json.loads(recorded.to_json()) if recorded else None
    try:
        doc = report.build(verb, payload, source=source, target=target, plan=plan_data, backup_dir=backup_dir,
                           written_to=path)
        written = report.write(path, doc)
    except DproMigrateError as exc:
        render.err.print(f"[yellow]warning:[/] {escape(str(exc))}; the {verb}'s own result stands")
        return
    except Exception as exc:  # noqa: BLE001 - whatever it is, the verb's own result comes first
        log = _write_traceback(exc)
        render.err.print(f"[yellow]warning:[/] the report was not written: unexpected {type(exc).__name__}"
                         + (f"; the traceback is in {escape(str(log))}" if log else "") + f"; the {verb}'s own result stands")
        return
    render.err.print(f"report written to {escape(str(written))}")


def main() -> None:
    try:
        app()
    except Exception as exc:  # raised outside any command (while parsing, or by typer itself)
        sys.exit(report_error(exc))
