"""Plan steps for SQLite, in place: the legacy file itself becomes the seven-domain database.

Domain tables whose SQLite name is already taken by a legacy table (marketplace.tools is
marketplace_tools, as was the legacy table) are built under a staging name and renamed once the
legacy table is gone, the way sqlite-utils rebuilds a table.
"""

from __future__ import annotations

import dataclasses

import sqlglot
from sqlglot import exp

from dpro_migrate.model.legacy import LegacyDatabase, fold
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE, Move, Resolution
from dpro_migrate.model.schema import Index, Table, TargetSchema
from dpro_migrate.dialects import SQLITE, create_index_sql, create_table_sql, get_dialect, physical_name, table_sql
from dpro_migrate.plan.operations import (CreateIndex, CreateQuarantine, CreateTable, CreateTrigger, DropLegacyTable,
                                          DropLegacyTrigger, DropLegacyView, KeepSequence, MoveRows, Operation,
                                          QuarantineRows, RecreateView, RenameTable, SetSequence, ShareIdSpace)
from dpro_migrate.plan.preflight import REFUSED, Rule, refusal_sql, without_refused
from dpro_migrate.sqlnames import column_list, quote_ident, quote_literal
from dpro_migrate.types import sqlite_affinity

DIALECT = get_dialect(SQLITE)
LEDGER_SQL = table_sql(LEDGER_TABLE, SQLITE)
QUARANTINE_SQL = table_sql(QUARANTINE_TABLE, SQLITE)
STAGING_SUFFIX = "__dpro_new"
# ANALYZE's rows of a legacy table are set aside under this prefix while the table is gone (DROP TABLE and
# DROP INDEX would delete them), and given back, rowids and all, when rollback recreates the table. A
# whole-database ANALYZE after the cutover clears them: rollback then leaves those tables without statistics.
PARKED = "dpro-migrate parked: "


class Names:
    """The name a domain table has while the plan runs: its own, or a staging name until the rename."""

    def __init__(self, schema: TargetSchema, legacy: LegacyDatabase):
        # case-insensitively, as SQLite finds names: a legacy Marketplace_Tools takes marketplace_tools
        self.staged = {q for q in schema.tables if physical_name(q, SQLITE) in legacy.tables}

    def working(self, qualified: str) -> str:
        name = physical_name(qualified, SQLITE)
        return name + STAGING_SUFFIX if qualified in self.staged else name

    def sql(self, qualified: str) -> str:
        return quote_ident(self.working(qualified))


def preflight_types(schema: TargetSchema, res: Resolution) -> None:
    """SQLite keeps every value's storage class: no conversion to check."""
    return None


def domain_table(table: Table, legacy: LegacyDatabase, moves: list[Move]) -> Table:
    """The domain table as this file needs it. Each column fed by a legacy column is declared with that
    column's affinity, so every value keeps its storage class (a TEXT metadata keeps '007' and '1.50' as text,
    a type-less column keeps '6' and 7.0); where the canonical type already has that affinity it stays as ddl/
    renders it. The legacy table's generated columns come along as they are declared (the domain table has
    every column their expressions read, under the same names)."""
    declared: dict[str, str] = {}
    generated = []
    for move in moves:
        source = legacy.tables[move.legacy]
        for column in source.columns:
            # ANY in a STRICT table keeps every value as given; in an ordinary table it would mean NUMERIC
            any_type = source.strict and fold(column.decl_type.strip()) == "any"
            declared.setdefault(fold(column.name), "" if any_type else column.decl_type)
        generated += [g for g in source.generated if fold(g.name) not in {fold(x.name) for x in generated}]
    node = table.node.copy()
    changed = bool(generated)
    for item in node.this.expressions:
        legacy_type = declared.get(fold(item.name)) if isinstance(item, exp.ColumnDef) else None
        if legacy_type is None or item.args.get("kind") is None:
            continue
        if sqlite_affinity(DIALECT.render(item.args["kind"])) != sqlite_affinity(legacy_type):
            item.set("kind", exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=legacy_type) if legacy_type.strip()
                     else None)
            changed = True
    node.this.set("expressions", node.this.expressions + [
        exp.ColumnDef(this=exp.to_identifier(g.name, quoted=True),
                      kind=exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=g.definition())) for g in generated])
    return dataclasses.replace(table, node=node) if changed else table


def _select(move: Move) -> str:
    where = f" WHERE {move.where}" if move.where else ""
    derived = "".join(f", {e}" for e in move.derived.values())
    return f"SELECT {column_list(move.columns)}{derived} FROM {quote_ident(move.legacy)}{where}"


def move_sql(move: Move, names: Names) -> str:
    return f"INSERT INTO {names.sql(move.target)} ({column_list([*move.columns, *move.derived])}) {_select(move)}"


def move_back_sql(move: Move, later_parts: list[Move], names: Names) -> tuple[list[str], list[str]]:
    """(move back, renumber): target rows back into the legacy table. Parts of a split are moved back last
    part first; a row whose id a later part already put back (both written after the cutover) gets a new id."""
    legacy, target = quote_ident(move.legacy), names.sql(move.target)
    cols = column_list(move.columns)
    if not later_parts:
        return [f"INSERT INTO {legacy} ({cols}) SELECT {cols} FROM {target} ORDER BY \"id\""], []
    taken = " UNION ALL ".join(f"SELECT \"id\" FROM {names.sql(p.target)}" for p in later_parts)
    no_id = column_list([c for c in move.columns if c != "id"])
    return ([f"INSERT INTO {legacy} ({cols}) SELECT {cols} FROM {target} WHERE \"id\" NOT IN ({taken}) ORDER BY \"id\""],
            [f"INSERT INTO {legacy} ({no_id}) SELECT {no_id} FROM {target} WHERE \"id\" IN ({taken}) ORDER BY \"id\""])


def _restore_sequence_sql(legacy: str, targets: list[str], names: Names) -> list[str]:
    """Put back the legacy AUTOINCREMENT counter: as it was at the cutover if no domain counter moved
    since, else the highest domain counter (ids handed out after the cutover are never reused)."""
    tables = ", ".join(quote_literal(names.working(t)) for t in targets)
    current = f"(SELECT max(\"seq\") FROM \"sqlite_sequence\" WHERE \"name\" IN ({tables}))"
    state = f"(SELECT \"state\" FROM {LEDGER_SQL} WHERE \"action\" = 'apply' ORDER BY \"id\" DESC LIMIT 1)"
    path = quote_literal(f'$.sequences."{legacy}"')
    at_cutover = f"json_extract({state}, {path} || '.cutover')"
    original = f"json_extract({state}, {path} || '.legacy')"
    value = f"CASE WHEN {current} IS {at_cutover} THEN {original} ELSE {current} END"
    lit = quote_literal(legacy)
    return [
        f"DELETE FROM \"sqlite_sequence\" WHERE \"name\" = {lit}",
        f"INSERT INTO \"sqlite_sequence\" (\"name\", \"seq\") SELECT {lit}, v FROM (SELECT {value} AS v) WHERE v IS NOT NULL",
    ]


def _set_sequence_sql(move: Move, names: Names) -> list[str]:
    """The domain table continues the legacy counter, so no id is ever handed out twice."""
    target = quote_literal(names.working(move.target))
    legacy_seq = f"(SELECT \"seq\" FROM \"sqlite_sequence\" WHERE \"name\" = {quote_literal(move.legacy)})"
    return [
        f"DELETE FROM \"sqlite_sequence\" WHERE \"name\" = {target} AND {legacy_seq} IS NOT NULL",
        f"INSERT INTO \"sqlite_sequence\" (\"name\", \"seq\") SELECT {target}, max(coalesce({legacy_seq}, 0), "
        f"coalesce((SELECT max(\"id\") FROM {names.sql(move.target)}), 0)) WHERE {legacy_seq} IS NOT NULL",
    ]


def _park_statistics(table: str, stat_tables: list[str]) -> tuple[list[str], list[str]]:
    """(set aside, give back) the statistics rows of one legacy table."""
    parked = quote_literal(PARKED + table)
    n = len(PARKED) + 1
    park = [f"UPDATE {quote_ident(s)} SET \"tbl\" = {quote_literal(PARKED)} || \"tbl\", \"idx\" = {quote_literal(PARKED)} "
            f"|| \"idx\" WHERE \"tbl\" = {quote_literal(table)}" for s in stat_tables]
    give_back = [f"UPDATE {quote_ident(s)} SET \"tbl\" = substr(\"tbl\", {n}), \"idx\" = substr(\"idx\", {n}) "
                 f"WHERE \"tbl\" = {parked}" for s in stat_tables]
    return park, give_back


def share_id_space(legacy: str, targets: list[str]) -> ShareIdSpace:
    """The parts of a split table continue from the highest counter or id of any part, and each part's insert
    trigger keeps the others' AUTOINCREMENT counters at least at the id it wrote: SQLite gives the next row
    of a part one more than the larger of its sqlite_sequence entry and its highest id (autoinc.html), so
    neither part can hand out an id the other used, whoever inserts (the application's plain INSERT, a
    trigger, a compatibility view). SQLite writes a counter back only at the end of a statement: one
    statement that writes several parts (an INSERT of many rows through the compatibility view) keeps them
    level itself (dialects/sqlite.py). Rollback drops the triggers and leaves the counters: the legacy
    counter is restored from them (KeepSequence)."""
    names = [physical_name(t, SQLITE) for t in targets]
    listed = ", ".join(quote_literal(n) for n in names)
    rows = " UNION ALL ".join(f"SELECT {quote_literal(n)} AS \"name\"" for n in names)
    highest = " UNION ALL ".join([f"SELECT \"seq\" FROM \"sqlite_sequence\" WHERE \"name\" IN ({listed})"]
                                 + [f"SELECT max(\"id\") FROM {quote_ident(n)}" for n in names])
    sql = [f"INSERT INTO \"sqlite_sequence\" (\"name\", \"seq\") SELECT \"name\", 0 FROM ({rows}) "
           f"WHERE \"name\" NOT IN (SELECT \"name\" FROM \"sqlite_sequence\")",
           f"UPDATE \"sqlite_sequence\" SET \"seq\" = (SELECT max(\"seq\") FROM ({highest})) WHERE \"name\" IN ({listed})"]
    triggers = []
    for name in names:
        others = ", ".join(quote_literal(n) for n in names if n != name)
        trigger = f"trg_{name}_shared_ids"
        triggers.append(trigger)
        sql.append(f"CREATE TRIGGER {quote_ident(trigger)} AFTER INSERT ON {quote_ident(name)} FOR EACH ROW\nBEGIN\n"
                   f"    UPDATE \"sqlite_sequence\" SET \"seq\" = NEW.\"id\" WHERE \"name\" IN ({others}) "
                   f"AND \"seq\" < NEW.\"id\";\nEND")
    return ShareIdSpace(legacy, sql, [f"DROP TRIGGER IF EXISTS {quote_ident(t)}" for t in triggers],
                        tables=list(targets), triggers=triggers)


def _rename(old: str, new: str) -> list[str]:
    # legacy_alter_table: a legacy trigger or view elsewhere that still names a dropped table must not stop it.
    return ["PRAGMA legacy_alter_table = ON", f"ALTER TABLE {quote_ident(old)} RENAME TO {quote_ident(new)}",
            "PRAGMA legacy_alter_table = OFF"]


def _view_reads(sql: str, tables: list[str]) -> bool:
    """Does a view's SQL read any of these tables? Parsed, not grepped; an unparsable view counts as reading them."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return True
    wanted = {fold(t) for t in tables}
    return any(fold(t.name) in wanted for t in tree.find_all(exp.Table))


def quarantine_table(legacy: str) -> str:
    return f"{physical_name(QUARANTINE_TABLE, SQLITE)}__{legacy}"


def _quarantine_operations(rules: list[Rule], tables: list[str], legacy: LegacyDatabase) -> list[Operation]:
    """Refused rows leave their legacy table whole: each into system_quarantine__<table> (same columns,
    same affinities, so every value keeps its storage class; generated columns are not copied, the legacy
    table computes them again), indexed by system_quarantine (table, id, rule)."""
    once, repeat = refusal_sql(rules)
    index = [f"INSERT INTO {QUARANTINE_SQL} (source_table, source_pk, rule) "
             f"SELECT source_table, source_pk, rule FROM {REFUSED} ORDER BY 1, 2, 3"]
    copies, back = [], []
    for name in tables:
        q = quote_ident(quarantine_table(name))
        cols = column_list(legacy.tables[name].column_names)
        copies.append(f"CREATE TABLE {q} AS SELECT {cols} FROM {quote_ident(name)} WHERE \"id\" IN "
                      f"(SELECT source_pk FROM {QUARANTINE_SQL} WHERE source_table = {quote_literal(name)})")
        back += [f"INSERT INTO {quote_ident(name)} ({cols}) SELECT {cols} FROM {q} ORDER BY \"id\"", f"DROP TABLE {q}"]
    create = (f"CREATE TABLE {QUARANTINE_SQL} (\"id\" INTEGER PRIMARY KEY, source_table TEXT NOT NULL, "
              "source_pk INTEGER NOT NULL, rule TEXT NOT NULL, quarantined_at TEXT DEFAULT CURRENT_TIMESTAMP)")
    return [
        CreateQuarantine(physical_name(QUARANTINE_TABLE, SQLITE), [create], [f"DROP TABLE {QUARANTINE_SQL}"]),
        QuarantineRows(", ".join(tables) or "(none)", index + copies, back, tables=tables, refusal_once=once,
                       refusal_repeat=repeat),
    ]


def rewrite_view(sql: str, res: Resolution) -> str | None:
    """The legacy view over the domain tables: each legacy table it reads replaced by its domain table
    (aliased with the legacy name, so column references still resolve). None when a table it reads is
    split or filtered: such a view cannot be carried over faithfully."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return None
    moves = {fold(m.legacy): res.moves_from(m.legacy) for m in res.moves}
    read = [t for t in tree.find_all(exp.Table) if fold(t.name) in moves]
    if any(len(moves[fold(t.name)]) != 1 or moves[fold(t.name)][0].where for t in read):
        return None

    def swap(node):
        if isinstance(node, exp.Table) and fold(node.name) in moves:
            target = physical_name(moves[fold(node.name)][0].target, SQLITE)
            return exp.Table(this=exp.to_identifier(target, quoted=True),
                             alias=node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name, quoted=True)))
        return node

    return tree.transform(swap).sql("sqlite", identify=True)


def build_operations(legacy: LegacyDatabase, schema: TargetSchema, res: Resolution,
                     quarantine: tuple[list[Rule], list[str]] | None = None) -> list[Operation]:
    """`quarantine` = (rules, legacy tables with refused rows): refused rows go to quarantine, not the target."""
    names = Names(schema, legacy)
    ops: list[Operation] = []
    for qualified, table in schema.tables.items():
        extra = list(dict.fromkeys(c for m in res.moves_into(qualified) for c in m.extra_columns))
        ddl = create_table_sql(domain_table(table, legacy, res.moves_into(qualified)), SQLITE, extra)
        if qualified in names.staged:
            ddl = ddl.replace(table_sql(qualified, SQLITE), names.sql(qualified), 1)
        ops.append(CreateTable(physical_name(qualified, SQLITE), [ddl], [f"DROP TABLE IF EXISTS {names.sql(qualified)}"],
                               table=qualified, extra_columns=[list(c) for c in extra]))
    moved = res.legacy_tables
    for name in moved:
        if name in legacy.sequences or "AUTOINCREMENT" in legacy.tables[name].sql.upper():
            targets = [m.target for m in res.moves_from(name)]
            ops.append(KeepSequence(name, [], _restore_sequence_sql(name, targets, names), legacy=name, targets=targets))
    for obj in legacy.objects:
        if not obj.sql or obj.type not in ("trigger", "view"):
            continue
        drop = [f"DROP {obj.type.upper()} {quote_ident(obj.name)}"]
        if obj.type == "trigger" and fold(obj.table) in {fold(t) for t in moved}:
            ops.append(DropLegacyTrigger(obj.name, drop, [obj.sql], table=obj.table))
        elif obj.type == "view" and _view_reads(obj.sql, moved):
            ops.append(DropLegacyView(obj.name, drop, [obj.sql], table=obj.table))
    if quarantine:
        ops += _quarantine_operations(*quarantine, legacy)
    for name in moved:
        parts = res.moves_from(name)
        if quarantine:
            parts = [without_refused(m, QUARANTINE_SQL) for m in parts]
        for i, move in enumerate(parts):
            back, renumber = move_back_sql(move, parts[i + 1:], names)
            ops.append(MoveRows(f"{name} -> {physical_name(move.target, SQLITE)}", [move_sql(move, names)], back,
                                legacy=name, target=move.target, columns=move.columns,
                                extra_columns=[c for c, _ in move.extra_columns], where=move.where, renumber=renumber,
                                derived=dict(move.derived)))
            ops.append(SetSequence(physical_name(move.target, SQLITE), _set_sequence_sql(move, names), [],
                                   table=move.target, legacy=name))
    for name in moved:
        indexes = [o for o in legacy.objects_on(name) if o.type == "index" and o.sql]
        park, give_back = _park_statistics(name, legacy.stat_tables)
        ops.append(DropLegacyTable(name, park + [f"DROP INDEX {quote_ident(i.name)}" for i in indexes]
                                   + [f"DROP TABLE {quote_ident(name)}"],
                                   [legacy.tables[name].sql] + [i.sql for i in indexes] + give_back,
                                   rows=legacy.tables[name].rows))
    for qualified in schema.tables:
        if qualified in names.staged:
            final = physical_name(qualified, SQLITE)
            ops.append(RenameTable(final, _rename(names.working(qualified), final),
                                   _rename(final, names.working(qualified)), table=qualified))
    for obj in legacy.objects:
        if obj.type == "view" and obj.sql and _view_reads(obj.sql, moved):
            carried = rewrite_view(obj.sql, res)
            if carried:  # else the view is dropped, listed in the plan, and restored by rollback
                ops.append(RecreateView(obj.name, [carried], [f"DROP VIEW IF EXISTS {quote_ident(obj.name)}"],
                                        legacy_sql=obj.sql))
    ops += [index_operation(index) for index in schema.indexes]
    for trig in schema.triggers[SQLITE]:
        ops.append(CreateTrigger(trig.name, [DIALECT.trigger_sql(trig)], [DIALECT.drop_trigger_sql(trig, "")]))
    # the parts of a split (more than one move from a legacy table): one id space, under their final names;
    # last, as on PostgreSQL, so its reverse runs first
    ops += [share_id_space(name, [m.target for m in res.moves_from(name)]) for name in moved
            if len(res.moves_from(name)) > 1]
    return ops


def index_operation(index, *, new: bool = False) -> CreateIndex:
    return CreateIndex(index.name, [create_index_sql(index, SQLITE)], [f"DROP INDEX IF EXISTS {quote_ident(index.name)}"],
                       table=index.table, unique=index.unique, partial=index.partial, new=new)


def table_operations(tables: dict[str, Table], indexes: list[Index], *, new: bool = False,
                     extra_columns: dict[str, list[tuple[str, str]]] | None = None) -> tuple[list[Operation], ...]:
    """(tables, created whole with their keys and checks, no separate constraints, their indexes)."""
    extra_columns = extra_columns or {}
    creates: list[Operation] = [
        CreateTable(physical_name(q, SQLITE), [create_table_sql(t, SQLITE, extra_columns.get(q, []))],
                    [f"DROP TABLE IF EXISTS {table_sql(q, SQLITE)}"], table=q,
                    extra_columns=[list(c) for c in extra_columns.get(q, [])], new=new)
        for q, t in tables.items()]
    return creates, [], [index_operation(index, new=new) for index in indexes]
