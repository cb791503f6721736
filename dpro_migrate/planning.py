"""Make the plan: read the source, resolve the mapping, find every row the target would refuse, and
build the operations for the target's dialect, the asked-for features included."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dpro_migrate.plan.preflight as preflight
from dpro_migrate.dialects import POSTGRES, SQLITE, get_dialect
from dpro_migrate.errors import BadInput
from dpro_migrate.features.registry import PlanContext, add_features, check_features
from dpro_migrate.model.legacy import connect_readonly, fold
from dpro_migrate.model.mapping import load_mapping, resolve
from dpro_migrate.model.obstacles import in_place_obstacles, postgres_obstacles
from dpro_migrate.model.schema import load_schema
from dpro_migrate.plan.builders import builder_for
from dpro_migrate.plan.document import Plan
from dpro_migrate.model.search import load_search
from dpro_migrate.plan.operations import Analyze, CreateArchive, CreateSearchIndex, CreateTable
from dpro_migrate.safety.state import file_state, read_file, refuse, require_legacy
from dpro_migrate.targets import Target, parse_target

ON_REJECT = ("fail", "quarantine")
# What each target cannot carry: a SQLite target is the legacy file (or a copy of it) migrated in place.
OBSTACLES = {SQLITE: in_place_obstacles, POSTGRES: postgres_obstacles}


def search_operations(schema, dialect: str) -> list[CreateSearchIndex]:
    """ddl/search.toml on this dialect; after the features (an archive moves rows through its triggers)."""
    out = []
    indexes = load_search(schema)
    problem = get_dialect(dialect).search_unavailable() if indexes else None
    if problem:
        raise BadInput(problem)
    for index in indexes:
        objects = get_dialect(dialect).search_objects(index)
        name = objects.tables[0] if objects.tables else index.name
        out.append(CreateSearchIndex(name, objects.sql, objects.reverse, table=index.table, column=index.column,
                                     tables=objects.tables, triggers=objects.triggers, index=objects.index))
    return out


def statistics(ops: list, dialect: str, stat_tables: list[str]) -> Analyze:
    """ANALYZE every table the plan creates, once everything (features included) is built."""
    tables = [op.table for op in ops if isinstance(op, CreateTable | CreateArchive) and op.table]
    d = get_dialect(dialect)
    return Analyze("statistics", d.analyze_sql(tables), d.analyze_reverse_sql(stat_tables), tables=tables)


# SQLite: tables, indexes and views share one namespace; triggers have their own
_NAMESPACE = {"table": "relation", "index": "relation", "view": "relation", "trigger": "trigger"}


def taken_names(db, res, ops) -> list[str]:
    """In place, what apply creates must not take the name of an object that stays in the file: an application
    table (or its index, view or trigger) that apply leaves alone. SQLite compares names case-insensitively."""
    moved = {fold(t) for t in res.legacy_tables}
    staying = {(_NAMESPACE["table"], fold(n)): f"table {n}" for n in db.tables if fold(n) not in moved}
    staying |= {(_NAMESPACE[o.type], fold(o.name)): f"{o.type} {o.name}" for o in db.objects
                if o.type in _NAMESPACE and fold(o.table) not in moved}
    out = []
    for op in ops:
        for promise in op.promises():
            kind = _NAMESPACE.get(promise.kind)
            if kind and (kind, fold(promise.name)) in staying:
                out.append(f"the {staying[kind, fold(promise.name)]} that apply leaves alone has the name of the "
                           f"{promise.kind} {promise.name} it creates; rename it before migrating")
    return sorted(set(out))


def make_plan(source: Path, target: Target | None = None, *, on_reject: str = "fail",
              compat_views: bool = False, features: tuple[str, ...] = (), find_now: bool = True) -> Plan:
    """`find_now=False` leaves the preflight to apply (which always runs it again under its lock):
    for apply straight from the source with --on-reject fail, once is enough."""
    target = target or parse_target(None)
    if on_reject not in ON_REJECT:
        raise BadInput(f"--on-reject {on_reject!r}: choose fail or quarantine")
    check_features(features, target.dialect)
    db = read_file(source)
    require_legacy(db)
    if file_state(db) == "migrated":
        raise BadInput(f"{source}: is already migrated; see `dpro-migrate status`")
    schema, mapping = load_schema(), load_mapping()
    res = resolve(db, schema, mapping)
    obstacles = OBSTACLES.get(target.dialect)
    if obstacles:
        refuse(db, obstacles(db, res, schema))
    builder = builder_for(target.dialect)
    rules = preflight.build_rules(schema, res, builder.preflight_types(schema, res))
    found = preflight.PreflightReport([], {})
    if find_now or on_reject != "fail":
        conn = connect_readonly(source)
        try:
            found = preflight.run(conn, rules)
        finally:
            conn.close()
    quarantine = (rules, sorted(found.refused_rows)) if on_reject == "quarantine" and not found.clean else None
    ops = builder.build_operations(db, schema, res, quarantine)
    ops = add_features(ops, PlanContext(target.dialect, source, db, schema, res, tuple(features)),
                       compat_views=compat_views)
    ops += search_operations(schema, target.dialect)
    ops.append(statistics(ops, target.dialect, db.stat_tables))
    if target.in_place:
        refuse(db, taken_names(db, res, ops))
    once, repeat = preflight.refusal_sql(rules)
    return Plan(
        source=str(source.resolve()),
        source_fingerprint=db.fingerprint,
        target=target.display,
        dialect=target.dialect,
        operations=ops,
        legacy_tables={n: {"rows": db.tables[n].rows, "sql": db.tables[n].sql} for n in res.legacy_tables},
        legacy_objects=[{"type": o.type, "name": o.name, "table": o.table, "sql": o.sql} for o in db.objects],
        unknown_tables=res.unknown_tables,
        missing_legacy_tables=res.missing_legacy,
        extra_columns={t: [list(c) for c in cols] for t, cols in res.extra_columns.items()},
        on_reject=on_reject,
        compat_views=compat_views,
        features=list(features),
        preflight={"findings": [dataclasses.asdict(f) for f in found.findings], "refused_rows": found.refused_rows,
                   "dirty": found.dirty.to_json(), "sql_once": once, "sql_repeat": repeat},
    )
