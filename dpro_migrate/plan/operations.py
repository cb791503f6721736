"""Typed plan operations: what `plan` writes, `apply` runs, `verify` checks and `rollback` inverts.

Each operation is one class (as Django's migration operations are): its SQL for the plan's dialect,
rendered when the plan is made so the reviewer reads exactly what runs; its reverse; a one-line
description; and the objects it promises verify will find. Executors never look inside an operation:
they hand it a runner (`Runner`), and the operation says what to run on it.

The plan's JSON names each operation by its `kind`; `operation_from_dict` refuses anything that is not
exactly one of the registered kinds with fields of the declared types, so a hand-edited plan is a
one-line error, never a traceback halfway through an apply.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from dpro_migrate.errors import BadInput
from dpro_migrate.model.promise import Promise

OPERATIONS: dict[str, type[Operation]] = {}


class Runner(Protocol):
    """What a backend offers an operation while a plan runs (see backends/)."""

    renumbered: int  # rows a move back had to give new ids

    def execute(self, statements: list[str]) -> int:
        """Run each statement; the rows they changed."""

    def copy(self, copy_sql: str, source_sql: str) -> int:
        """COPY the lines `source_sql` selects from the SQLite source; the rows copied."""

    def refuse(self, once: list[str], repeat: list[str], tables: list[str]) -> dict[str, int]:
        """Run the refusal SQL (repeat until nothing cascades); rows refused per legacy table."""


@dataclass
class Operation:
    kind: ClassVar[str] = ""
    symbol: ClassVar[str] = "+"  # + adds, - removes, ~ alters, > moves rows (as Django's makemigrations prints)
    what: ClassVar[str] = ""  # "table", "index": for describe()
    moves_rows: ClassVar[bool] = False

    name: str
    sql: list[str]
    reverse: list[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            OPERATIONS[cls.kind] = cls

    def describe(self) -> str:
        return f"{self.symbol} {self.what} {self.name}"

    def promises(self) -> list[Promise]:
        return []

    def forward(self, runner: Runner) -> int:
        return runner.execute(self.sql)

    def backward(self, runner: Runner) -> int:
        return runner.execute(self.reverse)

    def script(self) -> list[str]:
        """What `plan --sql` prints for this operation: a label, then exactly the statements apply runs."""
        return [f"-- {self.describe()}", *(_terminated(s) for s in self.sql)] if self.sql else []

    def reverse_script(self) -> list[str]:
        return [f"-- undo: {self.describe()}", *(_terminated(s) for s in self.reverse)] if self.reverse else []

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


def _terminated(statement: str) -> str:
    text = statement.rstrip()
    return text if text.endswith(";") else text + ";"


# --- schemas and tables -------------------------------------------------------------------------


@dataclass
class CreateSchema(Operation):
    kind = "create_schema"
    what = "schema"

    def promises(self) -> list[Promise]:
        return [Promise("schema", self.name)]


@dataclass
class CreateTable(Operation):
    """A domain table (ddl/ or, with `new`, ddl/new/). `partition_months`: created partitioned by month."""

    kind = "create_table"
    what = "table"
    table: str = ""  # qualified: iam.users
    extra_columns: list[list[str]] = field(default_factory=list)  # [name, legacy declared type]: ride along
    new: bool = False
    partition_months: list[str] | None = None

    def promises(self) -> list[Promise]:
        return [Promise("table", self.name)]


@dataclass
class CreatePartition(Operation):
    kind = "create_partition"
    what = "partition"
    parent: str = ""
    month: str | None = None  # first day of the month; None: the DEFAULT partition

    def promises(self) -> list[Promise]:
        return [Promise("table", self.name)]


@dataclass
class CreateArchive(Operation):
    """The archive beside a live table (seed 000). On SQLite its reverse moves archived rows back first."""

    kind = "create_archive"
    what = "archive table"
    table: str = ""  # qualified archive: communication.messages_archive
    archive_of: str = ""
    extra_columns: list[list[str]] = field(default_factory=list)

    def promises(self) -> list[Promise]:
        return [Promise("table", self.name)]


@dataclass
class RenameTable(Operation):
    """SQLite: a domain table built under a staging name takes its own once the legacy table is gone."""

    kind = "rename_table"
    symbol = "~"
    what = "rename to"
    table: str = ""


@dataclass
class CreateQuarantine(Operation):
    kind = "create_quarantine"
    what = "quarantine table"

    def promises(self) -> list[Promise]:
        return [Promise("table", self.name)]


# --- rows ---------------------------------------------------------------------------------------


@dataclass
class RowMove(Operation):
    """Rows of one legacy table (filtered by `where`) into one domain table, under the same column names."""

    symbol = ">"
    moves_rows = True
    legacy: str = ""
    target: str = ""  # qualified
    columns: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    where: str | None = None
    # target columns the legacy row lacks -> the SQLite expression on the legacy row that fills them (NULL
    # rather than a default that would invent a value); ddl/mapping.toml `derive`
    derived: dict[str, str] = field(default_factory=dict)

    @property
    def written_columns(self) -> list[str]:
        """Every target column the move writes: the legacy columns, then the derived ones."""
        return [*self.columns, *self.derived]

    def describe(self) -> str:
        rule = f" where {self.where}" if self.where else ""
        derived = "; ".join(f"{c} = {e}" for c, e in self.derived.items())
        return f"> move rows {self.legacy} -> {self.target}{rule}" + (f" (derived: {derived})" if derived else "")


@dataclass
class MoveRows(RowMove):
    """SQLite in place: INSERT .. SELECT; the reverse moves the rows back, and `renumber` gives a new id to a
    row whose id a later part of the split already put back (both written after the cutover)."""

    kind = "move_rows"
    renumber: list[str] = field(default_factory=list)

    def backward(self, runner: Runner) -> int:
        rows = runner.execute(self.reverse)
        renumbered = runner.execute(self.renumber)
        runner.renumbered += renumbered
        return rows + renumbered

    def reverse_script(self) -> list[str]:
        return super().reverse_script() + [_terminated(s) for s in self.renumber]


@dataclass
class CopyRows(RowMove):
    """PostgreSQL: COPY fed by a query on the SQLite source that converts every value as declared."""

    kind = "copy_rows"
    types: dict[str, str] = field(default_factory=dict)  # column -> PostgreSQL type
    conversions: dict[str, str] = field(default_factory=dict)  # column -> what the conversion does
    source_sql: str = ""  # SELECT "id", line: one CSV line per row, built by SQLite

    def forward(self, runner: Runner) -> int:
        return runner.copy(self.sql[0], self.source_sql)

    def script(self) -> list[str]:
        lines = [f"-- {self.describe()}", f"-- rows: read from the SQLite source with: {self.source_sql};"]
        lines += [f"--   {c}: {what}" for c, what in self.conversions.items()]
        return lines + [_terminated(s) for s in self.sql]


@dataclass
class QuarantineRows(Operation):
    """Rows the target would refuse: the refusal SQL finds them (foreign keys repeated until nothing more
    cascades), then `sql` keeps them out of the target. SQLite: they are copied out of their legacy table
    whole. PostgreSQL: `sql` is a COPY into system.quarantine, fed per table by `source_sql`."""

    kind = "quarantine_rows"
    symbol = "~"
    what = "quarantine rows of"
    tables: list[str] = field(default_factory=list)
    refusal_once: list[str] = field(default_factory=list)
    refusal_repeat: list[str] = field(default_factory=list)
    source_sql: dict[str, str] = field(default_factory=dict)  # PostgreSQL: legacy table -> its lines

    def forward(self, runner: Runner) -> int:
        refused = runner.refuse(self.refusal_once, self.refusal_repeat, self.tables)
        if self.source_sql:
            for lines in self.source_sql.values():
                runner.copy(self.sql[0], lines)
        else:
            runner.execute(self.sql)
        return sum(refused.values())

    def script(self) -> list[str]:
        lines = [f"-- {self.describe()}", *(_terminated(s) for s in self.refusal_once)]
        if self.refusal_repeat:
            lines.append("-- repeated until they add no row (refusals cascade along foreign keys):")
            lines += [_terminated(s) for s in self.refusal_repeat]
        for table, source in self.source_sql.items():
            lines.append(f"-- {table}: quarantined rows read from the SQLite source with: {source};")
        return lines + [_terminated(s) for s in self.sql]


@dataclass
class KeepSequence(Operation):
    """SQLite: nothing forward; the reverse puts the legacy AUTOINCREMENT counter back."""

    kind = "keep_sequence"
    symbol = "~"
    what = "keep the AUTOINCREMENT counter of"
    legacy: str = ""
    targets: list[str] = field(default_factory=list)


@dataclass
class SetSequence(Operation):
    kind = "set_sequence"
    symbol = "~"
    what = "continue the id counter of"
    table: str = ""  # qualified
    legacy: str | None = None
    legacy_sequence: int | None = None


@dataclass
class ShareIdSpace(Operation):
    """The parts of a split legacy table hand out ids from one space: an id either part gives is never used by
    another, so the compatibility view never shows two rows with one id and rollback never renumbers. SQLite:
    a trigger per part keeps every other part's AUTOINCREMENT counter at least at the id it just wrote.
    PostgreSQL: the parts' ids default to one shared sequence instead of an identity each."""

    kind = "share_id_space"
    symbol = "~"
    what = "one id space for"
    tables: list[str] = field(default_factory=list)  # qualified
    triggers: list[str] = field(default_factory=list)  # SQLite: the triggers that keep the counters level
    sequence: str | None = None  # PostgreSQL: the shared sequence, qualified (iam.activity_logs_id_seq)

    def describe(self) -> str:
        return f"~ one id space for {self.name}: {', '.join(self.tables)}"

    def promises(self) -> list[Promise]:
        return [Promise("trigger", t) for t in self.triggers]


# --- legacy objects -----------------------------------------------------------------------------


@dataclass
class DropLegacyTable(Operation):
    kind = "drop_legacy_table"
    symbol = "-"
    what = "drop legacy table"
    rows: int = 0


@dataclass
class DropLegacyTrigger(Operation):
    kind = "drop_legacy_trigger"
    symbol = "-"
    what = "drop legacy trigger"
    table: str | None = None


@dataclass
class DropLegacyView(Operation):
    kind = "drop_legacy_view"
    symbol = "-"
    what = "drop legacy view"
    table: str | None = None


@dataclass
class RecreateView(Operation):
    """A legacy view carried over onto the domain tables."""

    kind = "recreate_view"
    symbol = "~"
    what = "carry over view"
    legacy_sql: str = ""


@dataclass
class CreateCompatView(Operation):
    """A view with a legacy table's name and columns over its domain tables, until `finalize`. `writable`: its
    INSTEAD OF triggers follow the CREATE VIEW in `sql` (dropped with the view)."""

    kind = "create_compat_view"
    what = "compatibility view"
    writable: bool = False

    def describe(self) -> str:
        return super().describe() + (" (writable)" if self.writable else "")


# --- indexes, constraints, triggers, security ---------------------------------------------------


@dataclass
class CreateIndex(Operation):
    kind = "create_index"
    what = "index"
    table: str = ""
    unique: bool = False
    partial: bool = False
    new: bool = False

    def promises(self) -> list[Promise]:
        return [Promise("index", self.name)]


@dataclass
class AddConstraint(Operation):
    kind = "add_constraint"
    what = "constraint"
    table: str = ""
    constraint: str = ""  # primary_key | unique | check | foreign_key
    columns: list[str] = field(default_factory=list)
    new: bool = False

    def describe(self) -> str:
        return f"+ {self.constraint.replace('_', ' ')} {self.name} on {self.table}"

    def promises(self) -> list[Promise]:
        return [Promise("constraint", self.name)]


@dataclass
class CreateFunction(Operation):
    kind = "create_function"
    what = "function"

    def promises(self) -> list[Promise]:
        return [Promise("function", self.name)]


@dataclass
class CreateTrigger(Operation):
    kind = "create_trigger"
    what = "trigger"
    table: str | None = None

    def promises(self) -> list[Promise]:
        return [Promise("trigger", self.name)]


@dataclass
class EnableRowLevelSecurity(Operation):
    kind = "enable_rls"
    symbol = "~"
    what = "row-level security on"
    table: str = ""
    policy: str = ""
    setting: str = ""
    force: bool = False


@dataclass
class CreateRole(Operation):
    """A role the application is granted through (--with app-roles). Roles belong to the whole server: apply
    creates it only when absent, and its reverse drops it only when dpro-migrate made it and nothing uses it."""

    kind = "create_role"
    what = "role"


@dataclass
class GrantPrivileges(Operation):
    """The privileges a role gets on what the plan creates; they go with the objects when rollback drops them."""

    kind = "grant"
    symbol = "~"
    what = "privileges for"
    role: str = ""


@dataclass
class CreateMonitoringView(Operation):
    """A view over the catalog's statistics for the DBA (--with monitoring-views), qualified (system.x)."""

    kind = "create_monitoring_view"
    what = "monitoring view"

    def promises(self) -> list[Promise]:
        return [Promise("view", self.name)]


@dataclass
class CreateSearchIndex(Operation):
    """The index behind the application's `column LIKE '%...%'` (ddl/search.toml): PostgreSQL a GIN trigram index,
    SQLite an FTS5 trigram table kept in sync by triggers (dialects/)."""

    kind = "create_search_index"
    what = "search index"
    table: str = ""  # qualified, the searched table
    column: str = ""
    tables: list[str] = field(default_factory=list)  # what it creates beyond the index (SQLite: the FTS tables)
    triggers: list[str] = field(default_factory=list)
    index: str | None = None

    def describe(self) -> str:
        return f"+ search index {self.name} on {self.table}.{self.column}"

    def promises(self) -> list[Promise]:
        return ([Promise("table", self.tables[0])] if self.tables else []) + [Promise("trigger", t) for t in self.triggers] \
            + ([Promise("index", self.index)] if self.index else [])


@dataclass
class Analyze(Operation):
    """Statistics for every table the plan created, last, so the first query after the cutover gets a good plan
    (SQLite: one ANALYZE per table, which keeps the legacy statistics rows set aside for rollback; a whole-file
    ANALYZE would clear them. PostgreSQL: inside apply's transaction). The reverse drops the statistics tables
    ANALYZE created in a file that had none, so rollback gives back the file as it was."""

    kind = "analyze"
    symbol = "~"
    what = "statistics for"
    tables: list[str] = field(default_factory=list)  # qualified

    def describe(self) -> str:
        return f"~ statistics (ANALYZE) for {len(self.tables)} tables"


# --- (de)serialisation --------------------------------------------------------------------------


def operation_from_dict(data: Any, where: str) -> Operation:
    """One operation from the plan's JSON, checked field by field against its class."""
    if not isinstance(data, dict):
        raise BadInput(f"{where}: is not an operation (an object with a kind)")
    kind = data.get("kind")
    cls = OPERATIONS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BadInput(f"{where}: unknown operation kind {kind!r}")
    hints = typing.get_type_hints(cls)
    declared = {f.name: f for f in dataclasses.fields(cls)}
    given = {k: v for k, v in data.items() if k != "kind"}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise BadInput(f"{where} ({kind}): unknown field {unknown[0]!r}")
    for name, f in declared.items():
        if name not in given:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BadInput(f"{where} ({kind}): field {name!r} is missing")
            continue
        if not _is_a(given[name], hints[name]):
            raise BadInput(f"{where} ({kind}): field {name!r} is not a {_type_name(hints[name])}")
    return cls(**given)


def _is_a(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_is_a(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_is_a(k, args[0]) and _is_a(v, args[1]) for k, v in value.items())
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "")
