"""The plan's JSON: typed operations, validated on load; plans recorded by dpro-migrate 0.1.0 (format 1,
untyped steps) still verify and roll back the files they migrated."""

import json
import sqlite3
import sys
import subprocess

import pytest

from dpro_migrate import verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.plan.document import Plan, load_plan, save_plan
from dpro_migrate.plan.operations import OPERATIONS

from tests.conftest import file_digest

V1_PLAN = "tests/golden/plan.v1.sqlite.json"  # apply --with new-tables --with archive-tables --compat-views, 0.1.0
V1_SOURCE = "/tmp/v1/l2.db"  # the path it was recorded with


def test_every_operation_round_trips_through_json(tmp_path):
    db = tmp_path / "dpro_agent.db"
    generate_legacy_db(db, messages=100, seed=2, extras=True)
    plan = verbs.make_plan(db, features=("new-tables", "archive-tables"), compat_views=True)
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert {op.kind for op in plan.operations} <= set(OPERATIONS)


def test_a_file_migrated_by_0_1_0_verifies_and_rolls_back(tmp_path):
    db = tmp_path / "dpro_agent.db"
    generate_legacy_db(db, messages=200, seed=0, extras=True)
    original = tmp_path / "original.db"
    original.write_bytes(db.read_bytes())
    v1 = open(V1_PLAN).read().replace(V1_SOURCE, str(db.resolve()))
    assert json.loads(v1)["format"] == 1
    plan_path = tmp_path / "plan.v1.json"
    plan_path.write_text(v1)
    # built by exactly what 0.1.0 planned (a current plan adds objects 0.1.0 never made: search, statistics,
    # seed 003's training tables), and recorded as 0.1.0 recorded it
    verbs.apply(plan_path, backup_dir=tmp_path / "bk")
    conn = sqlite3.connect(db)
    conn.execute("UPDATE system_migration_ledger SET plan = ?", (v1,))
    conn.commit()
    conn.close()
    assert verbs.verify(db).ok
    verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert logical_differences(original, db) == []


def edit(plan_path, change):
    data = json.loads(plan_path.read_text())
    change(data)
    plan_path.write_text(json.dumps(data))


def _set(data, i, key, value):
    data["operations"][i][key] = value


SLOW = pytest.mark.slow  # each runs the CLI in a process of its own: one stays in the quick subset


@pytest.mark.parametrize("change, message", [
    (lambda d: _set(d, 0, "kind", "make_coffee"), "unknown operation kind 'make_coffee'"),
    pytest.param(lambda d: d["operations"][0].pop("sql"), "field 'sql' is missing", marks=SLOW),
    pytest.param(lambda d: _set(d, 0, "sql", "DROP TABLE users"), "field 'sql' is not a list", marks=SLOW),
    pytest.param(lambda d: _set(d, 0, "surprise", 1), "unknown field 'surprise'", marks=SLOW),
    pytest.param(lambda d: d.pop("operations"), "operations are not a list", marks=SLOW),
    pytest.param(lambda d: d.update(format=7), "plan format 7 is not supported", marks=SLOW),
    pytest.param(lambda d: d.update(operations=[1]), "operation 1: is not an operation", marks=SLOW),
])
def test_a_hand_edited_plan_is_one_line_exit_2_and_nothing_changes(tmp_path, change, message):
    db = tmp_path / "dpro_agent.db"
    generate_legacy_db(db, messages=50, seed=1)
    plan_path = save_plan(verbs.make_plan(db), tmp_path / "plan.json")
    edit(plan_path, change)
    with pytest.raises(BadInput, match=message):
        load_plan(plan_path)
    digest = file_digest(db)
    done = subprocess.run([sys.executable, "-m", "dpro_migrate", "apply", str(plan_path), "--yes"],
                          capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert file_digest(db) == digest
