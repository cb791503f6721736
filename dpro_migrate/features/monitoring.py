"""Monitoring views (seed 004, `--with monitoring-views`, PostgreSQL): table and index sizes, index usage, rows
per domain and connections, in the system schema, read from ddl/monitoring.postgresql.sql."""

from __future__ import annotations

import re

from dpro_migrate.dialects import POSTGRES, table_sql
from dpro_migrate.errors import BadInput
from dpro_migrate.model.schema import ddl_dir
from dpro_migrate.plan.operations import CreateMonitoringView, Operation

_VIEW = re.compile(r"^\s*CREATE\s+VIEW\s+([a-z_]+\.[a-z_]+)\s+AS\b", re.I)


def monitoring_views(dialect: str = POSTGRES) -> list[tuple[str, str]]:
    """(qualified name, CREATE VIEW statement) of each view in ddl/monitoring.<dialect>.sql."""
    path = ddl_dir() / f"monitoring.{dialect}.sql"
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the monitoring views ({exc})") from None
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    out = []
    for statement in (s.strip() for s in body.split(";")):
        if not statement:
            continue
        found = _VIEW.match(statement)
        if not found:
            raise BadInput(f"{path.name}: only CREATE VIEW belongs here: {statement[:60]}")
        out.append((found.group(1), statement))
    return out


def monitoring_operations(dialect: str) -> list[Operation]:
    """One operation per view; the reverse drops it (rollback runs them before the schemas go)."""
    return [CreateMonitoringView(name, [sql], [f"DROP VIEW IF EXISTS {table_sql(name, dialect)}"])
            for name, sql in monitoring_views(dialect)]
