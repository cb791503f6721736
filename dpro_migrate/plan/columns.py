"""The columns apply creates in each domain table: ddl/ (or ddl/new/) plus the legacy columns that ride along.
Rollback refuses to drop a column someone added after apply while it holds values (nothing lost, ever)."""

from __future__ import annotations

from dpro_migrate.model.schema import load_schema, new_tables
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.operations import CreateTable


def created_columns(plan: Plan) -> dict[str, set[str]]:
    """Qualified domain table -> the names of the columns apply gave it."""
    schema = load_schema()
    new = {t.qualified: t for t in new_tables()} if any(op.new for op in plan.of_type(CreateTable)) else {}
    out: dict[str, set[str]] = {}
    for op in plan.of_type(CreateTable):
        table = new.get(op.table) if op.new else schema.table(op.table)
        if table is not None:
            out[op.table] = set(table.column_names) | {name for name, _ in op.extra_columns}
    return out


def added_columns_message(found: dict[str, int]) -> str:
    return ("columns were added after apply and hold values rollback cannot take back to the legacy tables: "
            + ", ".join(f"{c} ({n} rows)" for c, n in found.items())
            + "; nothing was changed (copy their values elsewhere and drop them, then roll back)")
