"""Plan steps for a PostgreSQL target: schemas, tables, COPY loads, then keys, indexes, sequences, triggers.

Keys, checks, foreign keys and indexes come after the load (as pgloader does): COPY into bare tables is
fastest, and one validation pass per constraint is cheaper than a check per row.
"""

from __future__ import annotations

from dpro_migrate import DOMAINS
from dpro_migrate.dialects import POSTGRES, get_dialect, table_sql
from dpro_migrate.model.legacy import LegacyDatabase
from dpro_migrate.model.mapping import QUARANTINE_TABLE, Resolution
from dpro_migrate.model.schema import Index, Table, TargetSchema
from dpro_migrate.plan.copy_lines import copy_lines_sql
from dpro_migrate.plan.operations import (AddConstraint, CopyRows, CreateFunction, CreateIndex, CreateQuarantine,
                                          CreateSchema, CreateTable, CreateTrigger, Operation, QuarantineRows,
                                          SetSequence, ShareIdSpace)
from dpro_migrate.plan.preflight import REFUSED, Rule, refusal_sql, without_refused
from dpro_migrate.plan.quarantine_lines import quarantine_lines_sql
from dpro_migrate.sqlnames import quote_ident, quote_literal
from dpro_migrate.types import pg_type_for_legacy, type_class_of_pg

DIALECT = get_dialect(POSTGRES)


def column_types(schema: TargetSchema, target: str, columns: list[str], extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(column, target type) for each moved column, ride-along columns included."""
    table = schema.table(target)
    extra_types = dict(extra)
    return [(c, table.column(c).type if table.column(c) else pg_type_for_legacy(extra_types[c])) for c in columns]


def preflight_types(schema: TargetSchema, res: Resolution) -> dict[str, dict[str, str]]:
    """Per move, each column's PostgreSQL type: the preflight adds a conversion rule for each."""
    return {f"{m.legacy} -> {m.target}": dict(column_types(schema, m.target, m.columns, m.extra_columns))
            for m in res.moves}


def _quarantine_operations(legacy: LegacyDatabase, rules: list[Rule], tables: list[str]) -> list[Operation]:
    """Refused rows stay in the source file (never written); PostgreSQL gets a copy in system.quarantine
    with the table, id, rule and the whole row as JSON text, for the DBA to see."""
    qt = table_sql(QUARANTINE_TABLE, POSTGRES)
    create = (f"CREATE TABLE {qt} (\"id\" BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source_table TEXT NOT NULL, "
              "source_pk BIGINT NOT NULL, rule TEXT NOT NULL, row_json TEXT, quarantined_at TIMESTAMPTZ DEFAULT now())")
    once, repeat = refusal_sql(rules)
    sources = {name: quarantine_lines_sql(name, legacy.tables[name].column_names, REFUSED) for name in tables}
    copy = f"COPY {qt} (source_table, source_pk, rule, row_json) FROM STDIN"
    return [CreateQuarantine(QUARANTINE_TABLE, [create], [f"DROP TABLE IF EXISTS {qt}"]),
            QuarantineRows(", ".join(tables), [copy], [], tables=tables, refusal_once=once, refusal_repeat=repeat,
                           source_sql=sources)]


CONSTRAINT_ORDER = ("primary_key", "unique", "check", "foreign_key")  # keys first: foreign keys need them


def table_operations(tables: dict[str, Table], indexes: list[Index], *, new: bool = False,
                     extra_columns: dict[str, list[tuple[str, str]]] | None = None) -> tuple[list[Operation], ...]:
    """(bare tables, their keys and checks in CONSTRAINT_ORDER, their indexes): the phases around the load."""
    extra_columns = extra_columns or {}
    creates: list[Operation] = []
    for qualified, table in tables.items():
        extra = extra_columns.get(qualified, [])
        creates.append(CreateTable(qualified, [DIALECT.create_table_sql(table, extra, constraints=False)],
                                   [f"DROP TABLE IF EXISTS {table_sql(qualified, POSTGRES)}"],
                                   table=qualified, extra_columns=[list(c) for c in extra], new=new))
    constraints: list[Operation] = []
    for kind in CONSTRAINT_ORDER:
        for qualified, table in tables.items():
            for con in table.constraints:
                if con.kind == kind:
                    constraints.append(AddConstraint(
                        con.name, [DIALECT.add_constraint_sql(table, con)],
                        [f"ALTER TABLE IF EXISTS {table_sql(qualified, POSTGRES)} DROP CONSTRAINT IF EXISTS "
                         f"{quote_ident(con.name)}"], table=qualified, constraint=kind, columns=con.columns, new=new))
    index_ops: list[Operation] = [
        CreateIndex(index.name, [DIALECT.create_index_sql(index)],
                    [f"DROP INDEX IF EXISTS {DIALECT.index_sql(index.table, index.name)}"],
                    table=index.table, unique=index.unique, partial=index.partial, new=new)
        for index in indexes]
    return creates, constraints, index_ops


def quarantined_top(legacy_tables: list[str], quarantine: bool) -> str:
    """The highest id kept in the quarantine for these legacy tables, as SQL (0 without a quarantine): a counter
    continues above it, so the application's next row never takes a quarantined row's id (rollback would then
    have two rows for one id)."""
    if not quarantine or not legacy_tables:
        return "0"
    names = ", ".join(quote_literal(t) for t in legacy_tables)
    return (f"(SELECT coalesce(max(source_pk), 0) FROM {table_sql(QUARANTINE_TABLE, POSTGRES)} "
            f"WHERE source_table IN ({names}))")


def share_id_space(legacy: str, targets: list[str], legacy_sequence: int, kept: str = "0") -> ShareIdSpace:
    """The parts' ids default to nextval of one sequence (in the first part's schema), which continues after
    the highest id of any part or the legacy AUTOINCREMENT counter, whichever is higher. ddl/ declares each id
    an identity; an identity owns its sequence and cannot share it, and keeping two identities level with a
    trigger leaves a window between one session's nextval and its setval of the other (two concurrent inserts
    then get one id). nextval on one sequence has no such window. The reverse gives each part its identity
    back, continuing after the shared sequence, and drops the sequence. An identity needs no privilege beyond
    INSERT on its table; a sequence needs USAGE: granted to PUBLIC, so every role that may insert into either
    part still can (nextval hands out numbers; it reads no data)."""
    sequence = f"{targets[0].split('.')[0]}.{legacy}_id_seq"
    seq = table_sql(sequence, POSTGRES)
    tables = [table_sql(t, POSTGRES) for t in targets]
    highest = ", ".join(f"(SELECT max(\"id\") FROM {t})" for t in tables)
    sql = [f"CREATE SEQUENCE {seq} AS bigint", f"GRANT USAGE ON SEQUENCE {seq} TO PUBLIC",
           f"SELECT setval({quote_literal(seq)}, greatest(m, {int(legacy_sequence)}, 1), m > 0 OR {int(legacy_sequence)} > 0) "
           f"FROM (SELECT greatest({highest}, {kept}) AS m) AS highest"]
    reverse = []
    for t in tables:
        sql += [f"ALTER TABLE {t} ALTER COLUMN \"id\" DROP IDENTITY",
                f"ALTER TABLE {t} ALTER COLUMN \"id\" SET DEFAULT nextval({quote_literal(seq)}::regclass)"]
        reverse += [f"ALTER TABLE {t} ALTER COLUMN \"id\" DROP DEFAULT",
                    f"ALTER TABLE {t} ALTER COLUMN \"id\" ADD GENERATED BY DEFAULT AS IDENTITY",
                    f"SELECT setval(pg_get_serial_sequence({quote_literal(t)}, 'id'), last_value, is_called) FROM {seq}"]
    return ShareIdSpace(legacy, sql, reverse + [f"DROP SEQUENCE IF EXISTS {seq}"], tables=list(targets), sequence=sequence)


def build_operations(legacy: LegacyDatabase, schema: TargetSchema, res: Resolution,
                     quarantine: tuple[list[Rule], list[str]] | None = None) -> list[Operation]:
    """`quarantine` = (rules, legacy tables with refused rows): their rows stay out of the domain tables."""
    ops: list[Operation] = [CreateSchema(domain, [f"CREATE SCHEMA {quote_ident(domain)}"],
                                         [f"DROP SCHEMA IF EXISTS {quote_ident(domain)}"]) for domain in DOMAINS]
    extra = {q: list(dict.fromkeys(c for m in res.moves_into(q) for c in m.extra_columns)) for q in schema.tables}
    creates, constraints, indexes = table_operations(schema.tables, schema.indexes, extra_columns=extra)
    ops += creates
    moves = res.moves
    if quarantine:
        ops += _quarantine_operations(legacy, *quarantine)
        moves = [without_refused(m, REFUSED) for m in moves]
    for move in moves:
        written = [*move.columns, *move.derived]
        typed = column_types(schema, move.target, written, move.extra_columns)
        classes = [(c, type_class_of_pg(t)) for c, t in typed]
        ops.append(CopyRows(f"{move.legacy} -> {move.target}",
                            [DIALECT.copy_statement(table_sql(move.target, POSTGRES), written)], [],
                            legacy=move.legacy, target=move.target, columns=move.columns,
                            extra_columns=[c for c, _ in move.extra_columns], where=move.where, types=dict(typed),
                            conversions={c: k.conversion for c, k in classes if k.name not in ("text", "bigint")},
                            source_sql=copy_lines_sql(move.legacy, classes, move.where, move.derived),
                            derived=dict(move.derived)))
    ops += constraints + indexes
    # the parts of a split (more than one move from a legacy table) share one sequence instead
    splits = {name: [m.target for m in res.moves_from(name)] for name in res.legacy_tables if len(res.moves_from(name)) > 1}
    shared = {t for targets in splits.values() for t in targets}
    for qualified, table in schema.tables.items():
        ident = next((c for c in table.columns if c.identity), None)
        if ident is None or qualified in shared:
            continue
        legacy_seq = max([legacy.sequences.get(m.legacy, 0) for m in res.moves_into(qualified)] + [0])
        tbl = table_sql(qualified, POSTGRES)
        top = f"coalesce(max({quote_ident(ident.name)}), 0)"
        kept = quarantined_top([m.legacy for m in res.moves_into(qualified)], bool(quarantine))
        top = top if kept == "0" else f"greatest({top}, {kept})"
        ops.append(SetSequence(qualified, [
            f"SELECT setval(pg_get_serial_sequence({quote_literal(tbl)}, {quote_literal(ident.name)}), "
            f"greatest({top}, {int(legacy_seq)}, 1), {top} > 0 OR {int(legacy_seq)} > 0) FROM {tbl}"], [],
            table=qualified, legacy_sequence=legacy_seq))
    for trig in schema.triggers[POSTGRES]:
        if trig.kind == "function":
            ops.append(CreateFunction(trig.name, [trig.sql], [f"DROP FUNCTION IF EXISTS {trig.name}()"]))
        else:
            on = DIALECT.trigger_table(trig)
            ops.append(CreateTrigger(trig.name, [trig.sql], [DIALECT.drop_trigger_sql(trig, on)],
                                     table=on.replace('"', "")))
    # last: an archive (--with archive-tables, placed before the triggers) copies the live table's columns with
    # LIKE .. INCLUDING DEFAULTS, and an archived row keeps its id: it must not get the shared sequence
    ops += [share_id_space(name, targets, legacy.sequences.get(name, 0), quarantined_top([name], bool(quarantine)))
            for name, targets in splits.items()]
    return ops
