"""PostgreSQL security and truth, against the real server: row-level security with no side door, no password in
sight, and failure messages that say what happened.

Every door test runs as a role that neither owns the tables nor bypasses row-level security, with the grants a
DBA usually gives (every table of a schema), and checks what the server answers.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import add_orphan_message
from dpro_migrate import DOMAINS, verbs
from dpro_migrate.errors import BadInput, Blocked, ConnectionLost, OutcomeUnknown, PermissionDenied
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
        with pytest.raises(PermissionDenied, match="BYPASSRLS"):  # every policy would be void for it
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


def test_force_holds_the_owner_to_the_policies_and_dpro_migrate_refuses_a_filtered_view(legacy_db, tmp_path, pg_url):
    db, target = legacy_db(), parse_target(pg_url)
    with pytest.raises(BadInput, match="also pass --with row-level-security"):
        verbs.make_plan(db, target, features=("force-row-level-security",))
    owner = f"dpro_owner_{uuid.uuid4().hex[:10]}"
    q(pg_url, f'CREATE ROLE "{owner}" LOGIN')
    name = make_url(pg_url).database
    q(pg_url, f'GRANT CREATE ON DATABASE "{name}" TO "{owner}"')
    as_owner = parse_target(make_url(pg_url).set(username=owner).render_as_string(hide_password=False))
    try:
        verbs.apply(db, as_owner, backup_dir=tmp_path,
                    features=("archive-tables", "row-level-security", "force-row-level-security"))
        forced = {r[0] for r in q(pg_url, "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relforcerowsecurity")}
        assert {"iam.users", "communication.messages", "tasks.tasks"} <= forced
        with psycopg.connect(as_owner.conninfo, autocommit=True) as conn:
            assert one(conn, "SELECT count(*) FROM iam.users") == 0  # the owner too, without a user
            conn.execute("SET dpro.user_id = '1'")
            assert conn.execute("SELECT array_agg(id) FROM iam.users").fetchone()[0] == [1]
        # dpro-migrate's own sessions would see one user's rows: they refuse instead of verifying those
        with pytest.raises(PermissionDenied, match="row-level security would hide rows .* BYPASSRLS"):
            verbs.verify(db, as_owner)
        with pytest.raises(PermissionDenied, match="row-level security"):
            verbs.archive(db, as_owner, table="messages", older_than=datetime(2024, 6, 1))
        assert verbs.verify(db, target).ok  # a superuser (or BYPASSRLS) sees every row
        verbs.rollback(db, target, backup_dir=tmp_path)
    finally:
        q(pg_url, f'DROP OWNED BY "{owner}"')
        q(pg_url, f'DROP ROLE "{owner}"')


# --- secrets ----------------------------------------------------------------------------------------


def with_secrets(url, secret):
    """The test server trusts local connections: a password in the URL is never asked for, but carried."""
    parsed = make_url(url).set(password=secret + "-a")
    return parsed.update_query_dict({"password": secret + "-b"}).render_as_string(hide_password=False)


def cli(*args, env_target=None, check=True, timeout=300):
    env = {**os.environ, "DPRO_MIGRATE_TARGET": env_target} if env_target else dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "dpro_migrate", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if check:
        assert done.returncode == 0, done.stderr
    return done


class CommandLineWatcher(threading.Thread):
    """Reads every process's command line over and over, and keeps those holding `secret`."""

    def __init__(self, secret):
        super().__init__(daemon=True)
        self.secret, self.found, self.seen, self.done = secret.encode(), [], set(), threading.Event()

    def run(self):
        while not self.done.is_set():
            for proc in Path("/proc").iterdir():
                try:
                    argv = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                self.seen.add(argv.split(b"\0")[0].rsplit(b"/", 1)[-1])
                if self.secret in argv:
                    self.found.append(argv.replace(b"\0", b" ").decode(errors="replace"))
            time.sleep(0.005)

    def stop(self):
        self.done.set()
        self.join()


def test_no_password_in_any_command_line_output_plan_or_ledger(legacy_db, tmp_path, pg_url):
    secret = f"S3cret{uuid.uuid4().hex[:8]}"
    url = with_secrets(pg_url, secret)
    q(pg_url, "CREATE TABLE public.kept (id int); INSERT INTO public.kept VALUES (1)")  # apply dumps it first
    db = legacy_db()
    watcher = CommandLineWatcher(secret)
    watcher.start()
    try:
        outputs = [cli("plan", str(db), "--out", str(tmp_path / "plan.json"), env_target=url),
                   cli("apply", str(tmp_path / "plan.json"), "--yes", "--backup-dir", str(tmp_path / "backups"),
                       env_target=url),
                   cli("status", str(db), "--json", env_target=url),
                   cli("verify", str(db), "--json", env_target=url)]
        ledger = q(pg_url, "SELECT string_agg(l::text, ' ') FROM system.migration_ledger l")[0][0]
        outputs.append(cli("rollback", str(db), "--yes", "--backup-dir", str(tmp_path / "backups"), env_target=url))
    finally:
        watcher.stop()
    assert b"pg_dump" in watcher.seen and list((tmp_path / "backups").glob("pg-*.dump"))
    assert watcher.found == []
    for done in outputs:
        assert secret not in done.stdout + done.stderr
    assert "***" in outputs[2].stdout  # status shows the target, masked
    assert secret not in (tmp_path / "plan.json").read_text()
    assert secret not in ledger and "***" in ledger


def child_processes(parent, name):
    out = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm == name and int(rest[1]) == parent:
            out.append(int(proc.name))
    return out


def running(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_pg_dump_dies_with_dpro_migrate_and_its_file_is_private(legacy_db, tmp_path, pg_url):
    secret = f"S3cret{uuid.uuid4().hex[:8]}"
    q(pg_url, "CREATE TABLE public.kept (id int); INSERT INTO public.kept VALUES (1)")
    db = legacy_db()
    backups = tmp_path / "backups"
    with psycopg.connect(pg_url) as holder:  # pg_dump waits for this lock: it stays alive long enough to look at
        holder.execute("LOCK TABLE public.kept IN ACCESS EXCLUSIVE MODE")
        env = {**os.environ, "DPRO_MIGRATE_TARGET": with_secrets(pg_url, secret)}
        proc = subprocess.Popen([sys.executable, "-m", "dpro_migrate", "apply", str(db), "--yes", "--backup-dir",
                                 str(backups)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not (dumps := child_processes(proc.pid, "pg_dump")) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert dumps, "pg_dump never started"
            dump = dumps[0]
            assert secret.encode() not in Path(f"/proc/{dump}/cmdline").read_bytes()
            deadline = time.monotonic() + 10
            while not (partial := list(backups.glob("*.tmp"))) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert partial and partial[0].stat().st_mode & 0o077 == 0
            proc.kill()  # SIGKILL: dpro-migrate gets no chance to clean up
            proc.wait()
            deadline = time.monotonic() + 10
            while running(dump) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not running(dump), "pg_dump outlived dpro-migrate"
        finally:
            if proc.poll() is None:
                proc.kill()
            for pid in child_processes(proc.pid, "pg_dump"):
                os.kill(pid, 9)
            holder.rollback()
    # the partial dump a SIGKILL left is private, and the next run removes it
    left = list(backups.glob("*.dump.tmp"))
    assert left and all(p.stat().st_mode & 0o077 == 0 for p in left)
    verbs.apply(db, parse_target(pg_url), backup_dir=backups)
    assert not list(backups.glob("*.tmp"))
    assert all(p.stat().st_mode & 0o077 == 0 for p in backups.iterdir())


def test_a_malformed_url_is_one_line_without_its_password(legacy_db):
    for url in ("postgresql://u:hunter2@db.internal:54x2/dpro", "postgresql://u:hunter2@db.internal:99999/dpro"):
        with pytest.raises(BadInput) as refused:
            parse_target(url)
        assert "hunter2" not in str(refused.value) and "port" in str(refused.value)
        done = cli("status", str(legacy_db()), env_target=url, check=False)
        assert done.returncode == 2 and "hunter2" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert parse_target("postgresql://u@h/db?password=hunter2&sslmode=require").display == \
        "postgresql://u@h/db?password=***&sslmode=require"
    assert "hunter2" not in parse_target("postgresql://u:hunter2@h/db?sslpassword=hunter2").display


# --- failures said truly ----------------------------------------------------------------------------


def terminate_dpro_migrate(url):
    """End every session dpro-migrate has open on the test database (found by its application_name)."""
    return q(url, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND application_name = 'dpro-migrate' AND pid <> pg_backend_pid()")[0][0]


def test_a_connection_lost_during_the_load_says_nothing_was_committed(legacy_db, tmp_path, pg_url):
    db, target = legacy_db(), parse_target(pg_url)
    ended = []

    def cut(op, rows):
        if not ended:
            ended.append(terminate_dpro_migrate(pg_url))

    started = time.monotonic()
    with pytest.raises(ConnectionLost) as lost:
        verbs.apply(db, target, backup_dir=tmp_path, rows_progress=cut)
    assert ended == [1]  # the session was found by its name: dpro-migrate
    message = str(lost.value)
    assert "COMMIT was never sent" in message and "committed nothing" in message and "status" in message
    assert "refused" not in message and lost.value.exit_code == 2
    assert time.monotonic() - started < 10  # told at once, without rerunning the preflight
    assert q(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = ANY(%s)", (list(DOMAINS),))[0][0] == 0


def test_a_connection_lost_during_commit_is_outcome_unknown(legacy_db, tmp_path, pg_url, monkeypatch):
    import dpro_migrate.safety.ledger as ledger

    db, target = legacy_db(), parse_target(pg_url)
    q(pg_url, "CREATE FUNCTION public.dpro_end_session() RETURNS trigger LANGUAGE plpgsql AS "
              "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$")
    create = ledger.create_sql
    # the ledger's row fires a deferred trigger, at COMMIT, that ends the session
    monkeypatch.setattr(ledger, "create_sql", lambda dialect: create(dialect) + "; CREATE CONSTRAINT TRIGGER "
                        "dpro_end_session AFTER INSERT ON system.migration_ledger DEFERRABLE INITIALLY DEFERRED "
                        "FOR EACH ROW EXECUTE FUNCTION public.dpro_end_session()")
    with pytest.raises(OutcomeUnknown) as unknown:
        verbs.apply(db, target, backup_dir=tmp_path)
    assert "while PostgreSQL committed the load" in str(unknown.value) and "status" in str(unknown.value)
    assert unknown.value.exit_code == 3


def test_a_lock_held_by_another_session_is_named(legacy_db, tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("DPRO_MIGRATE_PG_LOCK_TIMEOUT_MS", "500")
    db, target = legacy_db(), parse_target(pg_url)
    q(pg_url, "CREATE SCHEMA iam; CREATE TABLE iam.old_users (id int); INSERT INTO iam.old_users VALUES (1)")
    with psycopg.connect(pg_url, application_name="the-app") as app:
        app.execute("SELECT * FROM iam.old_users").fetchall()  # idle in transaction, holding a lock
        app_pid = app.info.backend_pid
        # before the fix dpro-migrate waited forever: end the wait, so that the test fails rather than hangs
        rescue = threading.Timer(30, lambda: q(pg_url, "SELECT pg_terminate_backend(%s)", (app_pid,)))
        rescue.start()
        started = time.monotonic()
        try:
            with pytest.raises(Blocked) as blocked:
                verbs.apply(db, target, backup_dir=tmp_path, replace_existing=True)
        finally:
            rescue.cancel()
    assert time.monotonic() - started < 20
    message = str(blocked.value)
    assert f"pid {app_pid}" in message and "'the-app'" in message and "iam.old_users" in message
    assert "nothing was changed" in message and "500 ms" in message and blocked.value.exit_code == 2
    assert q(pg_url, "SELECT count(*) FROM iam.old_users")[0][0] == 1  # replaced nothing


def test_a_database_statement_timeout_does_not_cut_dpro_migrate_short(legacy_db, tmp_path, pg_url):
    db, target = legacy_db(), parse_target(pg_url)
    q(pg_url, f'ALTER DATABASE "{make_url(pg_url).database}" SET statement_timeout = 1')
    verbs.apply(db, target, backup_dir=tmp_path, features=("archive-tables",))
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert verbs.status(db, target).state == "legacy"


def test_a_missing_privilege_is_said_as_such(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    limited = f"dpro_limited_{uuid.uuid4().hex[:10]}"
    q(pg_url, f'CREATE ROLE "{limited}" LOGIN')
    try:
        target = parse_target(make_url(pg_url).set(username=limited).render_as_string(hide_password=False))
        with pytest.raises(PermissionDenied) as denied:
            verbs.apply(db, target, backup_dir=tmp_path)
        assert "lacks a privilege" in str(denied.value) and "permission denied" in str(denied.value)
        assert denied.value.exit_code == 2
    finally:
        q(pg_url, f'DROP ROLE "{limited}"')
