"""What verify reports: checks, row counts per move, and the accounting every legacy row must satisfy."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    missing_or_different: int
    added_after_cutover: int


@dataclass
class VerifyReport:
    source: str
    backup: str | None
    checks: list[Check]
    counts: list[MoveCount]

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
    wrong = unaccounted(per_legacy((c.legacy, c.matched) for c in counts), quarantined, total_rows)
    detail = f"{sum(quarantined.values())} rows in quarantine" if quarantined else "no quarantine"
    return Check("source rows = target rows + quarantined rows", not wrong, "; ".join(wrong) or detail, wrong)


def promises_check(plan, present: set) -> Check:
    """Every object the plan's operations promise is in the database's own catalog."""
    promised = plan.promises()
    missing = [f"{p.kind} {p.name}" for p in promised if p not in present]
    return Check("promised objects exist", not missing, f"{len(promised) - len(missing)} of {len(promised)} present",
                 missing)
