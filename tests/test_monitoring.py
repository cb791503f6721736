"""--with monitoring-views (seed 004, PostgreSQL): sizes, index usage, rows per domain, connections, in the system
schema; verified as promised and dropped by rollback."""

from __future__ import annotations

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.targets import parse_target

pytestmark = pytest.mark.postgres


def test_monitoring_views_report_the_seven_schemas_and_go_with_rollback(legacy_db, tmp_path, pg_url):
    db, target = legacy_db(), parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path, features=("monitoring-views", "partition-by-month"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        sizes = {(s, t): (rows, total) for s, t, rows, total in conn.execute(
            "SELECT schema_name, table_name, estimated_rows, total_bytes FROM system.monitoring_table_sizes")}
        messages = conn.execute("SELECT count(*) FROM communication.messages").fetchone()[0]
        # a partitioned table counts its partitions' rows and bytes (ANALYZE ran at the end of apply)
        assert sizes[("communication", "messages")][0] == messages and sizes[("communication", "messages")][1] > 0
        assert ("communication", "messages_default") not in sizes
        users = conn.execute("SELECT count(*) FROM iam.users").fetchone()[0]  # a plain table
        assert sizes[("iam", "users")][0] == users and sizes[("iam", "users")][1] > 0
        domains = {d: (t, rows, total) for d, t, rows, total in conn.execute(
            "SELECT domain, tables, estimated_rows, total_bytes FROM system.monitoring_rows_per_domain")}
        assert set(domains) == {"iam", "ai_agents", "communication", "workflow", "tasks", "system", "marketplace"}
        assert all(total > 0 for _, _, total in domains.values())
        assert domains["iam"][1] == sum(rows for (s, _), (rows, _) in sizes.items() if s == "iam")
        names = {r[0] for r in conn.execute("SELECT index_name FROM system.monitoring_index_usage")}
        assert "uq_users_email" in names and "idx_conv_recent_active" in names
        assert conn.execute("SELECT sum(connections) FROM system.monitoring_connections").fetchone()[0] >= 1
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    verbs.rollback(db, target, backup_dir=tmp_path)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_views WHERE viewname LIKE 'monitoring_%'").fetchone()[0] == 0
