"""Plan steps for a PostgreSQL target: schemas, tables, COPY loads, then keys, indexes, sequences, triggers.

Keys, checks, foreign keys and indexes come after the load (as pgloader does): COPY into bare tables is
fastest, and one validation pass per constraint is cheaper than a check per row.
"""

from __future__ import annotations

import re

from dpro_migrate import DOMAINS
import dpro_migrate.features.archive as archive
import dpro_migrate.features.seeds as seed_extras
from dpro_migrate.model.legacy import LegacyDatabase
from dpro_migrate.model.mapping import QUARANTINE_TABLE, Resolution
from dpro_migrate.backends.pgcopy import CONVERSIONS, copy_lines_sql, copy_statement, escaped_sql, type_class
from dpro_migrate.plan.document import Step
from dpro_migrate.plan.preflight import REFUSED, Rule, refusal_sql
from dpro_migrate.plan.build_sqlite import compat_view_steps, without_quarantined
from dpro_migrate.model.schema import POSTGRES, TargetSchema, add_constraint_sql, create_index_sql, create_table_sql, pg_type_for_legacy, table_sql
from dpro_migrate.sqlnames import quote_ident, quote_literal

_TRIGGER_TABLE = re.compile(r"\bON\s+((?:\"?\w+\"?\.)?\"?\w+\"?)", re.I)


def column_types(schema: TargetSchema, target: str, columns: list[str], extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(column, target type) for each moved column, ride-along columns included."""
    table = schema.table(target)
    extra_types = dict(extra)
    return [(c, table.column(c).type if table.column(c) else pg_type_for_legacy(extra_types[c])) for c in columns]


def _json_value(column: str) -> str:
    """A legacy value inside json_object(): blobs as hex, reals with every bit (json_object's own rounds)."""
    c = f"l.{quote_ident(column)}"
    return (f"CASE typeof({c}) WHEN 'blob' THEN 'blob:' || hex({c}) WHEN 'real' THEN "
            f"CASE WHEN abs({c}) <= 1.7976931348623157e308 THEN json(printf('%!.20e', {c})) ELSE printf('%!.20e', {c}) END "
            f"ELSE {c} END")


def _quarantine_steps(legacy: LegacyDatabase, rules: list[Rule], tables: list[str]) -> list[Step]:
    """Refused rows stay in the source file (never written); PostgreSQL gets a copy in system.quarantine
    with the table, id, rule and the whole row as JSON text, for the DBA to see."""
    qt = table_sql(QUARANTINE_TABLE, POSTGRES)
    create = (f"CREATE TABLE {qt} (\"id\" BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source_table TEXT NOT NULL, "
              "source_pk BIGINT NOT NULL, rule TEXT NOT NULL, row_json TEXT, quarantined_at TIMESTAMPTZ DEFAULT now())")
    once, repeat = refusal_sql(rules)
    sources = {}
    for name in tables:
        cols = legacy.tables[name].column_names
        row = "json_object(" + ", ".join(f"{quote_literal(c)}, {_json_value(c)}" for c in cols) + ")"
        sources[name] = (f"SELECT r.source_table || char(9) || r.source_pk || char(9) || {escaped_sql('r.rule')} "
                         f"|| char(9) || {escaped_sql(row)} || char(10) FROM {REFUSED} AS r JOIN {quote_ident(name)} "
                         f"AS l ON l.\"id\" = r.source_pk WHERE r.source_table = {quote_literal(name)} ORDER BY 1")
    copy = f"COPY {qt} (source_table, source_pk, rule, row_json) FROM STDIN"
    return [Step("create_quarantine", QUARANTINE_TABLE, [create], [f"DROP TABLE IF EXISTS {qt}"]),
            Step("quarantine_rows", ", ".join(tables), [copy], [],
                 {"tables": tables, "refusal_once": once, "refusal_repeat": repeat, "source_sql": sources})]


CONSTRAINT_ORDER = ("primary_key", "unique", "check", "foreign_key")  # keys first: foreign keys need them


def constraint_steps(tables: dict, info: dict | None = None) -> list[Step]:
    """PostgreSQL: every key and check, added after the load, in CONSTRAINT_ORDER."""
    steps = []
    for kind in CONSTRAINT_ORDER:
        for qualified, table in tables.items():
            for con in table.constraints:
                if con.kind == kind:
                    steps.append(Step("add_constraint", con.name, [add_constraint_sql(table, con)],
                                      [f"ALTER TABLE IF EXISTS {table_sql(qualified, POSTGRES)} "
                                       f"DROP CONSTRAINT IF EXISTS {quote_ident(con.name)}"],
                                      {"table": qualified, "kind": kind, **(info or {})}))
    return steps


def index_step(index, dialect: str, info: dict | None = None) -> Step:
    name = quote_ident(index.name)
    dropped = name if dialect != POSTGRES else f"{quote_ident(index.table.split('.')[0])}.{name}"
    return Step("create_index", index.name, [create_index_sql(index, dialect)], [f"DROP INDEX IF EXISTS {dropped}"],
                {"table": index.table, "unique": index.unique, "partial": index.partial, **(info or {})})


def build_steps(legacy: LegacyDatabase, schema: TargetSchema, res: Resolution,
                quarantine: tuple[list[Rule], list[str]] | None = None, compat_views: bool = False,
                extras: tuple[str, ...] = ()) -> list[Step]:
    """`quarantine` = (rules, legacy tables with refused rows): their rows stay out of the domain tables."""
    steps: list[Step] = []
    for domain in DOMAINS:
        steps.append(Step("create_schema", domain, [f"CREATE SCHEMA {quote_ident(domain)}"],
                          [f"DROP SCHEMA IF EXISTS {quote_ident(domain)}"]))
    for qualified, table in schema.tables.items():
        extra = list(dict.fromkeys(c for m in res.moves_into(qualified) for c in m.extra_columns))
        steps.append(Step("create_table", qualified, [create_table_sql(table, POSTGRES, extra, constraints=False)],
                          [f"DROP TABLE IF EXISTS {table_sql(qualified, POSTGRES)}"],
                          {"table": qualified, "extra_columns": extra}))
    moves = res.moves
    if quarantine:
        steps += _quarantine_steps(legacy, *quarantine)
        moves = [without_quarantined(m, REFUSED) for m in moves]
    for move in moves:
        typed = column_types(schema, move.target, move.columns, move.extra_columns)
        classes = [(c, type_class(t)) for c, t in typed]
        steps.append(Step("move_rows", f"{move.legacy} -> {move.target}",
                          [copy_statement(table_sql(move.target, POSTGRES), move.columns)], [],
                          {"legacy": move.legacy, "target": move.target, "columns": move.columns,
                           "extra_columns": [c for c, _ in move.extra_columns], "where": move.where,
                           "types": dict(typed),
                           "conversions": {c: CONVERSIONS[k] for c, k in classes if k not in ("text", "bigint")},
                           "source_sql": copy_lines_sql(move.legacy, classes, move.where)}))
    steps += constraint_steps(schema.tables)
    steps += [index_step(index, POSTGRES) for index in schema.indexes]
    for qualified, table in schema.tables.items():
        ident = next((c for c in table.columns if c.identity), None)
        if ident is None:
            continue
        legacy_seq = max([legacy.sequences.get(m.legacy, 0) for m in res.moves_into(qualified)] + [0])
        tbl = table_sql(qualified, POSTGRES)
        steps.append(Step("set_sequence", qualified, [
            f"SELECT setval(pg_get_serial_sequence({quote_literal(tbl)}, {quote_literal(ident.name)}), "
            f"greatest(coalesce(max({quote_ident(ident.name)}), 0), {int(legacy_seq)}, 1), "
            f"coalesce(max({quote_ident(ident.name)}), 0) > 0 OR {int(legacy_seq)} > 0) FROM {tbl}"], [],
            {"table": qualified, "legacy_sequence": legacy_seq}))
    for trig in schema.triggers[POSTGRES]:
        if trig.kind == "function":
            steps.append(Step("create_function", trig.name, [trig.sql], [f"DROP FUNCTION IF EXISTS {trig.name}()"]))
        else:
            on = _TRIGGER_TABLE.search(trig.sql.split("EXECUTE")[0]).group(1)
            steps.append(Step("create_trigger", trig.name, [trig.sql],
                              [f"DROP TRIGGER IF EXISTS {quote_ident(trig.name)} ON {on}"], {"table": on.replace('"', "")}))
    if compat_views:
        steps += compat_view_steps(res, POSTGRES, set())
    if "new-tables" in extras:
        steps += seed_extras.new_table_steps(POSTGRES)
    if "archive-tables" in extras:
        steps += archive.archive_steps(POSTGRES)
    if "row-level-security" in extras:
        steps += seed_extras.rls_steps(schema, seed_extras.new_tables() if "new-tables" in extras else ())
    return steps
