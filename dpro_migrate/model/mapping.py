"""Legacy table -> domain table: ddl/mapping.toml resolved against one legacy database."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp

from dpro_migrate.errors import BadInput
from dpro_migrate.model.legacy import LegacyDatabase, fold
from dpro_migrate.model.schema import Table, TargetSchema, ddl_dir

# Objects dpro-migrate itself creates; never reported as unknown legacy tables.
LEDGER_TABLE = "system.migration_ledger"
QUARANTINE_TABLE = "system.quarantine"


@dataclass(frozen=True)
class MoveRule:
    legacy: str
    target: str
    where: str | None = None
    otherwise: bool = False
    derive: tuple[tuple[str, str], ...] = ()  # (target column, SQLite expression on the legacy row)


@dataclass
class Mapping:
    moves: list[MoveRule]
    propose: dict[str, str]

    @property
    def legacy_tables(self) -> list[str]:
        return list(dict.fromkeys(m.legacy for m in self.moves))

    def rules_for(self, legacy: str) -> list[MoveRule]:
        return [m for m in self.moves if m.legacy == legacy]

    def proposed_domain(self, table: str) -> str | None:
        words = re.split(r"[^a-z0-9]+", table.lower())
        for word in words:
            for key, domain in self.propose.items():
                if word == key or word.rstrip("s") == key:
                    return domain
        return None


def load_mapping(path: str | Path | None = None) -> Mapping:
    path = Path(path) if path else ddl_dir() / "mapping.toml"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the mapping ({exc})") from None
    moves = []
    for m in data.get("move", []):
        derive = m.get("derive", {})
        if not isinstance(derive, dict) or not all(isinstance(v, str) and v.strip() for v in derive.values()):
            raise BadInput(f"{path}: `derive` of {m.get('legacy')} -> {m.get('target')} must map columns to SQLite expressions")
        moves.append(MoveRule(m["legacy"], m["target"], m.get("where"), m.get("otherwise", False), tuple(derive.items())))
    return Mapping(moves, data.get("propose", {}))


@dataclass
class Move:
    """Rows of one legacy table (filtered) into one domain table."""

    legacy: str
    target: str
    columns: list[str]  # legacy column names (as the target spells them); each lands in the target column of that name
    extra_columns: list[tuple[str, str]]  # (name, declared type): not in ddl/, ride along
    where: str | None  # SQLite expression on the legacy table; None = every row
    rows: int = 0
    # target columns the legacy row lacks -> a SQLite expression on the legacy row ("NULL" where a default
    # would otherwise invent a value); see ddl/mapping.toml `derive`
    derived: dict[str, str] = field(default_factory=dict)


@dataclass
class Resolution:
    moves: list[Move]
    missing_legacy: list[str]  # tables the mapping knows that this file lacks
    unknown_tables: dict[str, str | None]  # table -> proposed domain
    extra_columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def moves_from(self, legacy: str) -> list[Move]:
        return [m for m in self.moves if m.legacy == legacy]

    def moves_into(self, target: str) -> list[Move]:
        return [m for m in self.moves if m.target == target]

    @property
    def legacy_tables(self) -> list[str]:
        return list(dict.fromkeys(m.legacy for m in self.moves))


def _filters(rules: list[MoveRule]) -> dict[MoveRule, str | None]:
    if len(rules) == 1 and not rules[0].where:
        return {rules[0]: None}
    explicit = [r for r in rules if r.where]
    rest = [r for r in rules if r.otherwise]
    if len(rest) != 1 or len(explicit) + 1 != len(rules):
        raise BadInput(f"mapping for {rules[0].legacy}: a split needs `where` on every part but one `otherwise`")
    # (P) IS 1 takes a row only when P is true; NULL and false fall through to `otherwise`.
    out: dict[MoveRule, str | None] = {r: f"({r.where}) IS 1" for r in explicit}
    taken = " OR ".join(f"({r.where}) IS 1" for r in explicit)
    out[rest[0]] = f"NOT ({taken})"
    return out


def _reads(expression: str) -> set[str]:
    """The column names a SQLite expression reads (folded)."""
    try:
        tree = sqlglot.parse_one(expression, read="sqlite")
    except sqlglot.errors.ParseError as exc:
        raise BadInput(f"mapping: `derive` expression cannot be parsed: {expression[:60]} ({str(exc).splitlines()[0]})") from None
    return {fold(c.name) for c in tree.find_all(exp.Column)}


def derivations(rule: MoveRule, target: Table, legacy_columns: list[str]) -> dict[str, str]:
    """What each target column the legacy row lacks gets: its declared derivation when the row has every
    column it reads, else NULL when the column has a default (the default would invent a value). Columns
    without a default and without a derivation are left out: they are NULL anyway."""
    have = {fold(c) for c in legacy_columns}
    declared = dict(rule.derive)
    unknown = [c for c in declared if target.column(c) is None]
    if unknown:
        raise BadInput(f"mapping: {rule.legacy} -> {rule.target} derives {unknown[0]!r}, which {rule.target} does not have")
    out: dict[str, str] = {}
    for column in target.columns:
        if fold(column.name) in have or column.identity:
            continue
        expression = declared.get(column.name)
        if expression is not None and _reads(expression) <= have:
            out[column.name] = expression
        elif column.default is not None and column.nullable:
            out[column.name] = "NULL"
    return out


def resolve(legacy: LegacyDatabase, schema: TargetSchema, mapping: Mapping) -> Resolution:
    """Names are compared the way SQLite compares them: a file's Messages is the mapping's messages. Each move
    names the legacy table as the file spells it; its columns land in the target columns of the same name."""
    known = {fold(t) for t in mapping.legacy_tables}
    present = [t for t in mapping.legacy_tables if t in legacy.tables]
    own = {fold(t.replace(".", "_")) for t in schema.tables} | {fold(LEDGER_TABLE.replace(".", "_")), "alembic_version"}
    quarantine = fold(QUARANTINE_TABLE.replace(".", "_"))
    unknown = {
        name: mapping.proposed_domain(name)
        for name in legacy.tables
        if fold(name) not in known and fold(name) not in own and not fold(name).startswith(quarantine)
    }
    moves, extras = [], {}
    for name in present:
        table = legacy.tables[name]
        rules = mapping.rules_for(name)
        filters = _filters(rules)
        for rule in rules:
            target = schema.table(rule.target)
            canonical = {fold(c): c for c in target.column_names}
            extra = [(c.name, c.decl_type) for c in table.columns if fold(c.name) not in canonical]
            if extra:
                extras[table.name] = extra
            # spelled as the target spells it: SQLite finds EMAIL under "email", PostgreSQL only "email"
            columns = [canonical.get(fold(c), c) for c in table.column_names]
            derived = derivations(rule, target, table.column_names)
            moves.append(Move(table.name, rule.target, columns, extra, filters[rule], derived=derived))
    return Resolution(moves, [t for t in mapping.legacy_tables if t not in legacy.tables], unknown, extras)


def is_dpro_database(legacy: LegacyDatabase, mapping: Mapping) -> bool:
    known = [t for t in mapping.legacy_tables if t in legacy.tables]
    return "users" in legacy.tables and len(known) >= 4
