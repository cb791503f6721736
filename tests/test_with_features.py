"""apply --with ...: the seeds' options, asked for by name, through the real cycle on SQLite and PostgreSQL."""

import sqlite3
from datetime import datetime

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.targets import parse_target


def test_sqlite_new_and_archive_tables_round_trip(legacy_db, tmp_path):
    db = legacy_db()
    original = tmp_path / "original.db"
    original.write_bytes(db.read_bytes())
    verbs.apply(db, backup_dir=tmp_path, features=("new-tables", "archive-tables"))
    names = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"iam_api_keys", "system_feature_flags", "communication_messages_archive"} <= names
    assert verbs.schema_drift(db) == []
    moved = verbs.archive(db, table="messages", older_than=datetime(2024, 6, 1)).moved
    assert moved > 0
    assert verbs.verify(db).ok
    verbs.rollback(db, backup_dir=tmp_path)
    assert logical_differences(original, db) == []


def test_postgres_only_features_are_refused_on_sqlite(legacy_db):
    with pytest.raises(BadInput, match="PostgreSQL only"):
        verbs.make_plan(legacy_db(), features=("row-level-security",))


@pytest.mark.postgres
def test_postgres_with_every_extra(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path,
                   features=("new-tables", "archive-tables", "row-level-security", "partition-by-month"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT relkind FROM pg_class WHERE oid = 'communication.messages'::regclass").fetchone()[0] == "p"
        assert conn.execute("SELECT count(*) FROM pg_policies WHERE policyname = 'user_isolation'").fetchone()[0] >= 5
        assert conn.execute("SELECT to_regclass('marketplace.items')").fetchone()[0] is not None
    assert verbs.schema_drift(db, target) == []
    assert verbs.archive(db, target, table="audit_logs", older_than=datetime(2024, 6, 1)).moved > 0
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    verbs.rollback(db, target, backup_dir=tmp_path)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname IN ('iam', 'system')").fetchone()[0] == 0
