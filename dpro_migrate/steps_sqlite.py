"""Plan steps for a SQLite target: in place (the legacy file itself) or a separate SQLite file."""

from __future__ import annotations

from .legacy import LegacyDatabase
from .mapping import LEDGER_TABLE, Move, Resolution
from .plan import Step
from .schema import SQLITE, TargetSchema, create_index_sql, create_table_sql, physical_name, table_sql
from .sqlnames import column_list, quote_ident, quote_literal

LEDGER_SQL = table_sql(LEDGER_TABLE, SQLITE)


def _select(move: Move, source: str) -> str:
    where = f" WHERE {move.where}" if move.where else ""
    return f"SELECT {column_list(move.columns)} FROM {source}{quote_ident(move.legacy)}{where}"


def move_sql(move: Move, source: str = "") -> str:
    return f"INSERT INTO {table_sql(move.target, SQLITE)} ({column_list(move.columns)}) {_select(move, source)}"


def move_back_sql(move: Move, later_parts: list[Move]) -> list[str]:
    """Target rows back into the legacy table. Parts of a split are moved back last part first;
    a row whose id a later part already put back (both written after the cutover) gets a new id."""
    legacy, target = quote_ident(move.legacy), table_sql(move.target, SQLITE)
    cols = column_list(move.columns)
    if not later_parts:
        return [f"INSERT INTO {legacy} ({cols}) SELECT {cols} FROM {target} ORDER BY \"id\""]
    taken = " UNION ALL ".join(f"SELECT \"id\" FROM {table_sql(p.target, SQLITE)}" for p in later_parts)
    no_id = column_list([c for c in move.columns if c != "id"])
    return [
        f"INSERT INTO {legacy} ({cols}) SELECT {cols} FROM {target} WHERE \"id\" NOT IN ({taken}) ORDER BY \"id\"",
        f"INSERT INTO {legacy} ({no_id}) SELECT {no_id} FROM {target} WHERE \"id\" IN ({taken}) ORDER BY \"id\"",
    ]


def _restore_sequence_sql(legacy: str, targets: list[str]) -> list[str]:
    """Put back the legacy AUTOINCREMENT counter: as it was at the cutover if no target sequence moved
    since, else the highest target counter (ids handed out after the cutover are never reused)."""
    names = ", ".join(quote_literal(physical_name(t, SQLITE)) for t in targets)
    current = f"(SELECT max(\"seq\") FROM \"sqlite_sequence\" WHERE \"name\" IN ({names}))"
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


def _set_sequence_sql(move: Move, source: str) -> list[str]:
    """The domain table continues the legacy counter, so no id is ever handed out twice."""
    target = quote_literal(physical_name(move.target, SQLITE))
    legacy_seq = f"(SELECT \"seq\" FROM {source}\"sqlite_sequence\" WHERE \"name\" = {quote_literal(move.legacy)})"
    return [
        f"DELETE FROM \"sqlite_sequence\" WHERE \"name\" = {target} AND {legacy_seq} IS NOT NULL",
        f"INSERT INTO \"sqlite_sequence\" (\"name\", \"seq\") SELECT {target}, max(coalesce({legacy_seq}, 0), "
        f"coalesce((SELECT max(\"id\") FROM {table_sql(move.target, SQLITE)}), 0)) WHERE {legacy_seq} IS NOT NULL",
    ]


def build_steps(legacy: LegacyDatabase, schema: TargetSchema, res: Resolution, *, in_place: bool) -> list[Step]:
    source = "" if in_place else "src."
    steps: list[Step] = []
    for qualified, table in schema.tables.items():
        extra = [c for m in res.moves_into(qualified) for c in m.extra_columns]
        extra = list(dict.fromkeys(extra))
        steps.append(Step("create_table", physical_name(qualified, SQLITE),
                          [create_table_sql(table, SQLITE, extra)],
                          [f"DROP TABLE IF EXISTS {table_sql(qualified, SQLITE)}"],
                          {"table": qualified, "extra_columns": extra}))
    moved = res.legacy_tables
    if in_place:
        for name in moved:
            if name in legacy.sequences or "AUTOINCREMENT" in legacy.tables[name].sql.upper():
                targets = [m.target for m in res.moves_from(name)]
                steps.append(Step("keep_sequence", name, [], _restore_sequence_sql(name, targets),
                                  {"legacy": name, "targets": targets}))
        for obj in legacy.objects:
            if obj.type in ("trigger", "view") and obj.sql and (obj.table in moved or obj.type == "view"):
                if obj.type == "view" and not _view_reads(obj.sql, moved):
                    continue
                steps.append(Step(f"drop_legacy_{obj.type}", obj.name,
                                  [f"DROP {obj.type.upper()} {quote_ident(obj.name)}"], [obj.sql],
                                  {"table": obj.table}))
    for name in moved:
        parts = res.moves_from(name)
        for i, move in enumerate(parts):
            steps.append(Step("move_rows", f"{name} -> {physical_name(move.target, SQLITE)}",
                              [move_sql(move, source)], move_back_sql(move, parts[i + 1:]) if in_place else [],
                              {"legacy": name, "target": move.target, "columns": move.columns,
                               "extra_columns": [c for c, _ in move.extra_columns], "where": move.where,
                               "count_sql": f"SELECT count(*) FROM ({_select(move, source)})"}))
            steps.append(Step("set_sequence", physical_name(move.target, SQLITE), _set_sequence_sql(move, source), [],
                              {"legacy": name, "target": move.target}))
    if in_place:
        for name in moved:
            indexes = [o for o in legacy.objects_on(name) if o.type == "index" and o.sql]
            steps.append(Step("drop_legacy_table", name,
                              [f"DROP INDEX {quote_ident(i.name)}" for i in indexes] + [f"DROP TABLE {quote_ident(name)}"],
                              [legacy.tables[name].sql] + [i.sql for i in indexes],
                              {"rows": legacy.tables[name].rows}))
    for index in schema.indexes:
        steps.append(Step("create_index", index.name, [create_index_sql(index, SQLITE)],
                          [f"DROP INDEX IF EXISTS {quote_ident(index.name)}"],
                          {"table": index.table, "unique": index.unique, "partial": index.partial}))
    for trig in schema.triggers[SQLITE]:
        steps.append(Step("create_trigger", trig.name, [trig.sql], [f"DROP TRIGGER IF EXISTS {quote_ident(trig.name)}"], {}))
    return steps


def _view_reads(sql: str, tables: list[str]) -> bool:
    """Does a view's SQL read any of these tables? Parsed, not grepped; unparsable views count as reading them."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return True
    wanted = {t.lower() for t in tables}
    return any(t.name.lower() in wanted for t in tree.find_all(exp.Table))
