"""The tables seed 003 lists as missing that no legacy table feeds (ddl/new/): created empty."""

from __future__ import annotations

from dpro_migrate.model.schema import load_new
from dpro_migrate.plan.builders import builder_for
from dpro_migrate.plan.operations import Operation


def new_table_operations(dialect: str) -> list[Operation]:
    """The new tables, then (PostgreSQL) their keys, checks and foreign keys, then their indexes, as the
    main plan builds its own; their foreign keys reference ddl/ tables, so these come after the main plan's."""
    new = load_new()
    creates, constraints, indexes = builder_for(dialect).table_operations(new.tables, new.indexes, new=True)
    return [*creates, *constraints, *indexes]
