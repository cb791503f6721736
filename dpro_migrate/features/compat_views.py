"""Compatibility views (`apply --compat-views`): the legacy names over the domain tables, until `finalize`."""

from __future__ import annotations

from sqlglot import exp

from dpro_migrate.dialects import ViewPart, get_dialect, table_sql
from dpro_migrate.model.mapping import Move, Resolution
from dpro_migrate.model.schema import TargetSchema, load_schema
from dpro_migrate.plan.operations import CreateCompatView, Operation
from dpro_migrate.sqlnames import column_list


def compat_view_operations(res: Resolution, dialect: str, taken: set[str],
                           schema: TargetSchema | None = None) -> list[Operation]:
    """Views with the legacy names and columns over the domain tables, for the old application during the
    cutover window: writable where the dialect makes them so (SQLite), read-only elsewhere. A legacy name
    already taken (a domain table's, a view's) gets none."""
    impl = get_dialect(dialect)
    schema = schema or load_schema()
    ops: list[Operation] = []
    for name in res.legacy_tables:
        if name in taken:
            continue
        moves = res.moves_from(name)
        columns = moves[0].columns
        cols = column_list(columns)
        union = " UNION ALL ".join(f"SELECT {cols} FROM {table_sql(m.target, dialect)}" for m in moves)
        view = impl.compat_view_sql(name)
        parts = [ViewPart(table_sql(m.target, dialect), m.where) for m in moves]
        writes = impl.compat_view_write_sql(name, columns, parts, _defaults(moves[0], schema, dialect))
        ops.append(CreateCompatView(name, [f"CREATE VIEW {view}{impl.compat_view_options} AS {impl.compat_view_body(union)}",
                                     *writes],
                                    [f"DROP VIEW IF EXISTS {view}"], writable=bool(writes)))
    return ops


def _defaults(move: Move, schema: TargetSchema, dialect: str) -> dict[str, str]:
    """Column -> the default its domain table declares, as the dialect writes it. One set for all parts of a
    split: the rule that picks the part reads the row with them."""
    table = schema.table(move.target)
    out = {}
    for name in move.columns:
        column = table.column(name)
        default = column.node.find(exp.DefaultColumnConstraint) if column else None
        if default is not None:
            out[name] = get_dialect(dialect).render(default.this)
    return out
