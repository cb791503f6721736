"""The report's data: the verb's own --json result, with what a reviewer needs around it.

Everything the HTML shows comes from this one JSON-able dict (written inside the HTML too, and on its own
with `--report FILE.json`): the verb's result exactly as `--json` prints it, the plan (as `plan --json`
prints it: the plan the verb ran, or the one apply recorded), the source's facts, the target (never a
password), the target schema from ddl/ with its foreign keys, the history file's lines for this source,
and what to run next. A section the verb did not record is None, and the HTML says "not recorded".
"""

from __future__ import annotations

import html
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from dpro_migrate import DOMAINS, __version__
from dpro_migrate.model.schema import load_schema
from dpro_migrate.results import differing_columns
from dpro_migrate.safety import history
from dpro_migrate.safety.backup import default_backup_dir
from dpro_migrate.safety.state import file_state, read_file
from dpro_migrate.targets import Target

REPORT_FORMAT = 1
VERBS = ("plan", "apply", "verify", "rollback", "check")


def build(verb: str, result: dict | None, *, source: Path | str | None, target: Target,
          plan: dict | None = None, backup_dir: Path | None = None, written_to: Path | None = None) -> dict:
    """The report document of one run of `verb`. `result` is what the verb prints with --json (for `plan`,
    None: the plan is the result); `plan` the plan as `plan --json` prints it, when there is one."""
    if verb not in VERBS:
        raise ValueError(f"no report for {verb}")
    named = plan["source"] if plan and plan.get("source") else source
    source_path = Path(os.path.realpath(named)) if named else None
    directory = Path(backup_dir) if backup_dir else (default_backup_dir(source_path) if source_path else None)
    doc = {
        "report_format": REPORT_FORMAT,
        "verb": verb,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool_version": __version__,
        "ok": _ok(verb, result, plan),
        "source": _source_facts(source_path, plan),
        "target": {"database": target.display, "dialect": target.dialect, "in_place": target.in_place},
        "plan": plan,
        # check --json carries its plan: kept once, in the plan section
        "result": {**result, "plan": "see the plan section"} if result and plan and result.get("plan") == plan else
        without_row_values(result),
        "schema": schema_graph(),
        "history": _history(directory, source_path, written_to, target.display),
    }
    doc["next"] = (result or {}).get("next") or next_commands(doc)
    return mask_secrets(doc, target)


def refusal(result: dict | None) -> dict | None:
    """The verb raised one of our errors: its result is the error as `--json` prints it
    ({"error", "exit_code", "details"}); None when the verb ran to its end."""
    if isinstance(result, dict) and "error" in result and "exit_code" in result:
        return result
    return None


def without_row_values(result: dict | None) -> dict | None:
    """The one departure from the verb's --json: a refused write-back's conflicts name their rows and the
    columns that differ, not the rows' values (a password hash, a mail, a message): the report goes to a
    ticket. `rollback --write-back --json` prints both versions."""
    refused = refusal(result)
    details = (refused or {}).get("details")
    if not (isinstance(details, dict) and isinstance(details.get("conflicts"), list)):
        return result
    conflicts = [{"table": c.get("table"), "id": c.get("id"), "columns_that_differ": differing_columns(c)}
                 if isinstance(c, dict) else c for c in details["conflicts"]]
    return {**result, "details": {**details, "conflicts": conflicts,
                                  "values": "left out of the report: `rollback --write-back --json` prints both versions"}}


def _ok(verb: str, result: dict | None, plan: dict | None) -> bool | None:
    if refusal(result):
        return False
    if result and isinstance(result.get("ok"), bool):
        return result["ok"]
    if verb == "plan" and plan is not None:
        findings = (plan.get("preflight") or {}).get("findings") or []
        return not findings or plan.get("on_reject") == "quarantine"
    if verb == "apply" and result is not None:
        return True  # apply raises when it does not commit; a result means it committed (or was done before)
    if verb == "rollback" and result is not None:
        return True
    return None


def _source_facts(path: Path | None, plan: dict | None) -> dict:
    """Path, schema fingerprint and rows per legacy table as the plan read them; size and state now."""
    facts: dict = {"path": str(path) if path else None, "fingerprint": None, "size_bytes": None, "tables": None,
                   "rows": None, "as_of": None}
    if plan:
        facts["fingerprint"] = plan.get("source_fingerprint")
        facts["tables"] = {name: t.get("rows") for name, t in (plan.get("legacy_tables") or {}).items()}
        facts["as_of"] = plan.get("created_at")
    if facts["tables"] is None and path is not None:
        facts.update(_read_legacy(path))
    if facts["tables"]:
        facts["rows"] = sum(n or 0 for n in facts["tables"].values())
    try:
        facts["size_bytes"] = os.stat(path).st_size if path else None
    except OSError:
        pass
    return facts


def _read_legacy(path: Path) -> dict:
    """The file read now (no plan at hand: a rollback put it back, or nothing was recorded)."""
    try:
        db = read_file(path)
        state = file_state(db)
    except Exception:  # noqa: BLE001 - the report is written whatever the file is; it says "not recorded"
        return {}
    return {"fingerprint": db.fingerprint, "state": state, "tables": {n: t.rows for n, t in sorted(db.tables.items())},
            "as_of": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _history(directory: Path | None, source: Path | None, written_to: Path | None, database: str) -> dict | None:
    """The history file's lines for this source (what earlier verbs did), and the earlier reports of this
    database: those its lines name, wherever they were written, and those beside this one."""
    if directory is None:
        return None
    lines = history.read(directory, source) if source else history.read(directory)
    return {"path": str(history.history_path(directory)), "lines": lines[-50:], "earlier_lines": max(0, len(lines) - 50),
            "reports": _earlier_reports(lines, written_to, source, database)}


def _earlier_reports(lines: list[dict], written_to: Path | None, source: Path | None, database: str) -> list[dict]:
    """Every earlier report of this source and database, newest first, once each: from the history's lines
    (`report`, with the verb's outcome) and from the folder this one is written to (plan and check write no
    history line). A file named by the history that is no longer there is listed as gone."""
    here = Path(os.path.abspath(written_to)) if written_to else None
    found: dict[str, dict] = {}
    for line in lines:
        named = line.get("report")
        if not named or line.get("target") != database:
            continue
        path = os.path.abspath(named)
        found[path] = {"path": path, "verb": line.get("verb"), "written": line.get("time"),
                       "outcome": line.get("outcome"), "from": "history"}  # a later line for the same file wins
    for beside in _reports_beside(written_to, source, database):
        found.setdefault(beside["path"], beside)
    reports = []
    for path, entry in found.items():
        if here is not None and path == str(here):
            continue  # this very page (an earlier run's page of the same name was overwritten by it)
        exists = os.path.isfile(path)
        reports.append({**entry, "name": os.path.basename(path), "exists": exists,
                        "href": _href(path, here) if exists else None})
    return sorted(reports, key=lambda r: r["written"] or "", reverse=True)


def _href(path: str, here: Path | None) -> str:
    """A link that is a file path: relative to this page (it keeps working when the folder moves whole),
    else absolute."""
    if here is not None:
        try:
            return quote(os.path.relpath(path, here.parent))
        except ValueError:  # another drive (Windows)
            pass
    return Path(path).as_uri()


def _reports_beside(written_to: Path | None, source: Path | None, database: str) -> list[dict]:
    """Other reports of the same source and database in the directory this one is written to (their <meta>
    tags name both)."""
    if written_to is None:
        return []
    here = Path(written_to).resolve()
    want = (str(source or ""), database)
    found = []
    try:
        candidates = sorted(here.parent.glob("*.htm*"))
    except OSError:
        return []
    for p in candidates:
        if p.resolve() == here:
            continue
        try:
            head = p.read_text(encoding="utf-8", errors="replace")[:4000]
        except OSError:
            continue
        meta = {name: html.unescape(value) for name, value in _META.findall(head)}
        if "dpro-migrate-verb" in meta and (meta.get("dpro-migrate-source"), meta.get("dpro-migrate-database")) == want:
            found.append({"path": os.path.abspath(p), "verb": meta["dpro-migrate-verb"],
                          "written": meta.get("dpro-migrate-written"), "outcome": meta.get("dpro-migrate-outcome"),
                          "from": "folder"})
    return found


_META = re.compile(r'<meta name="(dpro-migrate-[a-z]+)" content="([^"]*)">')


def schema_graph() -> dict:
    """The target schema per domain from ddl/ (the one source of it): tables, columns, keys, foreign keys."""
    schema = load_schema()
    domains = {d: [] for d in DOMAINS}
    foreign_keys = []
    for qualified, table in schema.tables.items():
        fk_columns = set()
        for con in table.constraints:
            if con.kind == "foreign_key":
                fk_columns.update(con.columns)
                foreign_keys.append({"name": con.name, "table": qualified, "columns": list(con.columns),
                                     "references": con.references, "ref_columns": _ref_columns(con)})
        pk = {c for con in table.constraints if con.kind == "primary_key" for c in con.columns}
        domains.setdefault(table.domain, []).append({
            "name": table.name, "qualified": qualified,
            "columns": [{"name": c.name, "type": c.type, "nullable": c.nullable, "pk": c.name in pk,
                         "fk": c.name in fk_columns} for c in table.columns]})
    return {"domains": [{"name": d, "tables": t} for d, t in domains.items()], "foreign_keys": foreign_keys}


def _ref_columns(con) -> list[str]:
    from sqlglot import exp

    ref = con.node.find(exp.Reference)
    schema = ref.find(exp.Schema) if ref else None
    return [i.name for i in schema.expressions] if schema is not None else []


def next_commands(doc: dict) -> list[str]:
    """What a DBA runs after this verb (when the verb's own result does not say)."""
    source = doc["source"].get("path") or "dpro_agent.db"
    target = doc["target"]
    t = "" if target["in_place"] else f' --target "{target["database"]}"'
    q = _quote(source)
    ok = doc.get("ok")
    verb = doc["verb"]
    refused = refusal(doc.get("result"))
    if refused:
        return _after_refusal(verb, refused, q, t)
    if verb == "plan":
        if ok is False:
            return [f"dpro-migrate plan {q}{t} --on-reject quarantine --out plan.json   # keep the refused rows aside",
                    "or clean the rows listed under Preflight findings in the legacy file, then plan again"]
        return [f"dpro-migrate plan {q}{t} --out plan.json   # the reviewed plan, to apply exactly",
                f"dpro-migrate apply plan.json{t} --report apply.html"]
    if verb == "apply":
        return [f"dpro-migrate verify {q}{t} --report verify.html",
                f"dpro-migrate rollback {q}{t}   # to undo, while nothing depends on the new schema"]
    if verb == "verify":
        if ok:
            return [f"dpro-migrate status {q}{t}",
                    f"dpro-migrate finalize {q}{t}   # when no old reader needs the compatibility views (if any)"]
        return [f"dpro-migrate rollback {q}{t} --report rollback.html   # the checks failed: undo",
                "or read the failed checks above, fix, and verify again"]
    if verb == "rollback":
        return [f"dpro-migrate status {q}{t}", f"dpro-migrate plan {q}{t} --report plan.html   # to try again"]
    return [f"dpro-migrate plan {q} --target URL --report plan.html   # the real cutover's plan, for approval"] if ok else \
        ["fix what the failed stage says, then run the check again"]


def _after_refusal(verb: str, refused: dict, q: str, t: str) -> list[str]:
    """What to do after the verb refused, by its exit code (errors.py)."""
    code = refused.get("exit_code")
    details = refused.get("details") if isinstance(refused.get("details"), dict) else {}
    if details.get("dirty") and verb in ("apply", "plan"):
        return [f"dpro-migrate plan {q}{t} --report plan.html   # every refused row, its rule in words and its query",
                "clean those rows in the legacy file, or keep them aside: "
                f"dpro-migrate apply {q}{t} --on-reject quarantine --report apply.html"]
    if details.get("conflicts"):
        return ["look at both versions of each conflicting row (the data of this report, or --json), then settle them: "
                f"dpro-migrate rollback {q}{t} --write-back --on-conflict postgres   # or: source"]
    if code == 3:
        return [f"dpro-migrate status {q}{t}   # whether the change committed"]
    if code == 4:
        return [f"dpro-migrate status {q}{t}", f"run the {verb} again when the other connection or dpro-migrate is done"]
    return [f"fix what the error above says, then run the {verb} again", f"dpro-migrate status {q}{t}"]


def _quote(text: str) -> str:
    return text if all(ch.isalnum() or ch in "/._-" for ch in text) else json.dumps(text)


def mask_secrets(doc, target: Target):
    """Belt and braces: no string in the report carries the target's password, whatever a message quoted."""
    secret = _password(target)
    if not secret:
        return doc

    def scrub(value):
        if isinstance(value, str):
            return value.replace(secret, "***")
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return scrub(doc)


def _password(target: Target) -> str | None:
    if not target.conninfo:
        return None
    from sqlalchemy.engine import make_url

    try:
        url = make_url(target.conninfo)
    except Exception:  # noqa: BLE001 - unparsable: nothing to look for
        return None
    secret = url.password or url.query.get("password")
    return secret if isinstance(secret, str) and len(secret) >= 3 else None
