"""The seeds' options beyond the move (`--with NAME`), and `--compat-views`: each adds operations to a plan
at its place, and each is undone by rollback like any other operation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from dpro_migrate.config import load_settings
from dpro_migrate.dialects import DIALECTS, get_dialect, physical_name
from dpro_migrate.errors import BadInput
from dpro_migrate.features.app_roles import app_role_operations
from dpro_migrate.features.archive import archive_operations
from dpro_migrate.features.compat_views import compat_view_operations
from dpro_migrate.features.monitoring import monitoring_operations
from dpro_migrate.features.new_tables import new_table_operations
from dpro_migrate.features.partitions import partition_plan
from dpro_migrate.features.rls import rls_operations
from dpro_migrate.model.legacy import LegacyDatabase
from dpro_migrate.model.mapping import Resolution
from dpro_migrate.model.schema import TargetSchema, new_tables
from dpro_migrate.plan.operations import CreateIndex, CreateTable, CreateTrigger, Operation, RecreateView


@dataclass(frozen=True)
class PlanContext:
    dialect: str
    source: Path
    legacy: LegacyDatabase
    schema: TargetSchema
    resolution: Resolution
    features: tuple[str, ...]


def _before_first(ops: list[Operation], kinds: tuple[type, ...], added: list[Operation]) -> list[Operation]:
    at = next((i for i, op in enumerate(ops) if isinstance(op, kinds)), len(ops))
    return ops[:at] + added + ops[at:]


def _compat_views(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    # after the moves and renames, before the carried-over views and indexes
    taken = {physical_name(q, ctx.dialect) for q in ctx.schema.tables}
    taken |= {o.name for o in ctx.legacy.objects if o.type == "view"}
    return _before_first(ops, (RecreateView, CreateIndex), compat_view_operations(ctx.resolution, ctx.dialect, taken))


def _new_tables(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    return ops + new_table_operations(ctx.dialect)  # last: their foreign keys reference ddl/ tables


def _archive_tables(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    # before the triggers: on SQLite its reverse then runs once the domain triggers are gone
    extra = {op.table: op.extra_columns for op in ops if isinstance(op, CreateTable)}
    return _before_first(ops, (CreateTrigger,), archive_operations(ctx.dialect, extra))


def _row_level_security(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    return ops + rls_operations(ctx.schema, new_tables() if "new-tables" in ctx.features else (), ops,
                                force="force-row-level-security" in ctx.features)


def _force_row_level_security(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    if "row-level-security" not in ctx.features:  # _row_level_security reads it
        raise BadInput("--with force-row-level-security: also pass --with row-level-security")
    return ops


def _monitoring_views(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    return ops + monitoring_operations(ctx.dialect)  # views over the catalog: after everything they report on


def _app_roles(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    return app_role_operations(ops)  # last: its grants cover every table and view the plan creates


def _partition_by_month(ops: list[Operation], ctx: PlanContext) -> list[Operation]:
    # every month of the data, the current month and the months ahead (DPRO_MIGRATE_PARTITION_MONTHS_AHEAD)
    return partition_plan(ops, ctx.source, months_ahead=load_settings().partition_months_ahead,
                          today=datetime.now(timezone.utc).date())


# In the order they are added to a plan.
FEATURES: dict[str, Callable[[list[Operation], PlanContext], list[Operation]]] = {
    "new-tables": _new_tables,
    "archive-tables": _archive_tables,
    "row-level-security": _row_level_security,
    "partition-by-month": _partition_by_month,
    "force-row-level-security": _force_row_level_security,
    "monitoring-views": _monitoring_views,
    "app-roles": _app_roles,
}


def check_features(features: tuple[str, ...], dialect: str) -> None:
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise BadInput(f"--with {unknown[0]!r}: choose among {', '.join(FEATURES)}")
    unsupported = [f for f in features if f not in get_dialect(dialect).features]
    if unsupported:
        where = " or ".join(d.title for d in DIALECTS.values() if unsupported[0] in d.features)
        raise BadInput(f"--with {', '.join(unsupported)}: {where} only ({get_dialect(dialect).title} has no such feature)")


def add_features(ops: list[Operation], ctx: PlanContext, *, compat_views: bool) -> list[Operation]:
    if compat_views:
        ops = _compat_views(ops, ctx)
    for name, add in FEATURES.items():
        if name in ctx.features:
            ops = add(ops, ctx)
    return ops
