"""The closing summary of apply, rollback and verify (results.Summary): what was done to which database,
per table and per phase, the backup, the quarantine, and the command to run next."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from dpro_migrate.dialects import POSTGRES, SQLITE, physical_name
from dpro_migrate.model.mapping import QUARANTINE_TABLE
from dpro_migrate.results import QuarantineReport, Summary, Timings
from dpro_migrate.targets import Target


def database_of(source: Path, target: Target) -> str:
    """The database a verb acts on, as it may be printed: the file (in place), the new file, or the URL
    without its password."""
    # realpath, not resolve(): a symbolic link loop is for the verb to refuse in one line, not a RuntimeError here
    if target.in_place:
        return os.path.realpath(source)
    return os.path.realpath(target.path) if target.path else target.display


def command(verb: str, source: Path | str, target: Target, *extra: str) -> str:
    """A command line to run next, with the target when it is not the file itself (its password masked)."""
    words = ["dpro-migrate", verb, str(source)]
    if not target.in_place:
        words += ["--target", target.display]
    return " ".join(shlex.quote(w) for w in [*words, *extra])


_INDEX = physical_name(QUARANTINE_TABLE, SQLITE)
# where each target keeps the quarantined rows, said to the DBA: (database, source) -> a sentence
QUARANTINE_WHERE = {
    SQLITE: lambda database, source: f"{_INDEX} (table, id, rule) and {_INDEX}__<table> (the rows, whole) in {database}",
    POSTGRES: lambda database, source: f"{QUARANTINE_TABLE} (each row whole, as JSON) in {database}; {source} still "
                                       "holds them",
}


def quarantine_where(database: str, target: Target, source: str) -> str:
    return QUARANTINE_WHERE[target.dialect](database, source)


def apply_summary(plan, result, source: Path, target: Target) -> Summary:
    source = Path(plan.source) if plan is not None else Path(source)
    database = database_of(source, target)
    if result.already_migrated:
        return Summary("apply", database, str(source), True, result.seconds, Timings(),
                       note=f"already migrated (applied {result.applied_at}); nothing changed",
                       next=[command("verify", source, target), command("status", source, target)],
                       left_overs=list(result.left_overs))
    quarantine = None
    if result.quarantined:
        quarantine = QuarantineReport(quarantine_where(database, target, str(source)), dict(result.quarantined))
    return Summary("apply", database, str(source), True, result.seconds, result.timings,
                   backup=str(result.backup.path) if result.backup else None, quarantine=quarantine,
                   next=[command("verify", source, target), "if the cutover goes wrong: "
                         + command("rollback", source, target)], left_overs=list(result.left_overs))


def rollback_summary(result, source: Path, target: Target) -> Summary:
    database = database_of(source, target)
    if result.nothing_to_do:
        return Summary("rollback", database, str(source), True, result.seconds, Timings(),
                       note="not migrated: nothing to roll back", next=[command("status", source, target)],
                       left_overs=list(result.left_overs))
    quarantine = None
    if result.quarantined:
        quarantine = QuarantineReport(f"put back into their legacy tables in {database}", dict(result.quarantined))
    done = [command("status", source, target)]
    if result.backup:
        # the backup is of the file rollback wrote: the legacy file in place, the new file (sqlite:///), or on
        # PostgreSQL the legacy file before the write-back, which cannot bring the dropped schemas back
        to, what = source, "this rollback"
        if target.path:
            to = target.path
        elif not target.in_place:
            what = f"the write-back into {source} (not the dropped schemas)"
        done.append(f"to undo {what}: dpro-migrate restore {shlex.quote(str(result.backup.path))} "
                    f"--to {shlex.quote(str(to))}")
    note = ""
    if target.conninfo:  # the rows stay in the source file, which apply only read
        written = {t: n for t, n in result.changes.items() if any(n.values())}
        dropped = f"dropped schemas {', '.join(result.dropped)}" if result.dropped else "dropped what apply created"
        note = f"{dropped} (with the quarantine and the ledger); "
        if written:
            note += (f"written back to {source}: " + "; ".join(
                f"{t} {n['inserted']:,} inserted, {n['updated']:,} updated, {n['deleted']:,} deleted"
                + (f", {n['renumbered']:,} under a new id" if n.get("renumbered") else "") for t, n in written.items()))
        else:
            note += f"nothing changed in PostgreSQL since the cutover: {source} was only read"
    return Summary("rollback", database, str(source), True, result.seconds, result.timings,
                   backup=str(result.backup.path) if result.backup else None, quarantine=quarantine, next=done,
                   note=note, left_overs=list(result.left_overs))


def verify_summary(report, source: Path, target: Target) -> Summary:
    database = database_of(source, target)
    timings = Timings()
    for c in report.counts:
        timings.add_table(c.legacy, c.target, c.source_rows, c.seconds)
    timings.add_phase("compare rows", sum(c.seconds for c in report.counts), len(report.counts))
    quarantine = None
    if report.quarantined:
        quarantine = QuarantineReport(quarantine_where(database, target, str(source)), dict(report.quarantined))
    if report.ok:
        nxt = [command("status", source, target), "when the cutover window closes: "
               + command("finalize", source, target) + " (drops compatibility views, if any)"]
    else:
        nxt = ["look at the failed checks above; to undo the migration: " + command("rollback", source, target)]
    return Summary("verify", database, str(source), report.ok, report.seconds, timings, backup=report.backup,
                   quarantine=quarantine, next=nxt,
                   note=f"{len(report.checks) - len(report.failures)} of {len(report.checks)} checks passed",
                   left_overs=list(report.left_overs))
