"""What verify reports: checks, row counts per move, and the accounting every legacy row must satisfy."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from dpro_migrate.compare import attach_readonly
from dpro_migrate.model.legacy import connect_readonly, fingerprint, schema_fingerprint
from dpro_migrate.sqlnames import quote_ident

SAMPLE = 10


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""
    items: list = field(default_factory=list)


@dataclass
class MoveCount:
    legacy: str
    target: str
    source_rows: int
    matched: int
    missing_or_different: int  # written by apply otherwise than the source holds, or never written
    added_after_cutover: int
    changed_after_cutover: int = 0
    deleted_after_cutover: int = 0
    seconds: float = 0.0  # how long the comparison of this move took


@dataclass
class VerifyReport:
    """`source`: the legacy file (the plan's); `database`: the database verified (a path, or the URL without its
    password), as in every verb's JSON (results.py)."""
    source: str
    backup: str | None
    checks: list[Check]
    counts: list[MoveCount]
    history_error: str | None = None
    seconds: float = 0.0
    quarantined: dict[str, int] = field(default_factory=dict)  # legacy table -> rows found in quarantine
    left_overs: list[str] = field(default_factory=list)  # partial backups of killed runs removed (partial_files)
    database: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def unaccounted(per_legacy: dict[str, int], quarantined: dict[str, int], total_rows) -> list[str]:
    """Legacy tables whose rows do not add up: rows placed per legacy table (all its moves) plus rows in
    quarantine must equal its rows in the source; `total_rows(table)` counts those."""
    placed = dict(quarantined)
    for name, n in per_legacy.items():
        placed[name] = placed.get(name, 0) + n
    wrong = []
    for name, n in placed.items():
        total = total_rows(name)
        if n != total:
            wrong.append(f"{name}: {n} of {total}")
    return wrong


def per_legacy(pairs) -> dict[str, int]:
    """Sum (legacy table, rows) pairs per legacy table: the parts of a split add up."""
    out: dict[str, int] = {}
    for legacy, n in pairs:
        out[legacy] = out.get(legacy, 0) + n
    return out


def accounting_check(counts: list["MoveCount"], quarantined: dict[str, int], total_rows) -> Check:
    placed = ((c.legacy, c.matched + c.changed_after_cutover + c.deleted_after_cutover) for c in counts)
    wrong = unaccounted(per_legacy(placed), quarantined, total_rows)
    detail = f"{sum(quarantined.values())} rows in quarantine" if quarantined else "no quarantine"
    return Check("source rows = target rows + quarantined rows", not wrong, "; ".join(wrong) or detail, wrong)


def promises_check(plan, present: set) -> Check:
    """Every object the plan's operations promise is in the database's own catalog."""
    promised = plan.promises()
    missing = [f"{p.kind} {p.name}" for p in promised if p not in present]
    return Check("promised objects exist", not missing, f"{len(promised) - len(missing)} of {len(promised)} present",
                 missing)


def move_check(name: str, count: MoveCount, sample: list, strict: bool) -> Check:
    """A move holds when every legacy row is in place as apply wrote it, or was changed after the cutover by
    the application (reported; a failure only under --strict)."""
    since = {"changed": count.changed_after_cutover, "deleted": count.deleted_after_cutover,
             "added": count.added_after_cutover}
    after = ", ".join(f"{n} {what} after the cutover" for what, n in since.items() if n)
    ok = count.missing_or_different == 0 and not (strict and any(since.values()))
    detail = f"{count.matched} of {count.source_rows} legacy rows present value for value" + (f", {after}" if after else "")
    return Check(name, ok, detail, [{"legacy_id": i} for i in sample])


def source_since_snapshot(source, snapshot, tables: list[str]) -> Check:
    """Rows written to the source after apply's snapshot: not in the target, and kept by rollback."""
    conn = connect_readonly(source)
    try:
        attach_readonly(conn, snapshot, "snap")
        if schema_fingerprint(conn) != fingerprint(conn.execute(
                "SELECT type, name, tbl_name, sql FROM snap.sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()):
            # not apply's doing, and the rows cannot be set side by side: said as what it is
            return Check("source since the snapshot", True,
                         "the source's schema changed since the snapshot (fingerprint differs): its rows are not "
                         "compared; rollback --write-back refuses until the schema is as apply read it")
        changed = {}
        for name in tables:
            q = quote_ident(name)
            n = conn.execute(f"SELECT (SELECT count(*) FROM (SELECT * FROM main.{q} EXCEPT SELECT * FROM snap.{q})) + "
                             f"(SELECT count(*) FROM (SELECT * FROM snap.{q} EXCEPT SELECT * FROM main.{q}))").fetchone()[0]
            if n:
                changed[name] = n
    except sqlite3.Error as exc:
        return Check("source since the snapshot", False, f"cannot compare the source with the snapshot: {exc}")
    finally:
        conn.close()
    detail = ("unchanged" if not changed else "written after the snapshot (not in the target; rollback keeps them): "
              + ", ".join(f"{t} {n} rows" for t, n in changed.items()))
    return Check("source since the snapshot", True, detail, [changed] if changed else [])
