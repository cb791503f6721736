"""Attacks on the promises a DBA relies on (nothing lost, a true verify, a way back, one-line errors), each
found by trying the tool as a DBA would; every test asserts on the data or the database's own answer."""

import sqlite3
from pathlib import Path

import pytest

from dpro_migrate import verbs
from dpro_migrate.errors import ChecksFailed
from dpro_migrate.targets import parse_target
from tests.conftest import pg_query, sqlite_rows


q = pg_query
rows = sqlite_rows


# --- PostgreSQL write-back and the legacy file's own triggers -------------------------------------------


@pytest.mark.postgres
def test_write_back_does_not_fire_the_legacy_files_triggers(legacy_db, pg_url, tmp_path):
    """A legacy trigger (an audit row per deleted user) fired by the write-back's DELETE took the id the
    application's own log row had in PostgreSQL; that row was then dropped as a 'conflict' the default
    --on-conflict refuse never refused, and rollback exited 0: the application's row was lost."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TRIGGER trg_user_deleted AFTER DELETE ON users BEGIN "
                 "INSERT INTO activity_logs (user_id, action) VALUES (NULL, 'user_deleted'); END")
    conn.execute("CREATE TRIGGER trg_task_touch AFTER UPDATE ON tasks BEGIN "
                 "UPDATE tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END")
    conn.commit()
    conn.close()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    q(pg_url, "INSERT INTO system.audit_logs (user_id, action) VALUES (1, 'app_row')")
    new_id = q(pg_url, "SELECT id FROM system.audit_logs WHERE action = 'app_row'")[0][0]
    victim = q(pg_url, "SELECT max(id) FROM iam.users")[0][0]
    q(pg_url, "DELETE FROM iam.users WHERE id = %s", (victim,))
    q(pg_url, "UPDATE tasks.tasks SET status = 'completed', updated_at = '2020-01-02 03:04:05+00' WHERE id = 2")

    verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")

    assert rows(db, f"SELECT action FROM activity_logs WHERE id = {new_id}") == [("app_row",)]
    assert rows(db, "SELECT count(*) FROM activity_logs WHERE action = 'user_deleted'") == [(0,)]
    assert rows(db, "SELECT status, updated_at FROM tasks WHERE id = 2") == [("completed", "2020-01-02 03:04:05")]
    # the triggers themselves are back as they were
    assert {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'trigger'")} >= {
        "trg_user_deleted", "trg_task_touch"}


@pytest.mark.postgres
def test_write_back_of_a_column_whose_name_holds_a_percent_sign(legacy_db, pg_url, tmp_path):
    """A column added by hand as "discount 10%s" rode along into PostgreSQL; rollback --write-back then
    failed on every run ("the query has 2 placeholders but 1 parameters were passed"): no way back."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute('ALTER TABLE users ADD COLUMN "discount 10%s" TEXT')
    conn.execute('UPDATE users SET "discount 10%s" = \'yes\'')
    conn.commit()
    conn.close()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    q(pg_url, 'UPDATE iam.users SET "discount 10%s" = \'no\' WHERE id = 1')

    verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")

    assert rows(db, 'SELECT "discount 10%s" FROM users WHERE id = 1') == [("no",)]
    assert q(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'") == [(0,)]


# --- rollback and columns the application added after apply ---------------------------------------------


def test_sqlite_rollback_refuses_to_drop_a_column_added_after_apply(legacy_db, tmp_path):
    """The application added a column to a domain table and filled it; rollback exited 0 and the column and
    its values were gone (only a backup the DBA was never told about held them)."""
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path / "bk")
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE iam_users ADD COLUMN phone TEXT")
    conn.execute("ALTER TABLE iam_users ADD COLUMN unused TEXT")
    conn.execute("UPDATE iam_users SET phone = '+49 555' WHERE id = 1")
    conn.commit()
    conn.close()
    with pytest.raises(ChecksFailed, match="iam.users.phone"):
        verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert rows(db, "SELECT phone FROM iam_users WHERE id = 1") == [("+49 555",)]
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE iam_users DROP COLUMN phone")  # the DBA moves the values elsewhere, then:
    conn.commit()
    conn.close()
    verbs.rollback(db, backup_dir=tmp_path / "bk")  # an empty added column holds nothing to lose
    assert rows(db, "SELECT count(*) FROM sqlite_master WHERE name = 'iam_users'") == [(0,)]


@pytest.mark.postgres
def test_postgres_rollback_refuses_to_drop_a_column_added_after_apply(legacy_db, pg_url, tmp_path):
    """On PostgreSQL the values of an added column were dropped with the schemas, exit 0, no backup of them."""
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    q(pg_url, "ALTER TABLE iam.users ADD COLUMN phone text")
    q(pg_url, "UPDATE iam.users SET phone = '+49 555' WHERE id = 1")
    with pytest.raises(ChecksFailed, match="iam.users.phone"):
        verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")
    assert q(pg_url, "SELECT phone FROM iam.users WHERE id = 1") == [("+49 555",)]


# --- the split activity_logs on PostgreSQL -------------------------------------------------------------


@pytest.mark.postgres
def test_a_log_row_moved_between_the_two_halves_is_written_back_under_its_id(legacy_db, pg_url, tmp_path):
    """The application relabels a log row so it belongs to the other half (delete there, insert here, same
    id): rollback --write-back ended in "unexpected TypeError", exit 70, every time."""
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    cols = "id, user_id, action, resource_type, resource_id, details, ip_address, user_agent, created_at"
    audit = q(pg_url, "SELECT min(id) FROM system.audit_logs")[0][0]
    auth = q(pg_url, "SELECT min(id) FROM iam.authentication_logs")[0][0]
    q(pg_url, f"WITH d AS (DELETE FROM system.audit_logs WHERE id = {audit} RETURNING *) "
              f"INSERT INTO iam.authentication_logs ({cols}) SELECT {cols.replace('action', chr(39) + 'login' + chr(39))} FROM d")
    q(pg_url, f"WITH d AS (DELETE FROM iam.authentication_logs WHERE id = {auth} RETURNING *) "
              f"INSERT INTO system.audit_logs ({cols}) SELECT {cols.replace('action', chr(39) + 'exported' + chr(39))} FROM d")
    before = rows(db, "SELECT count(*), max(id) FROM activity_logs")

    verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")

    assert rows(db, f"SELECT id, action FROM activity_logs WHERE id IN ({audit}, {auth}) ORDER BY id") == sorted(
        [(audit, "login"), (auth, "exported")])
    assert rows(db, "SELECT count(*), max(id) FROM activity_logs") == before  # nothing renumbered, nothing lost


@pytest.mark.postgres
def test_a_row_a_legacy_rule_refuses_is_one_line_and_changes_nothing(legacy_db, pg_url, tmp_path):
    """A UNIQUE index someone added to the legacy file, which the domain table lacks: the write-back of a
    row PostgreSQL took ended in "unexpected IntegrityError", exit 70."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("CREATE UNIQUE INDEX ux_boards_name ON boards(name)")
    conn.commit()
    conn.close()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    q(pg_url, "INSERT INTO workflow.boards (user_id, name) SELECT user_id, name FROM workflow.boards WHERE id = 1")
    before = rows(db, "SELECT * FROM boards ORDER BY id")
    with pytest.raises(ChecksFailed, match="the legacy table boards refuses the row id"):
        verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")
    assert rows(db, "SELECT * FROM boards ORDER BY id") == before
    assert q(pg_url, "SELECT count(*) FROM workflow.boards") == [(len(before) + 1,)]


def test_sqlite_rollback_of_a_row_a_legacy_rule_refuses_is_one_line(legacy_db, tmp_path):
    """In place: the same legacy UNIQUE index made rollback end in "unexpected IntegrityError", exit 70."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("CREATE UNIQUE INDEX ux_boards_name ON boards(name)")
    conn.commit()
    conn.close()
    verbs.apply(db, backup_dir=tmp_path / "bk")
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO workflow_boards (user_id, name) SELECT user_id, name FROM workflow_boards WHERE id = 1")
    conn.commit()
    conn.close()
    before = rows(db, "SELECT * FROM workflow_boards ORDER BY id")
    with pytest.raises(ChecksFailed, match="UNIQUE constraint failed: boards.name"):
        verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert rows(db, "SELECT * FROM workflow_boards ORDER BY id") == before


@pytest.mark.postgres
def test_a_lone_surrogate_escape_in_json_is_found_by_the_preflight(legacy_db, pg_url, tmp_path):
    """PostgreSQL refuses an unpaired UTF-16 surrogate escape (\\ud800) in JSON: found before the load, so
    --on-reject quarantine keeps the row (fixed on main meanwhile; kept as a case)."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE users SET preferences = '{\"s\": \"\\ud800\"}' WHERE id = 1")
    conn.commit()
    conn.close()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject="quarantine")
    assert q(pg_url, "SELECT count(*) FROM iam.users WHERE id = 1") == [(0,)]
    assert q(pg_url, "SELECT count(*) FROM system.quarantine WHERE source_table = 'users'") != [(0,)]


@pytest.mark.postgres
def test_write_back_keeps_infinity_and_fractions_of_a_second(legacy_db, pg_url, tmp_path):
    """A task due 'infinity' (the usual "never") came back to the legacy file as NULL, and a login at
    12:00:00.789 as 12:00:00: rollback --write-back changed values the application wrote, silently."""
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    q(pg_url, "UPDATE tasks.tasks SET due_date = 'infinity' WHERE id = 1")
    q(pg_url, "UPDATE iam.users SET last_login = '2025-06-01 12:00:00.789+02' WHERE id = 1")
    q(pg_url, "UPDATE iam.users SET last_login = '2025-06-01 12:00:07+02' WHERE id = 2")

    verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")

    assert rows(db, "SELECT due_date FROM tasks WHERE id = 1") == [("infinity",)]
    assert rows(db, "SELECT last_login FROM users WHERE id IN (1, 2) ORDER BY id") == [
        ("2025-06-01 10:00:00.789",), ("2025-06-01 10:00:07",)]


# --- a backup that cannot be written -------------------------------------------------------------------


def _cli_with_file_size_limit(args, limit):
    """The CLI in a process whose files cannot grow past `limit` bytes (a full disk, as SQLite sees it)."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-c", "from dpro_migrate.cli import main; main()", *args],
                          capture_output=True, text=True, preexec_fn=limited, env={**os.environ}, timeout=120)


@pytest.mark.parametrize("verb", ["apply", "rollback"])
def test_a_backup_the_disk_cannot_hold_is_one_line_and_changes_nothing(legacy_db, tmp_path, verb):
    """In place, a backup directory on a full disk ended in "unexpected OperationalError: database or disk
    is full", exit 70 (the file was left unchanged)."""
    from tests.conftest import file_digest

    db = legacy_db()
    if verb == "rollback":
        verbs.apply(db, backup_dir=tmp_path / "bk0")
    digest = file_digest(db)
    done = _cli_with_file_size_limit([verb, str(db), "--yes", "--backup-dir", str(tmp_path / "bk")], 64 * 1024)
    assert (done.returncode, done.stderr.count("\n")) == (2, 1), done.stderr
    assert "cannot write the backup there" in done.stderr and "nothing was changed" in done.stderr
    assert file_digest(db) == digest
    assert not list((tmp_path / "bk").glob("*.tmp"))


# --- names PostgreSQL cannot take ----------------------------------------------------------------------


@pytest.mark.postgres
def test_a_column_named_like_a_postgres_system_column_is_refused_by_the_plan(legacy_db, pg_url, tmp_path):
    """A hand-added messages.xmax: plan said nothing (exit 0), apply then failed at CREATE TABLE ("conflicts
    with a system column name") after the backup and the load had started."""
    from dpro_migrate.errors import BadInput

    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE messages ADD COLUMN xmax TEXT")
    conn.commit()
    conn.close()
    target = parse_target(pg_url)
    with pytest.raises(BadInput, match="column xmax has the name of a PostgreSQL system column"):
        verbs.planned(db, target)
    assert q(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'communication'") == [(0,)]


# --- what the terminal shows ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_conflict_on_the_terminal_names_rows_and_columns_never_values(legacy_db, pg_url, tmp_path):
    """Without --json, a refused rollback printed both versions of each conflicting row on stderr: a user's
    password hash and e-mail in the terminal and the CI log ("see --json for both versions", it said)."""
    from typer.testing import CliRunner

    from dpro_migrate.cli import app

    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    q(pg_url, "UPDATE iam.users SET email = 'pg@x.example' WHERE id = 1")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE users SET email = 'src@x.example' WHERE id = 1")
    conn.commit()
    hash_ = conn.execute("SELECT password_hash FROM users WHERE id = 1").fetchone()[0]
    conn.close()
    result = CliRunner().invoke(app, ["rollback", str(db), "--target", pg_url, "--yes", "--write-back",
                                      "--backup-dir", str(tmp_path / "bk")])
    assert result.exit_code == 1
    assert "users id 1" in result.output and "email" in result.output
    assert hash_ not in result.output and "src@x.example" not in result.output


# --- quarantined rows and the application's new rows ---------------------------------------------------


@pytest.mark.postgres
def test_a_new_row_under_the_id_of_a_quarantined_row_never_overwrites_it(legacy_db, pg_url, tmp_path):
    """A user refused by apply (quarantined, so still only in the source) and a user the application then
    created in PostgreSQL under the same id: rollback --write-back wrote the new user over the old one, exit 0,
    and the old user's conversations and messages then belonged to the new one."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE users SET email = 'bad-email' WHERE id = 4")
    conn.commit()
    old = conn.execute("SELECT * FROM users WHERE id = 4").fetchone()
    conn.close()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject="quarantine")
    q(pg_url, "INSERT INTO iam.users (id, username, email, password_hash) VALUES (4, 'newfour', 'n4@x.example', 'h')")

    with pytest.raises(ChecksFailed, match="users id 4"):
        verbs.rollback(db, target, write_back=True, backup_dir=tmp_path / "bk")
    assert rows(db, "SELECT * FROM users WHERE id = 4") == [old]

    verbs.rollback(db, target, write_back=True, on_conflict="postgres", backup_dir=tmp_path / "bk")
    assert rows(db, "SELECT * FROM users WHERE id = 4") == [old]
    assert rows(db, "SELECT count(*) FROM users WHERE username = 'newfour' AND id <> 4") == [(1,)]


@pytest.mark.postgres
# found as an xfail: the counter continued after the highest *loaded* id or the legacy counter, so a
# quarantined row with the highest id gave its id to the application's next row
def test_the_next_id_in_postgres_is_above_every_quarantined_id(legacy_db, pg_url, tmp_path):
    db = legacy_db()
    conn = sqlite3.connect(db)
    top = conn.execute("SELECT max(id) FROM users").fetchone()[0]
    conn.execute(f"UPDATE users SET email = 'bad-email' WHERE id = {top}")
    conn.execute("DELETE FROM sqlite_sequence WHERE name = 'users'")  # as a table without AUTOINCREMENT has none
    conn.commit()
    conn.close()
    verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path / "bk", on_reject="quarantine")
    new_id = q(pg_url, "INSERT INTO iam.users (username, email, password_hash) VALUES ('nxt', 'nxt@x.example', 'h') "
                       "RETURNING id")[0][0]
    assert new_id > top


@pytest.mark.postgres
def test_verify_after_the_source_changed_its_schema_says_so_and_does_not_fail(legacy_db, pg_url, tmp_path):
    """The legacy application added a column to its file after a PostgreSQL apply: verify failed (exit 1) with
    "SELECTs to the left and right of EXCEPT do not have the same number of result columns"."""
    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE users ADD COLUMN later TEXT")
    conn.commit()
    conn.close()
    report = verbs.verify(db, target)
    assert report.ok
    check = next(c for c in report.checks if c.name == "source since the snapshot")
    assert "schema changed since the snapshot" in check.detail


def test_the_undo_of_a_rollback_into_a_new_file_restores_that_file_not_the_source(legacy_db, tmp_path):
    """With --target sqlite:///new.db the summary said `restore <new.db's backup> --to <the legacy source>`:
    followed, it would have put the migrated copy over the untouched original."""
    from dpro_migrate.verbs.summary import rollback_summary

    db = legacy_db()
    new = tmp_path / "new.db"
    target = parse_target(f"sqlite:///{new}")
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    result = verbs.rollback(db, target, backup_dir=tmp_path / "bk")
    undo = [n for n in rollback_summary(result, db, target).next if "restore" in n]
    assert undo and undo[0].endswith(f"--to {new}") and result.backup.path.name.startswith("new.db")


@pytest.mark.postgres
def test_a_read_only_database_is_bad_input_not_refused_rows(legacy_db, pg_url, tmp_path):
    """A target whose database defaults to read-only transactions: "PostgreSQL refused the load", exit 1 (the
    code of refused rows and failed checks) instead of the documented exit 2 for an unusable target."""
    from sqlalchemy.engine import make_url

    from dpro_migrate.errors import BadInput

    q(pg_url, f'ALTER DATABASE "{make_url(pg_url).database}" SET default_transaction_read_only = on')
    db = legacy_db()
    with pytest.raises(BadInput, match="takes no writes"):
        verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path / "bk")


# --- the plan the DBA reviewed -------------------------------------------------------------------------


def test_an_option_the_plan_was_made_without_is_refused_not_dropped(legacy_db, tmp_path):
    """`apply plan.json --compat-views` migrated without the views, exit 0: the unchanged legacy application
    then failed at the cutover ("no such table: users") though the DBA had asked for them."""
    from dpro_migrate.errors import BadInput
    from tests.conftest import file_digest

    db = legacy_db()
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(verbs.planned(db, parse_target(None)).to_json())
    digest = file_digest(db)
    with pytest.raises(BadInput, match="made without --compat-views"):
        verbs.apply(plan_file, compat_views=True, backup_dir=tmp_path / "bk")
    with pytest.raises(BadInput, match="made without --with new-tables"):
        verbs.apply(plan_file, features=("new-tables",), backup_dir=tmp_path / "bk")
    assert file_digest(db) == digest
    verbs.apply(plan_file, backup_dir=tmp_path / "bk")  # the plan as it is
    assert rows(db, "SELECT count(*) FROM sqlite_master WHERE name = 'iam_users'") == [(1,)]


# --- one target, one source ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_verify_and_rollback_refuse_a_file_the_target_was_not_migrated_from(legacy_db, pg_url, tmp_path):
    """PostgreSQL migrated from file A; `verify B` said "every legacy row is in place" (it compared A), `apply B`
    said "already migrated", exit 0, and `rollback B` removed A's migration."""
    from dpro_migrate.errors import BadInput

    a, b = legacy_db(), legacy_db()
    target = parse_target(pg_url)
    verbs.apply(a, target, backup_dir=tmp_path / "bk")
    for attempt in (lambda: verbs.verify(b, target), lambda: verbs.apply(b, target, backup_dir=tmp_path / "bk"),
                    lambda: verbs.rollback(b, target, backup_dir=tmp_path / "bk")):
        with pytest.raises(BadInput, match=f"was migrated from {a}, not {b}"):
            attempt()
    assert q(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'") == [(1,)]
    assert verbs.verify(a, target).ok


def test_verify_of_a_separate_file_refuses_another_source(legacy_db, tmp_path):
    from dpro_migrate.errors import BadInput

    a, b = legacy_db(), legacy_db()
    target = parse_target(f"sqlite:///{tmp_path / 'new.db'}")
    verbs.apply(a, target, backup_dir=tmp_path / "bk")
    with pytest.raises(BadInput, match="was migrated from"):
        verbs.verify(b, target)
    assert verbs.verify(a, target).ok


# --- where the backups are -----------------------------------------------------------------------------


def test_a_relative_backup_dir_is_recorded_whole(legacy_db, tmp_path, monkeypatch):
    """`apply --backup-dir backups` recorded "backups/<file>.bak": verify (and on PostgreSQL rollback) run from
    any other directory, a cron job's for one, said the backup was gone."""
    db = legacy_db()
    monkeypatch.chdir(tmp_path)
    verbs.apply(db, backup_dir=Path("backups"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert verbs.verify(db).ok
    verbs.rollback(db, backup_dir=Path("backups"))
    assert (elsewhere / "backups").is_dir() and (tmp_path / "backups").is_dir()


@pytest.mark.postgres
def test_a_relative_backup_dir_keeps_the_snapshot_findable(legacy_db, pg_url, tmp_path, monkeypatch):
    db = legacy_db()
    target = parse_target(pg_url)
    monkeypatch.chdir(tmp_path)
    verbs.apply(db, target, backup_dir=Path("backups"))
    monkeypatch.chdir("/")
    assert verbs.verify(db, target).ok
    verbs.rollback(db, target, backup_dir=tmp_path / "bk")
    assert q(pg_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'") == [(0,)]


# --- partial backups and scratch databases a killed run leaves behind ---------------------------------------

_HOLD_A_PARTIAL_BACKUP = """
import sys, time
from pathlib import Path
from dpro_migrate.safety.backup import copy_file
copied = copy_file(Path(sys.argv[1]), Path(sys.argv[2]))  # copied, not sealed: the .bak.tmp, locked
print(copied.tmp, flush=True)
time.sleep(600)
"""


def _partial_backup(db, backups):
    """A process in the middle of writing a backup of `db` into `backups` (its .bak.tmp written, locked)."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLD_A_PARTIAL_BACKUP, str(db), str(backups)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.name.endswith(".bak.tmp") and tmp.exists()
    return proc, tmp


@pytest.mark.parametrize("verb", ["apply", "rollback", "backup"])
def test_a_partial_backup_a_killed_run_left_is_removed_by_the_next_run_and_said(legacy_db, tmp_path, verb):
    """SIGKILL during apply/rollback/backup left <file>.<stamp>.bak.tmp, a full copy of production data, in
    the backup folder for ever. The next run removes what no live process holds, and says so in one line."""
    import signal

    from typer.testing import CliRunner

    from dpro_migrate.cli import app

    db = legacy_db()
    backups = tmp_path / "bk"
    if verb == "rollback":
        verbs.apply(db, backup_dir=backups)
    proc, tmp = _partial_backup(db, backups)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp.exists()
    mode = tmp.stat().st_mode & 0o777
    assert mode == 0o600
    args = {"apply": ["apply", str(db), "--backup-dir", str(backups), "--yes"],
            "rollback": ["rollback", str(db), "--backup-dir", str(backups), "--yes"],
            "backup": ["backup", str(db), "--backup-dir", str(backups)]}[verb]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert not tmp.exists() and not list(backups.glob("*.tmp*"))
    said = [line for line in done.output.splitlines() if "partial backup" in line]
    assert len(said) == 1 and tmp.name in done.output.replace("\n", ""), done.output


def test_a_partial_backup_another_run_is_writing_is_left_alone(legacy_db, tmp_path):
    db = legacy_db()
    backups = tmp_path / "bk"
    proc, tmp = _partial_backup(db, backups)
    try:
        result = verbs.backup(legacy_db(), backups)
        assert tmp.exists() and result.left_overs == []
        _, applied = verbs.apply(legacy_db(), backup_dir=backups)
        assert tmp.exists() and applied.left_overs == []
    finally:
        proc.kill()
        proc.wait()
    _, applied = verbs.apply(legacy_db(), backup_dir=backups)
    assert applied.left_overs == [str(tmp)] and not tmp.exists()


_HOLD_A_SCRATCH_DATABASE = """
import sys, time
from dpro_migrate import check
from dpro_migrate.targets import parse_target
_, name, holder, _ = check._scratch_database(parse_target(sys.argv[1]))
print(name, flush=True)
time.sleep(600)
"""


@pytest.mark.postgres
def test_a_scratch_database_a_killed_check_left_is_dropped_by_the_next_check(legacy_db, pg_url):
    """SIGKILL during `check --target` left dpro_check_*, a full copy of the legacy data, on the server. The
    next check drops those no running check holds, and only dpro-migrate's own."""
    import os
    import signal
    import subprocess
    import sys
    import uuid

    from dpro_migrate.check import run_check

    def databases():
        return {r[0] for r in q(pg_url, "SELECT datname FROM pg_database WHERE datname LIKE 'dpro_check%%'")}

    procs = [subprocess.Popen([sys.executable, "-c", _HOLD_A_SCRATCH_DATABASE, pg_url], stdout=subprocess.PIPE,
                              text=True, env={**os.environ}) for _ in range(2)]
    killed, alive = (p.stdout.readline().strip() for p in procs)
    procs[0].send_signal(signal.SIGKILL)
    procs[0].wait()
    foreign = f"dpro_check_{uuid.uuid4().hex[:8]}"  # the same form of name, not dpro-migrate's (no comment)
    try:
        q(pg_url, f'CREATE DATABASE "{foreign}"')
        assert {killed, alive, foreign} <= databases()
        report = run_check(legacy_db(), pg_url)
        assert report.ok, report.stages
        assert killed in report.left_overs and alive not in report.left_overs
        assert killed not in databases() and {alive, foreign} <= databases()
    finally:
        procs[1].kill()
        procs[1].wait()
        for name in (killed, alive, foreign):
            q(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the closing summary of a PostgreSQL rollback and verify --json -----------------------------------------


@pytest.mark.postgres
def test_postgres_rollback_summary_counts_what_it_wrote_back_and_names_what_it_dropped(legacy_db, pg_url, tmp_path):
    """rollback --write-back wrote rows back and then said "0 rows in 0 tables"."""
    import json

    from typer.testing import CliRunner

    from dpro_migrate.cli import app

    db = legacy_db()
    target = parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path / "bk")
    q(pg_url, "INSERT INTO system.audit_logs (user_id, action) VALUES (1, 'app_row')")
    q(pg_url, "UPDATE tasks.tasks SET status = 'completed' WHERE id IN (1, 2)")
    runner = CliRunner()
    done = runner.invoke(app, ["rollback", str(db), "--target", pg_url, "--write-back", "--yes", "--json",
                               "--backup-dir", str(tmp_path / "bk")])
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    per_table = {t["legacy"]: t["rows"] for t in out["tables"]}
    assert per_table == {"activity_logs": 1, "tasks": 2} and out["rows"] == 3
    assert out["changes"]["tasks"]["updated"] == 2 and out["changes"]["activity_logs"]["inserted"] == 1
    assert "dropped schemas" in out["note"] and "iam" in out["note"]
    assert out["source"] == str(db) and "@" in out["database"]


@pytest.mark.postgres
def test_verify_json_on_postgres_says_source_for_the_legacy_file_and_database_for_the_target(legacy_db, pg_url, tmp_path):
    import json

    from sqlalchemy.engine import make_url
    from typer.testing import CliRunner

    from dpro_migrate.cli import app

    db = legacy_db()
    secret_url = make_url(pg_url).set(password="hunter2").render_as_string(hide_password=False)
    verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path / "bk")
    done = CliRunner().invoke(app, ["verify", str(db), "--target", pg_url, "--json", "--backup-dir", str(tmp_path / "bk")])
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert out["source"] == str(db)
    assert out["database"] == parse_target(pg_url).display
    report = verbs.verify(db, parse_target(pg_url), backup_dir=tmp_path / "bk")  # the library's own report too
    assert (report.source, report.database) == (str(db), parse_target(pg_url).display)
    assert "hunter2" not in parse_target(secret_url).display


# --- a column the application dropped after the cutover -----------------------------------------------------


def _cli(*args):
    from typer.testing import CliRunner

    from dpro_migrate.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_sqlite_rollback_refuses_a_column_dropped_after_the_cutover(legacy_db, tmp_path):
    """In place, rollback recreated legacy tasks.description as NULL for every row and exited 0: the values were
    gone and nothing said so. Refused up front (exit 2), one line naming the column and the backup."""
    db = legacy_db()
    _, applied = verbs.apply(db, backup_dir=tmp_path / "bk")
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE tasks_tasks DROP COLUMN description")
    conn.commit()
    conn.close()
    before = rows(db, "SELECT * FROM tasks_tasks ORDER BY id")
    done = _cli("rollback", db, "--yes", "--backup-dir", tmp_path / "bk")
    assert done.exit_code == 2, done.output
    message = " ".join(done.output.split())
    assert "tasks.tasks.description" in message and str(applied.backup.path) in message
    assert rows(db, "SELECT * FROM tasks_tasks ORDER BY id") == before  # still migrated, as it was
    assert rows(db, "SELECT count(*) FROM sqlite_master WHERE name = 'tasks'") == [(0,)]


@pytest.mark.postgres
def test_postgres_rollback_refuses_a_column_dropped_after_the_cutover(legacy_db, pg_url, tmp_path):
    db = legacy_db()
    verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path / "bk")
    q(pg_url, "ALTER TABLE tasks.tasks DROP COLUMN description")
    q(pg_url, "UPDATE tasks.tasks SET status = 'completed' WHERE id = 1")
    for extra in ([], ["--write-back"]):
        done = _cli("rollback", db, "--target", pg_url, "--yes", "--backup-dir", tmp_path / "bk", *extra)
        assert done.exit_code == 2, done.output
        message = " ".join(done.output.split())
        assert "tasks.tasks.description" in message and str(db) in message
    assert q(pg_url, "SELECT count(*) FROM tasks.tasks")[0][0] > 0  # nothing dropped


# --- measuring a child's peak memory ------------------------------------------------------------------------


def test_a_childs_peak_memory_is_its_own_not_the_spawning_pytests():
    """test_quarantining_a_50_mb_blob_stays_under_200_mb_of_memory measured 349 MB once in a full run and 146 MB
    alone: ru_maxrss of a child starts at the high-water mark of the process that spawned it (Linux carries it
    over at exec), and pytest's own peak grows over a full run. The test now reads the child's own VmHWM."""
    import subprocess
    import sys

    from tests.conftest import OWN_PEAK_RSS_KB, own_peak_rss_mb

    held = bytearray(300 << 20)
    for i in range(0, len(held), 4096):  # resident, so that this process's high-water mark is over 300 MB
        held[i] = 1
    del held
    program = f"import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); print({OWN_PEAK_RSS_KB})"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    inherited_kb, own_kb = map(int, done.stdout.split())
    assert inherited_kb > 300 << 10  # what ru_maxrss said: the spawning process's peak
    assert own_peak_rss_mb(done.stdout) < 100 and own_kb < inherited_kb
