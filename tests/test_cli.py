"""The command line: exit codes, one-line errors, files left as they were."""

import inspect
import json
import os
import re
import sqlite3

import pytest
import typer
from typer.testing import CliRunner

from dpro_migrate.cli import app

from tests.conftest import file_digest

runner = CliRunner()


def invoke(code, args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _command_name(command) -> str:
    """The name typer gives the command: the one passed to @app.command, else derived from the function."""
    return command.name or typer.main.get_command_name(command.callback.__name__)


def _first_help_line(command) -> str:
    return (command.help or inspect.getdoc(command.callback) or "").strip().splitlines()[0]


@pytest.mark.parametrize("command", app.registered_commands, ids=_command_name)
def test_every_command_has_help(command):
    """Every registered command, so a new one cannot be left out; its help leads with its docstring."""
    name = _command_name(command)
    out = invoke(0, [name, "--help"]).stdout
    # rich rewraps the text to the terminal width: compare with the line breaks evened out
    flat = " ".join(out.split())
    assert re.match(rf"Usage: \S+ {re.escape(name)} ", flat), out
    description = " ".join(_first_help_line(command).split())
    assert description and description in flat, (description, out)
    assert flat.index(description) < flat.index("─ Options"), "the description comes before the options"


def test_the_help_test_names_commands_as_typer_does():
    """The names the test above derives are the click commands typer builds, all of them."""
    names = [_command_name(c) for c in app.registered_commands]
    assert names and sorted(names) == sorted(typer.main.get_command(app).commands)


def _bad_files(tmp_path, legacy):
    missing = tmp_path / "missing.db"
    directory = tmp_path / "adir"
    directory.mkdir()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    text = tmp_path / "notes.db"
    text.write_text("hello, this is not a database\n" * 100)
    corrupt = tmp_path / "corrupt.db"
    data = bytearray(legacy.read_bytes())
    data[8192:len(data) - 4096] = bytes(range(256)) * ((len(data) - 12288) // 256) + bytes((len(data) - 12288) % 256)
    corrupt.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(legacy.read_bytes()[: os.path.getsize(legacy) // 2 + 100])
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    return {"missing": missing, "directory": directory, "empty": empty, "not sqlite": text,
            "truncated": truncated, "corrupt": corrupt, "not DPRO": other}


@pytest.mark.parametrize("verb", ["inspect", "plan", "apply", "verify", "rollback", "backup"])
def test_bad_files_get_one_line_and_exit_2(legacy_db, tmp_path, verb):
    for label, path in _bad_files(tmp_path, legacy_db()).items():
        if verb in ("inspect", "backup", "verify", "rollback") and label == "not DPRO":
            continue  # readable SQLite: inspect reports it; verify/rollback say "not migrated" below
        before = file_digest(path) if path.is_file() else None
        args = [verb, path] + (["--yes"] if verb in ("apply", "rollback") else [])
        if verb == "backup":
            args += ["--to", tmp_path / "bk"]
        result = invoke(2, args)
        assert result.stderr.strip().count("\n") == 0, (label, result.stderr)
        assert result.stderr.startswith("error:"), (label, result.stderr)
        if before:
            assert file_digest(path) == before, label


def test_read_only_and_locked_files_are_refused_unchanged(legacy_db, tmp_path):
    db = legacy_db()
    digest = file_digest(db)
    os.chmod(db, 0o444)
    try:
        assert "read-only" in invoke(2, ["apply", db, "--yes"]).stderr
    finally:
        os.chmod(db, 0o644)
    assert file_digest(db) == digest


def test_locked_file(legacy_db, tmp_path):
    db = legacy_db()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        os.environ["DPRO_MIGRATE_BUSY_TIMEOUT_MS"] = "200"
        result = invoke(4, ["apply", db, "--yes", "--backup-dir", tmp_path])  # errors.LOCKED
        assert "is locked by another connection" in result.stderr
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        os.environ.pop("DPRO_MIGRATE_BUSY_TIMEOUT_MS", None)
    assert "users" in {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}


def test_cycle_through_the_cli_with_json(legacy_db, tmp_path):
    db = legacy_db()
    inspect = json.loads(invoke(0, ["inspect", db, "--json"]).stdout)
    assert inspect["state"] == "legacy"
    assert "password_hash" not in json.dumps(inspect).replace('"name": "password_hash"', "")
    invoke(0, ["plan", db, "--out", tmp_path / "plan.json"])
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["source_fingerprint"].startswith("sha256:")
    sql = invoke(0, ["apply", tmp_path / "plan.json", "--sql"]).stdout
    assert "INSERT INTO" in sql
    applied = json.loads(invoke(0, ["apply", tmp_path / "plan.json", "--yes", "--json", "--backup-dir", tmp_path]).stdout)
    assert applied["already_migrated"] is False
    assert json.loads(invoke(0, ["verify", db, "--json"]).stdout)["ok"] is True
    assert json.loads(invoke(0, ["status", db, "--json"]).stdout)["state"] == "migrated"
    invoke(0, ["rollback", db, "--yes", "--json", "--backup-dir", tmp_path])
    assert json.loads(invoke(0, ["status", db, "--json"]).stdout)["state"] == "legacy"


def test_verify_fails_with_exit_1_when_a_row_differs(legacy_db, tmp_path):
    db = legacy_db()
    invoke(0, ["apply", db, "--yes", "--backup-dir", tmp_path])
    conn = sqlite3.connect(db)
    conn.execute("UPDATE communication_messages SET content = content || '!' WHERE id = (SELECT min(id) FROM communication_messages)")
    conn.execute("DROP INDEX " + conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks_tasks' AND sql IS NOT NULL LIMIT 1").fetchone()[0])
    conn.commit()
    conn.close()
    out = json.loads(invoke(1, ["verify", db, "--json"]).stdout)
    failed = {c["name"] for c in out["checks"] if not c["ok"]}
    assert any("messages" in n for n in failed)
    assert "promised objects exist" in failed


def test_demo_runs(tmp_path):
    result = invoke(0, ["demo", tmp_path / "demo", "--messages", "200", "--quiet"])
    assert "logically identical" in result.stdout


def test_alembic_handoff_and_drift_through_the_cli(legacy_db, tmp_path):
    db = legacy_db()
    out = json.loads(invoke(0, ["apply", db, "--yes", "--json", "--backup-dir", tmp_path / "bk",
                                "--alembic", tmp_path / "alembic"]).stdout)
    assert out["alembic"]["revision"].startswith("dpro")
    assert (tmp_path / "alembic" / "alembic.ini").exists()
    clean = json.loads(invoke(0, ["verify", db, "--schema-only", "--json"]).stdout)
    assert clean["differences"] == [] and "ddl/" in clean["basis"]  # it says what it compared with
    assert "compared with" in invoke(0, ["verify", db, "--schema-only"]).stdout
    conn = sqlite3.connect(db)
    conn.execute("DROP INDEX idx_msg_user_time")
    conn.commit()
    conn.close()
    drift = json.loads(invoke(1, ["verify", db, "--schema-only", "--json"]).stdout)["differences"]
    assert any("idx_msg_user_time" in d["object"] for d in drift)
    invoke(0, ["rollback", db, "--yes", "--backup-dir", tmp_path / "bk"])
    assert "alembic_version" not in {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
