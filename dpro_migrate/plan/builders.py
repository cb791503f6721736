"""The plan builder of each target dialect, by the name a plan records."""

from __future__ import annotations

from types import ModuleType

from dpro_migrate.dialects import POSTGRES, SQLITE
from dpro_migrate.plan import build_postgresql, build_sqlite

# Each exposes build_operations(legacy, schema, resolution, quarantine) and
# table_operations(tables, indexes, new=, extra_columns=) -> (creates, constraints, indexes).
BUILDERS: dict[str, ModuleType] = {SQLITE: build_sqlite, POSTGRES: build_postgresql}


def builder_for(dialect: str) -> ModuleType:
    return BUILDERS[dialect]
