"""Compatibility views (`apply --compat-views`): the legacy names over the domain tables, until `finalize`."""

from __future__ import annotations

from dpro_migrate.dialects import get_dialect, table_sql
from dpro_migrate.model.mapping import Resolution
from dpro_migrate.plan.operations import CreateCompatView, Operation
from dpro_migrate.sqlnames import column_list


def compat_view_operations(res: Resolution, dialect: str, taken: set[str]) -> list[Operation]:
    """Read-only views with the legacy names and columns over the domain tables, for old readers during the
    cutover window. A legacy name already taken (a domain table's, a view's) gets none."""
    impl = get_dialect(dialect)
    ops: list[Operation] = []
    for name in res.legacy_tables:
        if name in taken:
            continue
        cols = column_list(res.moves_from(name)[0].columns)
        union = " UNION ALL ".join(f"SELECT {cols} FROM {table_sql(m.target, dialect)}" for m in res.moves_from(name))
        view = impl.compat_view_sql(name)
        ops.append(CreateCompatView(name, [f"CREATE VIEW {view}{impl.compat_view_options} AS {impl.compat_view_body(union)}"],
                                    [f"DROP VIEW IF EXISTS {view}"]))
    return ops
