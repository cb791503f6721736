"""The DBA's console (issue 16): what every verb says, at a real terminal width and a narrow one.

Each test runs at 120 and at 60 columns (the `width` fixture), and checks the output against the database's
own answers.
"""

import json
import re
import sqlite3
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

import dpro_migrate.cli as cli
from dpro_migrate import __version__, render
from dpro_migrate.cli import app
from dpro_migrate.errors import DECLINED, EXIT_CODES
from dpro_migrate.plan.document import save_plan
from dpro_migrate.planning import make_plan
from dpro_migrate.targets import parse_target

from tests.conftest import file_digest

runner = CliRunner()
KEYS = {"verb", "database", "source", "ok", "seconds", "rows", "rows_per_second", "tables", "phases", "backup",
        "quarantine", "next", "note"}
TABLE_KEYS = {"legacy", "target", "rows", "seconds", "rows_per_second"}


@pytest.fixture(params=[120, 60], ids=["wide", "narrow"])
def width(request, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(request.param))
    monkeypatch.setattr(render, "out", Console(highlight=False, soft_wrap=True))
    monkeypatch.setattr(render, "err", Console(stderr=True, highlight=False, soft_wrap=True))
    return request.param


def invoke(code, args, **kwargs):
    result = runner.invoke(app, [str(a) for a in args], **kwargs)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


def _name(command) -> str:
    return command.name or typer.main.get_command_name(command.callback.__name__)


# --- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", app.registered_commands, ids=_name)
def test_every_verb_has_an_example_exit_codes_switches_and_the_common_options(command, width):
    out = invoke(0, [_name(command), "--help"]).stdout
    assert "<bool>" not in out, out  # a switch takes no value
    assert "Examples" in out and f"$ dpro-migrate {_name(command)}" in " ".join(out.split())
    codes = out[out.index("Exit codes"):]
    listed = [int(n) for n in re.findall(r"^\s*(\d+)\s{2}", codes, re.M)]
    assert 0 in listed and 2 in listed and set(listed) <= set(EXIT_CODES), listed
    for option in ("--json", "--quiet", "-q"):
        assert option in out, option
    assert all(len(line) <= width for line in out.splitlines()), "help fits the terminal"


def test_choices_and_defaults_are_shown(width):
    out = invoke(0, ["apply", "--help"]).stdout
    flat = "".join(out.split())
    assert ("<fail|quarantine>" in out if width > 100 else "<fail|" in out) and "[default:fail]" in flat
    assert "--backup-dir" in out


def test_version_and_completion():
    assert invoke(0, ["--version"]).stdout.strip() == f"dpro-migrate {__version__}"
    top = invoke(0, ["--help"]).stdout
    assert "--install-completion" in top and "--version" in top and "<bool>" not in top


def test_declined_has_its_own_documented_exit_code():
    assert DECLINED not in (0, 1, 2, 3, 4, 70, 130)
    assert "no" in EXIT_CODES[DECLINED] and "nothing was changed" in EXIT_CODES[DECLINED]


# --- targets -------------------------------------------------------------------------------------


def test_postgres_and_postgresql_urls_alike():
    assert parse_target("postgres://dba:pw@db:5432/dpro").display == parse_target("postgresql://dba:pw@db:5432/dpro").display
    assert "pw" not in parse_target("postgres://dba:pw@db:5432/dpro").display


@pytest.mark.parametrize("url", ["postgresql://dba@127.0.0.1:5432/", "postgres://dba:secret@127.0.0.1:5432"])
def test_a_url_must_name_its_database(legacy_db, url):
    db = legacy_db()
    digest = file_digest(db)
    result = invoke(2, ["apply", db, "--yes", "--target", url])
    assert "names no database" in result.stderr and result.stderr.strip().count("\n") == 0
    assert "secret" not in result.stderr
    assert file_digest(db) == digest


def test_a_refused_connection_keeps_libpq_reason(legacy_db):
    result = invoke(2, ["status", legacy_db(), "--target", "postgresql://dba:secret@127.0.0.1:1/dpro"])
    assert "Connection refused" in result.stderr and "secret" not in result.stderr
    assert "postgresql://dba:***@127.0.0.1:1/dpro" in result.stderr


def test_a_postgresql_plan_applies_to_the_target_it_records(legacy_db, tmp_path):
    """No --target: the plan's own (its password from PGPASSWORD or ~/.pgpass); --target overrides it."""
    from dpro_migrate import verbs

    db = legacy_db()
    plan = make_plan(db, parse_target("postgresql://dba:secret@db.internal:5432/dpro"))
    path = save_plan(plan, tmp_path / "plan.json")
    recorded = verbs.target_for(path, None)
    assert recorded.dialect == "postgresql" and recorded.display == "postgresql://dba@db.internal:5432/dpro"
    assert "secret" not in recorded.conninfo and "***" not in recorded.conninfo
    assert verbs.target_for(path, "postgresql://other@h/x").display == "postgresql://other@h/x"
    assert verbs.target_for(db, None).in_place


# --- confirmation --------------------------------------------------------------------------------


def test_declining_exits_5_names_the_database_and_changes_nothing(legacy_db, monkeypatch):
    db = legacy_db()
    digest = file_digest(db)
    monkeypatch.setattr(cli, "can_ask", lambda: True)
    result = invoke(DECLINED, ["apply", db], input="n\n")
    asked = result.stdout + result.stderr  # the question goes to stderr (stdout is --json's)
    assert str(db) in " ".join(asked.split()).replace(" ", "") or str(db) in asked
    assert "nothing was changed" in result.stderr
    assert file_digest(db) == digest


# --- apply, verify, rollback: summaries and one vocabulary --------------------------------------


def _moved(db: Path) -> int:
    """Rows apply moved: every row of the legacy tables its recorded plan maps (none refused here)."""
    from dpro_migrate import verbs

    return sum(t["rows"] for t in verbs.recorded_plan(db).legacy_tables.values())


def test_apply_verify_rollback_json_share_one_vocabulary(legacy_db, tmp_path):
    db = legacy_db()
    applied = json.loads(invoke(0, ["apply", db, "--yes", "--json", "--backup-dir", tmp_path / "bk"]).stdout)
    verified = json.loads(invoke(0, ["verify", db, "--json", "--backup-dir", tmp_path / "bk"]).stdout)
    rolled = json.loads(invoke(0, ["rollback", db, "--yes", "--json", "--backup-dir", tmp_path / "bk"]).stdout)
    for doc, verb in ((applied, "apply"), (verified, "verify"), (rolled, "rollback")):
        assert KEYS <= set(doc), (verb, KEYS - set(doc))
        assert doc["verb"] == verb and doc["database"] == str(db.resolve()) and doc["ok"] is True
        assert all(set(t) == TABLE_KEYS for t in doc["tables"]), doc["tables"][0]
        assert doc["rows"] == sum(t["rows"] for t in doc["tables"])
        assert all({"phase", "seconds", "operations"} == set(p) for p in doc["phases"])
        assert Path(doc["backup"]).exists()
        assert doc["next"]
    legacy = sqlite3.connect(db)
    source_rows = sum(legacy.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in
                      ["users", "messages", "activity_logs"])
    legacy.close()
    by_legacy = {}
    for t in applied["tables"]:
        by_legacy[t["legacy"]] = by_legacy.get(t["legacy"], 0) + t["rows"]
    assert by_legacy["users"] + by_legacy["messages"] + by_legacy["activity_logs"] == source_rows
    assert applied["rows"] == verified["rows"] == rolled["rows"]
    # the same names for the same tables whichever way the rows went
    pairs = lambda doc: sorted((t["legacy"], t["target"], t["rows"]) for t in doc["tables"])  # noqa: E731
    assert pairs(applied) == pairs(verified) == pairs(rolled)
    assert applied["applied_at"] is not None
    phases = {p["phase"] for p in applied["phases"]}
    assert {"backup", "create tables", "move rows", "indexes", "commit"} <= phases


def test_apply_summary_in_the_terminal(legacy_db, tmp_path, width):
    db = legacy_db()
    out = invoke(0, ["apply", db, "--yes", "--backup-dir", tmp_path / "bk"]).stdout
    moved = _moved(db)
    assert f"applied to {db.resolve()}" in out.replace("\n", "") or f"applied to {db.resolve()}" in out
    assert f"{moved:,} rows" in out
    lines = [line.strip() for line in out.splitlines()]
    backups = list((tmp_path / "bk").glob("*.bak"))
    assert str(backups[0]) in lines, "the backup path whole, on a line of its own"
    assert f"next: dpro-migrate verify {db.resolve()}" in lines
    for word in ("phase", "rows/s", "messages", "move rows", "indexes"):
        assert word in out, word
    quiet = invoke(0, ["rollback", db, "--yes", "-q", "--backup-dir", tmp_path / "bk"]).stdout
    assert quiet.strip().count("\n") == 0 and quiet.startswith("rolled back")


# --- dirty data ----------------------------------------------------------------------------------


@pytest.fixture
def refused_agents(legacy_db):
    """Agents 2, 3 and 4 break a CHECK: their conversations and messages are refused only because of them."""
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE agents SET temperature = 5 WHERE id IN (2, 3, 4)")
    conn.commit()
    conn.close()
    return db


def _refused_rows(db: Path) -> int:
    from dpro_migrate import verbs

    return verbs.dirty_of(make_plan(db)).rows


def test_dirty_data_is_explained_with_root_causes_and_cascades(refused_agents, width):
    db = refused_agents
    digest = file_digest(db)
    result = invoke(1, ["apply", db, "--yes", "--json"])
    dirty = json.loads(result.stdout)["details"]["dirty"]
    rule = next(r for r in dirty["rules"] if r["rule"] == "check chk_agents_temperature_range")
    assert rule["ids"] == [2, 3, 4] and rule["rows"] == 3
    assert "temperature" in rule["definition"] and rule["sql"].startswith("CONSTRAINT chk_agents_temperature_range CHECK")
    assert dirty["cascades"], "rows refused because their parent was"
    assert {c["parent"] for c in dirty["cascades"]} >= {"agents", "conversations"}
    # one count: rows, each once; roots and cascades add up to it
    assert dirty["rows"] == sum(dirty["tables"].values())
    listed = {(r["legacy"], i) for r in dirty["rules"] for i in r["ids"]} | \
        {(c["legacy"], i) for c in dirty["cascades"] for i in c["ids"]}
    assert len(listed) == dirty["rows"] == sum(c["rows"] for c in dirty["cascades"]) + 3
    conn = sqlite3.connect(db)
    children = conn.execute("SELECT count(*) FROM conversations WHERE agent_id IN (2, 3, 4)").fetchone()[0]
    conn.close()
    assert dirty["tables"].get("conversations", 0) == children
    assert file_digest(db) == digest
    text = invoke(1, ["apply", db, "--yes"]).stderr
    flat = " ".join(text.split())
    assert f"{dirty['rows']:,} rows the target would refuse" in flat
    assert "refused because agents rows" in flat or "refused because agents row" in flat
    assert "CHECK" in flat and "ids: 2, 3, 4" in flat


def test_one_count_of_refused_rows_everywhere(refused_agents):
    db = refused_agents
    expected = _refused_rows(db)
    inspect = json.loads(invoke(0, ["inspect", db, "--json"]).stdout)["dirty"]["rows"]
    planned = json.loads(invoke(0, ["plan", db, "--json"]).stdout)["preflight"]["dirty"]["rows"]
    refused = json.loads(invoke(1, ["apply", db, "--yes", "--json"]).stdout)["details"]["dirty"]["rows"]
    checked = json.loads(invoke(1, ["check", db, "--json"]).stdout)["dirty"]["rows"]
    assert inspect == planned == refused == checked == expected
    out = runner.invoke(app, ["check", str(db)]).stdout
    assert f"{expected:,} rows the target would refuse" in " ".join(out.split())


def test_the_same_count_in_the_terminal(refused_agents, width):
    db = refused_agents
    expected = _refused_rows(db)
    for verb in ("inspect", "plan"):
        out = runner.invoke(app, [verb, str(db)]).stdout
        assert f"{expected:,} rows the target would refuse" in " ".join(out.split()), verb


def test_quarantine_is_announced_with_counts_and_where(refused_agents, tmp_path):
    db = refused_agents
    out = invoke(0, ["apply", db, "--yes", "--on-reject", "quarantine", "--backup-dir", tmp_path / "bk"]).stdout
    conn = sqlite3.connect(db)
    kept = dict(conn.execute("SELECT source_table, count(DISTINCT source_pk) FROM system_quarantine GROUP BY 1"))
    conn.close()
    flat = " ".join(out.split())
    assert f"quarantine: {sum(kept.values()):,} rows" in flat
    for table, n in kept.items():
        assert f"{table} {n:,}" in flat
    assert "system_quarantine" in flat and str(db.resolve()) in out
    verified = json.loads(invoke(0, ["verify", db, "--json", "--backup-dir", tmp_path / "bk"]).stdout)
    assert verified["quarantine"]["tables"] == kept
    back = invoke(0, ["rollback", db, "--yes", "--backup-dir", tmp_path / "bk"]).stdout
    assert "put back into their legacy tables" in back and f"quarantine: {sum(kept.values()):,} rows" in " ".join(back.split())
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM agents WHERE id IN (2, 3, 4)").fetchone()[0] == 3
    conn.close()


def test_check_rehearses_with_apply_options(refused_agents):
    db = refused_agents
    invoke(1, ["check", db])
    out = json.loads(invoke(0, ["check", db, "--on-reject", "quarantine", "--with", "new-tables", "--json"]).stdout)
    assert out["options"] == {"on_reject": "quarantine", "compat_views": False, "features": ["new-tables"]}
    assert out["ok"] is True


# --- status, inspect, plan, backup -----------------------------------------------------------------


def test_status_prints_paths_whole_and_json_knows_migrated_names(legacy_db, tmp_path, width):
    deep = tmp_path / ("a-rather-long-folder-name-for-backups-" * 3)
    db = legacy_db()
    invoke(0, ["apply", db, "--yes", "--backup-dir", deep])
    out = invoke(0, ["status", db, "--backup-dir", deep]).stdout
    lines = [line.strip() for line in out.splitlines()]
    backup = next(deep.glob("*.bak"))
    assert f"backup: {backup}" in lines
    assert str(deep / "dpro-migrate-history.jsonl") in lines
    doc = json.loads(invoke(0, ["status", db, "--json"]).stdout)
    assert doc["state"] == "migrated" and doc["legacy_tables"] == []
    assert "marketplace_tools" in doc["domain_tables"]


def test_inspect_shows_column_names_and_types(legacy_db, width):
    out = invoke(0, ["inspect", legacy_db()]).stdout
    flat = " ".join(out.split())
    assert "username VARCHAR(50) NOT NULL" in flat and "temperature REAL" in flat


def test_plan_shows_each_half_of_the_split(legacy_db, width):
    db = legacy_db()
    conn = sqlite3.connect(db)
    auth = conn.execute("SELECT count(*) FROM activity_logs WHERE (action LIKE '%login%' OR action LIKE '%auth%') IS 1"
                        ).fetchone()[0]
    total = conn.execute("SELECT count(*) FROM activity_logs").fetchone()[0]
    conn.close()
    assert 0 < auth < total
    out = invoke(0, ["plan", db]).stdout
    rows = [line for line in out.splitlines() if line.startswith(("│ activity_logs", "activity_logs ->"))]
    assert len(rows) == 2
    assert f"{auth:,}" in rows[0] and f"{total - auth:,}" in rows[1]


def test_backup_refuses_a_folder_that_does_not_exist(legacy_db, tmp_path):
    db = legacy_db()
    missing = tmp_path / "typo" / "dir"
    result = invoke(2, ["backup", db, "--backup-dir", missing])
    assert "does not exist" in result.stderr and not missing.exists()
    invoke(2, ["backup", db, "--to", missing])  # the old spelling still works, the same way
    out = invoke(0, ["backup", db, "--backup-dir", missing, "--create"]).stdout
    made = next(missing.glob("*.bak"))
    assert str(made) in [line.strip() for line in out.splitlines()]


def test_every_verb_that_acts_on_a_database_names_it(legacy_db, tmp_path):
    db = legacy_db()
    name = str(db.resolve())
    for args in (["apply", db, "--yes", "--backup-dir", tmp_path / "bk"], ["verify", db, "--backup-dir", tmp_path / "bk"],
                 ["finalize", db], ["rollback", db, "--yes", "--backup-dir", tmp_path / "bk"]):
        out = invoke(0, args).stdout
        assert name in out, args[0]


# --- demo -----------------------------------------------------------------------------------------


def test_demo_tells_the_story_in_stages(tmp_path, width):
    out = invoke(0, ["demo", tmp_path / "demo", "--messages", "100"]).stdout
    stages = ["made an example", "planned", "backed up", "applied", "verified", "rolled back", "compared"]
    positions = [out.index(s) for s in stages]
    assert positions == sorted(positions)
    assert "identical" in out and str(tmp_path / "demo") in out
    assert "create_table" not in out and "keep_sequence" not in out  # no internal step kinds
    numbers = re.search(r"([\d,]+) rows in \d+ tables: ([\d,]+) in the \d+ legacy tables dpro-migrate moves, ([\d,]+) in",
                        " ".join(out.split()))
    total, moved, kept = (int(n.replace(",", "")) for n in numbers.groups())
    assert total == moved + kept


def test_plan_counts_what_each_move_takes_after_quarantine(refused_agents, width):
    db = refused_agents
    conn = sqlite3.connect(db)
    agents = conn.execute("SELECT count(*) FROM agents").fetchone()[0]
    conn.close()
    out = " ".join(invoke(0, ["plan", db, "--on-reject", "quarantine"]).stdout.split())
    assert f"{agents - 3:,}" in out and "refused rows" in out and "dpro_refused" not in out


# --- PostgreSQL --------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_postgresql_plan_file_applies_to_its_target_and_every_verb_names_it(refused_agents, pg_url, tmp_path):
    db = refused_agents
    invoke(0, ["plan", db, "--target", pg_url.replace("postgresql://", "postgres://"), "--on-reject", "quarantine",
               "--out", tmp_path / "plan.json"])
    shown = parse_target(pg_url).display
    applied = json.loads(invoke(0, ["apply", tmp_path / "plan.json", "--yes", "--json", "--backup-dir", tmp_path / "bk"],
                                env={"DPRO_MIGRATE_TARGET": ""}).stdout)
    assert applied["database"] == shown and applied["ok"] is True
    import psycopg

    with psycopg.connect(pg_url) as conn:
        kept = dict(conn.execute("SELECT source_table, count(DISTINCT source_pk) FROM system.quarantine GROUP BY 1")
                    .fetchall())
        moved = conn.execute("SELECT count(*) FROM communication.messages").fetchone()[0]
    assert applied["quarantine"]["tables"] == kept and applied["quarantine"]["rows"] == sum(kept.values())
    assert next(t["rows"] for t in applied["tables"] if t["legacy"] == "messages") == moved
    assert any(p["phase"] == "backup (pg_dump)" or p["phase"] == "snapshot of the source" for p in applied["phases"])
    assert f"--target {shown}" in applied["next"][0]
    verified = invoke(0, ["verify", db, "--target", pg_url]).stdout
    assert shown in verified
    rolled = invoke(0, ["rollback", db, "--target", pg_url, "--yes", "--backup-dir", tmp_path / "bk"]).stdout
    assert shown in rolled and "was only read" in rolled


def test_type_rules_say_what_postgresql_accepts(tmp_path):
    from dpro_migrate import verbs

    db = tmp_path / "dirty.db"
    verbs.example(db, messages=50, shape="18", dirty=True)
    dirty = verbs.dirty_of(make_plan(db, parse_target("postgresql://dba@db.internal/dpro")))
    words = {r.rule: r.definition for r in dirty.rules if r.kind == "type"}
    assert "YYYY-MM-DD HH:MM:SS" in words["type communication.messages.created_at timestamptz"]
    assert "0 or 1" in words["type workflow.boards.is_public boolean"]
    assert "at most 200 characters" in words["type tasks.tasks.title varchar(200)"]
    assert all(r.ids and r.rows == len(r.ids) and r.sql for r in dirty.rules)


def test_a_summary_reads_back_from_its_json(legacy_db, tmp_path):
    from dpro_migrate.results import Summary

    db = legacy_db()
    doc = json.loads(invoke(0, ["apply", db, "--yes", "--json", "--backup-dir", tmp_path / "bk"]).stdout)
    again = Summary.from_json(doc).to_json()

    def unrated(d):  # a rate from seconds rounded to the millisecond differs in its last digits
        return {k: ([{**t, "rows_per_second": None} for t in v] if k == "tables" else v)
                for k, v in d.items() if k != "rows_per_second"}

    assert unrated({k: doc[k] for k in again}) == unrated(again)


def test_the_confirmation_names_the_database_a_plan_will_change(legacy_db, tmp_path, monkeypatch):
    db = legacy_db()
    plan = save_plan(make_plan(db, parse_target("postgresql://dba:secret@db.internal:5432/dpro")), tmp_path / "plan.json")
    monkeypatch.setattr(cli, "can_ask", lambda: True)
    monkeypatch.delenv("DPRO_MIGRATE_TARGET", raising=False)
    result = invoke(DECLINED, ["apply", plan], input="n\n")
    prompt = " ".join(result.stderr.split())  # the question goes to stderr (stdout is --json's)
    assert f"Migrate {db.resolve()} into postgresql://dba@db.internal:5432/dpro (plan {plan})?" in prompt
    assert "secret" not in result.stdout + result.stderr and "nothing was changed" in result.stderr
