"""Backups and `dpro-migrate restore`: backups are complete or absent, private, and keep apply's lock;
a restore checks the backup first, replaces the database in one step and leaves the backup as it was."""

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dpro_migrate import verbs
from dpro_migrate.backends.sqlite import open_for_write, write_transaction
from dpro_migrate.safety.backup import backup_file
from dpro_migrate.cli import app
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.safety.restore import restore

from tests.conftest import file_digest

runner = CliRunner()


def invoke(code, args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def other_process_gets_write_lock(db) -> bool:
    probe = ("import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0.05)\n"
             "try:\n    c.execute('BEGIN IMMEDIATE')\n    print('got')\n"
             "except sqlite3.OperationalError:\n    print('refused')\n")
    return subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True,
                          check=True).stdout.strip() == "got"


# --- backups ------------------------------------------------------------------------------------


def test_backups_are_private_and_leave_no_temporary_file(legacy_db, tmp_path):
    db = legacy_db()
    made = [verbs.backup(db, tmp_path / "bk").path]
    _, applied = verbs.apply(db, backup_dir=tmp_path / "bk")
    made.append(applied.backup.path)
    made.append(verbs.rollback(db, backup_dir=tmp_path / "bk").backup.path)
    assert len(set(made)) == 3
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "bk").stat().st_mode) == 0o700
    assert sorted(p.name for p in (tmp_path / "bk").glob("*.bak")) == sorted(p.name for p in made)
    assert stat.S_IMODE((tmp_path / "bk" / "dpro-migrate-history.jsonl").stat().st_mode) == 0o600  # the history beside them
    assert not list((tmp_path / "bk").glob("*.tmp"))


def test_a_backup_that_fails_its_check_leaves_nothing_behind(legacy_db, tmp_path, monkeypatch):
    from dpro_migrate.safety import backup as backup_module
    from dpro_migrate.errors import ChecksFailed

    real, calls = backup_module.table_counts, []

    def counts_off_by_one_in_the_copy(conn, schema="main"):
        calls.append(1)
        found = real(conn, schema)
        return {**found, "users": found["users"] + 1} if len(calls) == 2 else found

    monkeypatch.setattr(backup_module, "table_counts", counts_off_by_one_in_the_copy)
    with pytest.raises(ChecksFailed):
        backup_file(legacy_db(), tmp_path / "bk")
    assert list((tmp_path / "bk").iterdir()) == []


def test_a_backup_taken_under_the_write_lock_keeps_the_lock(legacy_db, tmp_path):
    """apply and rollback back up while holding the write lock: nothing may release it meanwhile
    (closing any descriptor of the file from Python drops every POSIX lock of the process)."""
    db = legacy_db()
    conn = open_for_write(db)
    try:
        with write_transaction(conn, db):
            assert not other_process_gets_write_lock(db)
            backup_file(db, tmp_path / "bk")
            assert not other_process_gets_write_lock(db), "the backup released apply's write lock"
    finally:
        conn.close()
    assert other_process_gets_write_lock(db)


# --- restore ------------------------------------------------------------------------------------


@pytest.fixture
def migrated(legacy_db, tmp_path):
    db = legacy_db(extras=True)
    original = tmp_path / "original.db"
    original.write_bytes(db.read_bytes())
    _, result = verbs.apply(db)  # default backup place: dpro-migrate-backups/ beside the file
    return db, original, result.backup.path


def test_restore_brings_the_database_back_and_leaves_the_backup(migrated):
    db, original, backup = migrated
    backup_digest = file_digest(backup)
    out = json.loads(invoke(0, ["restore", backup, "--to", db, "--yes", "--json"]).stdout)
    assert out["method"] == "sqlite backup api" and out["integrity"] == "ok" and not out["created"]
    assert logical_differences(original, db) == []
    assert verbs.status(db).state == "legacy"
    assert file_digest(backup) == backup_digest
    # what the database held just before (migrated) is kept, and can itself be restored
    previous = out["previous"]["path"]
    assert os.path.exists(previous) and stat.S_IMODE(os.stat(previous).st_mode) == 0o600
    invoke(0, ["restore", previous, "--to", db, "--yes"])
    assert verbs.status(db).state == "migrated"
    assert verbs.verify(db).ok


def test_restore_finds_its_database_from_the_default_backup_place(migrated):
    db, original, backup = migrated
    result = invoke(0, ["restore", backup, "--yes"])
    assert "restored" in result.stdout
    assert logical_differences(original, db) == []


def test_restore_into_a_new_file(migrated, tmp_path):
    _, original, backup = migrated
    dest = tmp_path / "new" / "dpro_agent.db"
    dest.parent.mkdir()
    result = restore(backup, dest)
    assert result.created and result.previous is None
    assert logical_differences(original, dest) == []
    assert [p.name for p in dest.parent.iterdir()] == ["dpro_agent.db"]


def test_restore_over_a_damaged_database_keeps_its_bytes(migrated):
    db, original, backup = migrated
    db.write_bytes(b"garbage, not a database" * 1000)
    result = restore(backup, db)
    assert result.method == "file replace" and result.previous_damaged_copy.read_bytes().startswith(b"garbage")
    assert logical_differences(original, db) == []


def test_an_open_application_connection_sees_the_restored_database(migrated):
    db, original, backup = migrated
    app_conn = sqlite3.connect(db, isolation_level=None)
    app_conn.execute("PRAGMA journal_mode=WAL")
    assert app_conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'messages'").fetchone()[0] == 0
    restore(backup, db)
    n = app_conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert n == sqlite3.connect(original).execute("SELECT count(*) FROM messages").fetchone()[0]
    assert app_conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    app_conn.close()


def _damage(path, tmp_path, kind):
    bad = tmp_path / f"{kind}.bak"
    data = bytearray(path.read_bytes())
    if kind == "truncated":
        data = data[: len(data) // 2 + 100]
    elif kind == "not sqlite":
        data = bytearray(b"hello, this is not a database\n" * 200)
    elif kind == "corrupt page":
        page = int.from_bytes(data[16:18], "big")
        for p in range(3, len(data) // page - 1, 7):  # b-tree page headers of many pages
            data[p * page: p * page + 12] = b"\xff" * 12
    elif kind == "empty":
        data = bytearray()
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("kind", ["truncated", "not sqlite", "corrupt page", "empty", "missing"])
def test_a_bad_backup_is_refused_and_nothing_changes(migrated, tmp_path, kind):
    db, _, backup = migrated
    bad = tmp_path / "missing.bak" if kind == "missing" else _damage(backup, tmp_path, kind)
    before = file_digest(db)
    bad_before = file_digest(bad) if bad.exists() else None
    result = invoke(2, ["restore", bad, "--to", db, "--yes"])
    assert result.stderr.startswith("error:") and result.stderr.strip().count("\n") == 0, result.stderr
    assert file_digest(db) == before
    if bad_before:
        assert file_digest(bad) == bad_before
    assert len(list(db.parent.joinpath("dpro-migrate-backups").glob("*.bak"))) == 1  # no copy of the current file made


def test_restore_refuses_while_another_writer_holds_the_lock(migrated):
    db, _, backup = migrated
    before = file_digest(db)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        result = invoke(2, ["restore", backup, "--to", db, "--yes"], env={"DPRO_MIGRATE_BUSY_TIMEOUT_MS": "200"})
        assert "locked" in result.stderr
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert file_digest(db) == before


def test_restore_needs_a_destination_it_can_tell(migrated, tmp_path):
    _, _, backup = migrated
    elsewhere = tmp_path / "somewhere.bak"
    elsewhere.write_bytes(backup.read_bytes())
    assert "--to" in invoke(2, ["restore", elsewhere, "--yes"]).stderr
    with pytest.raises(BadInput):
        restore(backup, backup)


def test_restore_asks_before_replacing(migrated):
    db, _, backup = migrated
    before = file_digest(db)
    result = runner.invoke(app, ["restore", str(backup), "--to", str(db)], input="n\n")
    assert result.exit_code != 0
    assert file_digest(db) == before
