"""Rich rendering of library results for the terminal (CLI layer only), and JSON for --json.

Paths and URLs are printed whole, on lines of their own (the console never wraps or cuts them: a DBA copies
them into the next command); tables fold long names instead of cutting them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dpro_migrate.results import DirtyReport, Summary, differing_columns, rate
from dpro_migrate.verbs.summary import database_of

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
quiet = False  # set by the CLI (-q, --json): results in one line, no tables
SAMPLE = 5  # ids shown per rule in the terminal; --json holds every one


def plain(value):
    if hasattr(value, "to_json") and not isinstance(value, type):
        data = value.to_json()
        return json.loads(data) if isinstance(data, str) else data  # a Plan writes its own JSON text
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


_plain = plain  # the name tests and older callers use


def print_json(value) -> None:
    # print() not rich: one JSON document, nothing mixed in, no wrapping.
    print(json.dumps(plain(value), indent=2, ensure_ascii=False, default=str))


def database_name(source, target) -> str:
    return database_of(Path(source), target)


def _table(*columns: str, title: str | None = None, numeric: tuple[str, ...] = ()) -> Table:
    """A table whose cells fold rather than cut (a table name stays whole at 60 columns)."""
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold", justify="right" if c in numeric else "left")
    return t


WIDE = 100  # below this many columns, tables are printed as one line per row


def _wide() -> bool:
    return out.width >= WIDE


def _path_line(label: str, path) -> None:
    out.print(f"{label}:")
    out.print(f"  {escape(str(path))}")


class _Reporter:
    """Rich bars on stderr: one over the plan's operations, one per table as its rows move (rows, rows/s)."""

    def __init__(self, bar: Progress, label: str):
        self.bar = bar
        self.steps = bar.add_task(label, total=None, info="")
        self.tables: dict[str, object] = {}

    def step(self, i, total, op) -> None:
        self.bar.update(self.steps, completed=i, total=total, info=op.describe())

    def rows(self, step, n) -> None:
        task = self.tables.get(step.name)
        if task is None:
            task = self.tables[step.name] = self.bar.add_task(f"  {step.name}", total=None, info="")
        self.bar.advance(task, n)
        t = self.bar.tasks[task]
        if t.elapsed:
            self.bar.update(task, info=f"{t.completed / t.elapsed:,.0f} rows/s")


@contextmanager
def step_progress(enabled: bool, label: str):
    """Yields (progress, rows_progress) callbacks for the library, or (None, None) when not on a terminal."""
    if not enabled or not err.is_terminal:
        yield None, None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err, transient=True) as bar:
        reporter = _Reporter(bar, label)
        yield reporter.step, reporter.rows


# --- dirty data -------------------------------------------------------------------------------------


def _ids(ids: list, total: int | None = None) -> str:
    total = len(ids) if total is None else total
    shown = ", ".join(map(str, ids[:SAMPLE]))
    return shown + (f" ... ({total - SAMPLE:,} more in --json)" if total > SAMPLE else "")


def _per_table(tables: dict[str, int]) -> str:
    return ", ".join(f"{escape(t)} {n:,}" for t, n in tables.items())


def dirty_report(dirty: DirtyReport, *, console: Console | None = None) -> None:
    """Rows the target would refuse: one count (rows, a row breaking two rules counted once), then each root
    cause with its rule in words and SQL and a sample of ids, then the rows refused only because their parent
    was."""
    c = console or out
    if dirty.clean:
        return
    c.print(f"[bold yellow]{dirty.rows:,} rows the target would refuse[/] ({_per_table(dirty.tables)}); "
            "a row that breaks two rules is listed under both and counted once")
    if quiet:
        return
    for r in dirty.rules:
        c.print(f"  [bold]{escape(r.legacy)}[/]: {r.rows:,} {'row breaks' if r.rows == 1 else 'rows break'} "
                f"{escape(r.rule)}")
        c.print(f"    rule: {escape(r.definition)}")
        c.print(f"    sql:  {escape(r.sql)}")
        c.print(f"    ids:  {_ids(r.ids, r.rows)}")
    for k in dirty.cascades:
        one = len(k.parent_ids) == 1
        c.print(f"  [bold]{escape(k.legacy)}[/]: {k.rows:,} {'row' if k.rows == 1 else 'rows'} refused because "
                f"{escape(k.parent)} {'row' if one else 'rows'} {_ids(k.parent_ids)} {'is' if one else 'are'} refused "
                f"({escape(k.rule)})")
        c.print(f"    ids:  {_ids(k.ids, k.rows)}")


def error_details(details) -> None:
    """What stands behind an error (rules broken, rows stranded), on stderr."""
    if isinstance(details, dict) and details.get("dirty"):
        dirty_report(DirtyReport.from_json(details["dirty"]), console=err)
        return
    if isinstance(details, dict) and details.get("outside_dependents"):
        return  # the message lists them already, one line each
    if isinstance(details, dict) and details.get("conflicts"):
        # which rows and columns, never their values (a user's password hash, mail, messages): those are in --json
        t = _table("table", "id", "columns that differ")
        for c in details["conflicts"][:50]:
            t.add_row(escape(str(c.get("table"))), escape(str(c.get("id"))), escape(", ".join(differing_columns(c))))
        err.print(t)
        return
    rows = details.get("findings") or details.get("foreign_key_violations") if isinstance(details, dict) else None
    if rows:
        t = _table(*rows[0].keys())
        for r in rows[:50]:
            t.add_row(*(escape(str(v)) for v in r.values()))
        err.print(t)
    else:
        err.print(escape(json.dumps(plain(details), default=str)[:2000]))


# --- inspect and plan ----------------------------------------------------------------------------


def inspect_report(r) -> None:
    out.print(f"[bold]{escape(r.path)}[/]: {r.state}, {r.size_bytes:,} bytes, {len(r.tables)} tables, "
              f"schema {r.fingerprint[:19]}")
    if quiet:
        dirty_report(DirtyReport.from_json(r.dirty))
        return
    for tb in r.tables:
        goes = ", ".join(tb.maps_to) or ("unknown: stays as it is" if tb.name in r.unknown_tables else "stays")
        out.print(f"[bold]{escape(tb.name)}[/] ({tb.rows:,} rows) -> {escape(goes)}")
        cols = ", ".join(f"{c['name']} {c['type'] or '(no type)'}" + (" NOT NULL" if c.get("not_null") else "")
                         for c in tb.columns)
        out.print(f"    {escape(cols)}")
        if tb.extra_columns:
            out.print(f"    riding along (not in the target schema): {escape(', '.join(tb.extra_columns))}")
    for kind in ("indexes", "triggers", "views"):
        items = getattr(r, kind)
        if items:
            out.print(escape(f"{kind}: " + ", ".join(i["name"] + (f" (on {i['table']})" if i["table"] != i["name"] else "")
                                                     for i in items)))
    for name, domain in r.unknown_tables.items():
        hint = f"; it looks like the {domain} domain (map it to move it)" if domain else ""
        out.print(f"[yellow]unknown table {escape(name)}: left untouched{hint}[/]")
    if r.missing_legacy_tables:
        out.print(f"legacy tables absent in this file (their domain tables start empty): {', '.join(r.missing_legacy_tables)}")
    if r.plan_summary:
        out.print("the plan would run: " + ", ".join(f"{n} {k}" for k, n in r.plan_summary.items()))
    dirty_report(DirtyReport.from_json(r.dirty))


def pg_restore_result(r) -> None:
    if r.previous:
        out.print(f"what {escape(r.target)} held of them is kept in [bold]{escape(str(r.previous.path))}[/]")
    out.print(f"restored schemas {', '.join(r.schemas)} of {escape(r.target)} from {escape(str(r.backup))} in "
              f"{r.seconds:.2f}s: {sum(r.tables.values()):,} rows in {len(r.tables)} tables, as the dump holds them")


_NOT_REFUSED = re.compile(r'\s*(AND\s*)?"id" NOT IN \(SELECT source_pk FROM (temp\.dpro_refused|"?system_quarantine"?) '
                          r'WHERE source_table = .*\)$')


def _which_rows(where: str | None) -> str:
    """A move's filter as the DBA wrote it in the mapping; the refused rows' exclusion said in words."""
    if not where:
        return "all"
    shown = _NOT_REFUSED.sub("", where)
    if shown == where:
        return where
    return f"{shown} (less the refused rows)" if shown else "all but the refused rows"


def plan_summary(plan, path: Path | None, moves: dict[str, int], phases: dict[str, int], dirty: DirtyReport,
                 target) -> None:
    database = "the file itself, in place" if target.in_place else database_name(plan.source, target)
    out.print(f"plan: {escape(plan.source)} -> {escape(database)}: {len(plan.operations)} operations, "
              f"{sum(moves.values()):,} rows in {len(moves)} moves")
    if not quiet:
        out.print("operations: " + ", ".join(f"{k} {n}" for k, n in phases.items()))
        if _wide():
            m = _table("legacy table", "rows", "domain table", "which rows", "riding along", numeric=("rows",))
            for move in plan.moves:
                m.add_row(escape(move.legacy), f"{moves.get(move.name, 0):,}", escape(move.target),
                          escape(_which_rows(move.where)), escape(", ".join(move.extra_columns)))
            out.print(m)
        else:
            for move in plan.moves:
                out.print(f"{escape(move.legacy)} -> {escape(move.target)}: {moves.get(move.name, 0):,} rows"
                          + (f" ({escape(_which_rows(move.where))})" if move.where else "")
                          + (f"; riding along: {escape(', '.join(move.extra_columns))}" if move.extra_columns else ""))
        for name, domain in plan.unknown_tables.items():
            out.print(f"[yellow]unknown table {escape(name)}: left untouched[/]" + (f" (looks like {domain})" if domain else ""))
    dirty_report(dirty)
    if not dirty.clean:
        out.print(f"on reject: [bold]{plan.on_reject}[/]" + (" (apply will refuse; --on-reject quarantine keeps them aside)"
                                                            if plan.on_reject == "fail" else " (apply keeps them aside)"))
    if path:
        _path_line("plan written to", path)
        again = f"dpro-migrate apply {path}"
        out.print(f"next: review it, then `{escape(again)}`"
                  + ("" if target.in_place else " (it applies to the target it records; the password comes from "
                     "--target, PGPASSWORD or ~/.pgpass)"))


def left_overs_line(paths) -> None:
    """One line: the partial backups (copies of production data) killed runs left, removed by this one."""
    if paths:
        out.print(f"[yellow]removed {len(paths)} partial backup{'s' if len(paths) > 1 else ''} a killed run left "
                  f"behind (nobody was writing them):[/] {escape(', '.join(str(p) for p in paths))}")


def backup_result(b, source=None) -> None:
    if b is None:  # a PostgreSQL apply/rollback with nothing to back up
        return
    left_overs_line(getattr(b, "left_overs", None))
    if hasattr(b, "database_tables"):  # a pg_dump: it holds the whole database; counted in its own snapshot
        kept = (f"the schemas replaced ({', '.join(b.schemas)}): {sum(b.tables.values()):,} rows in {len(b.tables)} "
                "tables, counted in the dump's snapshot" if b.schemas else "no schema replaced")
        out.print(f"backup: {b.bytes:,} bytes, pg_dump of the whole database, {b.database_tables:,} tables: {kept}")
        _path_line("backup", b.path)
        return
    out.print(f"backup of {escape(str(source)) if source else 'the database'}: {b.bytes:,} bytes, integrity {b.integrity}, "
              f"{sum(b.tables.values()):,} rows in {len(b.tables)} tables match the source")
    _path_line("backup", b.path)


# --- the closing summary: apply, rollback, verify --------------------------------------------------


def summary(s: Summary) -> None:
    verb = {"apply": "applied to", "rollback": "rolled back", "verify": "verified"}[s.verb]
    left_overs_line(s.left_overs)
    headline = f"{verb} {escape(s.database)}" if s.ok else f"[red]{s.verb} failed[/]: {escape(s.database)}"
    if s.note and not s.timings.tables:
        out.print(f"{escape(s.database)}: {escape(s.note)}")
    else:
        speed = f", {s.rows_per_second:,} rows/s" if s.rows_per_second else ""
        kept = f"; [yellow]{s.quarantine.rows:,} rows quarantined[/]" if s.quarantine else ""
        out.print(f"[bold]{headline}[/]: {s.rows:,} rows in {len(s.timings.tables)} tables, {s.seconds:.2f}s{speed}{kept}"
                  + (f"; {escape(s.note)}" if s.note else ""))
    if quiet:
        return
    moved = sum(r.seconds for r in s.timings.tables)
    if s.timings.tables and _wide():
        t = _table("legacy table", "domain table", "rows", "seconds", "rows/s", numeric=("rows", "seconds", "rows/s"))
        for row in s.timings.tables:
            t.add_row(escape(row.legacy), escape(row.target), f"{row.rows:,}", f"{row.seconds:.3f}",
                      f"{row.rows_per_second:,}" if row.rows_per_second else "-")
        t.add_row("[bold]total[/]", "", f"[bold]{s.rows:,}[/]", f"{moved:.3f}", f"{rate(s.rows, moved):,}" if
                  rate(s.rows, moved) else "-")
        out.print(t)
    elif s.timings.tables:
        for row in s.timings.tables:
            out.print(f"{escape(row.legacy)} -> {escape(row.target)}: {row.rows:,} rows, {row.seconds:.3f}s"
                      + (f", {row.rows_per_second:,} rows/s" if row.rows_per_second else ""))
        out.print(f"[bold]total: {s.rows:,} rows, {moved:.3f}s[/]")
    if s.timings.phases:
        shown = [ph for ph in s.timings.phases if ph.operations or ph.seconds >= 0.0005]
        if _wide():
            p = _table("phase", "operations", "seconds", numeric=("operations", "seconds"))
            for ph in shown:
                p.add_row(escape(ph.phase), str(ph.operations or ""), f"{ph.seconds:.3f}")
            p.add_row("[bold]total[/]", "", f"[bold]{s.seconds:.3f}[/]")
            out.print(p)
        else:
            out.print("phases: " + ", ".join(f"{escape(ph.phase)} {ph.seconds:.3f}s"
                                              + (f" ({ph.operations})" if ph.operations else "") for ph in shown)
                      + f"; total {s.seconds:.3f}s")
    if s.backup:
        _path_line("backup", s.backup)
    if s.quarantine:
        q = s.quarantine
        out.print(f"[yellow]quarantine: {q.rows:,} rows[/] ({_per_table(q.tables)})")
        out.print(f"  {escape(q.where)}")
    for line in s.next:
        out.print(f"next: {escape(line)}")


def apply_result(plan, r, s: Summary | None = None) -> None:
    if s is not None:
        if getattr(r.backup, "schemas", None):  # a pg_dump that holds what --replace-existing replaced
            out.print(f"the backup holds the schemas replaced ({', '.join(r.backup.schemas)}): "
                      f"{sum(r.backup.tables.values()):,} rows in {len(r.backup.tables)} tables, counted in the dump's "
                      "snapshot")
        summary(s)
        return
    if r.already_migrated:
        out.print(f"already migrated (applied {r.applied_at}); nothing changed")
        return
    backup_result(r.backup)
    out.print(f"applied {len(plan.operations)} operations in {r.seconds:.2f}s: {sum(r.rows_moved.values()):,} rows moved")


def verify_report(r, s: Summary | None = None) -> None:
    if not quiet and _wide():
        t = _table("check", "result", "detail")
        for c in r.checks:
            t.add_row(escape(c.name), "[green]ok[/]" if c.ok else "[red]FAILED[/]", escape(c.detail))
        out.print(t)
    elif not quiet:
        for c in r.checks:
            out.print(("[green]ok[/] " if c.ok else "[red]FAILED[/] ") + f"{escape(c.name)}: {escape(c.detail)}")
    if not quiet:
        for c in r.failures:
            if c.items:
                out.print(f"[red]{escape(c.name)}[/]: " + escape(", ".join(map(str, c.items[:10]))))
    if s is not None:
        summary(s)
    out.print("[green]verified: every legacy row is in place[/]" if r.ok else "[red]verification failed[/]")


def drift_report(differences, database: str = "") -> None:
    basis = getattr(differences, "basis", "") or "ddl/"
    where = f"{escape(database)}: " if database else ""
    if not differences:
        out.print(f"{where}[green]no drift[/]: compared with {escape(basis)}")
        return
    out.print(f"{where}{len(differences)} differences; compared with {escape(basis)}")
    if quiet:
        return
    t = _table("kind", "object", "detail")
    for d in differences:
        t.add_row(d.kind, escape(d.object), escape(d.detail or ""))
    out.print(t)


def rollback_result(r, s: Summary | None = None) -> None:
    if not quiet:
        for table, n in r.changes.items():
            out.print(f"written back to {escape(table)}: {n['inserted']:,} inserted, {n['updated']:,} updated, "
                      f"{n['deleted']:,} deleted" + (f", {n['renumbered']:,} under a new id" if n["renumbered"] else ""))
        if r.conflicts:
            out.print(f"[yellow]{len(r.conflicts)} rows changed on both sides were settled by --on-conflict[/]")
        if r.schemas_restored:
            out.print(f"the schemas apply replaced are back from its pg_dump: {sum(r.schemas_restored.values()):,} "
                      f"rows in {len(r.schemas_restored)} tables")
        if r.renumbered:
            out.print(f"{r.renumbered:,} rows written after the cutover got a new id (the other half of the split had "
                      "handed out theirs)")
    if s is not None:
        summary(s)
        return
    if r.nothing_to_do:
        out.print("not migrated: nothing to roll back")
        return
    out.print(f"rolled back in {r.seconds:.2f}s: {sum(r.rows_restored.values()):,} rows back")


def restore_result(result) -> None:
    out.print(f"restored {escape(str(result.destination))} in {result.seconds:.2f}s: integrity {result.integrity}, "
              f"{sum(result.tables.values()):,} rows in {len(result.tables)} tables")
    if quiet:
        return
    _path_line("from the backup", result.backup)
    if result.previous:
        _path_line("the database as it was is kept in", result.previous.path)
    if result.previous_damaged_copy:
        _path_line("the unreadable file it replaced is kept in", result.previous_damaged_copy)


# --- status ------------------------------------------------------------------------------------------


def status_report(r) -> None:
    out.print(f"[bold]{r.state}[/]: {escape(r.path)}")
    if quiet:
        return
    if r.legacy_tables:
        where = " (in the source file, which apply only reads)" if "://" in r.path else ""
        out.print(f"legacy tables{where}: {escape(', '.join(r.legacy_tables))}")
    if r.domain_tables:
        kind = "domain schemas" if "://" in r.path else "domain tables"  # a server holds schemas, a file tables
        out.print(f"{kind}: {escape(', '.join(r.domain_tables))}")
    if r.history:
        out.print("[bold]ledger[/] (inside the migrated database):")
        for h in r.history:
            out.print(f"  #{h['id']} {h['action']} at {h['at']} by dpro-migrate {h['tool_version']}, "
                      f"{h.get('operations', 0)} operations")
            if h["backup"]:
                out.print(f"      backup: {escape(h['backup'])}")
    if r.history_file:
        colour = {"ok": "green", "refused": "yellow"}
        out.print("[bold]history[/]:")
        out.print(f"  {escape(r.history_path or '')}")
        for h in r.history_file:
            outcome = h.get("outcome") or ""
            counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k} {v}"
                              for k, v in (h.get("counts") or {}).items())
            out.print(f"  {h.get('time') or ''} {h.get('verb') or ''} [{colour.get(outcome, 'red')}]{escape(outcome)}[/] "
                      f"on {escape(h.get('target') or '')}" + (f", {escape(counts)}" if counts else "")
                      + (f": {escape(h['message'])}" if h.get("message") else ""))
            if h.get("backup"):
                out.print(f"      backup: {escape(h['backup'])}")
            if h.get("report"):
                out.print(f"      report: {escape(h['report'])}")
    elif r.history_path:
        out.print("no history yet in:")
        out.print(f"  {escape(r.history_path)}")


# --- check and demo ------------------------------------------------------------------------------


def check_report(report) -> None:
    colors = {"ok": "green", "failed": "red", "skipped": "yellow"}
    options = report.options or {}
    chosen = [f"--on-reject {options.get('on_reject', 'fail')}"] + (["--compat-views"] if options.get("compat_views") else [])
    chosen += [f"--with {f}" for f in options.get("features", [])]
    out.print(f"check of {escape(report.source)} on {escape(report.target)} ({escape(' '.join(chosen))})")
    if not quiet:
        if _wide():
            t = _table("stage", "result", "seconds", "detail", numeric=("seconds",))
            for s in report.stages:
                t.add_row(s.name, f"[{colors[s.status]}]{s.status}[/]", f"{s.seconds:.2f}", escape(s.detail))
            out.print(t)
        else:
            for s in report.stages:
                out.print(f"{s.name} [{colors[s.status]}]{s.status}[/] {s.seconds:.2f}s: {escape(s.detail)}")
        if report.dirty:
            dirty_report(DirtyReport.from_json(report.dirty))
        for s in report.failed:
            if s.findings and not (s.name == "plan" and report.dirty):
                out.print(f"[red]{s.name}[/]:")
                for f in s.findings[:10]:
                    out.print("  " + escape(", ".join(f"{k}: {v}" for k, v in f.items()) if isinstance(f, dict) else str(f)))
        out.print(escape(report.cleanup))
    if report.left_overs:
        out.print(f"[yellow]dropped {len(report.left_overs)} scratch database{'s' if len(report.left_overs) > 1 else ''} "
                  f"killed checks left behind (no check held them):[/] {escape(', '.join(report.left_overs))}")
    out.print(f"[green]check passed[/] in {report.seconds:.1f}s: {escape(report.source)} migrates, verifies "
              "and rolls back cleanly" if report.ok else "[red]check failed[/]: "
              + ", ".join(s.name for s in report.failed))


def demo_result(d) -> None:
    """The cycle as a story a newcomer follows: each stage, its numbers, and why they add up."""
    if quiet:
        verdict = ("after rollback the file is logically identical to the original" if not d.differences_after_rollback
                   else "after rollback the file differs from the original")
        out.print(f"demo in {escape(d.workdir)}: applied, verified ({'ok' if d.verify.ok else 'FAILED'}), rolled back; "
                  f"{verdict}")
        return
    plan = d.plan
    moved_tables = list(plan.legacy_tables)
    moved_rows = sum(plan.legacy_tables[t]["rows"] for t in moved_tables)
    unknown = {t: d.generated.get(t, 0) for t in plan.unknown_tables}
    total = sum(d.generated.values())

    def stage(n: int, title: str) -> None:
        out.print(f"\n[bold]{n}. {title}[/]")

    stage(1, "made an example legacy database")
    out.print(f"   {total:,} rows in {len(d.generated)} tables: {moved_rows:,} in the {len(moved_tables)} legacy tables "
              "dpro-migrate moves" + "".join(f", {n:,} in {escape(t)} (a table it does not know: left as it is)"
                                             for t, n in unknown.items()))
    stage(2, "planned")
    splits = {}
    for m in plan.moves:
        splits.setdefault(m.legacy, []).append(f"{d.moves.get(m.name, 0):,} to {m.target}")
    split_text = "; ".join(f"{escape(t)} splits: {', '.join(parts)}" for t, parts in splits.items() if len(parts) > 1)
    out.print(f"   {len(plan.operations)} operations: " + ", ".join(f"{k} {n}" for k, n in d.phases.items()))
    out.print(f"   {sum(d.moves.values()):,} rows to move into {len(plan.moves)} domain tables"
              + (f" ({split_text})" if split_text else ""))
    stage(3, "backed up (apply takes the backup itself, before it changes anything)")
    b = d.apply.backup
    copied = sum(b.tables.values())
    out.print(f"   {copied:,} rows in {len(b.tables)} tables, "
              + (f"the same {total:,} as the example" if copied == total else f"[red]the example had {total:,}[/]")
              + f" (integrity {b.integrity})")
    out.print(f"   {escape(str(b.path))}")
    stage(4, "applied, in one transaction")
    rows = sum(d.apply.rows_moved.values())
    stayed = "".join(f"; {n:,} rows of {escape(t)} stay where they are" for t, n in unknown.items())
    out.print(f"   {rows:,} rows moved in {d.apply.seconds:.2f}s{stayed}"
              + (f" ({rows:,} + {sum(unknown.values()):,} = {rows + sum(unknown.values()):,})" if unknown else ""))
    slowest = sorted(d.apply.timings.phases, key=lambda p: -p.seconds)[:3]
    if slowest:
        out.print("   longest phases: " + ", ".join(f"{p.phase} {p.seconds:.3f}s" for p in slowest))
    stage(5, "verified against the backup")
    passed = len(d.verify.checks) - len(d.verify.failures)
    out.print(f"   {passed} of {len(d.verify.checks)} checks passed; "
              f"{sum(c.matched for c in d.verify.counts):,} rows value for value, storage class for storage class"
              if d.verify.ok else f"   [red]{len(d.verify.failures)} checks failed[/]: "
              + ", ".join(escape(c.name) for c in d.verify.failures))
    stage(6, "rolled back")
    rb = d.rollback
    if rb.backup:
        extra = sum(rb.backup.tables.values()) - rows - sum(unknown.values())
        out.print(f"   first a backup of the migrated file: {sum(rb.backup.tables.values()):,} rows = {rows:,} moved + "
                  f"{sum(unknown.values()):,} left in place + {extra:,} in the ledger (what apply recorded)")
        out.print(f"   {escape(str(rb.backup.path))}")
    out.print(f"   {sum(rb.rows_restored.values()):,} rows back in {len(rb.rows_restored)} legacy tables in {rb.seconds:.2f}s")
    stage(7, "compared with the original")
    if d.differences_after_rollback:
        out.print("   [red]the file differs from the original:[/] " + escape("; ".join(d.differences_after_rollback)))
    else:
        out.print("   [green]identical[/]: after rollback the file is logically identical to the original (same objects, "
                  "rows, values and storage classes)")
    out.print("\nthe demo's files (kept; remove the folder when done):")
    out.print(f"  {escape(d.workdir)}")
    out.print(f"  {escape(d.database)}   the example database, legacy again")
    out.print(f"  {escape(d.backups)}   the backups and the history file")
