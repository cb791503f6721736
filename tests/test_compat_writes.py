"""Life after the cutover through the legacy names: on SQLite in place an unchanged legacy application writes
through the compatibility views (the split activity_logs routed by the mapping's rule), and the two halves of
the split log share one id space on both targets, so the view never shows one id twice and rollback never
renumbers."""

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


# --- SQLite in place: writable compatibility views ---------------------------------------------------


def test_an_unchanged_application_writes_through_the_views(legacy_db, tmp_path):
    db = legacy_db()
    last_log = sqlite3.connect(db).execute("SELECT max(id) FROM activity_logs").fetchone()[0]
    verbs.apply(db, backup_dir=tmp_path, compat_views=True)
    app = sqlite3.connect(db, isolation_level=None)

    # INSERT as the legacy application writes: no id, columns with defaults left out
    app.execute("INSERT INTO users (username, email, password_hash) VALUES ('newcomer', 'newcomer@example.com', 'h')")
    user = app.execute("SELECT id FROM iam_users WHERE username = 'newcomer'").fetchone()[0]
    assert app.execute("SELECT is_active, is_admin, subscription_type, typeof(created_at) FROM iam_users WHERE id = ?",
                       (user,)).fetchone() == (1, 0, "free", "text")
    app.execute("INSERT INTO messages (conversation_id, user_id, sender_type, content) VALUES (1, ?, 'user', 'hello')",
                (user,))
    assert app.execute("SELECT message_type, tokens_used FROM communication_messages WHERE content = 'hello'"
                       ).fetchone() == ("text", 0)
    app.execute("INSERT INTO activity_logs (user_id, action) VALUES (?, 'login')", (user,))
    app.execute("INSERT INTO activity_logs (user_id, action) VALUES (?, 'send_message')", (user,))
    app.execute("INSERT INTO activity_logs (user_id, action, details) VALUES (?, 'auth_failed', NULL), "
                "(?, 'create_task', '{}'), (NULL, 'sso_auth', NULL)", (user, user))
    new_logs = dict(app.execute("SELECT id, action FROM activity_logs WHERE id > ?", (last_log,)))
    assert sorted(new_logs) == list(range(last_log + 1, last_log + 6))  # one id space, no gaps
    # each row in the half the mapping's rule names (login and auth events to iam, the rest to system)
    assert {action: half_of(app, i) for i, action in new_logs.items()} == {
        "login": ["iam_authentication_logs"], "send_message": ["system_audit_logs"],
        "auth_failed": ["iam_authentication_logs"], "create_task": ["system_audit_logs"],
        "sso_auth": ["iam_authentication_logs"]}

    # rows added after the cutover are reported, not failed
    report = verbs.verify(db)
    assert report.ok, report.failures
    added = {(c.legacy, c.target): c.added_after_cutover for c in report.counts if c.added_after_cutover}
    assert added == {("users", "iam.users"): 1, ("messages", "communication.messages"): 1,
                     ("activity_logs", "iam.authentication_logs"): 3, ("activity_logs", "system.audit_logs"): 2}

    # UPDATE and DELETE through the legacy names
    app.execute("UPDATE users SET email = 'sofia@example.org' WHERE id = 3")  # the audit trigger logs it
    assert app.execute("SELECT email FROM iam_users WHERE id = 3").fetchone() == ("sofia@example.org",)
    app.execute("UPDATE messages SET content = 'edited', metadata = NULL WHERE id = 7")
    assert app.execute("SELECT content FROM communication_messages WHERE id = 7").fetchone() == ("edited",)
    app.execute("DELETE FROM messages WHERE id = 10")
    assert app.execute("SELECT count(*) FROM communication_messages WHERE id = 10").fetchone() == (0,)
    # an UPDATE that makes a row a login moves it to iam under its id, and back
    moved = app.execute("SELECT min(id) FROM system_audit_logs WHERE action = 'send_message'").fetchone()[0]
    before = app.execute("SELECT * FROM activity_logs WHERE id = ?", (moved,)).fetchone()
    app.execute("UPDATE activity_logs SET action = 'login' WHERE id = ?", (moved,))
    assert half_of(app, moved) == ["iam_authentication_logs"]
    assert app.execute("SELECT * FROM activity_logs WHERE id = ?", (moved,)).fetchone() == (*before[:2], "login", *before[3:])
    app.execute("UPDATE activity_logs SET action = 'logout', details = '{\"x\": 1}' WHERE id = ?", (moved,))
    assert half_of(app, moved) == ["system_audit_logs"]
    app.execute("UPDATE activity_logs SET user_agent = 'curl' WHERE action = 'login'")  # stays in its half
    app.execute("DELETE FROM activity_logs WHERE action = 'auth_failed' AND id <= ?", (last_log,))
    assert app.execute("SELECT count(*) FROM iam_authentication_logs WHERE action = 'auth_failed'").fetchone() == (1,)
    # an id the other half holds is refused, as the legacy table's primary key refused it
    taken = app.execute("SELECT max(id) FROM system_audit_logs").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError):
        app.execute("INSERT INTO activity_logs (id, action) VALUES (?, 'login')", (taken,))
    assert duplicate_ids(app) == []

    views = [r[0] for r in app.execute("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY 1")]
    expected = {v: rows(app, v) for v in views}
    highest = app.execute("SELECT max(id) FROM activity_logs").fetchone()[0]
    app.close()

    result = verbs.rollback(db, backup_dir=tmp_path)
    assert result.renumbered == 0
    legacy = sqlite3.connect(db)
    for view in views:  # the legacy tables hold exactly what the views showed, value for value
        assert rows(legacy, view) == expected[view], view
    assert legacy.execute("SELECT seq FROM sqlite_sequence WHERE name = 'activity_logs'").fetchone() == (highest,)


def test_finalize_drops_the_views_with_their_triggers(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path, compat_views=True)
    conn = sqlite3.connect(db, isolation_level=None)

    def triggers() -> set[str]:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}

    assert {f"compat_{v}_{e}" for v in ("users", "messages", "activity_logs") for e in ("insert", "update", "delete")} <= triggers()
    assert "activity_logs" in verbs.finalize(db)
    assert not [t for t in triggers() if t.startswith("compat_")]
    assert {"trg_iam_authentication_logs_shared_ids", "trg_system_audit_logs_shared_ids"} <= triggers()
    conn.execute("INSERT INTO iam_authentication_logs (action) VALUES ('login')")
    conn.execute("INSERT INTO system_audit_logs (action) VALUES ('logout')")
    assert conn.execute("SELECT count(*) FROM (SELECT id FROM iam_authentication_logs INTERSECT "
                        "SELECT id FROM system_audit_logs)").fetchone() == (0,)
    assert verbs.verify(db).ok


# --- one id space for the split log -------------------------------------------------------------------


@pytest.mark.parametrize("compat_views", [False, True], ids=["halves", "halves-and-view"])
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
