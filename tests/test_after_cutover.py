"""Life after the cutover on PostgreSQL: the application writes for days (and to the source too), and
verify and rollback still tell the truth and lose nothing. Checked with the databases' own answers: the
legacy file after a write-back holds exactly what PostgreSQL held, value for value."""

import shutil
import sqlite3

import psycopg
import pytest
from collections import Counter

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from dpro_migrate import verbs
from dpro_migrate.backends import postgres as pg_backend
from dpro_migrate.errors import ChecksFailed, OutcomeUnknown
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.plan.operations import CopyRows
from dpro_migrate.targets import parse_target

from tests.conftest import file_digest

pytestmark = pytest.mark.postgres


def q(url, sql, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def expected_after_write_back(url, plan, db) -> dict[str, dict]:
    """The legacy file as a write-back must leave it: its rows, except those the application wrote in
    PostgreSQL after the cutover (a row version whose xmin is not apply's transaction), converted back as the
    write-back converts them, and without the rows deleted there. {legacy: {id: row}}."""
    out = sqlite_rows(db, plan)
    renumbered: dict[str, list] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        xid = conn.execute("SELECT state::jsonb ->> 'xid' FROM system.migration_ledger WHERE action = 'apply'").fetchone()[0]
        for move in plan.of_type(CopyRows):
            cols = ", ".join(pg_backend._as_sqlite_sql(c, move.types[c]) for c in move.columns)
            schema, table = move.target.split(".")
            live = {r[0] for r in conn.execute(f'SELECT "id" FROM "{schema}"."{table}"')}
            planned = plan_rows(db, move)
            for row in conn.execute(f'SELECT {cols} FROM "{schema}"."{table}" WHERE xmin::text <> %s', (xid,)):
                id_ = row[move.columns.index("id")]
                if id_ not in planned and id_ in out[move.legacy] and id_ not in plan_rows(db, move, other=True):
                    renumbered.setdefault(move.legacy, []).append(tuple(row))  # the other half took this id too
                else:
                    out[move.legacy][id_] = tuple(row)
            for id_ in planned - live:
                out[move.legacy].pop(id_, None)
    for legacy, rows in renumbered.items():
        out[legacy] = {**out[legacy], **{("renumbered", i): r for i, r in enumerate(rows)}}
    return out


def plan_rows(db, move, *, other: bool = False) -> set[int]:
    """The ids of the source rows this move took (a split's part: its rule), or (`other`) all the others."""
    conn = sqlite3.connect(db)
    try:
        where = f" WHERE {'NOT ' if other else ''}({move.where})" if move.where else (" WHERE 0" if other else "")
        return {r[0] for r in conn.execute(f'SELECT "id" FROM "{move.legacy}"{where}')}
    finally:
        conn.close()


def sqlite_rows(db, plan) -> dict[str, dict]:
    conn = sqlite3.connect(db)
    try:
        out = {}
        for move in plan.of_type(CopyRows):
            cols = ", ".join(f'"{c}"' for c in move.columns)
            out[move.legacy] = {r[move.columns.index("id")]: tuple(r)
                                for r in conn.execute(f'SELECT {cols} FROM "{move.legacy}"')}
        return out
    finally:
        conn.close()


def schemas(url) -> set[str]:
    return {r[0] for r in q(url, "SELECT nspname FROM pg_namespace")} & {"iam", "communication", "system"}


@pytest.fixture
def migrated(tmp_path, pg_url):
    db = tmp_path / "dpro_agent.db"
    generate_legacy_db(db, messages=200, seed=4)
    target = parse_target(pg_url)
    plan, _ = verbs.apply(db, target, backup_dir=tmp_path / "bk")
    return db, target, plan


WORKLOAD = [
    "UPDATE iam.users SET email = 'changed@example.org' WHERE id = 3",
    "DELETE FROM communication.messages WHERE id = 10",
    "INSERT INTO iam.users (username, email, password_hash) VALUES ('newcomer', 'new@example.org', 'x')",
    "INSERT INTO communication.messages (conversation_id, sender_type, content) SELECT min(id), 'user', 'after' "
    "FROM communication.conversations",
    "UPDATE communication.messages SET content = content || ' (edited)' WHERE id = 20",
]


def test_verify_reports_changes_as_changes_and_strict_fails_on_them(migrated):
    db, target, _ = migrated
    for sql in WORKLOAD:
        q(target.conninfo, sql)
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    messages = next(c for c in report.counts if c.legacy == "messages")
    assert (messages.changed_after_cutover, messages.deleted_after_cutover, messages.added_after_cutover) == (1, 1, 1)
    users = next(c for c in report.counts if c.legacy == "users")
    assert (users.changed_after_cutover, users.added_after_cutover) == (1, 1)
    assert not verbs.verify(db, target, strict=True).ok


def test_rollback_refuses_then_writes_back_inserts_updates_and_deletes(migrated):
    db, target, plan = migrated
    for sql in WORKLOAD:
        q(target.conninfo, sql)
    digest = file_digest(db)
    with pytest.raises(ChecksFailed, match="inserted") as refused:
        verbs.rollback(db, target, backup_dir=db.parent / "bk")
    assert refused.value.details["messages"]["deleted_ids"] == [10]
    assert refused.value.details["users"]["updated_ids"] == [3]
    assert file_digest(db) == digest and schemas(target.conninfo)  # nothing changed on either side

    expected = expected_after_write_back(target.conninfo, plan, db)
    result = verbs.rollback(db, target, write_back=True, backup_dir=db.parent / "bk")
    assert not schemas(target.conninfo)
    assert sqlite_rows(db, plan) == expected  # the legacy file holds exactly the post-cutover state
    assert result.changes["messages"]["deleted"] == 1 and result.changes["users"]["updated"] == 1


def test_rows_written_on_both_sides_are_conflicts_never_lost(migrated):
    db, target, plan = migrated
    conn = sqlite3.connect(db)  # the application still wrote to the source after apply's snapshot
    late = conn.execute("INSERT INTO messages (conversation_id, sender_type, content) "
                        "SELECT min(id), 'user', 'late, in SQLite' FROM conversations RETURNING id").fetchone()[0]
    conn.execute("UPDATE users SET full_name = 'source side' WHERE id = 2")
    conn.commit()
    conn.close()
    pg_id = q(target.conninfo, "INSERT INTO communication.messages (conversation_id, sender_type, content) SELECT "
                               "min(id), 'user', 'new, in PostgreSQL' FROM communication.conversations RETURNING id")[0][0]
    assert pg_id == late  # the same id, handed out on both sides
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    assert "messages" in next(c for c in report.checks if c.name == "source since the snapshot").detail

    digest = file_digest(db)
    with pytest.raises(ChecksFailed, match="changed both in the source and in PostgreSQL") as conflict:
        verbs.rollback(db, target, write_back=True, backup_dir=db.parent / "bk")
    found = conflict.value.details["conflicts"]
    assert [(c["table"], c["id"]) for c in found] == [("messages", late)]
    assert found[0]["postgresql"]["content"] == "new, in PostgreSQL" and found[0]["source"]["content"] == "late, in SQLite"
    assert file_digest(db) == digest and schemas(target.conninfo)

    verbs.rollback(db, target, write_back=True, on_conflict="postgres", backup_dir=db.parent / "bk")
    contents = {r[0] for r in sqlite3.connect(db).execute("SELECT content FROM messages")}
    assert {"late, in SQLite", "new, in PostgreSQL"} <= contents  # both kept
    assert sqlite3.connect(db).execute("SELECT full_name FROM users WHERE id = 2").fetchone()[0] == "source side"


def test_postgres_failing_after_the_write_back_says_so_and_a_rerun_finishes(migrated, monkeypatch):
    db, target, plan = migrated
    for sql in WORKLOAD:
        q(target.conninfo, sql)
    expected = expected_after_write_back(target.conninfo, plan, db)

    def refused(*_a, **_k):
        raise psycopg.errors.InsufficientPrivilege("permission denied for schema iam")

    # the first reverse operation, after the write-back committed (Alembic's stamp is checked before it)
    monkeypatch.setattr(pg_backend.PostgresRunner, "execute", refused)
    with pytest.raises(ChecksFailed, match="were written back to .*run rollback again"):
        verbs.rollback(db, target, write_back=True, backup_dir=db.parent / "bk")
    assert schemas(target.conninfo)  # PostgreSQL unchanged
    monkeypatch.undo()
    verbs.rollback(db, target, write_back=True, backup_dir=db.parent / "bk")
    assert sqlite_rows(db, plan) == expected  # nothing written twice


def test_a_connection_lost_during_commit_is_an_unknown_outcome(migrated, monkeypatch):
    db, target, plan = migrated
    q(target.conninfo, WORKLOAD[0])
    real = pg_backend.PostgresRunner.execute

    def lose_the_connection(self, statements):  # the last reverse: the server goes away before COMMIT
        rows = real(self, statements)
        if any('DROP SCHEMA IF EXISTS "iam"' in s for s in statements):
            q(target.conninfo, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND pid <> pg_backend_pid()")
        return rows

    monkeypatch.setattr(pg_backend.PostgresRunner, "execute", lose_the_connection)
    with pytest.raises(OutcomeUnknown, match="status"):
        verbs.rollback(db, target, write_back=True, backup_dir=db.parent / "bk")
    monkeypatch.undo()
    verbs.rollback(db, target, write_back=True, backup_dir=db.parent / "bk")  # finishes, nothing twice
    assert not schemas(target.conninfo)
    assert sqlite3.connect(db).execute("SELECT email FROM users WHERE id = 3").fetchone()[0] == "changed@example.org"


# --- any traffic --------------------------------------------------------------------------------

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("insert_message"), st.text(max_size=20)),
    st.tuples(st.just("update_message"), st.integers(1, 220), st.text(max_size=20)),
    st.tuples(st.just("delete_message"), st.integers(1, 220)),
    st.tuples(st.just("update_user"), st.integers(1, 6), st.booleans()),
    st.tuples(st.just("insert_login"), st.sampled_from(["user_login", "logout"])),
), max_size=12)


def run(url, op) -> None:
    kind, *args = op
    text = lambda s: s.replace("\x00", "")  # noqa: E731  (PostgreSQL text holds no NUL)
    sql = {
        "insert_message": ("INSERT INTO communication.messages (conversation_id, sender_type, content) "
                           "SELECT min(id), 'user', %s FROM communication.conversations", lambda: (text(args[0]),)),
        "update_message": ("UPDATE communication.messages SET content = %s WHERE id = %s", lambda: (text(args[1]), args[0])),
        "delete_message": ("DELETE FROM communication.messages WHERE id = %s", lambda: (args[0],)),
        "update_user": ("UPDATE iam.users SET is_active = %s WHERE id = %s", lambda: (args[1], args[0])),
        "insert_login": ("INSERT INTO iam.authentication_logs (user_id, action) VALUES (1, %s)", lambda: (args[0],)),
    }[kind]
    q(url, sql[0], sql[1]())


@pytest.fixture(scope="module")
def traffic_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("traffic") / "legacy.db"
    generate_legacy_db(path, messages=200, seed=6)
    return path


def same_state(got: dict[str, dict], expected: dict[str, dict], plan) -> bool:
    """Equal, value for value; in a split table (two halves that may have handed out one id twice before the
    log shared one id space) a row renumbered by the write-back is compared without its id."""
    split = {m.legacy for m in plan.moves if m.where}
    for legacy in expected:
        if legacy in split:
            strip = lambda rows: Counter(r[1:] for r in rows.values())  # noqa: E731  (id is the first column)
            if strip(got[legacy]) != strip(expected[legacy]):
                return False
        elif got[legacy] != expected[legacy]:
            return False
    return True


# Phases without shrinking: each example is a whole apply on a real server, and shrinking one takes minutes.
@settings(max_examples=5, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPERATIONS)
@example(ops=[("insert_message", ""), ("insert_login", "user_login"), ("update_user", 1, False)])  # one id, both halves
def test_rollback_reproduces_any_traffic(traffic_source, tmp_path, pg_url, ops):
    db = tmp_path / f"{abs(hash(tuple(ops)))}.db"
    shutil.copyfile(traffic_source, db)
    target = parse_target(pg_url)
    plan, _ = verbs.apply(db, target, backup_dir=tmp_path / "bk")
    for op in ops:
        run(pg_url, op)
    assert verbs.verify(db, target).ok
    expected = expected_after_write_back(pg_url, plan, db)
    verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")
    assert same_state(sqlite_rows(db, plan), expected, plan)


def test_a_second_dpro_migrate_on_the_database_refuses_and_reads_nothing(migrated):
    """Another dpro-migrate at work (its session holds the advisory lock): apply and rollback refuse with the
    lock named, never a stale 'nothing to roll back' or 'already migrated'."""
    from dpro_migrate.db.connections import LOCK_KEY
    from dpro_migrate.errors import Locked

    db, target, _ = migrated
    with psycopg.connect(target.conninfo, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        with pytest.raises(Locked, match="another dpro-migrate"):
            verbs.rollback(db, target, backup_dir=db.parent / "bk")
        with pytest.raises(Locked, match="another dpro-migrate"):
            verbs.apply(db, target, backup_dir=db.parent / "bk")
    assert schemas(target.conninfo)


def test_a_rollback_blocked_by_the_application_says_so_and_changes_nothing(migrated, monkeypatch):
    """An application transaction holds a row lock on iam.users: rollback waits lock_timeout, then refuses
    naming the blocking session (exit 2), nothing changed on either side."""
    from dpro_migrate.errors import Blocked

    db, target, _ = migrated
    monkeypatch.setenv("DPRO_MIGRATE_PG_LOCK_TIMEOUT_MS", "300")
    digest = file_digest(db)
    with psycopg.connect(target.conninfo) as app:  # not autocommit: its transaction stays open
        app.execute("UPDATE iam.users SET full_name = full_name WHERE id = 1")
        with pytest.raises(Blocked, match="waited 300 ms for a lock") as blocked:
            verbs.rollback(db, target, write_back=True, backup_dir=db.parent / "bk")
        app.rollback()
    assert blocked.value.exit_code == 2 and blocked.value.details["blocking"]
    assert file_digest(db) == digest and schemas(target.conninfo)
