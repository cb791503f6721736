"""`--report FILE.html`: one self-contained page per verb, rendered from the verb's own --json data.

The content tests read the page the way a reviewer does (tables, counts, the diagram, no password) and the
data embedded in it; the browser test opens it in Debian's chromium, headless, and keeps a screenshot.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from dpro_migrate import DOMAINS
from dpro_migrate.cli import app
from dpro_migrate.model.schema import load_schema
from dpro_migrate.report import build, render
from dpro_migrate.report.diagram import Diagrams
from dpro_migrate.targets import parse_target

runner = CliRunner()
SECRET = "Rep0rt-s3cret-pw"


def invoke(code: int, *args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def embedded(page: str) -> dict:
    """The document the page was rendered from (script#dpro-migrate-report)."""
    found = re.search(r'<script type="application/json" id="dpro-migrate-report">(.*?)</script>', page, re.S)
    assert found, "the page carries its data"
    return json.loads(found.group(1))


def text_of(page: str) -> str:
    """What a reader sees: tags out, entities decoded, spaces collapsed (the embedded data left out)."""
    page = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def mapping_rows(page: str) -> list[list[str]]:
    """The cells of the 'what moves where' table, row by row."""
    section = page[page.index('id="mapping"'):page.index('id="preflight"')]
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", section, re.S)[1:]:
        rows.append([re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", c))).strip()
                     for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)])
    return rows


def assert_self_contained(page: str) -> None:
    """Nothing fetched to view it: no external script, stylesheet, image or font."""
    assert not re.search(r'<(link|img|iframe|object|embed)\b', page, re.I)
    assert not re.search(r'\b(src|href)\s*=\s*"(https?:)?//', page, re.I)
    assert "url(" not in page.split("</style>")[0], "no external resource in the styles"
    assert re.search(r"<script(?![^>]*application/json)", page) is None, "no script: nothing to run"


def assert_schema_drawn(page: str) -> None:
    """A diagram per domain (Graphviz SVG, or the labelled fallback) naming every domain table."""
    section = page[page.index('id="schema"'):page.index('id="timings"')]
    if shutil.which("dot"):
        assert section.count("<svg") == len(DOMAINS)
        assert "Drawn by Graphviz" in section
    else:
        assert "Diagram not drawn: Graphviz (dot) was not found" in section
    words = text_of(section)
    for qualified in load_schema().tables:
        assert qualified in words, qualified
    assert "fk_messages_conversation" in section  # every foreign key is named


def test_reports_of_a_cycle_in_place(legacy_db, tmp_path):
    """plan, apply, verify, rollback with --report: each page shows its verb's data, and the later ones
    link the earlier ones and the history."""
    db = legacy_db()
    out = tmp_path / "reports"
    out.mkdir()
    planned = json.loads(invoke(0, "plan", db, "--json", "--report", out / "plan.html"))
    applied = json.loads(invoke(0, "apply", db, "--yes", "--json", "--report", out / "apply.html"))
    verified = json.loads(invoke(0, "verify", db, "--json", "--report", out / "verify.html"))
    invoke(0, "rollback", db, "--yes", "--report", out / "rollback.html")

    page = (out / "plan.html").read_text()
    assert_self_contained(page)
    assert_schema_drawn(page)
    data = embedded(page)
    assert data["verb"] == "plan" and data["plan"]["source_fingerprint"] == planned["source_fingerprint"]
    words = text_of(page)
    assert str(db) in words and planned["source_fingerprint"] in words and "sqlite:in-place" in words
    rows = mapping_rows(page)
    for legacy, t in planned["legacy_tables"].items():
        assert any(r[0].startswith(legacy) and r[1] == f"{t['rows']:,}" for r in rows), (legacy, rows)
    split = [r for r in rows if r[0].startswith("activity_logs")]
    assert split and "split into 2" in split[0][0]
    assert {"iam.authentication_logs", "system.audit_logs"} <= {c for r in rows for c in r}
    assert "None: every legacy row satisfies every rule" in words
    assert "dpro-migrate apply plan.json" in words  # what to run next

    page = (out / "apply.html").read_text()
    assert embedded(page)["result"] == applied, "the page is rendered from exactly what --json prints"
    rows = mapping_rows(page)
    for name, n in applied["rows_moved"].items():  # "activity_logs -> iam_authentication_logs": 17
        target = name.split(" -> ")[1]
        assert any(c.replace(".", "_") == target and r[-2] == f"{n:,}" for r in rows for c in r), (name, n, rows)
    words = text_of(page)
    backup = applied["backup"]["path"] if isinstance(applied["backup"], dict) else applied["backup"]
    assert backup in words and f'dpro-migrate restore "{backup}"' in words
    tables = planned["legacy_tables"]
    assert f"integrity_check ok, {sum(t['rows'] for t in tables.values()):,} rows in {len(tables)} tables" in words
    timings = page[page.index('id="timings"'):page.index('id="backup"')]
    for phase in applied.get("phases") or []:  # per phase and per table, as --json has them
        assert f"<td>{html.escape(phase['phase'])}</td>" in timings
    assert timings.count("<tr>") >= len(applied.get("phases") or []) + len(applied.get("tables") or [])
    assert "plan.html" in words  # the earlier report of this database

    page = (out / "verify.html").read_text()
    words = text_of(page)
    assert embedded(page)["result"] == verified
    for check in verified["checks"]:
        assert check["name"] in words
    assert "FAILED" not in words and verified["ok"] is True

    page = (out / "rollback.html").read_text()
    data = embedded(page)
    assert [line["verb"] for line in data["history"]["lines"]] == ["apply", "verify", "rollback"]
    assert {r["name"] for r in data["history"]["reports"]} == {"plan.html", "apply.html", "verify.html"}
    for name in ("plan.html", "apply.html", "verify.html"):
        assert f'href="{name}"' in page
    assert mapping_rows(page), "the mapping of what was rolled back, from the plan the ledger held"


def test_plan_report_of_dirty_data_lists_the_refused_rows(legacy_db, tmp_path):
    from dpro_migrate.dirty import add_dirty_data

    db = legacy_db()
    add_dirty_data(db)
    planned = json.loads(invoke(0, "plan", db, "--json", "--report", tmp_path / "plan.html"))
    page = (tmp_path / "plan.html").read_text()
    words = text_of(page)
    findings = planned["preflight"]["findings"]
    assert findings
    for f in findings:
        assert f["rule"] in words and str(f["ids"][0]) in words
    for rule in (planned["preflight"].get("dirty") or {}).get("rules") or []:  # root causes, the rule in words
        assert rule["definition"] in words
    assert "rows refused" in words and "--on-reject quarantine" in words
    assert planned["unknown_tables"]
    for name in planned["unknown_tables"]:  # hostile names among them: shown as text, never as markup
        assert name in words
    assert_self_contained(page)


def test_check_report_and_json_document(legacy_db, tmp_path):
    db = legacy_db()
    out = json.loads(invoke(0, "check", db, "--json", "--report", tmp_path / "check.html"))
    page = (tmp_path / "check.html").read_text()
    assert_self_contained(page)
    words = text_of(page)
    for stage in out["stages"]:
        assert stage["name"] in words
    assert mapping_rows(page) and "passed" in words
    # apply, verify and rollback of the scratch run: their summaries in check --json, and on the page
    runs = {s["name"]: s["summary"] for s in out["stages"] if s["summary"]}
    assert set(runs) == {"apply", "verify", "rollback"}
    moved = {(t["legacy"], t["target"]): t["rows"] for t in runs["apply"]["tables"]}
    assert sum(moved.values()) == runs["apply"]["rows"] == sum(out["plan"]["legacy_tables"][t]["rows"]
                                                               for t in out["plan"]["legacy_tables"])
    assert runs["apply"]["source"] == str(db) and runs["apply"]["next"] == []
    timings = page[page.index('id="timings"'):page.index('id="checks"')]
    for verb, summary in runs.items():
        run = text_of(timings[timings.index(f'id="run-{verb}"'):])
        assert f"{verb} on the scratch copy: {summary['rows']:,}" in run
        for phase in summary["phases"]:
            assert phase["phase"] in run
    for row in mapping_rows(page):  # rows moved on the scratch copy, per move
        target = next(c for c in row if "." in c and " " not in c)
        legacy = next((leg for (leg, tgt) in moved if tgt == target), None)
        assert row[-2] == f"{moved[(legacy, target)]:,}", row
    invoke(0, "check", db, "--report", tmp_path / "check.json")
    doc = json.loads((tmp_path / "check.json").read_text())
    assert doc["verb"] == "check" and doc["result"]["ok"] is True and doc["plan"]["source"] == str(db)


def test_unusable_report_path_is_refused_before_anything_changes(legacy_db, tmp_path):
    db = legacy_db()
    before = db.read_bytes()
    result = runner.invoke(app, ["apply", str(db), "--yes", "--report", str(tmp_path / "no" / "such" / "r.html")])
    assert result.exit_code == 2 and "no such directory" in result.stderr
    result = runner.invoke(app, ["apply", str(db), "--yes", "--report", str(tmp_path / "r.pdf")])
    assert result.exit_code == 2 and "FILE.html" in result.stderr
    assert db.read_bytes() == before


def test_missing_sections_say_not_recorded_and_values_are_escaped(tmp_path):
    """A verb that recorded little still gives a page; hostile text is shown, never run."""
    hostile = '<script>alert("x")</script>'
    doc = build("verify", {"ok": False, "checks": [{"name": hostile, "ok": False, "detail": "d", "items": []}]},
                source=tmp_path / "gone.db", target=parse_target(None))
    page = render(doc, Diagrams(None, problem="Graphviz (dot) was not found on PATH"))
    assert hostile not in page and "&lt;script&gt;alert" in page
    words = text_of(page)
    assert "not recorded" in words and "Diagram not drawn" in words and "FAILED" in words
    for table in load_schema().tables:  # the fallback still names every table
        assert table in words


def test_cascades_are_shown_with_their_parent_rows(tmp_path):
    rule = {"legacy": "agents", "target": "ai_agents.agents", "rule": "check chk_agents_temperature_range", "kind": "check",
            "definition": "ai_agents.agents takes only rows where temperature <= 2.0", "sql": "CHECK (temperature <= 2.0)",
            "rows": 2, "ids": [2, 3], "find_sql": "SELECT id FROM agents WHERE NOT (temperature <= 2.0)"}
    cascade = {"legacy": "messages", "target": "communication.messages", "rule": "foreign key fk_messages_agent",
               "parent": "agents", "parent_ids": [2, 3], "rows": 168, "ids": list(range(1000, 1168))}
    plan = {"source": str(tmp_path / "dpro_agent.db"), "source_fingerprint": "sha256:x", "legacy_tables": {}, "operations": [],
            "on_reject": "fail", "preflight": {"findings": [], "refused_rows": {"agents": 2, "messages": 168},
                                               "dirty": {"rows": 170, "tables": {"agents": 2, "messages": 168},
                                                         "rules": [rule], "cascades": [cascade]}}}
    page = render(build("plan", None, source=None, target=parse_target(None), plan=plan), Diagrams(None, problem="test"))
    section = text_of(page[page.index('id="preflight"'):page.index('id="schema"')])
    assert "170 rows in 2 legacy tables" in section and rule["definition"] in section and rule["find_sql"] in section
    assert "fk_messages_agent agents 2, 3 168 1000, 1001" in section and "…" in section  # a sample of the 168 ids
    assert embedded(page)["plan"]["preflight"]["dirty"]["cascades"][0]["ids"] == cascade["ids"]  # every id in the data


def test_without_graphviz_the_report_is_still_written_and_says_so(legacy_db, tmp_path, monkeypatch):
    monkeypatch.setattr("dpro_migrate.report.diagram.shutil.which", lambda name: None)
    db = legacy_db()
    invoke(0, "plan", db, "--report", tmp_path / "plan.html")
    page = (tmp_path / "plan.html").read_text()
    assert "<svg" not in page and "Diagram not drawn: Graphviz (dot) was not found on PATH" in page
    words = text_of(page)
    for table in load_schema().tables:
        assert table in words
    for fk in embedded(page)["schema"]["foreign_keys"]:
        assert fk["name"] in words
    assert_self_contained(page)


@pytest.mark.postgres
def test_reports_on_postgresql_never_show_the_password(legacy_db, pg_url, tmp_path):
    url = make_url(pg_url)
    secret = url.password or SECRET  # the test server trusts 127.0.0.1: a password it does not ask for is ignored
    target = url.set(password=secret).render_as_string(hide_password=False)
    db = legacy_db()
    applied = json.loads(invoke(0, "apply", db, "--target", target, "--yes", "--json", "--report", tmp_path / "apply.html"))
    invoke(0, "verify", db, "--target", target, "--report", tmp_path / "verify.html")
    invoke(0, "rollback", db, "--target", target, "--yes", "--report", tmp_path / "rollback.html")
    invoke(0, "check", db, "--target", target, "--report", tmp_path / "check.html")
    for name in ("apply.html", "verify.html", "rollback.html", "check.html"):
        page = (tmp_path / name).read_text()
        assert secret not in page, name
        assert parse_target(target).display in text_of(page), name
        assert_self_contained(page)
    page = (tmp_path / "apply.html").read_text()
    assert_schema_drawn(page)
    rows = mapping_rows(page)
    assert sum(int(r[-2].replace(",", "")) for r in rows) == sum(applied["rows_moved"].values())
    assert any("split into 2" in r[0] for r in rows)
    assert 'href="verify.html"' not in page and 'href="apply.html"' in (tmp_path / "rollback.html").read_text()


# --- a verb that refuses still writes its page ------------------------------------------------------


def refused_section(page: str) -> str:
    return text_of(page[page.index('id="refused"'):page.index('id="source"')])


def test_apply_refusing_dirty_rows_writes_the_report_and_exits_as_before(legacy_db, tmp_path):
    from dpro_migrate.dirty import add_dirty_data

    db = legacy_db()
    add_dirty_data(db)
    before = db.read_bytes()
    plain = runner.invoke(app, ["apply", str(db), "--yes", "--json"])
    reported = runner.invoke(app, ["apply", str(db), "--yes", "--json", "--report", str(tmp_path / "apply.html")])
    assert plain.exit_code == reported.exit_code == 1
    assert reported.stdout == plain.stdout, "the verb's own output is unchanged"
    assert reported.stderr.splitlines()[:-1] == plain.stderr.splitlines()
    assert reported.stderr.splitlines()[-1] == f"report written to {tmp_path / 'apply.html'}"
    assert db.read_bytes() == before
    error = json.loads(plain.stdout)
    page = (tmp_path / "apply.html").read_text()
    assert_self_contained(page)
    assert embedded(page)["result"] == error, "the page is rendered from the error --json prints"
    assert embedded(page)["ok"] is False
    words = refused_section(page)
    assert error["error"] in words and "exit code 1:" in words and "nothing was changed (the error says so)" in words
    assert ">refused</span>" in page
    preflight = text_of(page[page.index('id="preflight"'):page.index('id="schema"')])
    dirty = error["details"]["dirty"]
    assert f"{dirty['rows']} rows in {len(dirty['tables'])} legacy tables" in preflight
    for rule in dirty["rules"]:  # each rule in words, with a sample of its ids
        assert rule["definition"] in preflight and str(rule["ids"][0]) in preflight
    assert "--on-reject quarantine" in text_of(page[page.index('id="next"'):])
    line = json.loads((db.parent / "dpro-migrate-backups" / "dpro-migrate-history.jsonl").read_text().splitlines()[-1])
    assert (line["verb"], line["outcome"], line["report"]) == ("apply", "refused", str(tmp_path / "apply.html"))


def test_verify_and_check_that_raise_write_their_report(legacy_db, tmp_path):
    db = legacy_db()
    result = runner.invoke(app, ["verify", str(db), "--report", str(tmp_path / "verify.html")])
    assert result.exit_code == 2 and "is not migrated" in result.stderr
    words = refused_section((tmp_path / "verify.html").read_text())
    assert "is not migrated" in words and "exit code 2: bad input" in words and "nothing was changed (verify only reads it)" in words

    not_dpro = tmp_path / "other.db"
    not_dpro.write_text("not a database")
    result = runner.invoke(app, ["check", str(not_dpro), "--report", str(tmp_path / "check.html")])
    assert result.exit_code == 2
    page = (tmp_path / "check.html").read_text()
    assert "is not a SQLite database" in refused_section(page) and embedded(page)["result"]["exit_code"] == 2


def test_an_unusable_target_is_refused_on_the_page_without_its_password(legacy_db, tmp_path):
    db = legacy_db()
    result = runner.invoke(app, ["plan", str(db), "--target", f"postgresql://dba:{SECRET}@/", "--report",
                                 str(tmp_path / "plan.html")])
    assert result.exit_code == 2 and "names no database" in result.stderr
    page = (tmp_path / "plan.html").read_text()
    assert SECRET not in page and "names no database" in refused_section(page)
    result = runner.invoke(app, ["apply", str(db), "--sql", "--target", "postgresql://dba@/", "--report",
                                 str(tmp_path / "sql.html")])
    assert result.exit_code == 2 and not (tmp_path / "sql.html").exists(), "--sql writes no page"


def test_a_refusal_of_the_report_path_itself_writes_no_report(legacy_db, tmp_path):
    db = legacy_db()
    result = runner.invoke(app, ["verify", str(db), "--report", str(tmp_path / "r.txt")])
    assert result.exit_code == 2 and "FILE.html" in result.stderr and "report written" not in result.stderr
    assert not (tmp_path / "r.txt").exists()


def test_refusal_details_are_shown_as_tables_and_a_refusal_after_a_commit_does_not_claim_nothing_changed(tmp_path):
    conflicts = [{"table": "users", "id": 7, "source": {"email": "a@x.org"}, "postgresql": {"email": "b@x.org"}}]
    error = {"error": "1 rows were changed both in the source and in PostgreSQL since the snapshot: users id 7; nothing "
                      "was changed (see --json for both versions)", "exit_code": 1, "details": {"conflicts": conflicts}}
    page = render(build("rollback", error, source=tmp_path / "d.db", target=parse_target(None)), Diagrams(None, problem="t"))
    words = refused_section(page)
    assert "conflicts" in words and "users 7 email" in words and "b@x.org" not in page
    assert "nothing was changed (the error says so)" in words
    assert "--on-conflict postgres" in text_of(page[page.index('id="next"'):])
    after = {"error": "the changes made in PostgreSQL after the cutover were written back to d.db but ...", "exit_code": 1,
             "details": None}
    words = refused_section(render(build("rollback", after, source=tmp_path / "d.db", target=parse_target(None)),
                                   Diagrams(None, problem="t")))
    assert "nothing was changed (" not in words and "does not say that nothing was changed" in words


def test_reports_in_other_folders_are_linked_from_the_history_and_a_gone_one_is_said(legacy_db, tmp_path):
    db = legacy_db()
    for name in ("a", "b", "c", "d"):
        (tmp_path / name).mkdir()
    invoke(0, "apply", db, "--yes", "--report", tmp_path / "a" / "apply.html")
    invoke(0, "verify", db, "--report", tmp_path / "b" / "verify.html")
    invoke(0, "verify", db, "--report", tmp_path / "c" / "verify.json")  # the data alone: named in the history too
    (tmp_path / "b" / "verify.html").unlink()
    invoke(0, "rollback", db, "--yes", "--report", tmp_path / "d" / "rollback.html")

    page = (tmp_path / "d" / "rollback.html").read_text()
    assert_self_contained(page)
    reports = {r["name"]: r for r in embedded(page)["history"]["reports"]}
    assert set(reports) == {"apply.html", "verify.html", "verify.json"}
    assert reports["apply.html"]["exists"] and reports["apply.html"]["from"] == "history"
    assert reports["apply.html"]["path"] == str(tmp_path / "a" / "apply.html")
    assert 'href="../a/apply.html"' in page and 'href="../c/verify.json"' in page
    assert reports["verify.html"]["exists"] is False and 'href="../b/verify.html"' not in page
    words = text_of(page[page.index('id="reports"'):])
    assert f"gone: {tmp_path / 'b' / 'verify.html'} (no longer there)" in words
    lines = embedded(page)["history"]["lines"]
    assert [(line["verb"], line["report"]) for line in lines] == [
        ("apply", str(tmp_path / "a" / "apply.html")), ("verify", str(tmp_path / "b" / "verify.html")),
        ("verify", str(tmp_path / "c" / "verify.json")), ("rollback", str(tmp_path / "d" / "rollback.html"))]


# --- a real browser ---------------------------------------------------------------------------------


def chromium() -> str | None:
    return next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser"))), None)


@pytest.fixture
def browser():
    """Debian's chromium (apt-get install chromium). Skipped when absent, except under CI=true where it fails,
    as the PostgreSQL tests do."""
    found = chromium()
    if found is None:
        reason = "no chromium on PATH (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the browser test: " + reason)
        pytest.skip(reason)
    return found


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    # as root (CI, containers) chromium needs --no-sandbox; a profile of its own, so parallel runs never share one
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120)


EVERY_FEATURE = ("monitoring-views", "partition-by-month", "archive-tables", "row-level-security", "new-tables",
                 "app-roles")


def open_in_browser(browser: str, page: Path, profile: Path, keep_as: str) -> str:
    """The page in headless chromium: its DOM with no console message, and a screenshot (kept under
    DPRO_MIGRATE_REPORT_SCREENSHOT, a folder, when set, to look at)."""
    url = page.as_uri()
    dom = headless(browser, profile, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    assert 'id="mapping"' in dom.stdout and 'id="history"' in dom.stdout, "rendered to its end"
    shot = page.with_suffix(".png")
    taken = headless(browser, profile, "--hide-scrollbars", "--window-size=1400,2400", f"--screenshot={shot}", url)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000  # a page, not a blank
    keep = os.environ.get("DPRO_MIGRATE_REPORT_SCREENSHOT")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(keep) / keep_as)
    return dom.stdout


def apply_report(tmp_path: Path, db: Path, *args) -> Path:
    page = tmp_path / "apply.html"
    invoke(0, "apply", db, "--yes", "--report", page, *args)
    return page


@pytest.mark.slow
@pytest.mark.parametrize("drawn", ["graphviz", "fallback"])
def test_report_renders_in_a_headless_browser(legacy_db, tmp_path, browser, monkeypatch, drawn):
    """Both ways of drawing the schema: Graphviz's SVG, and the tables drawn without it."""
    if drawn == "graphviz" and not shutil.which("dot"):
        pytest.skip("no Graphviz (dot) on PATH (apt-get install -y graphviz)")
    if drawn == "fallback":
        monkeypatch.setattr("dpro_migrate.report.diagram.shutil.which", lambda name: None)
    started = time.monotonic()
    dom = open_in_browser(browser, apply_report(tmp_path, legacy_db()), tmp_path / "profile", f"apply-{drawn}.png")
    schema = dom[dom.index('id="schema"'):dom.index('id="timings"')]
    if drawn == "graphviz":
        assert schema.count("<svg") == len(DOMAINS) and 'class="fallback"' not in schema
    else:
        assert "<svg" not in schema and schema.count('class="fallback"') == len(DOMAINS)
    print(f"browser: {time.monotonic() - started:.1f}s")


@pytest.mark.slow
@pytest.mark.postgres
def test_postgresql_apply_report_with_every_option_renders(legacy_db, pg_url, tmp_path, browser, request):
    """The richest page: PostgreSQL with monitoring views, partitions, archive tables, RLS, new tables and
    roles: every option's operations are in it, and it renders with no console message."""
    args = ["--target", pg_url, "--on-reject", "quarantine"] + [a for f in EVERY_FEATURE for a in ("--with", f)]
    db = legacy_db()
    page = apply_report(tmp_path, db, *args)
    # a role is the server's, not the throwaway database's: rollback takes it away again (else the next run's
    # role tests find it and skip)
    request.addfinalizer(lambda: invoke(0, "rollback", db, "--target", pg_url, "--yes", "--backup-dir", tmp_path / "bk"))
    dom = open_in_browser(browser, page, tmp_path / "profile", "apply-postgresql-every-option.png")
    data = embedded(page.read_text())
    assert set(data["plan"]["features"]) == set(EVERY_FEATURE)
    words = text_of(page.read_text()[:page.read_text().index('id="operations"')])
    assert all(f in words for f in EVERY_FEATURE), "the options are named in the target card"
    assert "<svg" in dom
    # what the options create beyond the diagrams, by name, from the plan's operations
    added = text_of(page.read_text()[page.read_text().index('id="added"'):page.read_text().index('id="timings"')])
    for kind in ("create_archive", "create_monitoring_view", "create_role"):
        names = [op["name"] for op in data["plan"]["operations"] if op["kind"] == kind]
        assert names and all(n in added for n in names), kind
    assert "monthly partitions" in added and "row-level security enabled on" in added and "new tables" in added


@pytest.mark.postgres
def test_rollback_refusing_a_conflict_writes_the_report(legacy_db, pg_url, tmp_path):
    import sqlite3

    import psycopg

    db = legacy_db()
    invoke(0, "apply", db, "--target", pg_url, "--yes", "--report", tmp_path / "apply.html")
    conn = sqlite3.connect(db)  # the application wrote to the source after apply's snapshot, and to PostgreSQL
    late = conn.execute("INSERT INTO messages (conversation_id, sender_type, content) SELECT min(id), 'user', "
                        "'late, in SQLite' FROM conversations RETURNING id").fetchone()[0]
    conn.commit()
    conn.close()
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("INSERT INTO communication.messages (conversation_id, sender_type, content) SELECT min(id), 'user', "
                   "'new, in PostgreSQL' FROM communication.conversations")
    before = db.read_bytes()
    result = runner.invoke(app, ["rollback", str(db), "--target", pg_url, "--yes", "--write-back", "--json",
                                 "--report", str(tmp_path / "rollback.html")])
    assert result.exit_code == 1 and "changed both in the source and in PostgreSQL" in result.stderr
    assert db.read_bytes() == before
    page = (tmp_path / "rollback.html").read_text()
    error = json.loads(result.stdout)
    assert {**embedded(page)["result"], "details": None} == {**error, "details": None}
    words = refused_section(page)
    assert "nothing was changed (the error says so)" in words and "conflicts" in words
    assert f"messages {late} " in words and "content" in words  # which row and which columns differ
    for side in ("new, in PostgreSQL", "late, in SQLite"):  # never the rows' values: the page goes to a ticket
        assert side in result.stdout and side not in page
    rows = mapping_rows(page)
    assert rows and all("none: refused" in r for r in rows if r[0]), "still migrated: the ledger's plan, nothing back"
    assert 'href="apply.html"' in page
    assert "--on-conflict postgres" in text_of(page[page.index('id="next"'):])
