"""One catalog reader per dialect (drift_sqlite.py, drift_postgresql.py), found by the dialect's name."""

from __future__ import annotations

from types import ModuleType

from dpro_migrate.dialects import get_dialect
from dpro_migrate.handoff import drift_postgresql, drift_sqlite

# Each reads its dialect's catalog and knows its database's layout: SCHEMAS, bookkeeping(plan),
# trigger_differences(conn, schema), policy_differences(conn, policies),
# live_index(conn, index) -> LiveIndex | None.
CATALOGS: dict[str, ModuleType] = {drift_sqlite.DIALECT: drift_sqlite, drift_postgresql.DIALECT: drift_postgresql}


def catalog_for(dialect: str) -> ModuleType:
    return CATALOGS[get_dialect(dialect).name]  # BadInput for an unknown name
