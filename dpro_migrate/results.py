"""What apply, rollback, verify, check and the dirty-data reports hand back, measured in the library and
rendered by the CLI (render.py, --json) and the HTML report alike, with one vocabulary of keys.

Every `to_json()` here uses the same names for the same things (README, "JSON output"):
`database` the database acted on (no password), `source` the legacy file, `seconds` wall time, `rows` a
count of rows (never of rule hits), `tables` per table (`legacy`, `target`, `rows`, `seconds`,
`rows_per_second`), `phases` per phase (`phase`, `seconds`, `operations`), `backup` a path, `quarantine`
(`where`, `tables`, `rows`), `next` the commands to run next, `ids` every id (JSON) of which the terminal
shows a sample.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

# The phase each plan operation kind belongs to, in the order apply runs them.
PHASE_OF_KIND = {
    "create_schema": "create tables", "create_table": "create tables", "create_partition": "create tables",
    "create_archive": "create tables", "create_quarantine": "create tables", "rename_table": "create tables",
    "quarantine_rows": "quarantine", "move_rows": "move rows", "copy_rows": "move rows",
    "keep_sequence": "sequences", "set_sequence": "sequences", "share_id_space": "sequences",
    "drop_legacy_table": "drop legacy objects", "drop_legacy_trigger": "drop legacy objects",
    "drop_legacy_view": "drop legacy objects", "recreate_view": "views", "create_compat_view": "views",
    "create_index": "indexes", "add_constraint": "keys and checks", "create_function": "triggers",
    "create_trigger": "triggers", "enable_rls": "security", "create_role": "security", "grant": "security",
}


def _rounded(seconds: float) -> float:
    return round(seconds, 3)


def rate(rows: int, seconds: float) -> int | None:
    """Rows per second, or None when too quick to measure (a rate of a millisecond says nothing)."""
    return int(rows / seconds) if seconds >= 0.001 and rows else None


@dataclass
class TableTiming:
    """One table's rows moved (apply), put back (rollback) or compared (verify), and how long it took."""

    legacy: str
    target: str
    rows: int
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> int | None:
        return rate(self.rows, self.seconds)

    def to_json(self) -> dict:
        return {"legacy": self.legacy, "target": self.target, "rows": self.rows, "seconds": _rounded(self.seconds),
                "rows_per_second": self.rows_per_second}


@dataclass
class PhaseTiming:
    phase: str
    seconds: float = 0.0
    operations: int = 0

    def to_json(self) -> dict:
        return {"phase": self.phase, "seconds": _rounded(self.seconds), "operations": self.operations}


@dataclass
class Timings:
    """Filled by a backend while it runs: per table and per phase, in the order they happened."""

    tables: list[TableTiming] = field(default_factory=list)
    phases: list[PhaseTiming] = field(default_factory=list)

    def add_phase(self, phase: str, seconds: float, operations: int = 0) -> None:
        for p in self.phases:
            if p.phase == phase:
                p.seconds += seconds
                p.operations += operations
                return
        self.phases.append(PhaseTiming(phase, seconds, operations))

    def add_table(self, legacy: str, target: str, rows: int, seconds: float) -> None:
        self.tables.append(TableTiming(legacy, target, rows, seconds))

    def operation(self, op, seconds: float, rows: int | None = None, *, backward: bool = False) -> None:
        """One plan operation ran (or its reverse, `backward`: rollback): its phase, and its table when it moved
        rows. `legacy` and `target` name the same tables either way; the verb says the direction."""
        self.add_phase(PHASE_OF_KIND.get(op.kind, op.kind.replace("_", " ")), seconds, 1)
        if getattr(op, "moves_rows", False) and rows is not None:
            self.add_table(getattr(op, "legacy", op.name), getattr(op, "target", op.name), rows, seconds)

    @contextmanager
    def timed(self, phase: str, operations: int = 0):
        started = time.monotonic()
        try:
            yield
        finally:
            self.add_phase(phase, time.monotonic() - started, operations)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_json(self) -> dict:
        return {"tables": [t.to_json() for t in self.tables], "phases": [p.to_json() for p in self.phases]}

    @classmethod
    def from_json(cls, data: dict) -> Timings:
        return cls([TableTiming(t["legacy"], t["target"], t["rows"], t["seconds"]) for t in data.get("tables") or []],
                   [PhaseTiming(p["phase"], p["seconds"], p.get("operations", 0)) for p in data.get("phases") or []])


@dataclass
class QuarantineReport:
    """Rows kept aside whole (apply --on-reject quarantine), per legacy table, and where they are."""

    where: str
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def to_json(self) -> dict:
        return {"where": self.where, "tables": dict(self.tables), "rows": self.rows}


# --- dirty data -----------------------------------------------------------------------------------


@dataclass
class RuleBreach:
    """Rows refused for a rule of their own (a root cause), with the rule in words and in SQL."""

    legacy: str
    target: str
    rule: str  # e.g. "check chk_tasks_priority_values"
    kind: str  # not_null | check | unique | foreign_key | type
    definition: str  # the rule in words
    sql: str  # the rule as the target declares it (CHECK (...), UNIQUE (...), ...)
    rows: int
    ids: list[int] = field(default_factory=list)
    find_sql: str = ""  # the SELECT, on the legacy file, that finds them

    def to_json(self, sample: int | None = None) -> dict:
        return {"legacy": self.legacy, "target": self.target, "rule": self.rule, "kind": self.kind,
                "definition": self.definition, "sql": self.sql, "rows": self.rows,
                "ids": self.ids[:sample] if sample else list(self.ids), "find_sql": self.find_sql}


@dataclass
class Cascade:
    """Rows refused only because the row they reference was refused ("168 messages because agents 2, 3")."""

    legacy: str
    target: str
    rule: str  # the foreign key
    parent: str  # the legacy table whose refused rows they reference
    parent_ids: list[int]
    rows: int
    ids: list[int] = field(default_factory=list)

    def to_json(self, sample: int | None = None) -> dict:
        return {"legacy": self.legacy, "target": self.target, "rule": self.rule, "parent": self.parent,
                "parent_ids": self.parent_ids[:sample] if sample else list(self.parent_ids), "rows": self.rows,
                "ids": self.ids[:sample] if sample else list(self.ids)}


@dataclass
class DirtyReport:
    """Every legacy row the target would refuse. `tables` counts rows (a row breaking two rules once);
    `rules` are the root causes, `cascades` the rows refused only because their parent was."""

    tables: dict[str, int] = field(default_factory=dict)  # legacy table -> distinct rows refused
    rules: list[RuleBreach] = field(default_factory=list)
    cascades: list[Cascade] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    @property
    def clean(self) -> bool:
        return not self.tables

    def to_json(self, sample: int | None = None) -> dict:
        return {"rows": self.rows, "tables": dict(self.tables), "rules": [r.to_json(sample) for r in self.rules],
                "cascades": [c.to_json(sample) for c in self.cascades]}

    @classmethod
    def from_json(cls, data: dict | None) -> DirtyReport:
        if not data:
            return cls()
        return cls(dict(data.get("tables") or {}),
                   [RuleBreach(**r) for r in data.get("rules") or []],
                   [Cascade(**c) for c in data.get("cascades") or []])


# --- the closing summary of apply, rollback and verify --------------------------------------------


@dataclass
class Summary:
    """What a DBA reads last: per table, per phase, totals, the backup, the quarantine, what to run next."""

    verb: str  # apply | rollback | verify
    database: str  # the database acted on (a path, or a URL without its password)
    source: str  # the legacy file
    ok: bool
    seconds: float
    timings: Timings = field(default_factory=Timings)
    backup: str | None = None
    quarantine: QuarantineReport | None = None
    next: list[str] = field(default_factory=list)
    note: str = ""  # one line: "already migrated", "not migrated: nothing to roll back"
    left_overs: list[str] = field(default_factory=list)  # partial backups of killed runs this run removed

    @property
    def rows(self) -> int:
        return self.timings.rows

    @property
    def rows_per_second(self) -> int | None:
        return rate(self.rows, self.seconds)

    def to_json(self) -> dict:
        return {"verb": self.verb, "database": self.database, "source": self.source, "ok": self.ok,
                "seconds": _rounded(self.seconds), "rows": self.rows, "rows_per_second": self.rows_per_second,
                **self.timings.to_json(), "backup": self.backup,
                "quarantine": self.quarantine.to_json() if self.quarantine else None, "next": list(self.next),
                "note": self.note, "left_overs": list(self.left_overs)}

    @classmethod
    def from_json(cls, data: dict) -> Summary:
        """A summary read back from a verb's --json (the HTML report reads them so)."""
        q = data.get("quarantine")
        return cls(data["verb"], data["database"], data["source"], data["ok"], data["seconds"], Timings.from_json(data),
                   data.get("backup"), QuarantineReport(q["where"], dict(q["tables"])) if q else None,
                   list(data.get("next") or []), data.get("note") or "", list(data.get("left_overs") or []))


def differing_columns(conflict: dict) -> list[str]:
    """A write-back conflict (rollback's error details): the columns whose values differ between the source's
    row and PostgreSQL's, never the values themselves (a user's password hash, mail, messages)."""
    pg, src = conflict.get("postgresql") or {}, conflict.get("source") or {}
    if not (pg and src):
        return ["(the row is gone on one side)"]
    return [k for k in {**pg, **src} if pg.get(k) != src.get(k)]
