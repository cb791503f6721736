"""apply --compat-views leaves the legacy names over the domain tables (writable on SQLite, read-only on PostgreSQL);
finalize removes them."""

import sqlite3

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.targets import parse_target


def test_sqlite_compat_views_read_the_domain_tables(legacy_db, tmp_path):
    db = legacy_db()
    original = tmp_path / "original.db"
    original.write_bytes(db.read_bytes())
    counts = {t: sqlite3.connect(original).execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("users", "activity_logs", "messages")}
    verbs.apply(db, backup_dir=tmp_path, compat_views=True)
    conn = sqlite3.connect(db)
    for table, n in counts.items():
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n
    assert conn.execute("SELECT id, username FROM users ORDER BY id LIMIT 1").fetchone() == \
        sqlite3.connect(original).execute("SELECT id, username FROM users ORDER BY id LIMIT 1").fetchone()
    conn.close()  # writes through them: tests/test_compat_writes.py
    assert verbs.verify(db).ok
    verbs.rollback(db, backup_dir=tmp_path)
    assert logical_differences(original, db) == []


def test_sqlite_finalize_drops_them(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path, compat_views=True)
    assert "users" in verbs.finalize(db)
    assert sqlite3.connect(db).execute("SELECT count(*) FROM sqlite_master WHERE name = 'users'").fetchone()[0] == 0
    assert verbs.finalize(db) == []
    assert [h["action"] for h in verbs.status(db).history] == ["apply", "finalize", "finalize"]


@pytest.mark.postgres
def test_postgres_compat_views(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path, compat_views=True)
    n = sqlite3.connect(db).execute("SELECT count(*) FROM activity_logs").fetchone()[0]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM public.activity_logs").fetchone()[0] == n
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            conn.execute("DELETE FROM public.users")
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            conn.execute("INSERT INTO public.activity_logs (action) VALUES ('login')")
    assert "users" in verbs.finalize(db, target)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is None
    verbs.rollback(db, target, backup_dir=tmp_path)
