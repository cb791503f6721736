"""The history file beside the backups: one JSON line per verb, whole even under concurrent writers, and
still there after rollback dropped the ledger."""

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from dpro_migrate import __version__, verbs
from dpro_migrate.cli import app
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.safety import history
from dpro_migrate.safety.backup import default_backup_dir
from dpro_migrate.targets import parse_target

from tests.conftest import add_orphan_message, file_digest

ROOT = Path(__file__).resolve().parent.parent


def legacy_rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return sum(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names)
    finally:
        conn.close()


def raw_lines(directory: Path) -> list[dict]:
    return [json.loads(line) for line in history.history_path(directory).read_text().splitlines()]


def test_sqlite_cycle_is_in_the_history_after_rollback(legacy_db):
    db = legacy_db()
    rows = legacy_rows(db)
    started = datetime.now(timezone.utc) - timedelta(seconds=1)
    _, applied = verbs.apply(db)  # default place: dpro-migrate-backups/ beside the file
    assert verbs.verify(db).ok
    rolled = verbs.rollback(db)

    report = verbs.status(db)
    assert report.state == "legacy"
    assert report.history == []  # the ledger went with the migrated schema
    lines = report.history_file
    assert [(h["verb"], h["outcome"]) for h in lines] == [("apply", "ok"), ("verify", "ok"), ("rollback", "ok")]
    assert report.history_path == str(default_backup_dir(db) / history.HISTORY_FILE)
    assert lines == raw_lines(default_backup_dir(db))
    for h in lines:
        assert h["source"] == str(db.resolve())
        assert h["target"] == "sqlite:in-place"
        assert h["tool_version"] == __version__
        assert started <= datetime.fromisoformat(h["time"]) <= datetime.now(timezone.utc)
        assert datetime.fromisoformat(h["time"]).utcoffset() == timedelta(0)
    apply_line, verify_line, rollback_line = lines
    assert apply_line["counts"] == {"rows_moved": rows}
    assert apply_line["backup"] == str(applied.backup.path) and Path(apply_line["backup"]).exists()
    assert verify_line["counts"]["checks_failed"] == 0 and verify_line["counts"]["checks"] > 0
    assert rollback_line["counts"] == {"rows_restored": rows}
    assert rollback_line["backup"] == str(rolled.backup.path)
    assert legacy_rows(db) == rows


def test_backup_dir_holds_the_history_and_a_shared_dir_keeps_sources_apart(legacy_db, tmp_path):
    first, second = legacy_db(), legacy_db()
    shared = tmp_path / "bk"
    verbs.apply(first, backup_dir=shared)
    verbs.apply(second, backup_dir=shared)
    verbs.rollback(second, backup_dir=shared)
    assert not default_backup_dir(first).exists()
    assert [h["verb"] for h in raw_lines(shared)] == ["apply", "apply", "rollback"]
    assert [h["verb"] for h in verbs.status(first, backup_dir=shared).history_file] == ["apply"]
    assert [h["verb"] for h in verbs.status(second, backup_dir=shared).history_file] == ["apply", "rollback"]


def test_a_refused_apply_is_recorded_with_its_message(legacy_db):
    db = legacy_db()
    add_orphan_message(db)
    digest = file_digest(db)
    with pytest.raises(ChecksFailed) as refused:
        verbs.apply(db)
    assert file_digest(db) == digest
    [line] = verbs.status(db).history_file
    assert line["verb"] == "apply" and line["outcome"] == "refused"
    assert line["message"] == str(refused.value)
    assert line["backup"] is None and line["counts"] == {}


def test_failed_verify_and_rollback_of_a_legacy_file_are_recorded(legacy_db):
    db = legacy_db()
    with pytest.raises(BadInput) as refused:
        verbs.verify(db)
    assert verbs.rollback(db).nothing_to_do
    lines = verbs.status(db).history_file
    assert [(h["verb"], h["outcome"]) for h in lines] == [("verify", "refused"), ("rollback", "ok")]
    assert lines[0]["message"] == str(refused.value)
    assert lines[1]["message"] == "not migrated: nothing to roll back"


def test_an_unwritable_history_never_hides_the_result(legacy_db, tmp_path):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path / "bk")
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the history's directory should be")
    report = verbs.verify(db, backup_dir=blocked)
    assert report.ok
    assert str(blocked) in report.history_error
    with pytest.raises(BadInput) as refused:  # a refusal stays the refusal; the note says the line is missing
        verbs.apply(tmp_path / "missing.db", backup_dir=blocked)
    assert "missing.db" in str(refused.value)
    assert any("history line was not written" in note for note in refused.value.__notes__)


def test_status_prints_the_history_after_rollback(legacy_db):
    db = legacy_db()
    verbs.apply(db)
    verbs.rollback(db)
    runner = CliRunner()
    done = runner.invoke(app, ["status", str(db), "--json"])
    assert done.exit_code == 0, done.output
    assert [h["verb"] for h in json.loads(done.stdout)["history_file"]] == ["apply", "rollback"]
    done = runner.invoke(app, ["status", str(db)], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    table = [line for line in done.stdout.splitlines() if "sqlite:in-place" in line]
    assert [("apply" in line, "rollback" in line, " ok " in line) for line in table] == [(True, False, True),
                                                                                         (False, True, True)]


WRITER = """
import sys
from pathlib import Path
from dpro_migrate.safety import history
directory, name, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for i in range(n):
    history.append(directory, history.HistoryLine(verb=name, source="/x", target="sqlite:in-place", outcome="ok",
                                                  message=name * 3000, counts={"i": i}))
"""


@pytest.mark.slow  # ~2s: the quick subset (-m 'not postgres and not slow') leaves it to the full run
def test_concurrent_writers_never_interleave_lines(tmp_path):
    n = 200
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), name, str(n)], env=env) for name in "ab"]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    text = history.history_path(tmp_path).read_text()
    assert text.endswith("\n")
    lines = [json.loads(line) for line in text.splitlines()]  # every line whole JSON, or this raises
    assert len(lines) == 2 * n
    for name in "ab":
        mine = [h for h in lines if h["verb"] == name]
        assert [h["counts"]["i"] for h in mine] == list(range(n))  # each writer's lines whole and in its order
        assert all(h["message"] == name * 3000 for h in mine)
    assert history.read(tmp_path) == lines


def test_an_unreadable_line_is_shown_as_such(tmp_path):
    history.append(tmp_path, history.HistoryLine(verb="apply", source="/x", target="t", outcome="ok"))
    with open(history.history_path(tmp_path), "a") as f:
        f.write('{"verb": "rollb')  # a crash in the middle of a write
    assert [h["outcome"] for h in history.read(tmp_path)] == ["ok", "unreadable"]


def test_postgresql_cycle_records_the_target_without_its_password(legacy_db, tmp_path, pg_url):
    db = legacy_db()
    rows = legacy_rows(db)
    url = make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)  # trust auth ignores it
    target = parse_target(url)
    backups = tmp_path / "bk"
    _, applied = verbs.apply(db, target, backup_dir=backups)
    assert verbs.verify(db, target, backup_dir=backups).ok
    verbs.rollback(db, target, backup_dir=backups)

    report = verbs.status(db, target, backup_dir=backups)
    assert report.state == "legacy" and report.history == []
    lines = report.history_file
    assert [(h["verb"], h["outcome"]) for h in lines] == [("apply", "ok"), ("verify", "ok"), ("rollback", "ok")]
    assert {h["target"] for h in lines} == {target.display}
    assert "***" in target.display
    assert "s3cret-pw" not in history.history_path(backups).read_text()
    assert lines[0]["counts"] == {"rows_moved": rows}
    assert lines[0]["backup"] == (str(applied.backup.path) if applied.backup else None)
