"""`--replace-existing` against the real server: it replaces the seven schemas and nothing outside them, its
pg_dump counts what it holds, rollback brings the replaced schemas back, and `restore` reads its pg_dump.
Also: verify's failures said as what happened."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dpro_migrate import DOMAINS, verbs
from dpro_migrate.backends import postgres as backend
from dpro_migrate.errors import BadInput, Blocked, ConnectionLost, PermissionDenied
from dpro_migrate.safety.pg_dump import manifest_path
from dpro_migrate.targets import parse_target
from tests.test_pg_security import CommandLineWatcher, with_secrets

pytestmark = pytest.mark.postgres


def q(url, sql, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def cli(*args, url, check=True):
    env = {**os.environ, "DPRO_MIGRATE_TARGET": url}
    done = subprocess.run([sys.executable, "-m", "dpro_migrate", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


# What an earlier iam and system hold: the DBA's own tables, with rows, a comment, a grant, a sequence.
OLD_SCHEMAS = """
CREATE SCHEMA iam; COMMENT ON SCHEMA iam IS 'the old accounts';
CREATE TABLE iam.users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
INSERT INTO iam.users (name) VALUES ('ann'), ('bob'), ('cy');
CREATE TYPE iam.mood AS ENUM ('calm', 'cross');
CREATE SCHEMA system;
CREATE TABLE system.settings (key text PRIMARY KEY, value text, changed timestamptz DEFAULT now());
INSERT INTO system.settings (key, value) VALUES ('theme', 'dark'), ('lang', 'en');
CREATE FUNCTION system.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER settings_stamp BEFORE UPDATE ON system.settings FOR EACH ROW EXECUTE FUNCTION system.stamp();
CREATE VIEW iam.names AS SELECT name FROM iam.users;
ALTER TABLE iam.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON iam.users USING (name = current_user);
GRANT USAGE ON SCHEMA iam TO PUBLIC; GRANT SELECT ON iam.users TO PUBLIC;
"""  # and what lives inside them (a default, a trigger, a view, a policy) is theirs: replaced with them

# Objects outside the seven schemas that DROP SCHEMA ... CASCADE would take with it.
OUTSIDE = """
CREATE VIEW public.active_accounts AS SELECT id, name FROM iam.users;
CREATE VIEW public.account_names AS SELECT name FROM public.active_accounts;
CREATE TABLE public.orders (id int PRIMARY KEY, user_id bigint REFERENCES iam.users, mood iam.mood);
INSERT INTO public.orders VALUES (1, 1, 'calm');
CREATE TRIGGER orders_stamp BEFORE INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION system.stamp();
"""


def catalog(url):
    """Every object of the database outside pg_catalog and information_schema, with its definition, and the
    rows of the tables: what 'unchanged' means."""
    objects = q(url, "SELECT c.oid::regclass::text, c.relkind, pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                     "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1")
    constraints = q(url, "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                         "WHERE connamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2")
    triggers = q(url, "SELECT tgrelid::regclass::text, tgname FROM pg_trigger ORDER BY 1, 2")
    columns = q(url, "SELECT attrelid::regclass::text, attname, atttypid::regtype::text FROM pg_attribute a "
                     "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relnamespace::regnamespace::text IN ('public', 'iam') "
                     "AND attnum > 0 AND NOT attisdropped ORDER BY 1, 2")
    rows = {t: q(url, f"SELECT t::text FROM {t} t ORDER BY 1") for t in ("iam.users", "system.settings", "public.orders")
            if q(url, "SELECT to_regclass(%s) IS NOT NULL", (t,))[0][0]}
    return objects, constraints, triggers, columns, rows


def test_replace_is_refused_while_objects_outside_depend_on_the_schemas(legacy_db, tmp_path, pg_url):
    q(pg_url, OLD_SCHEMAS + OUTSIDE)
    db, target = legacy_db(), parse_target(pg_url)
    before = catalog(pg_url)
    with pytest.raises(BadInput) as refused:
        verbs.apply(db, target, backup_dir=tmp_path / "backups", replace_existing=True)
    assert catalog(pg_url) == before  # the database exactly as it was
    assert not list((tmp_path / "backups").glob("pg-*"))  # refused before the dump
    lines = refused.value.details["outside_dependents"]
    assert len(lines) == 5, lines  # one line per object, the parts that go with them not repeated
    said = {line.split(" depends on ")[0]: line.split(" depends on ")[1].split(":")[0] for line in lines}
    assert said == {"view public.active_accounts": "table iam.users",
                    "view public.account_names": "view public.active_accounts",
                    "table constraint orders_user_id_fkey on public.orders": "index iam.users_pkey, table iam.users",
                    "table column public.orders.mood": "type iam.mood",
                    "trigger orders_stamp on public.orders": "function system.stamp()"}
    assert all("drop it" in line for line in lines) and "nothing was changed" in str(refused.value)

    # the same through the command line: exit 2, each object on a line of its own
    done = cli("apply", db, "--yes", "--replace-existing", "--backup-dir", tmp_path / "backups", url=pg_url, check=False)
    assert done.returncode == 2, done.stderr
    assert sum(line.strip().startswith(("view ", "table ", "trigger ")) for line in done.stderr.splitlines()) == 5
    assert "Traceback" not in done.stderr
    assert catalog(pg_url) == before


def test_an_extension_a_publication_and_a_default_are_outside_dependents_too(legacy_db, tmp_path, pg_url):
    q(pg_url, OLD_SCHEMAS + "CREATE EXTENSION pgcrypto SCHEMA system; CREATE PUBLICATION dpro_pub FOR TABLE iam.users; "
              "CREATE TABLE public.t (id int DEFAULT length(system.gen_random_uuid()::text)); "
              "ALTER DEFAULT PRIVILEGES IN SCHEMA iam GRANT SELECT ON TABLES TO PUBLIC")
    before = catalog(pg_url)
    with pytest.raises(BadInput) as refused:
        verbs.apply(legacy_db(), parse_target(pg_url), backup_dir=tmp_path, replace_existing=True)
    said = {line.split(" depends on ")[0]: line.split(" depends on ")[1].split(":")[0]
            for line in refused.value.details["outside_dependents"]}
    # the default privileges IN SCHEMA iam are the schema's own: replaced with it, not listed
    assert said == {"extension pgcrypto": "schema system",
                    "publication relation iam.users in publication dpro_pub": "table iam.users",
                    "default value for public.t.id": "function system.gen_random_uuid()"}
    assert catalog(pg_url) == before


def test_an_object_created_after_the_check_is_never_dropped(legacy_db, tmp_path, pg_url, monkeypatch):
    """The drop inside apply's transaction is checked too: a view created between the check and the drop (the
    check is skipped here to stand for it) makes apply roll back."""
    q(pg_url, OLD_SCHEMAS + "CREATE VIEW public.late AS SELECT name FROM iam.users")
    monkeypatch.setattr(backend, "outside_dependents", lambda conn, schemas: [])
    before = catalog(pg_url)
    with pytest.raises(BadInput, match="view public.late depends on table iam.users"):
        verbs.apply(legacy_db(), parse_target(pg_url), backup_dir=tmp_path, replace_existing=True)
    assert catalog(pg_url) == before


def test_the_backup_counts_what_the_dump_holds_and_rollback_brings_the_replaced_schemas_back(legacy_db, tmp_path, pg_url):
    q(pg_url, OLD_SCHEMAS + "CREATE TABLE public.kept (id int); INSERT INTO public.kept VALUES (7)")
    old_users = q(pg_url, "SELECT id, name FROM iam.users ORDER BY id")
    db, target = legacy_db(), parse_target(pg_url)
    backups = tmp_path / "backups"
    done = cli("apply", db, "--yes", "--replace-existing", "--backup-dir", backups, url=pg_url)
    assert "5 rows in 2 tables" in done.stdout and "iam, system" in done.stdout, done.stdout
    dump = next(backups.glob("pg-*.dump"))
    manifest = json.loads(manifest_path(dump).read_text())
    assert manifest["tables"] == {"iam.users": 3, "system.settings": 2} and manifest["schemas"] == ["iam", "system"]
    assert manifest["database_tables"] == 3
    for path in (dump, manifest_path(dump)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert q(pg_url, "SELECT to_regclass('iam.user_sessions') IS NOT NULL")[0][0]  # migrated
    assert verbs.verify(db, target).ok
    script = verbs.rollback_script(db, target)
    assert f"the schemas apply replaced (iam, system), as its pg_dump {dump} holds them" in script

    result = verbs.rollback(db, target, backup_dir=backups)
    assert result.schemas_restored == {"iam.users": 3, "system.settings": 2}
    # the replaced schemas as they were: rows, comment, grant, type, function; nothing of apply's
    assert q(pg_url, "SELECT id, name FROM iam.users ORDER BY id") == old_users
    assert q(pg_url, "SELECT key, value FROM system.settings ORDER BY 1") == [("lang", "en"), ("theme", "dark")]
    assert q(pg_url, "SELECT obj_description('iam'::regnamespace)")[0][0] == "the old accounts"
    assert q(pg_url, "SELECT has_table_privilege('public', 'iam.users', 'SELECT')")[0][0]
    assert q(pg_url, "SELECT to_regtype('iam.mood') IS NOT NULL AND to_regproc('system.stamp') IS NOT NULL")[0][0]
    assert q(pg_url, "SELECT count(*) FROM pg_policy WHERE polrelid = 'iam.users'::regclass")[0][0] == 1
    assert q(pg_url, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'system.settings'::regclass") == [("settings_stamp",)]
    assert q(pg_url, "SELECT count(*) FROM iam.names")[0][0] == 3
    assert q(pg_url, "SELECT to_regclass('iam.user_sessions')")[0][0] is None
    assert sorted(r[0] for r in q(pg_url, "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)",
                                  (list(DOMAINS),))) == ["iam", "system"]
    assert q(pg_url, "SELECT id FROM public.kept") == [(7,)]
    # the identity continues where it was
    assert q(pg_url, "INSERT INTO iam.users (name) VALUES ('dee') RETURNING id")[0][0] == 4
    assert verbs.status(db, target).state == "partly migrated"  # two of the seven schemas, the DBA's own


def test_rollback_refuses_when_the_dump_of_the_replaced_schemas_is_gone(legacy_db, tmp_path, pg_url):
    q(pg_url, OLD_SCHEMAS)
    db, target = legacy_db(), parse_target(pg_url)
    _, applied = verbs.apply(db, target, backup_dir=tmp_path, replace_existing=True)
    applied.backup.path.rename(tmp_path / "elsewhere.dump")
    with pytest.raises(BadInput) as refused:
        verbs.rollback(db, target, backup_dir=tmp_path)
    assert str(applied.backup.path) in str(refused.value) and "nothing was changed" in str(refused.value)
    assert verbs.status(db, target).state == "migrated"
    (tmp_path / "elsewhere.dump").rename(applied.backup.path)
    tampered = manifest_path(applied.backup.path)
    record = json.loads(tampered.read_text())
    tampered.write_text(json.dumps({**record, "sha256": "0" * 64}))
    with pytest.raises(BadInput, match="SHA-256 differs"):
        verbs.rollback(db, target, backup_dir=tmp_path)
    tampered.write_text(json.dumps(record))
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert q(pg_url, "SELECT count(*) FROM iam.users")[0][0] == 3


def test_restore_brings_the_schemas_back_from_a_pg_dump(legacy_db, tmp_path, pg_url):
    q(pg_url, OLD_SCHEMAS + "CREATE TABLE public.kept (id int); INSERT INTO public.kept VALUES (7)")
    db, target = legacy_db(), parse_target(pg_url)
    _, applied = verbs.apply(db, target, backup_dir=tmp_path, replace_existing=True)
    dump = applied.backup.path
    with pytest.raises(BadInput, match="is migrated"):  # rollback is the way back from a migrated database
        verbs.restore_dump(dump, target, backup_dir=tmp_path)
    verbs.rollback(db, target, backup_dir=tmp_path)
    # the DBA loses rows afterwards, and adds a table to one of the schemas and one of their own elsewhere
    q(pg_url, "DELETE FROM iam.users WHERE id > 1; CREATE TABLE iam.scratch (x int); INSERT INTO public.kept VALUES (8)")
    secret = f"S3cret{uuid.uuid4().hex[:8]}"
    watcher = CommandLineWatcher(secret)
    watcher.start()
    try:
        done = cli("restore", dump, "--yes", "--backup-dir", tmp_path / "before-restore",
                   url=with_secrets(pg_url, secret))
    finally:
        watcher.stop()
    assert b"pg_restore" in watcher.seen and b"pg_dump" in watcher.seen and watcher.found == []
    assert secret not in done.stdout + done.stderr
    assert "5 rows in 2 tables" in done.stdout, done.stdout
    assert q(pg_url, "SELECT count(*) FROM iam.users")[0][0] == 3
    assert q(pg_url, "SELECT to_regclass('iam.scratch')")[0][0] is None
    assert q(pg_url, "SELECT id FROM public.kept ORDER BY 1") == [(7,), (8,)]  # outside the seven: untouched
    kept = next((tmp_path / "before-restore").glob("pg-*.dump"))  # what it replaced, dumped first
    assert json.loads(manifest_path(kept).read_text())["tables"] == {"iam.users": 1, "iam.scratch": 0,
                                                                     "system.settings": 2}
    # a dump that is not what pg_dump wrote is refused before anything changes
    with open(dump, "r+b") as f:
        f.seek(200)
        f.write(b"\0\0\0\0")
    done = cli("restore", dump, "--yes", url=pg_url, check=False)
    assert done.returncode == 2 and "SHA-256" in done.stderr
    # and a pg_dump needs a PostgreSQL database to go back into
    with pytest.raises(BadInput, match="--target"):
        verbs.restore_dump(kept, parse_target(None))


def test_restore_refuses_while_objects_outside_depend_on_the_schemas(legacy_db, tmp_path, pg_url):
    q(pg_url, OLD_SCHEMAS)
    db, target = legacy_db(), parse_target(pg_url)
    _, applied = verbs.apply(db, target, backup_dir=tmp_path, replace_existing=True)
    verbs.rollback(db, target, backup_dir=tmp_path)
    q(pg_url, "CREATE VIEW public.names AS SELECT name FROM iam.users")
    before = catalog(pg_url)
    with pytest.raises(BadInput, match="(?s)restore would also drop 1 object.*view public.names depends on table "
                                       "iam.users: drop it .* before restore"):
        verbs.restore_dump(applied.backup.path, target, backup_dir=tmp_path / "again")
    assert catalog(pg_url) == before


# --- verify says its failures as they were -------------------------------------------------------------


@pytest.fixture
def slow_role(pg_url):
    """A role that owns the test database and whose own setting cancels any statement after 1 ms."""
    name = f"dpro_timed_{uuid.uuid4().hex[:10]}"
    database = make_url(pg_url).database
    q(pg_url, f'CREATE ROLE "{name}" LOGIN')
    q(pg_url, f'ALTER DATABASE "{database}" OWNER TO "{name}"')
    q(pg_url, f'ALTER ROLE "{name}" SET statement_timeout = 1')
    try:
        yield make_url(pg_url).set(username=name).render_as_string(hide_password=False)
    finally:
        q(pg_url, f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
        q(pg_url, f'REASSIGN OWNED BY "{name}" TO CURRENT_USER')
        q(pg_url, f'DROP OWNED BY "{name}"')
        q(pg_url, f'DROP ROLE "{name}"')


def test_a_role_level_statement_timeout_cuts_nothing_short(legacy_db, tmp_path, slow_role):
    db, target = legacy_db(), parse_target(slow_role)
    assert q(slow_role, "SHOW statement_timeout")[0][0] == "1ms"  # the role's own sessions are cut at 1 ms
    verbs.apply(db, target, backup_dir=tmp_path, features=("archive-tables",))
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert verbs.status(db, target).state == "legacy"


def test_a_cancelled_verify_or_rollback_is_not_blamed_on_the_file(legacy_db, tmp_path, pg_url, monkeypatch):
    """Were the session's statement_timeout left to the role (1 ms), verify's and rollback's loads would be
    cancelled: said as a cancel, not as 'the file changed after apply?'."""
    import dpro_migrate.db.connections as connections

    db, target = legacy_db(), parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path)
    monkeypatch.setattr(connections, "session_settings_sql", lambda: ["SET statement_timeout = 1"])
    with pytest.raises(Blocked) as cancelled:
        verbs.verify(db, target)
    message = str(cancelled.value)
    assert "cancelled verify" in message and "file changed" not in message and "verify changes nothing" in message
    with pytest.raises(Blocked) as cancelled:
        verbs.rollback(db, target, backup_dir=tmp_path)
    message = str(cancelled.value)
    assert "cancelled the rollback" in message and "file changed" not in message and "nothing was changed" in message
    monkeypatch.undo()
    assert verbs.status(db, target).state == "migrated"


def test_a_connection_lost_during_verify_is_said_as_such(legacy_db, tmp_path, pg_url, monkeypatch):
    import dpro_migrate.verify.postgres as verifying

    db, target = legacy_db(), parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path)
    real = verifying.copy_into

    def cut(cur, *args, **kwargs):
        q(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'dpro-migrate' "
                  "AND datname = current_database() AND pid <> pg_backend_pid()")
        return real(cur, *args, **kwargs)

    monkeypatch.setattr(verifying, "copy_into", cut)
    with pytest.raises(ConnectionLost) as lost:
        verbs.verify(db, target)
    message = str(lost.value)
    assert "was lost during verify" in message and "file changed" not in message and lost.value.exit_code == 2


def test_verify_without_a_privilege_says_so(legacy_db, tmp_path, pg_url):
    db, target = legacy_db(), parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path)
    reader = f"dpro_reader_{uuid.uuid4().hex[:10]}"
    q(pg_url, f'CREATE ROLE "{reader}" LOGIN; GRANT USAGE ON SCHEMA system TO "{reader}"; '
              f'GRANT SELECT ON system.migration_ledger TO "{reader}"')
    try:
        as_reader = parse_target(make_url(pg_url).set(username=reader).render_as_string(hide_password=False))
        with pytest.raises(PermissionDenied) as denied:
            verbs.verify(db, as_reader)
        assert "lacks a privilege verify needs" in str(denied.value) and "file changed" not in str(denied.value)
    finally:
        q(pg_url, f'DROP OWNED BY "{reader}"; DROP ROLE "{reader}"')


def restorable(url):
    """What a restore brings back as it was, in the seven schemas: relations, constraints, triggers and policies
    by name, and every table's rows (a CHECK's text and an internal trigger's name are the server's to choose)."""
    seven = (list(DOMAINS),)
    relations = q(url, "SELECT oid::regclass::text, relkind FROM pg_class WHERE relnamespace::regnamespace::text = ANY(%s) "
                       "ORDER BY 1", seven)
    named = q(url, "SELECT conrelid::regclass::text, conname, contype FROM pg_constraint "
                   "WHERE connamespace::regnamespace::text = ANY(%s) ORDER BY 1, 2", seven)
    named += q(url, "SELECT tgrelid::regclass::text, tgname, 't' FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE NOT tgisinternal AND c.relnamespace::regnamespace::text = ANY(%s) ORDER BY 1, 2", seven)
    named += q(url, "SELECT polrelid::regclass::text, polname, 'p' FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
                    "WHERE c.relnamespace::regnamespace::text = ANY(%s) ORDER BY 1, 2", seven)
    rows = {t: q(url, f"SELECT count(*), md5(coalesce(string_agg(r::text, ',' ORDER BY r::text), '')) FROM {t} r")[0]
            for t, kind in relations if kind == "r"}
    return relations, named, rows


def test_replacing_what_an_earlier_migration_built_lists_nothing_and_rollback_restores_it(legacy_db, tmp_path, pg_url):
    """Seven schemas full of every kind of object (partitions, policies, triggers, shared sequences, archives): all
    of it is theirs, none of it is listed, and all of it comes back."""
    db, target = legacy_db(), parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "first",
                features=("archive-tables", "row-level-security", "partition-by-month", "new-tables"))
    q(pg_url, "DROP TABLE system.migration_ledger")  # the seven schemas now hold someone else's data
    q(pg_url, "INSERT INTO iam.users (username, email, password_hash) VALUES ('later', 'later@x.org', 'h')")
    before = restorable(pg_url)
    rows_before = q(pg_url, "SELECT count(*) FROM communication.messages")[0][0]
    second = legacy_db()  # the target now holds the migration of this file: rollback names it
    _, applied = verbs.apply(second, target, backup_dir=tmp_path / "second", replace_existing=True)
    assert sum(applied.backup.tables.values()) > rows_before and len(applied.backup.tables) > 20
    result = verbs.rollback(second, target, backup_dir=tmp_path / "second")
    assert result.schemas_restored == applied.backup.tables
    assert restorable(pg_url) == before
    assert q(pg_url, "SELECT count(*) FROM iam.users WHERE username = 'later'")[0][0] == 1
