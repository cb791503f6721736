"""The columns apply creates in each domain table: ddl/ (or ddl/new/) plus the legacy columns that ride along.
Rollback refuses to drop a column someone added after apply while it holds values (nothing lost, ever)."""

from __future__ import annotations

from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.model.schema import load_schema, new_tables
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.operations import CreateTable, RowMove


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


def read_back_columns(plan: Plan) -> dict[str, dict[str, str]]:
    """Qualified domain table -> {column rollback reads back: the legacy table it goes back to}."""
    out: dict[str, dict[str, str]] = {}
    for move in plan.of_type(RowMove):
        for column in [*move.columns, *move.extra_columns]:
            out.setdefault(move.target, {}).setdefault(column, move.legacy)
    return out


def dropped_columns(plan: Plan, live: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    """(domain table, column, legacy table) for each column rollback reads back that its domain table no longer
    has (dropped after the cutover). `live`: the columns each domain table has now (a table not in it: skipped)."""
    return [(table, column, legacy) for table, columns in read_back_columns(plan).items() if table in live
            for column, legacy in columns.items() if column not in live[table]]


def dropped_columns_message(dropped: list[tuple[str, str, str]], kept_in: str) -> str:
    """One line: which columns, where the legacy values are, what the DBA can do."""
    names = ", ".join(f"{t}.{c} (legacy {lg}.{c})" for t, c, lg in dropped)
    return (f"columns rollback reads back were dropped after the cutover: {names}; rollback would put NULL where "
            f"the legacy values were, so it refuses and nothing was changed; the legacy values are in {kept_in}: add "
            "the column back to the domain table (with its values, from there) and roll back again")


def refuse_changed_columns(plan: Plan, live: dict[str, set[str]], added: dict[str, int], kept_in: str) -> None:
    """Before rollback changes anything, on either target: a column it reads back that was dropped after the
    cutover (exit 2: the legacy values are in `kept_in`), or one added after apply that holds values (exit 1)."""
    dropped = dropped_columns(plan, live)
    if dropped:
        raise BadInput(dropped_columns_message(dropped, kept_in),
                       details={"dropped_columns": [f"{t}.{c}" for t, c, _ in dropped]})
    if added:
        raise ChecksFailed(added_columns_message(added), details={"added_columns": added})
