"""The error boundary: every error is one line and an exit code; an unexpected one leaves its traceback in a
log file, never on the terminal. Settings from the environment are validated. Inputs that used to crash."""

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dpro_migrate.check
import dpro_migrate.safety.restore
from dpro_migrate import verbs
from dpro_migrate.db.connections import NAME_MAX
from dpro_migrate.cli import app
from dpro_migrate.config import DEFAULT_TEST_PG, MAX_BUSY_TIMEOUT_MS, Settings, load_settings
from dpro_migrate.errors import BAD_INPUT, UNEXPECTED, BadInput

from .conftest import file_digest

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


@pytest.fixture
def state_home(tmp_path, monkeypatch) -> Path:
    """XDG_STATE_HOME in tmp_path, so the tests' traceback logs stay out of the home directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "dpro-migrate"


# --- every verb: an unexpected exception becomes exit 70, one line, and a log file ----------------

def _raise(*args, **kwargs):
    raise RuntimeError("boom from the library\nsecond line")


# verb -> (the library function it calls, its arguments; {db} and {tmp} are filled in)
VERBS = {
    "inspect": (verbs, "inspect", ["{db}"]),
    "plan": (verbs, "make_plan", ["{db}"]),
    "backup": (verbs, "backup", ["{db}", "--to", "{tmp}/bk"]),
    "apply": (verbs, "apply", ["{db}", "--yes"]),
    "verify": (verbs, "verify", ["{db}"]),
    "rollback": (verbs, "rollback", ["{db}", "--yes"]),
    "alembic-init": (verbs, "alembic_handoff", ["{tmp}/alembic", "{db}"]),
    "archive": (verbs, "archive", ["{db}", "--table", "messages", "--back"]),
    "partitions": (verbs, "partitions", ["{db}"]),
    "finalize": (verbs, "finalize", ["{db}"]),
    "status": (verbs, "status", ["{db}"]),
    "demo": (verbs, "demo", ["{tmp}/demo"]),
    "example": (verbs, "example", ["{tmp}/new.db"]),
    "restore": (dpro_migrate.safety.restore, "restore", ["{db}", "--to", "{tmp}/restored.db", "--yes"]),
    "check": (dpro_migrate.check, "run_check", ["{db}"]),
}


def test_every_verb_is_covered():
    assert {c.name for c in app.registered_commands} == set(VERBS)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_unexpected_exception_in_every_verb(verb, legacy_db, tmp_path, state_home, monkeypatch):
    module, function, args = VERBS[verb]
    monkeypatch.setattr(module, function, _raise)
    db = legacy_db()
    digest = file_digest(db)
    result = invoke([verb] + [a.format(db=db, tmp=tmp_path) for a in args])
    assert result.exit_code == UNEXPECTED, (result.stdout, result.stderr)
    line = one_line_error(result)
    logs = list(state_home.glob("dpro-migrate-*.log"))
    assert len(logs) == 1
    assert line == f"error: unexpected RuntimeError: boom from the library; the traceback is in {logs[0]}"
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom from the library" in text
    assert "in _raise" in text  # down to the frame that raised
    assert oct(logs[0].stat().st_mode & 0o777) == oct(0o600)
    assert file_digest(db) == digest


def test_unexpected_exception_with_json(legacy_db, state_home, monkeypatch):
    monkeypatch.setattr(verbs, "status", _raise)
    result = invoke(["status", legacy_db(), "--json"])
    assert result.exit_code == UNEXPECTED
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == UNEXPECTED and doc["error"].startswith("unexpected RuntimeError: boom")
    assert Path(doc["details"]["log"]).parent == state_home
    one_line_error(result)


@pytest.mark.parametrize("exc", [OSError(5, "Input/output error"), sqlite3.OperationalError("disk I/O error"),
                                 KeyError("legacy"), RecursionError("maximum recursion depth exceeded")])
def test_unexpected_exception_types(exc, legacy_db, state_home, monkeypatch):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(verbs, "inspect", fail)
    result = invoke(["inspect", legacy_db()])
    assert result.exit_code == UNEXPECTED
    assert one_line_error(result).startswith(f"error: unexpected {type(exc).__name__}: ")


def test_damaged_database_met_late_is_bad_input(legacy_db, state_home, monkeypatch):
    """A corrupt page found past the first checks is bad input (exit 2), not a bug."""
    def fail(*args, **kwargs):
        exc = sqlite3.DatabaseError("database disk image is malformed")
        exc.sqlite_errorcode = 11  # SQLITE_CORRUPT
        raise exc

    monkeypatch.setattr(verbs, "inspect", fail)
    result = invoke(["inspect", legacy_db()])
    assert result.exit_code == BAD_INPUT
    assert "cannot be read: database disk image is malformed" in one_line_error(result)
    assert not state_home.exists()


def test_log_falls_back_to_the_temp_dir(legacy_db, tmp_path, monkeypatch):
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "not-a-dir"))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(verbs, "inspect", _raise)
    result = invoke(["inspect", legacy_db()])
    assert result.exit_code == UNEXPECTED
    log = one_line_error(result).rsplit(" ", 1)[1]
    assert Path(log).parent == tmp_path / "tmp" and "RuntimeError" in Path(log).read_text()


def test_keyboard_interrupt_keeps_its_exit(legacy_db, state_home, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(verbs, "apply", interrupt)
    result = invoke(["apply", legacy_db(), "--yes"])
    assert result.exit_code == 130
    assert result.stderr.startswith("interrupted: nothing was changed") and "Traceback" not in result.stderr
    assert not state_home.exists()


# --- settings ----------------------------------------------------------------------------------

def test_settings_defaults():
    settings = load_settings({})
    assert settings == Settings(busy_timeout_ms=5000, database_url=None, test_pg_url=DEFAULT_TEST_PG, log_dir=None)


def test_settings_values():
    settings = load_settings({"DPRO_MIGRATE_BUSY_TIMEOUT_MS": " 200 ", "DPRO_MIGRATE_DATABASE_URL": "sqlite:///x.db",
                              "DPRO_MIGRATE_TEST_PG": "postgresql://u@h/db", "XDG_STATE_HOME": "/s", "HOME": "/h"})
    assert settings == Settings(200, "sqlite:///x.db", "postgresql://u@h/db", Path("/s/dpro-migrate"))
    assert load_settings({"DPRO_MIGRATE_BUSY_TIMEOUT_MS": "0"}).busy_timeout_ms == 0
    assert load_settings({"DPRO_MIGRATE_BUSY_TIMEOUT_MS": str(MAX_BUSY_TIMEOUT_MS)}).busy_timeout_ms == MAX_BUSY_TIMEOUT_MS
    # empty means unset; a relative XDG_STATE_HOME is ignored (XDG base directory spec)
    assert load_settings({"DPRO_MIGRATE_BUSY_TIMEOUT_MS": "", "DPRO_MIGRATE_DATABASE_URL": "",
                          "DPRO_MIGRATE_TEST_PG": ""}) == load_settings({})
    assert load_settings({"XDG_STATE_HOME": "rel", "HOME": "/h"}).log_dir == Path("/h/.local/state/dpro-migrate")
    assert load_settings({"HOME": "relative"}).log_dir is None


@pytest.mark.parametrize("value", ["5s", "-1", "abc", "1.5", "+5", "5_000", "٥", str(MAX_BUSY_TIMEOUT_MS + 1)])
def test_settings_refuse_a_bad_busy_timeout(value):
    with pytest.raises(BadInput) as refused:
        load_settings({"DPRO_MIGRATE_BUSY_TIMEOUT_MS": value})
    message = str(refused.value)
    assert message.startswith(f"DPRO_MIGRATE_BUSY_TIMEOUT_MS={value!r}: expected a whole number of milliseconds")
    assert "\n" not in message


# --- inputs that used to print a traceback -----------------------------------------------------

def test_bad_busy_timeout_through_the_cli(legacy_db, state_home, monkeypatch):
    db = legacy_db()
    digest = file_digest(db)
    monkeypatch.setenv("DPRO_MIGRATE_BUSY_TIMEOUT_MS", "5s")
    result = invoke(["apply", db, "--yes"])
    assert result.exit_code == BAD_INPUT
    assert one_line_error(result) == ("error: DPRO_MIGRATE_BUSY_TIMEOUT_MS='5s': expected a whole number of "
                                      f"milliseconds from 0 to {MAX_BUSY_TIMEOUT_MS} (default 5000), such as 5000")
    assert file_digest(db) == digest
    assert not list((db.parent / "dpro-migrate-backups").glob("*.bak"))  # its history says it was refused


def test_plan_out_into_a_missing_directory(legacy_db, tmp_path):
    db = legacy_db()
    digest = file_digest(db)
    result = invoke(["plan", db, "--out", tmp_path / "nonexistent" / "dir" / "plan.json"])
    assert result.exit_code == BAD_INPUT
    assert one_line_error(result) == f"error: {tmp_path / 'nonexistent' / 'dir'}: no such directory; the plan was not written"
    assert file_digest(db) == digest


def test_a_long_file_name_gets_a_shortened_backup_name(legacy_db, tmp_path):
    db = legacy_db()
    long = db.with_name("a" * 235 + ".db")
    shutil.copyfile(db, long)
    before = sqlite3.connect(db).execute("SELECT count(*), group_concat(username) FROM users").fetchone()
    result = invoke(["apply", long, "--yes"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    backups = list((tmp_path / "dpro-migrate-backups").glob("*.bak"))
    assert len(backups) == 1
    name = backups[0].name
    assert len(os.fsencode(name)) <= NAME_MAX - len(".tmp-journal")
    assert name.startswith("a" * 200) and name.endswith(".bak") and "~" in name  # stem cut, timestamp kept
    # the backup still names its database: restore finds the long file without --to
    result = invoke(["restore", backups[0], "--yes"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    after = sqlite3.connect(long).execute("SELECT count(*), group_concat(username) FROM users").fetchone()
    assert after == before


def test_a_file_name_too_long_for_the_journal_is_refused(legacy_db):
    db = legacy_db()
    long = db.with_name("b" * 250 + ".db")
    shutil.copyfile(db, long)
    digest = file_digest(long)
    result = invoke(["apply", long, "--yes"])
    assert result.exit_code == BAD_INPUT
    assert "the name is too long for the -journal file" in one_line_error(result)
    assert file_digest(long) == digest


@pytest.mark.parametrize("verb", ["inspect", "plan", "backup", "apply", "verify", "rollback", "status", "check"])
def test_a_symlink_loop_as_the_source(verb, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    result = invoke([verb, tmp_path / "loop"] + (["--yes"] if verb in ("apply", "rollback") else []))
    assert result.exit_code == BAD_INPUT
    assert one_line_error(result) == f"error: {tmp_path / 'loop'}: is a symbolic link loop"


def test_a_symlink_loop_given_to_restore(legacy_db, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    result = invoke(["restore", legacy_db(), "--to", tmp_path / "loop", "--yes"])
    assert result.exit_code == BAD_INPUT
    assert one_line_error(result) == f"error: {tmp_path / 'loop'}: is a symbolic link loop; nothing was changed"
    assert (tmp_path / "loop").is_symlink()
    for backup in (tmp_path / "loop", tmp_path / "dpro-migrate-backups" / "x.db.20260101T000000Z.bak"):
        backup.parent.mkdir(exist_ok=True)
        if not backup.is_symlink():
            backup.symlink_to(tmp_path / "loop")
        result = invoke(["restore", backup, "--yes"])  # its database found from its name and place
        assert result.exit_code == BAD_INPUT
        assert one_line_error(result) == f"error: {backup}: is a symbolic link loop"


def _edited_plan(db: Path, tmp_path: Path, edit) -> Path:
    out = tmp_path / "p.json"
    assert invoke(["plan", db, "--out", out]).exit_code == 0
    plan = json.loads(out.read_text())
    edit(plan)
    out.write_text(json.dumps(plan))
    return out


def _delete_a_key(plan):
    del plan["operations"][3]["reverse"]


def _string_for_a_list(plan):
    plan["operations"][0]["sql"] = "CREATE TABLE x (a)"


def _string_for_the_operations(plan):
    plan["operations"] = "abc"


def _another_kind(plan):
    next(s for s in plan["operations"] if s["kind"] == "create_index")["kind"] = "move_rows"


@pytest.mark.parametrize("edit", [_delete_a_key, _string_for_a_list, _string_for_the_operations, _another_kind])
def test_a_hand_edited_plan_is_refused(edit, legacy_db, tmp_path, state_home):
    db = legacy_db()
    digest = file_digest(db)
    plan = _edited_plan(db, tmp_path, edit)
    result = invoke(["apply", plan, "--yes"])
    assert result.exit_code == BAD_INPUT
    assert one_line_error(result).startswith(f"error: {plan}: is not a dpro-migrate plan: ")
    assert file_digest(db) == digest


def test_a_plan_that_drops_a_table_without_moving_it_is_refused(legacy_db, tmp_path, state_home):
    """A move taken out of the plan by hand: the table would be dropped with its rows; apply counts every
    legacy table the plan drops, so it refuses and changes nothing."""
    db = legacy_db()
    digest = file_digest(db)

    def without_the_users_move(plan):
        plan["operations"] = [op for op in plan["operations"]
                              if not (op["kind"] == "move_rows" and op["legacy"] == "users")]

    plan = _edited_plan(db, tmp_path, without_the_users_move)
    result = invoke(["apply", plan, "--yes"])
    assert result.exit_code == 1
    assert "users" in one_line_error(result) and "nothing was changed" in one_line_error(result)
    assert file_digest(db) == digest
