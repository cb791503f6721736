"""Rich rendering of library results for the terminal (CLI layer only), and JSON for --json."""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dpro_migrate.plan.operations import CreateTable

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value) -> None:
    # print() not rich: one JSON document, nothing mixed in, no wrapping.
    print(json.dumps(_plain(value), indent=2, ensure_ascii=False, default=str))


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


def inspect_report(r) -> None:
    out.print(f"[bold]{r.path}[/]  {r.state}, {r.size_bytes:,} bytes, schema {r.fingerprint[:19]}")
    t = Table("legacy table", "rows", "columns", "goes to", "extra columns")
    for tb in r.tables:
        goes = ", ".join(tb.maps_to) or ("[yellow]unknown: stays[/]" if tb.name in r.unknown_tables else "")
        t.add_row(tb.name, f"{tb.rows:,}", str(len(tb.columns)), goes, ", ".join(tb.extra_columns))
    out.print(t)
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
    findings_table(r.findings)


def pg_restore_result(r) -> None:
    if r.previous:
        out.print(f"what {escape(r.target)} held of them is kept in [bold]{escape(str(r.previous.path))}[/]")
    out.print(f"restored schemas {', '.join(r.schemas)} of {escape(r.target)} from {escape(str(r.backup))} in "
              f"{r.seconds:.2f}s: {sum(r.tables.values()):,} rows in {len(r.tables)} tables, as the dump holds them")


def error_details(details) -> None:
    """What stands behind an error (rules broken, rows stranded), as a table on stderr."""
    if isinstance(details, dict) and details.get("outside_dependents"):
        return  # the message lists them already, one line each
    rows = details.get("findings") or details.get("foreign_key_violations") if isinstance(details, dict) else None
    if rows:
        t = Table(*rows[0].keys())
        for r in rows[:50]:
            t.add_row(*(str(v) for v in r.values()))
        err.print(t)
    else:
        err.print(escape(json.dumps(_plain(details), default=str)[:2000]))


def findings_table(findings: list[dict]) -> None:
    """Rows the target would refuse: a sample of ids here, every id in --json and in the plan file."""
    if not findings:
        return
    t = Table("legacy table", "rule broken", "rows", "ids (sample)", title="rows the target would refuse")
    for f in findings:
        t.add_row(f["legacy"], f["rule"], f"{f['count']:,}", ", ".join(map(str, f["ids"][:5])) + (" ..." if f["count"] > 5 else ""))
    out.print(t)


def plan_summary(plan, path: Path | None) -> None:
    counts = {}
    for op in plan.operations:
        counts[op.kind] = counts.get(op.kind, 0) + 1
    t = Table("operation", "count")
    for k, n in counts.items():
        t.add_row(k, str(n))
    out.print(t)
    m = Table("legacy table", "rows", "domain table", "filter", "riding along")
    for move in plan.moves:
        m.add_row(move.legacy, f"{plan.legacy_tables[move.legacy]['rows']:,}", move.target,
                  move.where or "", ", ".join(move.extra_columns))
    out.print(m)
    for name, domain in plan.unknown_tables.items():
        out.print(f"[yellow]unknown table {escape(name)}: left untouched[/]" + (f" (looks like {domain})" if domain else ""))
    findings_table(plan.preflight.get("findings", []))
    if plan.preflight.get("findings"):
        out.print(f"on reject: [bold]{plan.on_reject}[/]" + (" (apply will refuse; --on-reject quarantine keeps them aside)"
                                                            if plan.on_reject == "fail" else ""))
    if path:
        out.print(f"plan written to [bold]{path}[/]; review it, then `dpro-migrate apply {path}`")


def backup_result(b) -> None:
    if b is None:  # a PostgreSQL apply/rollback with nothing to back up
        return
    if hasattr(b, "database_tables"):  # a pg_dump: it holds the whole database; counted in its own snapshot
        kept = (f"the schemas replaced ({', '.join(b.schemas)}): {sum(b.tables.values()):,} rows in {len(b.tables)} "
                "tables, counted in the dump's snapshot" if b.schemas else "no schema replaced")
        out.print(f"backup [bold]{escape(str(b.path))}[/] ({b.bytes:,} bytes, pg_dump of the whole database, "
                  f"{b.database_tables:,} tables): {kept}")
        return
    out.print(f"backup [bold]{b.path}[/] ({b.bytes:,} bytes): integrity {b.integrity}, "
              f"{sum(b.tables.values()):,} rows in {len(b.tables)} tables match the source")


def apply_result(plan, r) -> None:
    if r.already_migrated:
        out.print(f"already migrated (applied {r.applied_at}); nothing changed")
        return
    backup_result(r.backup)
    out.print(f"applied {len(plan.operations)} operations in {r.seconds:.2f}s: "
              f"{sum(r.rows_moved.values()):,} rows moved into {len(plan.of_type(CreateTable))} domain tables")


def verify_report(r) -> None:
    t = Table("check", "result", "detail")
    for c in r.checks:
        t.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAILED[/]", c.detail)
    out.print(t)
    for c in r.failures:
        if c.items:
            out.print(f"[red]{c.name}[/]: " + ", ".join(map(str, c.items[:10])))
    out.print("[green]verified: every legacy row is in place[/]" if r.ok else "[red]verification failed[/]")


def drift_report(differences) -> None:
    basis = getattr(differences, "basis", "") or "ddl/"
    if not differences:
        out.print(f"[green]no drift[/]: compared with {escape(basis)}")
        return
    out.print(f"compared with {escape(basis)}")
    t = Table("kind", "object", "detail", title=f"{len(differences)} differences")
    for d in differences:
        t.add_row(d.kind, escape(d.object), escape(d.detail or ""))
    out.print(t)


def rollback_result(r) -> None:
    if r.nothing_to_do:
        out.print("not migrated: nothing to roll back")
        return
    backup_result(r.backup)
    for table, n in r.changes.items():
        out.print(f"written back to {escape(table)}: {n['inserted']:,} inserted, {n['updated']:,} updated, "
                  f"{n['deleted']:,} deleted" + (f", {n['renumbered']:,} under a new id" if n["renumbered"] else ""))
    if r.conflicts:
        out.print(f"[yellow]{len(r.conflicts)} rows changed on both sides were settled by --on-conflict[/]")
    if r.schemas_restored:
        out.print(f"the schemas apply replaced are back from its pg_dump: {sum(r.schemas_restored.values()):,} rows in "
                  f"{len(r.schemas_restored)} tables")
    out.print(f"rolled back in {r.seconds:.2f}s: {sum(r.rows_restored.values()):,} rows back in "
              f"{len(r.rows_restored)} legacy tables" + (f", {r.renumbered} renumbered" if r.renumbered else ""))


def status_report(r) -> None:
    out.print(f"[bold]{r.path}[/]: {r.state}")
    if r.history:
        t = Table("#", "action", "at", "version", "backup")
        for h in r.history:
            t.add_row(str(h["id"]), h["action"], h["at"], h["tool_version"], h["backup"] or "")
        out.print(t)
    if r.history_file:
        colour = {"ok": "green", "refused": "yellow"}
        t = Table("time", "verb", "target", "outcome", "counts", "backup", "message",
                  title=f"history: {escape(r.history_path or '')}")
        for h in r.history_file:
            outcome = h.get("outcome") or ""
            counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" if isinstance(v, int) else f"{k} {v}"
                              for k, v in (h.get("counts") or {}).items())
            t.add_row(h.get("time") or "", h.get("verb") or "", escape(h.get("target") or ""),
                      f"[{colour.get(outcome, 'red')}]{escape(outcome)}[/]", counts, escape(Path(h.get("backup") or "").name),
                      escape(h.get("message") or ""))
        out.print(t)
    elif r.history_path:
        out.print(f"no history yet in {escape(r.history_path)}")


def demo_result(d) -> None:
    out.print(f"[bold]demo[/] in {d.workdir}: generated {sum(d.generated.values()):,} legacy rows")
    inspect_report(d.inspect)
    apply_result(d.plan, d.apply)
    verify_report(d.verify)
    rollback_result(d.rollback)
    if d.differences_after_rollback:
        out.print("[red]after rollback the file differs from the original:[/] " + "; ".join(d.differences_after_rollback))
    else:
        out.print("[green]after rollback the file is logically identical to the original[/]")
