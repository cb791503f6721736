"""PostgreSQL security and truth, against the real server: row-level security with no side door, no password in
sight, and failure messages that say what happened.

Every door test runs as a role that neither owns the tables nor bypasses row-level security, with the grants a
DBA usually gives (every table of a schema), and checks what the server answers.
"""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import contextmanager
from datetime import datetime

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import add_orphan_message
from dpro_migrate import DOMAINS, verbs
from dpro_migrate.errors import BadInput, DproMigrateError
from dpro_migrate.features.app_roles import APPLICATION_ROLE
from dpro_migrate.targets import parse_target

pytestmark = pytest.mark.postgres

RLS_SCHEMAS = ("iam", "communication", "tasks", "system", "public")
EVERY_EXTRA = ("new-tables", "archive-tables", "row-level-security", "partition-by-month")


def q(url, sql, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


@contextmanager
def role(url, *, grants=True, member_of=None):
    """A throwaway role (NOLOGIN: the test SETs ROLE to it) with a DBA's usual grants: every table of the
    schemas, partitions, archives, quarantine and views included."""
    name = f"dpro_app_{uuid.uuid4().hex[:10]}"
    q(url, f'CREATE ROLE "{name}" NOLOGIN')
    try:
        if member_of:
            q(url, f'GRANT "{member_of}" TO "{name}"')
        if grants:
            for schema in RLS_SCHEMAS:
                q(url, f'GRANT USAGE ON SCHEMA "{schema}" TO "{name}"')
                q(url, f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{name}"')
        yield name
    finally:
        q(url, f'DROP OWNED BY "{name}"')
        q(url, f'DROP ROLE "{name}"')


@contextmanager
def as_user(url, role_name, user_id):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET ROLE "{role_name}"')
        conn.execute("SELECT set_config('dpro.user_id', %s, false)", (str(user_id),))
        yield conn


def one(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def source_counts(db, user):
    src = sqlite3.connect(db)
    try:
        own_convs = f"(SELECT id FROM conversations WHERE user_id = {user})"
        return {
            "messages": src.execute(f"SELECT count(*) FROM messages WHERE user_id = {user} OR conversation_id IN "
                                    f"{own_convs}").fetchone()[0],
            "all_messages": src.execute("SELECT count(*) FROM messages").fetchone()[0],
            "other_conversation": src.execute(f"SELECT min(id) FROM conversations WHERE user_id <> {user}").fetchone()[0],
            "own_conversation": src.execute(f"SELECT min(id) FROM conversations WHERE user_id = {user}").fetchone()[0],
        }
    finally:
        src.close()


@pytest.fixture
def secured(legacy_db, tmp_path, pg_url):
    """A target migrated with every extra, row-level security, compatibility views, a quarantined row and old
    messages archived: every door there is."""
    db = legacy_db()
    add_orphan_message(db)  # a row the target refuses: quarantined
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path, on_reject="quarantine", compat_views=True, features=EVERY_EXTRA)
    assert verbs.archive(db, target, table="messages", older_than=datetime(2024, 6, 1)).moved > 0
    return db, pg_url


# --- row-level security with no side door -----------------------------------------------------------


def own_message_rows(conn, relation, user):
    """(rows seen, rows seen that are not the user's) through one relation."""
    seen = one(conn, f"SELECT count(*) FROM {relation}")
    foreign = one(conn, f"SELECT count(*) FROM {relation} m WHERE m.user_id IS DISTINCT FROM {user} AND NOT EXISTS "
                        f"(SELECT 1 FROM communication.conversations c WHERE c.id = m.conversation_id AND c.user_id = {user})")
    return seen, foreign


def test_every_door_shows_only_the_users_rows(secured):
    db, url = secured
    user = 1
    expected = source_counts(db, user)
    partitions = [r[0] for r in q(url, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = "
                                       "'communication.messages'::regclass ORDER BY 1")]
    assert len(partitions) > 2
    with role(url) as app, as_user(url, app, user) as conn:
        live, foreign = own_message_rows(conn, "communication.messages", user)
        assert foreign == 0
        archived, foreign = own_message_rows(conn, "communication.messages_archive", user)
        assert foreign == 0 and archived > 0
        assert live + archived == expected["messages"]
        through_partitions = 0
        for part in partitions:  # each partition directly: the same policy as its table
            seen, foreign = own_message_rows(conn, part, user)
            assert foreign == 0, part
            through_partitions += seen
        assert through_partitions == live
        # the compatibility views read with the caller's rights: the same rows, and one user's account
        assert one(conn, "SELECT count(*) FROM public.messages") == live
        assert conn.execute("SELECT array_agg(id) FROM public.users").fetchone()[0] == [user]
        assert conn.execute("SELECT array_agg(id) FROM iam.users").fetchone()[0] == [user]
        # the quarantine holds whole refused rows of every user: nobody but its owner reads it
        assert one(conn, "SELECT count(*) FROM system.quarantine") == 0
        conn.execute("RESET dpro.user_id")
        for relation in ("communication.messages", partitions[0], "communication.messages_archive", "public.users"):
            assert one(conn, f"SELECT count(*) FROM {relation}") == 0, relation
    assert q(url, "SELECT count(*) FROM system.quarantine")[0][0] > 0  # the owner still sees it
    assert q(url, "SELECT count(*) FROM communication.messages")[0][0] + \
        q(url, "SELECT count(*) FROM communication.messages_archive")[0][0] == expected["all_messages"] - 1


def refused(conn, sql, params=None):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        conn.execute(sql, params)


def test_writes_stay_within_the_users_rows(secured):
    db, url = secured
    user, other = 1, 2
    counts = source_counts(db, user)
    mine, theirs = counts["own_conversation"], counts["other_conversation"]
    part, when = q(url, "SELECT tableoid::regclass::text, created_at FROM communication.messages "
                        "WHERE tableoid <> 'communication.messages_default'::regclass LIMIT 1")[0]
    others_before = q(url, f"SELECT count(*), sum(hashtext(m::text)) FROM communication.messages m WHERE user_id "
                           f"IS DISTINCT FROM {user} AND conversation_id NOT IN "
                           f"(SELECT id FROM communication.conversations WHERE user_id = {user})")[0]
    task = q(url, f"INSERT INTO tasks.tasks (user_id, assigned_to, title) VALUES ({other}, {user}, 'shared') RETURNING id")[0][0]
    row = "(id, conversation_id, user_id, sender_type, content, created_at) VALUES (%s, %s, %s, 'user', 'x', %s)"
    ids = iter(range(10**9, 10**9 + 100))
    with role(url) as app, as_user(url, app, user) as conn:
        # a message only into the user's own conversation, in their name or as the agent's reply
        for relation in ("communication.messages", part, "communication.messages_archive"):
            refused(conn, f"INSERT INTO {relation} {row}", (next(ids), theirs, user, when))
            refused(conn, f"INSERT INTO {relation} {row}", (next(ids), mine, other, when))
        conn.execute(f"INSERT INTO communication.messages {row}", (next(ids), mine, user, when))
        conn.execute(f"INSERT INTO communication.messages {row}", (next(ids), mine, None, when))
        conn.execute(f"INSERT INTO {part} {row}", (next(ids), mine, user, when))
        # nor moved there afterwards
        refused(conn, f"UPDATE communication.messages SET conversation_id = {theirs} WHERE conversation_id = {mine}")
        refused(conn, f"UPDATE {part} SET user_id = {other} WHERE conversation_id = {mine}")
        refused(conn, "INSERT INTO communication.conversations (user_id, title) VALUES (%s, 'not mine')", (other,))
        refused(conn, "UPDATE iam.users SET id = %s", (other + 1000,))
        refused(conn, "INSERT INTO system.quarantine (source_table, source_pk, rule) VALUES ('users', 1, 'x')")
        # updates and deletes reach only what the user sees
        touched = conn.execute("UPDATE communication.messages SET content = content || ' (edited)'").rowcount
        assert touched == own_message_rows(conn, "communication.messages", user)[0]
        conn.execute(f"DELETE FROM {part}")
        conn.execute("DELETE FROM communication.messages_archive")
        assert conn.execute("UPDATE iam.users SET full_name = 'me'").rowcount == 1
        # an assignee works on a task assigned to them; it stays the creator's, who alone may delete it
        refused(conn, "INSERT INTO tasks.tasks (user_id, assigned_to, title) VALUES (%s, %s, 'forged')", (other, user))
        assert conn.execute("UPDATE tasks.tasks SET status = 'in_progress' WHERE id = %s", (task,)).rowcount == 1
        refused(conn, "UPDATE tasks.tasks SET assigned_to = %s WHERE id = %s", (other, task))
        assert conn.execute("DELETE FROM tasks.tasks WHERE id = %s", (task,)).rowcount == 0
    assert q(url, f"SELECT count(*), sum(hashtext(m::text)) FROM communication.messages m WHERE user_id "
                  f"IS DISTINCT FROM {user} AND conversation_id NOT IN "
                  f"(SELECT id FROM communication.conversations WHERE user_id = {user})")[0] == others_before
    assert q(url, "SELECT count(*) FROM iam.users WHERE full_name = 'me'")[0][0] == 1
    assert q(url, "SELECT status FROM tasks.tasks WHERE id = %s", (task,))[0][0] == "in_progress"


def app_role_attributes(url):
    rows = q(url, "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolreplication "
                  "FROM pg_roles WHERE rolname = %s", (APPLICATION_ROLE,))
    return rows[0] if rows else None


def test_app_roles_get_the_least_privilege_and_go_with_rollback(legacy_db, tmp_path, pg_url):
    if app_role_attributes(pg_url) is not None:
        pytest.skip(f"role {APPLICATION_ROLE} already exists on this server")
    db = legacy_db()
    add_orphan_message(db)
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path, on_reject="quarantine", compat_views=True,
                features=(*EVERY_EXTRA, "app-roles"))
    assert app_role_attributes(pg_url) == (False, False, False, False, False, False)

    def can(relation, privilege):
        return q(pg_url, "SELECT has_table_privilege(%s, %s, %s)", (APPLICATION_ROLE, relation, privilege))[0][0]

    for table in ("iam.users", "communication.messages", "tasks.tasks", "system.audit_logs", "marketplace.items"):
        assert can(table, "SELECT, INSERT, UPDATE, DELETE"), table
    assert can("public.users", "SELECT") and not can("public.users", "INSERT")
    for relation in ("communication.messages_archive", "communication.messages_default", "system.quarantine",
                     "system.migration_ledger"):
        assert not can(relation, "SELECT"), relation
    assert not any(q(pg_url, "SELECT has_schema_privilege(%s, nspname, 'CREATE') FROM pg_namespace WHERE nspname = "
                             "ANY(%s)", (APPLICATION_ROLE, [*DOMAINS, "public"]))[0])
    # the application's login role is a member: it sees and writes only its user's rows
    with role(pg_url, grants=False, member_of=APPLICATION_ROLE) as app, as_user(pg_url, app, 1) as conn:
        assert conn.execute("SELECT array_agg(id) FROM iam.users").fetchone()[0] == [1]
        assert conn.execute("SELECT array_agg(id) FROM public.users").fetchone()[0] == [1]
        assert one(conn, "SELECT count(DISTINCT user_id) FROM communication.conversations") == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM communication.messages_archive")
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert app_role_attributes(pg_url) is None  # apply made it, nothing else uses it: gone


def test_app_roles_leave_a_role_the_dba_made(legacy_db, tmp_path, pg_url):
    if app_role_attributes(pg_url) is not None:
        pytest.skip(f"role {APPLICATION_ROLE} already exists on this server")
    q(pg_url, f'CREATE ROLE "{APPLICATION_ROLE}" NOLOGIN BYPASSRLS')
    try:
        db, target = legacy_db(), parse_target(pg_url)
        with pytest.raises(DproMigrateError, match="BYPASSRLS"):  # every policy would be void for it
            verbs.apply(db, target, backup_dir=tmp_path, features=("row-level-security", "app-roles"))
        assert q(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'")[0][0] == 0
        q(pg_url, f'ALTER ROLE "{APPLICATION_ROLE}" NOBYPASSRLS')
        verbs.apply(db, target, backup_dir=tmp_path, features=("row-level-security", "app-roles"))
        assert q(pg_url, "SELECT has_table_privilege(%s, 'iam.users', 'UPDATE')", (APPLICATION_ROLE,))[0][0]
        verbs.rollback(db, target, backup_dir=tmp_path)
        assert app_role_attributes(pg_url) is not None
    finally:
        q(pg_url, f'DROP OWNED BY "{APPLICATION_ROLE}"')
        q(pg_url, f'DROP ROLE "{APPLICATION_ROLE}"')


def test_force_holds_the_owner_to_the_policies(legacy_db, tmp_path, pg_url):
    db, target = legacy_db(), parse_target(pg_url)
    with pytest.raises(BadInput, match="also pass --with row-level-security"):
        verbs.make_plan(db, target, features=("force-row-level-security",))
    owner = f"dpro_owner_{uuid.uuid4().hex[:10]}"
    q(pg_url, f'CREATE ROLE "{owner}" LOGIN')
    name = make_url(pg_url).database
    q(pg_url, f'GRANT CREATE ON DATABASE "{name}" TO "{owner}"')
    as_owner = parse_target(make_url(pg_url).set(username=owner).render_as_string(hide_password=False))
    try:
        verbs.apply(db, as_owner, backup_dir=tmp_path, features=("row-level-security", "force-row-level-security"))
        forced = {r[0] for r in q(pg_url, "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relforcerowsecurity")}
        assert {"iam.users", "communication.messages", "tasks.tasks"} <= forced
        with psycopg.connect(as_owner.conninfo, autocommit=True) as conn:
            assert one(conn, "SELECT count(*) FROM iam.users") == 0  # the owner too, without a user
            conn.execute("SET dpro.user_id = '1'")
            assert conn.execute("SELECT array_agg(id) FROM iam.users").fetchone()[0] == [1]
        assert verbs.verify(db, target).ok  # a superuser (or BYPASSRLS) sees every row
        verbs.rollback(db, target, backup_dir=tmp_path)
    finally:
        q(pg_url, f'DROP OWNED BY "{owner}"')
        q(pg_url, f'DROP ROLE "{owner}"')

