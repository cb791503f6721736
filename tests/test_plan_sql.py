"""`plan --sql` is the whole of what apply runs: golden scripts per dialect, and a replay through the sqlite3
shell that `verify` accepts and `rollback` (itself replayed from `rollback --sql`) undoes exactly."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.targets import parse_target

GOLDEN = Path(__file__).parent / "golden"
PG_URL = "postgresql://postgres@127.0.0.1:5432/golden_target"  # only named in the script, never connected to


def normalised(script: str, source: Path) -> str:
    """The script without what changes from run to run: the source's path, timestamps, the plan's JSON."""
    text = script.replace(str(source.resolve().parent), "<DIR>")
    text = re.sub(r"'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00'", "'<TIME>'", text)
    text = re.sub(r"'\{\n  \"source\".*?\n\}'", "'<PLAN JSON>'", text, flags=re.S)
    return text


@pytest.fixture(scope="module")
def example_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "dpro_agent.db"
    generate_legacy_db(path, messages=200, seed=0, extras=True)
    return path


@pytest.mark.parametrize("target", [None, PG_URL], ids=["sqlite", "postgresql"])
def test_plan_sql_matches_the_golden_script(example_file, target):
    dest = parse_target(target)
    script = normalised(verbs.apply_script(example_file, dest), example_file)
    golden = GOLDEN / f"apply.{dest.dialect}.sql"
    if os.environ.get("DPRO_MIGRATE_UPDATE_GOLDEN"):
        golden.write_text(script)
    assert script == golden.read_text(), f"plan --sql changed; review it, then DPRO_MIGRATE_UPDATE_GOLDEN=1 pytest {__file__}"


def test_every_operation_of_the_script_is_labelled(example_file):
    script = verbs.apply_script(example_file, parse_target(None))
    plan = verbs.make_plan(example_file)
    for op in plan.operations:
        if op.sql:
            assert f"-- {op.describe()}\n" in script


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "dpro_migrate", *map(str, args)]


@pytest.mark.slow  # the sqlite3 shell replays apply and rollback, ~7 s
@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell")
def test_replayed_plan_sql_verifies_and_replayed_rollback_restores(tmp_path):
    db = tmp_path / "dpro_agent.db"
    generate_legacy_db(db, messages=300, seed=3, extras=True)
    original = tmp_path / "original.db"
    shutil.copyfile(db, original)
    script = subprocess.run(cli("plan", db, "--sql"), capture_output=True, text=True, check=True).stdout
    subprocess.run(["sqlite3", str(db)], input=script, text=True, check=True, capture_output=True)

    verified = subprocess.run(cli("verify", db, "--json"), capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verbs.status(db).state == "migrated"

    undo = subprocess.run(cli("rollback", db, "--sql"), capture_output=True, text=True, check=True).stdout
    subprocess.run(["sqlite3", str(db)], input=undo, text=True, check=True, capture_output=True)
    assert logical_differences(original, db) == []


@pytest.mark.slow  # the sqlite3 shell replays the script, ~2 s
@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell")
def test_replay_stops_at_a_failed_check_and_changes_nothing(tmp_path):
    """The script's own checks stop it (.bail on) inside its transaction: nothing is left half-done."""
    db = tmp_path / "dpro_agent.db"
    generate_legacy_db(db, messages=100, seed=1)
    script = subprocess.run(cli("plan", db, "--sql"), capture_output=True, text=True, check=True).stdout
    # a row that breaks a foreign key of the target, written after the plan was printed
    subprocess.run(["sqlite3", str(db), "PRAGMA foreign_keys = OFF; UPDATE messages SET conversation_id = 999999 "
                    "WHERE id = (SELECT min(id) FROM messages)"], check=True)
    before = tmp_path / "before.db"
    shutil.copyfile(db, before)
    replay = subprocess.run(["sqlite3", str(db)], input=script, text=True, capture_output=True)
    assert replay.returncode != 0
    assert logical_differences(before, db) == []
