"""Find, before anything changes, every legacy row the target would refuse: set-based SQL on the source.

One rule per NOT NULL column, CHECK, UNIQUE, foreign key and (for PostgreSQL) type conversion.
Each rule is a SELECT of the offending ids, run by SQLite over the whole table at once. Foreign keys
cascade: a row whose parent is refused is refused too (its reference would dangle), computed to a
fixpoint, so what is left always satisfies every rule.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace

from dpro_migrate.errors import ChecksFailed
from dpro_migrate.model.legacy import fold
from dpro_migrate.model.mapping import Move, Resolution
from dpro_migrate.model.schema import TargetSchema
from dpro_migrate.dialects import POSTGRES, SQLITE, expression_sql
from dpro_migrate.results import Cascade, DirtyReport, RuleBreach
from dpro_migrate.sqlnames import column_list, quote_ident, quote_literal
from dpro_migrate.types import sqlite_functions, type_class_of_pg, varchar_length

REFUSED = "temp.dpro_refused"  # (source_table, source_pk, rule): the ids found so far, during one run


@dataclass
class Rule:
    kind: str  # not_null | check | unique | foreign_key | type
    name: str  # e.g. "check chk_users_email_format"
    legacy: str
    target: str
    ids_sql: str  # SELECT "id" ... of the offending rows (foreign keys read REFUSED for cascades)
    outcomes: list[str] = field(default_factory=list)  # the names its rows are recorded under, if not `name`
    definition: str = ""  # the rule in words, for the DBA
    sql: str = ""  # the rule as the target declares it
    column: str | None = None  # foreign keys: the referencing column
    parents: list[str] = field(default_factory=list)  # foreign keys: the legacy tables of the referenced rows
    explained: dict[str, tuple[str, str]] = field(default_factory=dict)  # type rules: outcome -> (words, sql)

    @property
    def recorded_as(self) -> list[str]:
        return self.outcomes or [self.name]


@dataclass
class Finding:
    rule: str
    kind: str
    legacy: str
    target: str
    count: int
    ids: list[int] = field(default_factory=list)


@dataclass
class PreflightReport:
    findings: list[Finding]
    refused_rows: dict[str, int]  # legacy table -> distinct rows refused
    dirty: DirtyReport = field(default_factory=DirtyReport)  # root causes and cascades, explained

    @property
    def clean(self) -> bool:
        return not self.findings


def _rows(move: Move, condition: str) -> str:
    """FROM .. WHERE: the rows of the legacy table that this move takes and for which `condition` holds. Read
    from the table itself, never through a subquery: SQLite 3.40 does not resolve a column named true or false
    ("True") through `(SELECT * FROM t)` (it reads the string), so a rule there would pass any value."""
    taken = f"({move.where}) AND " if move.where else ""
    return f"FROM {quote_ident(move.legacy)} WHERE {taken}({condition})"


def without_refused(move: Move, refused: str) -> Move:
    """The move, less the rows recorded in `refused` (the quarantine, or REFUSED while the plan runs)."""
    keep = f"\"id\" NOT IN (SELECT source_pk FROM {refused} WHERE source_table = {quote_literal(move.legacy)})"
    return replace(move, where=f"({move.where}) AND {keep}" if move.where else keep)


def _type_ok(column: str, pg_type: str) -> str:
    """A SQLite predicate: the value converts to the PostgreSQL type without changing (its type class's)."""
    return type_class_of_pg(pg_type).preflight_ok(column, varchar_length(pg_type))


# What each type class accepts, in words (types.py's preflight predicates say it in SQL).
_ACCEPTED = {
    "bigint": "an integer, stored as one (not text such as '12abc', not a fraction)",
    "double": "a number, stored as one (not text)",
    "boolean": "0 or 1 (not 'yes', 'true' or 2)",
    "timestamptz": "text written exactly YYYY-MM-DD HH:MM:SS, a real date and time, read as UTC (not a date "
                   "alone, not 2024/01/05 or a T between, not an epoch number)",
    "jsonb": "text that parses as JSON, without \\u0000",
    "text": "text (or a number, taken as its text) without NUL bytes, not a blob",
    "bytea": "a blob",
}


def _type_rule(move: Move, types: dict[str, str]) -> Rule:
    """All type conversions of one move in one scan; a row is reported under the first column that fails."""
    checks = [(f"type {move.target}.{col} {pg_type.lower()}", _type_ok(col, pg_type))
              for col, pg_type in types.items()]
    which = " ".join(f"WHEN NOT {ok} THEN {quote_literal(name)}" for name, ok in checks)
    every = " AND ".join(ok for _, ok in checks)
    explained = {f"type {move.target}.{col} {pg_type.lower()}":
                 (f"{col} must convert to PostgreSQL {pg_type.lower()} without any change to its value: "
                  + _ACCEPTED.get(type_class_of_pg(pg_type).name, "a value of that type")
                  + (f", at most {varchar_length(pg_type)} characters" if varchar_length(pg_type) else ""),
                  f"{quote_ident(col)} {pg_type.lower()}")
                 for col, pg_type in types.items()}
    return Rule("type", f"types {move.target}", move.legacy, move.target,
                f"SELECT \"id\", CASE {which} END AS rule {_rows(move, f'NOT ({every})')}",
                outcomes=[name for name, _ in checks], explained=explained)


def build_rules(schema: TargetSchema, res: Resolution, types: dict[str, dict[str, str]] | None = None) -> list[Rule]:
    """Every rule of the target, as SQL on the source. `types` (move name -> column -> PostgreSQL type)
    adds the type-conversion rules of a PostgreSQL target."""
    rules: list[Rule] = []
    fks: list[Rule] = []
    for move in res.moves:
        table = schema.table(move.target)
        moved = {fold(c) for c in move.columns}  # SQLite column names are case-insensitive too
        for col in table.columns:
            if not col.nullable and fold(col.name) in moved and not col.identity:
                rules.append(Rule("not_null", f"not null {move.target}.{col.name}", move.legacy, move.target,
                                  f"SELECT \"id\" {_rows(move, f'{quote_ident(col.name)} IS NULL')}",
                                  definition=f"{col.name} must have a value in {move.target}",
                                  sql=f"{quote_ident(col.name)} NOT NULL"))
        if types:
            rules.append(_type_rule(move, types[f"{move.legacy} -> {move.target}"]))
        for con in table.constraints:
            if not {fold(c) for c in con.columns} <= moved:
                continue  # a column the legacy table lacks gets its default, which the rule accepts
            if con.kind == "check":
                expr = expression_sql(con.node.expressions[0].this, SQLITE)
                shown = expression_sql(con.node.expressions[0].this, POSTGRES)
                rules.append(Rule("check", f"check {con.name}", move.legacy, move.target,
                                  f"SELECT \"id\" {_rows(move, f'NOT coalesce(({expr}), 1)')}",
                                  definition=f"{move.target} takes only rows where {shown}",
                                  sql=f"CONSTRAINT {con.name} CHECK ({shown})"))
            elif con.kind == "unique":
                cols = column_list(con.columns)
                not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in con.columns)
                # The first row (lowest id) keeps the value; later duplicates are refused.
                rules.append(Rule("unique", f"unique {con.name}", move.legacy, move.target,
                                  f"SELECT \"id\" FROM (SELECT \"id\", row_number() OVER (PARTITION BY {cols} "
                                  f"ORDER BY \"id\") AS n {_rows(move, not_null)}) WHERE n > 1",
                                  definition=f"no two rows of {move.target} may share {', '.join(con.columns)}: "
                                             "the row with the lowest id keeps the value, later ones are refused",
                                  sql=f"CONSTRAINT {con.name} UNIQUE ({cols})"))
            elif con.kind == "foreign_key":
                fks.append(_fk_rule(con, move, res))
    return rules + fks


def _fk_rule(con, move: Move, res: Resolution) -> Rule:
    col = quote_ident(con.columns[0])
    parents = []
    for parent in res.moves_into(con.references):
        where = f" AND ({parent.where})" if parent.where else ""
        parents.append(f"SELECT \"id\" FROM {quote_ident(parent.legacy)} WHERE \"id\" NOT IN "
                       f"(SELECT source_pk FROM {REFUSED} WHERE source_table = {quote_literal(parent.legacy)}){where}")
    kept = " UNION ALL ".join(parents) or "SELECT NULL WHERE 0"
    return Rule("foreign_key", f"foreign key {con.name}", move.legacy, move.target,
                f"SELECT \"id\" {_rows(move, f'{col} IS NOT NULL AND {col} NOT IN ({kept})')}",
                definition=f"{con.columns[0]} must be empty or the id of a row of {con.references} that moves too",
                sql=f"CONSTRAINT {con.name} FOREIGN KEY ({col}) REFERENCES {con.references} (id)",
                column=con.columns[0], parents=[p.legacy for p in res.moves_into(con.references)])


SETUP_SQL = [
    "CREATE TEMP TABLE IF NOT EXISTS dpro_refused (source_table TEXT, source_pk INTEGER, rule TEXT)",
    "CREATE INDEX IF NOT EXISTS temp.dpro_refused_pk ON dpro_refused (source_table, source_pk)",
    f"DELETE FROM {REFUSED}",
]


def insert_sql(rule: Rule) -> str:
    """Add the rows breaking one rule to REFUSED (once per rule and row). Type rules name the failing
    column themselves (their query yields a `rule` column)."""
    legacy = quote_literal(rule.legacy)
    name = "x.rule" if rule.kind == "type" else quote_literal(rule.name)
    return (f"INSERT INTO {REFUSED} (source_table, source_pk, rule) SELECT {legacy}, x.\"id\", {name} "
            f"FROM ({rule.ids_sql}) AS x WHERE NOT EXISTS (SELECT 1 FROM {REFUSED} AS r "
            f"WHERE r.source_table = {legacy} AND r.source_pk = x.\"id\" AND r.rule = {name})")


def refusal_sql(rules: list[Rule]) -> tuple[list[str], list[str]]:
    """(run once, then repeat until no row is added): foreign keys repeat, to follow cascades."""
    once = SETUP_SQL + [insert_sql(r) for r in rules if r.kind != "foreign_key"]
    return once, [insert_sql(r) for r in rules if r.kind == "foreign_key"]


def register_functions(conn: sqlite3.Connection) -> None:
    """The functions type rules call (types.sqlite_functions), for this connection's file encoding."""
    encoding = conn.execute("PRAGMA encoding").fetchone()[0]
    for name, (nargs, fn) in sqlite_functions(encoding).items():
        conn.create_function(name, nargs, fn, deterministic=True)


def run_refusal(conn: sqlite3.Connection, once: list[str], repeat: list[str]) -> None:
    register_functions(conn)
    for stmt in once:
        conn.execute(stmt)
    while repeat and sum(max(conn.execute(stmt).rowcount, 0) for stmt in repeat):
        pass


def refuse(conn: sqlite3.Connection, rules: list[Rule]) -> None:
    """Fill REFUSED on this connection: every rule once, then foreign keys until nothing new cascades."""
    run_refusal(conn, *refusal_sql(rules))


def report(conn: sqlite3.Connection, rules: list[Rule], sample: int | None = None) -> PreflightReport:
    """Read REFUSED back as findings (all ids, or `sample` of them per rule)."""
    # by the names rows are recorded under (a type rule records the column's own), never parsed back from them:
    # a column may be named "a.b" or "a b"
    by_name = {(r.legacy, name): r for r in rules for name in r.recorded_as}
    findings = []
    for legacy, rule_name, count in conn.execute(
            f"SELECT source_table, rule, count(*) FROM {REFUSED} GROUP BY 1, 2 ORDER BY 1, 2"):
        rule = by_name[(legacy, rule_name)]
        limit = f" LIMIT {int(sample)}" if sample else ""
        ids = [r[0] for r in conn.execute(
            f"SELECT source_pk FROM {REFUSED} WHERE source_table = ? AND rule = ? ORDER BY 1{limit}", (legacy, rule_name))]
        findings.append(Finding(rule_name, rule.kind, legacy, rule.target, count, ids))
    refused = dict(conn.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
    return PreflightReport(findings, refused, explain(conn, rules))


def explain(conn: sqlite3.Connection, rules: list[Rule]) -> DirtyReport:
    """REFUSED read back as root causes (a rule the row breaks itself, an orphan among them) and cascades
    (rows whose only fault is a reference to a refused row), each with every id. Needs REFUSED filled."""
    by_name = {(r.legacy, name): r for r in rules for name in r.recorded_as}
    tables = dict(conn.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1 ORDER BY 1"))
    cascaded: dict[tuple[str, str, str], tuple[set, set]] = {}  # (legacy, rule, parent) -> (ids, parent ids)
    own: dict[tuple[str, str], list[int]] = {}
    for legacy, rule_name in conn.execute(f"SELECT DISTINCT source_table, rule FROM {REFUSED} ORDER BY 1, 2").fetchall():
        rule = by_name[(legacy, rule_name)]
        if rule.kind != "foreign_key" or not rule.parents:
            own[(legacy, rule_name)] = [r[0] for r in conn.execute(
                f"SELECT source_pk FROM {REFUSED} WHERE source_table = ? AND rule = ? ORDER BY 1", (legacy, rule_name))]
            continue
        parents = ", ".join(quote_literal(p) for p in rule.parents)
        rows = conn.execute(
            f"SELECT r.source_pk, x.{quote_ident(rule.column)}, (SELECT p.source_table FROM {REFUSED} AS p "
            f"WHERE p.source_table IN ({parents}) AND p.source_pk = x.{quote_ident(rule.column)} LIMIT 1) "
            f"FROM {REFUSED} AS r JOIN main.{quote_ident(legacy)} AS x ON x.\"id\" = r.source_pk "
            "WHERE r.source_table = ? AND r.rule = ? ORDER BY 1", (legacy, rule_name)).fetchall()
        for pk, parent_id, parent in rows:
            if parent is None:  # the row it references does not exist at all: an orphan, a root cause
                own.setdefault((legacy, rule_name), []).append(pk)
            else:
                ids, parent_ids = cascaded.setdefault((legacy, rule_name, parent), (set(), set()))
                ids.add(pk)
                parent_ids.add(parent_id)
    breaches = []
    for (legacy, rule_name), ids in own.items():
        rule = by_name[(legacy, rule_name)]
        words, sql = rule.explained.get(rule_name, (rule.definition, rule.sql))
        breaches.append(RuleBreach(legacy, rule.target, rule_name, rule.kind, words, sql, len(ids), ids, rule.ids_sql))
    # a row with a fault of its own is listed there; a row reached by two cascades under the first: each
    # cascaded row counts once, so the roots' rows and the cascades' add up to the rows refused
    listed = {(b.legacy, i) for b in breaches for i in b.ids}
    cascades = []
    for (legacy, rule_name, parent), (ids, parent_ids) in sorted(cascaded.items()):
        only = sorted(i for i in ids if (legacy, i) not in listed)
        listed.update((legacy, i) for i in only)
        if only:
            cascades.append(Cascade(legacy, by_name[(legacy, rule_name)].target, rule_name, parent,
                                    sorted(parent_ids, key=repr), len(only), only))
    return DirtyReport(tables, breaches, cascades)


def refuse_if_found(conn: sqlite3.Connection, once: list[str], repeat: list[str]) -> None:
    """Run the refusal SQL on this connection; any row found stops the apply here (policy `fail`)."""
    run_refusal(conn, once, repeat)
    found = conn.execute(f"SELECT source_table, rule, count(*) FROM {REFUSED} GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    if found:
        rows = conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT source_table, source_pk FROM {REFUSED})").fetchone()[0]
        raise ChecksFailed(f"{rows} legacy rows break rules of the target ({len(found)} rules); nothing was changed "
                           "(see `dpro-migrate plan`, or use --on-reject quarantine)",
                           details={"findings": [{"table": t, "rule": r, "rows": n} for t, r, n in found]})


def run(conn: sqlite3.Connection, rules: list[Rule], sample: int | None = None) -> PreflightReport:
    refuse(conn, rules)
    return report(conn, rules, sample)
