"""Life after the cutover: the two halves of the split log share one id space on both targets, so the
compatibility view never shows one id twice and rollback never renumbers."""

import sqlite3
import threading

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.model.legacy import open_legacy
from dpro_migrate.model.mapping import Mapping, MoveRule, load_mapping, resolve
from dpro_migrate.model.schema import load_schema
from dpro_migrate.plan.build_postgresql import build_operations as postgresql_operations
from dpro_migrate.plan.build_postgresql import share_id_space
from dpro_migrate.plan.build_sqlite import build_operations as sqlite_operations
from dpro_migrate.plan.operations import SetSequence, ShareIdSpace
from dpro_migrate.targets import parse_target

HALVES = ("iam_authentication_logs", "system_audit_logs")


def rows(conn: sqlite3.Connection, table: str) -> list[tuple]:
    """Every row of a table or view, each value with its storage class, in id order."""
    cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
    select = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
    return conn.execute(f'SELECT {select} FROM "{table}" ORDER BY "id"').fetchall()


def half_of(conn: sqlite3.Connection, log_id: int) -> list[str]:
    return [h for h in HALVES if conn.execute(f"SELECT 1 FROM {h} WHERE id = ?", (log_id,)).fetchone()]


def duplicate_ids(conn) -> list:
    return conn.execute("SELECT id FROM activity_logs GROUP BY id HAVING count(*) > 1").fetchall()


# --- one id space for the split log -------------------------------------------------------------------


@pytest.mark.parametrize("compat_views", [False], ids=["halves"])
def test_the_halves_share_one_id_space_on_sqlite(legacy_db, tmp_path, compat_views):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path, compat_views=compat_views)
    app = sqlite3.connect(db, isolation_level=None)
    for _ in range(3):  # the application's plain INSERTs, without an id, into either half
        app.execute("INSERT INTO iam_authentication_logs (action) VALUES ('login')")
        app.execute("INSERT INTO system_audit_logs (action) VALUES ('create_task')")
    app.execute("INSERT INTO system_audit_logs (action) SELECT action FROM system_audit_logs LIMIT 7")
    app.execute("UPDATE iam_users SET email = 'x' || email WHERE id <= 2")  # the audit trigger writes system_audit_logs
    if compat_views:
        app.execute("INSERT INTO activity_logs (action) VALUES ('login')")
        # one statement writing both halves: SQLite writes each AUTOINCREMENT counter back at its end
        app.execute("INSERT INTO activity_logs (action) VALUES ('login'), ('export_data'), ('auth_ok'), ('logout')")
        app.execute("INSERT INTO activity_logs (action) SELECT action FROM activity_logs ORDER BY id LIMIT 9")
    for _ in range(2):  # and the halves again, each after the other
        app.execute("INSERT INTO iam_authentication_logs (action) VALUES ('login')")
        app.execute("INSERT INTO system_audit_logs (action) VALUES ('logout')")
    ids = [r[0] for r in app.execute("SELECT id FROM iam_authentication_logs UNION ALL SELECT id FROM system_audit_logs")]
    assert len(ids) == len(set(ids))
    app.close()

    result = verbs.rollback(db, backup_dir=tmp_path)
    assert result.renumbered == 0
    legacy = sqlite3.connect(db)
    assert sorted(r[0] for r in legacy.execute("SELECT id FROM activity_logs")) == sorted(ids)
    assert legacy.execute("SELECT seq FROM sqlite_sequence WHERE name = 'activity_logs'").fetchone() == (max(ids),)


def test_the_split_is_found_from_the_mapping(legacy_db):
    legacy, schema, mapping = open_legacy(legacy_db()), load_schema(), load_mapping()
    split = resolve(legacy, schema, mapping)
    for build in (sqlite_operations, postgresql_operations):
        assert [(op.name, op.tables) for op in build(legacy, schema, split) if isinstance(op, ShareIdSpace)] == \
            [("activity_logs", ["iam.authentication_logs", "system.audit_logs"])]
    # a mapping that does not split activity_logs: nothing to share
    whole = Mapping([r for r in mapping.moves if r.legacy != "activity_logs"]
                    + [MoveRule("activity_logs", "system.audit_logs")], mapping.propose)
    unsplit = resolve(legacy, schema, whole)
    assert not [op for op in sqlite_operations(legacy, schema, unsplit) if isinstance(op, ShareIdSpace)]
    ops = postgresql_operations(legacy, schema, unsplit)
    assert not [op for op in ops if isinstance(op, ShareIdSpace)]
    assert "system.audit_logs" in {op.table for op in ops if isinstance(op, SetSequence)}  # its own identity


def test_the_halves_share_one_sequence_on_postgresql(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path, compat_views=True)

    def write(table: str, action: str) -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            for _ in range(40):
                conn.execute(f"INSERT INTO {table} (action) VALUES (%s)", (action,))

    # two sessions inserting into the two halves at the same time
    sessions = [threading.Thread(target=write, args=("iam.authentication_logs", "login")),
                threading.Thread(target=write, args=("system.audit_logs", "create_task"))]
    for s in sessions:
        s.start()
    for s in sessions:
        s.join()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE iam.users SET email = 'x' || email WHERE id <= 2")  # the audit trigger
        conn.execute("INSERT INTO system.audit_logs (action) SELECT 'bulk' FROM generate_series(1, 5)")
        conn.execute("INSERT INTO iam.authentication_logs (action) VALUES ('login')")
        assert duplicate_ids(conn) == []
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM public.activity_logs"))
        # the reverse gives each half its identity back, continuing after the shared sequence
        undo = share_id_space("activity_logs", ["iam.authentication_logs", "system.audit_logs"], 0).reverse
        with conn.transaction(force_rollback=True):
            for statement in undo:
                conn.execute(statement)
            assert conn.execute("SELECT attrelid::regclass::text, attidentity FROM pg_attribute WHERE attname = 'id' "
                                "AND attrelid IN ('iam.authentication_logs'::regclass, 'system.audit_logs'::regclass) "
                                "ORDER BY 1").fetchall() == [("iam.authentication_logs", "d"), ("system.audit_logs", "d")]
            assert conn.execute("SELECT to_regclass('iam.activity_logs_id_seq')").fetchone() == (None,)
            assert conn.execute("INSERT INTO system.audit_logs (action) VALUES ('x') RETURNING id").fetchone() == (ids[-1] + 1,)

    result = verbs.rollback(db, target, backup_dir=tmp_path, write_back=True)
    assert result.renumbered == 0
    assert result.changes["activity_logs"]["inserted"] == 88
    legacy = sqlite3.connect(db)
    assert sorted(r[0] for r in legacy.execute("SELECT id FROM activity_logs")) == ids
