"""`dpro-migrate check`: the whole cycle on a scratch copy, for CI; the source is never written."""

import json
import os
import sqlite3
import tempfile
import xml.etree.ElementTree as ET

import psycopg
import pytest
from typer.testing import CliRunner

from dpro_migrate import check as checking
from dpro_migrate import verbs
from dpro_migrate.cli import app
from dpro_migrate.verify.sqlite import Check, VerifyReport

from tests.conftest import add_orphan_message, file_digest

runner = CliRunner()
STAGES = ["copy", "plan", "apply", "verify", "rollback", "compare"]


def invoke(code, args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.fixture(autouse=True)
def private_tempdir(tmp_path_factory, monkeypatch):
    """check puts its scratch copy in the temp directory: a private one per test, so another run's scratch
    copies (other checkouts run this suite on the same machine) are not taken for this one's leftovers."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tempdir")))


def scratch_dirs():
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("dpro-check-")}


def test_check_sqlite_passes_and_leaves_the_source_alone(legacy_db, tmp_path):
    db = legacy_db(extras=True)
    digest, mtime = file_digest(db), db.stat().st_mtime_ns
    before = scratch_dirs()
    out = json.loads(invoke(0, ["check", db, "--json", "--junit", tmp_path / "report.xml"]).stdout)
    assert out["ok"] is True
    assert [s["name"] for s in out["stages"]] == STAGES
    assert all(s["status"] == "ok" and s["seconds"] >= 0 for s in out["stages"]), out["stages"]
    assert "logically identical" in out["stages"][-1]["detail"]
    assert file_digest(db) == digest and db.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name, "report.xml"]  # no backups, no journal beside it
    assert scratch_dirs() == before, "the scratch copy is removed"
    suite = ET.parse(tmp_path / "report.xml").getroot()
    assert suite.tag == "testsuites" and suite.get("tests") == "6" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == STAGES
    assert all(float(c.get("time")) >= 0 for c in suite.iter("testcase"))


def test_check_human_output(legacy_db):
    result = invoke(0, ["check", legacy_db()])
    assert "check passed" in result.stdout and "compare" in result.stdout


def test_a_failed_verification_is_exit_1_and_rollback_still_runs(legacy_db, tmp_path, monkeypatch):
    db = legacy_db()
    digest = file_digest(db)

    def failing_verify(source, target=None, *, backup=None):
        return VerifyReport(str(source), None, [Check("rows messages -> communication_messages", False,
                                                      "99 of 100 legacy rows present value for value", [{"legacy_id": 7}])], [])

    monkeypatch.setattr(verbs, "verify", failing_verify)
    result = invoke(1, ["check", db, "--json", "--junit", tmp_path / "report.xml"])
    out = json.loads(result.stdout)
    status = {s["name"]: s["status"] for s in out["stages"]}
    assert out["ok"] is False
    assert status == {"copy": "ok", "plan": "ok", "apply": "ok", "verify": "failed", "rollback": "ok", "compare": "ok"}
    assert out["stages"][3]["findings"][0]["items"] == [{"legacy_id": 7}]
    failures = [c for c in ET.parse(tmp_path / "report.xml").getroot().iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["verify"]
    assert "legacy_id" in failures[0].find("failure").text
    assert file_digest(db) == digest


def test_rows_the_target_refuses_fail_the_check_with_exit_1(legacy_db, tmp_path):
    db = legacy_db()
    add_orphan_message(db)
    digest = file_digest(db)
    result = invoke(1, ["check", db, "--json", "--junit", tmp_path / "r.xml"])
    out = json.loads(result.stdout)
    failed = [s for s in out["stages"] if s["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["name"] in ("plan", "apply"), out["stages"]
    assert failed[0]["findings"]
    assert {s["status"] for s in out["stages"][STAGES.index(failed[0]["name"]) + 1:]} == {"skipped"}
    root = ET.parse(tmp_path / "r.xml").getroot()
    assert root.get("failures") == "1" and int(root.get("skipped")) >= 4
    assert file_digest(db) == digest


def test_a_failing_stage_in_human_output(legacy_db, monkeypatch):
    monkeypatch.setattr(verbs, "verify", lambda *a, **k: VerifyReport("x", None, [Check("integrity_check", False, "bad")], []))
    result = invoke(1, ["check", legacy_db()])
    assert "check failed" in result.stdout and "verify" in result.stdout


def _bad_sources(tmp_path, legacy):
    missing = tmp_path / "missing.db"
    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 100)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    migrated = tmp_path / "migrated.db"
    migrated.write_bytes(legacy.read_bytes())
    verbs.apply(migrated, backup_dir=tmp_path / "bk")
    return {"missing": missing, "not sqlite": text, "not DPRO": other, "already migrated": migrated}


def test_unusable_sources_are_exit_2_and_unchanged(legacy_db, tmp_path):
    before = scratch_dirs()
    for label, path in _bad_sources(tmp_path, legacy_db()).items():
        digest = file_digest(path) if path.exists() else None
        result = invoke(2, ["check", path, "--junit", tmp_path / f"{label}.xml"])
        assert result.stderr.startswith("error:") and result.stderr.strip().count("\n") == 0, (label, result.stderr)
        assert "dpro-check-" not in result.stderr, "errors name the source, not the scratch copy"
        out = json.loads(invoke(2, ["check", path, "--json"]).stdout)
        assert out["exit_code"] == 2 and out["error"], label
        if digest:
            assert file_digest(path) == digest, label
        assert not (tmp_path / f"{label}.xml").exists()
    assert scratch_dirs() == before


def test_unusable_targets_are_exit_2(legacy_db):
    db = legacy_db()
    assert "postgresql://" in invoke(2, ["check", db, "--target", "sqlite:///elsewhere.db"]).stderr
    invoke(2, ["check", db, "--target", "mysql://u@h/db"])
    result = invoke(2, ["check", db, "--target", "postgresql://postgres:secret@127.0.0.1:1/postgres"])
    assert "cannot connect" in result.stderr and "secret" not in result.stderr


def test_an_unwritable_junit_path_is_exit_2(legacy_db, tmp_path):
    assert "JUnit" in invoke(2, ["check", legacy_db(), "--junit", tmp_path / "no" / "such" / "dir.xml"]).stderr


def test_junit_xml_survives_hostile_text():
    report = checking.CheckReport("a<b>&\x00.db", "sqlite:in-place", "x", [
        checking.Stage("plan", "failed", 0.1, "bad \x01 <row> & 'quote'", [{"id": "\x00\ud800"}]),
        checking.Stage("apply", "skipped", 0.0, "an earlier stage failed")], 0.1)
    root = ET.fromstring(checking.junit_xml(report).encode())
    assert root.get("failures") == "1" and root.get("skipped") == "1"
    assert "<row>" in root.find(".//failure").get("message")


# --- PostgreSQL ---------------------------------------------------------------------------------


def _databases(url):
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def _scratch_name(out):
    name = out["scratch"].rsplit("database ", 1)[1]
    assert name.startswith("dpro_check_")
    return name


@pytest.mark.postgres
def test_check_postgres_uses_a_throwaway_database_and_drops_it(legacy_db, tmp_path, pg_url):
    db = legacy_db(extras=True)
    digest = file_digest(db)
    out = json.loads(invoke(0, ["check", db, "--target", pg_url, "--json", "--junit", tmp_path / "r.xml"]).stdout)
    assert out["ok"] is True, out["stages"]
    assert [s["status"] for s in out["stages"]] == ["ok"] * 6
    assert "dropped scratch database" in out["cleanup"]
    assert _scratch_name(out) not in _databases(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the URL's database is only the maintenance db
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname IN ('iam', 'system')").fetchone()[0] == 0
    assert file_digest(db) == digest
    assert ET.parse(tmp_path / "r.xml").getroot().get("failures") == "0"


@pytest.mark.postgres
def test_check_postgres_drops_the_scratch_database_after_a_failure(legacy_db, pg_url, monkeypatch):
    monkeypatch.setattr(verbs, "verify", lambda *a, **k: VerifyReport("x", None, [Check("rows", False, "bad")], []))
    out = json.loads(invoke(1, ["check", legacy_db(), "--target", pg_url, "--json"]).stdout)
    assert [s["status"] for s in out["stages"]] == ["ok", "ok", "ok", "failed", "ok", "ok"]
    assert _scratch_name(out) not in _databases(pg_url)


@pytest.mark.postgres
def test_check_postgres_unusable_source_is_exit_2_and_drops_the_database(tmp_path, pg_url):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY)").connection.commit()
    before = {d for d in _databases(pg_url) if d.startswith("dpro_check_")}
    invoke(2, ["check", other, "--target", pg_url])
    assert {d for d in _databases(pg_url) if d.startswith("dpro_check_")} <= before  # (other checks may run meanwhile)
