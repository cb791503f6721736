"""The report document (document.py) rendered as one self-contained HTML file: styles inline, pictures as
inline SVG, no script, nothing fetched. Jinja2 escapes every value; the document itself is embedded as
JSON (`<script type="application/json" id="dpro-migrate-report">`) so the page carries its own data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2

from dpro_migrate.errors import EXIT_CODES, OUTCOME_UNKNOWN, UNEXPECTED
from dpro_migrate.report.document import refusal as refusal_of
from dpro_migrate.report.diagram import Diagrams, draw

TEMPLATES = Path(__file__).with_name("templates")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["thousands"] = lambda n: f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else ("" if n is None else n)
    env.filters["secs"] = _seconds
    env.filters["size"] = _size
    return env


def _seconds(value) -> str:
    if not isinstance(value, (int, float)):
        return ""
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:,.2f} s"


def _size(n) -> str:
    if not isinstance(n, int):
        return "not recorded"
    if n < 1024:
        return f"{n:,} bytes"
    scaled, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, bigger
    return f"{scaled:,.1f} {unit} ({n:,} bytes)"


def render(doc: dict, diagrams: Diagrams | None = None) -> str:
    diagrams = diagrams if diagrams is not None else draw(doc["schema"])
    template = _environment().get_template("report.html.j2")
    return template.render(doc=doc, v=view(doc), diagrams=diagrams,
                           data=json.dumps(doc, ensure_ascii=False, default=str))


# --- what the template shows, derived from the document only ----------------------------------------


def view(doc: dict) -> dict:
    result = doc.get("result") or {}
    plan = doc.get("plan")
    refused = refusal(doc, result)
    return {
        "refusal": refused,
        "mapping": mapping(plan, stage_summary(result, "apply") or {} if doc["verb"] == "check" else result,
                           per_legacy=result.get("rows_restored") if doc["verb"] == "rollback" else None),
        "unknown_tables": (plan or {}).get("unknown_tables") or {},
        "missing_legacy_tables": (plan or {}).get("missing_legacy_tables") or [],
        "preflight": preflight(plan, (refused or {}).get("dirty")),
        "operations": operations(plan),
        "added": added_by_options(plan, doc.get("schema") or {}),
        "timings": timings(doc["verb"], result),
        "checks": checks(doc["verb"], result),
        "stages": result.get("stages") if doc["verb"] == "check" else None,
        "backup": backup(doc, result),
        "rows_word": {"apply": "rows moved", "verify": "rows verified", "rollback": "rows back",
                      "check": "rows moved (scratch copy)"}.get(doc["verb"]),
    }


READ_ONLY = ("plan", "verify", "check")  # verbs that never write the database (check works on a scratch copy)


def refusal(doc: dict, result: dict) -> dict | None:
    """The verb raised one of our errors: what was refused and why, from the error as `--json` prints it."""
    refused = refusal_of(result)
    if refused is None:
        return None
    message = str(refused.get("error") or "")
    code = refused.get("exit_code")
    details = refused.get("details")
    dirty = details.get("dirty") if isinstance(details, dict) and isinstance(details.get("dirty"), dict) else None
    rest = {k: v for k, v in details.items() if k != "dirty"} if isinstance(details, dict) else details
    if dirty and isinstance(rest, dict):
        rest.pop("findings", None)  # the same rows as the dirty report's rules, which the preflight section shows
    said = message.lower()
    # the code's general meaning, less its "(nothing was changed)": the line below says it for this error only
    meaning = re.sub(r"\s*\(nothing was changed\)", "", EXIT_CODES.get(code, ""))
    return {"message": message, "exit_code": code, "meaning": meaning,
            "outcome": {OUTCOME_UNKNOWN: "outcome unknown", UNEXPECTED: "failed"}.get(code, "refused"),
            # only where the error itself says so (a refusal after a commit must not read as "nothing changed"),
            # or the verb only reads the database
            "nothing_changed": ("the error says so" if "nothing was changed" in said or "nothing changed" in said else
                                f"{doc['verb']} only reads it" if doc["verb"] in READ_ONLY else None),
            "outcome_unknown": code == OUTCOME_UNKNOWN, "dirty": dirty, "details": _shown(rest)}


def _shown(details) -> list[dict]:
    """Details as sections: a list of records as a table (its keys the columns), anything else as text."""
    if details in (None, {}, []):
        return []
    items = details.items() if isinstance(details, dict) else [("details", details)]
    shown = []
    for key, value in items:
        if value in (None, {}, []):
            continue
        records = value if isinstance(value, list) else None
        if records and all(isinstance(r, dict) for r in records):
            columns = list(dict.fromkeys(k for r in records for k in r))
            shown.append({"name": key, "columns": columns, "more": max(0, len(records) - 50),
                          "rows": [[_cell(r.get(c)) for c in columns] for r in records[:50]]})
        else:
            shown.append({"name": key, "text": value if isinstance(value, str) else json.dumps(value, indent=1,
                                                                                               ensure_ascii=False, default=str)})
    return shown


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _key(name: str | None) -> str:
    """iam.users and iam_users are the same domain table (the JSON names it both ways)."""
    return (name or "").replace(".", "_")


def _moved(result: dict) -> dict[tuple[str, str], int]:
    """Rows per (legacy table, domain table) as the verb's result counts them, whichever form it has."""
    found: dict[tuple[str, str], int] = {}
    for name, n in (result.get("rows_moved") or {}).items():
        legacy, _, target = name.partition(" -> ")
        found[(legacy, _key(target))] = n
    for entry in _summary(result).get("tables") or []:
        if isinstance(entry, dict) and "legacy" in entry and "rows" in entry:
            found.setdefault((entry["legacy"], _key(entry.get("target"))), entry["rows"])
    for count in result.get("counts") or []:  # verify
        if isinstance(count, dict) and "legacy" in count:
            found.setdefault((count["legacy"], _key(count.get("target"))), count.get("matched"))
    return found


def _summary(result: dict) -> dict:
    """Per-table and per-phase timings sit at the top of a result, or under its `summary`."""
    summary = result.get("summary")
    return summary if isinstance(summary, dict) else result


def mapping(plan: dict | None, result: dict, per_legacy: dict | None = None) -> list[dict] | None:
    """One row per move: legacy table (rows), domain table, filter, rows the verb counted; a split (one legacy
    table into several domain tables, activity_logs) is marked on each of its rows. `per_legacy`: rows counted
    per legacy table rather than per move (rollback puts rows back per legacy table)."""
    if not plan:
        return None
    legacy_rows = {n: t.get("rows") for n, t in (plan.get("legacy_tables") or {}).items()}
    moves = [op for op in plan.get("operations") or [] if op.get("kind") in ("move_rows", "copy_rows")]
    moves_of: dict[str, int] = {}
    for op in moves:
        moves_of[op.get("legacy")] = moves_of.get(op.get("legacy"), 0) + 1
    counted = _moved(result)
    rows = []
    seen = set()
    for op in moves:
        legacy, target = op.get("legacy"), op.get("target")
        rows.append({"legacy": legacy, "legacy_rows": legacy_rows.get(legacy), "target": target,
                     "where": op.get("where"), "extra_columns": [c[0] if isinstance(c, list) else c for c in op.get("extra_columns") or []],
                     "rows": (per_legacy or {}).get(legacy) if per_legacy is not None else counted.get((legacy, _key(target))),
                     "split": moves_of.get(legacy, 0) > 1, "first_of_legacy": legacy not in seen,
                     "span": moves_of.get(legacy, 1), "rows_per_legacy": per_legacy is not None})
        seen.add(legacy)
    return rows


def preflight(plan: dict | None, refused: dict | None = None) -> dict | None:
    """Rows the target would refuse: root causes (rules in words) and cascades when the plan has them,
    else the findings per rule. `refused`: the dirty-data report of the error the verb raised (apply refusing
    rows), shown when no plan is at hand."""
    if plan is None and refused:
        plan = {"preflight": {"dirty": refused}, "on_reject": "fail"}
    if plan is None:
        return None
    pre = plan.get("preflight") or {}
    dirty = pre.get("dirty") if isinstance(pre.get("dirty"), dict) else pre
    rules = dirty.get("rules")
    return {"rules": rules if isinstance(rules, list) else None, "cascades": dirty.get("cascades") or [],
            "findings": pre.get("findings") or [], "refused_rows": pre.get("refused_rows") or dirty.get("tables") or {},
            "on_reject": plan.get("on_reject")}


# what the --with options (and apply itself) create beyond the base schema that the diagrams draw from ddl/
ADDED_KINDS = {"create_table": "new tables (not drawn above)", "create_archive": "archive tables",
               "create_partition": "monthly partitions", "create_monitoring_view": "monitoring views",
               "enable_rls": "row-level security enabled on", "create_role": "roles", "grant": "privileges granted to"}


def added_by_options(plan: dict | None, schema: dict) -> list[dict]:
    """The plan's objects the diagrams do not show, per kind, with their names: from the plan's operations."""
    if not plan:
        return []
    drawn = {t["qualified"] for d in schema.get("domains") or [] for t in d.get("tables") or []}
    found: dict[str, list[str]] = {}
    for op in plan.get("operations") or []:
        kind, name = op.get("kind"), op.get("name")
        if kind in ADDED_KINDS and not (kind == "create_table" and name in drawn):
            found.setdefault(kind, []).append(name or "")
    return [{"what": ADDED_KINDS[kind], "kind": kind, "names": found[kind]} for kind in ADDED_KINDS if kind in found]


def operations(plan: dict | None) -> dict | None:
    if not plan:
        return None
    counts: dict[str, int] = {}
    for op in plan.get("operations") or []:
        counts[op.get("kind", "?")] = counts.get(op.get("kind", "?"), 0) + 1
    return {"counts": counts, "list": plan.get("operations") or []}


def stage_summary(result: dict, name: str) -> dict | None:
    """check: the closing summary of one verb's run on the scratch copy (its stage's `summary`)."""
    stage = next((s for s in result.get("stages") or [] if isinstance(s, dict) and s.get("name") == name), None)
    summary = (stage or {}).get("summary")
    return summary if isinstance(summary, dict) else None


def _phases_and_tables(summary: dict) -> tuple[list[dict], list[dict]]:
    return ([p for p in summary.get("phases") or [] if isinstance(p, dict)],
            [t for t in summary.get("tables") or [] if isinstance(t, dict) and "seconds" in t])


def timings(verb: str, result: dict) -> dict:
    summary = _summary(result)
    phases, tables = _phases_and_tables(summary)
    runs = []
    if verb == "check":  # the stages, then each verb's own summary of its run on the scratch copy
        phases = [{"phase": s.get("name"), "seconds": s.get("seconds"), "status": s.get("status")}
                  for s in result.get("stages") or []]
        tables = []
        for name in ("apply", "verify", "rollback"):
            ran = stage_summary(result, name)
            if ran:
                run_phases, run_tables = _phases_and_tables(ran)
                runs.append({"verb": name, "database": ran.get("database"), "seconds": ran.get("seconds"),
                             "rows": ran.get("rows"), "rows_per_second": ran.get("rows_per_second"),
                             "note": ran.get("note"), "phases": run_phases, "tables": run_tables})
    return {"total": summary.get("seconds", result.get("seconds")), "phases": phases, "tables": tables, "runs": runs}


def checks(verb: str, result: dict) -> list[dict] | None:
    if verb == "verify" and "differences" in result:  # --schema-only: the live schema against ddl/
        differences = result.get("differences") or []
        if not differences:
            return [{"name": "schema matches ddl/", "ok": True, "detail": f"compared with {result.get('basis') or 'ddl/'}",
                     "items": []}]
        return [{"name": f"{d.get('kind', '')} {d.get('object', '')}".strip(), "ok": False, "detail": d.get("detail") or "",
                 "items": []} if isinstance(d, dict) else {"name": str(d), "ok": False, "detail": "", "items": []}
                for d in differences]
    if verb == "verify":
        return result.get("checks")
    if verb == "check":
        stage = next((s for s in result.get("stages") or [] if s.get("name") == "verify"), None)
        if stage is None:
            return None
        return [{"name": "verify (on the scratch copy)", "ok": stage.get("status") == "ok", "detail": stage.get("detail"),
                 "items": stage.get("findings") or []}]
    return None


def backup(doc: dict, result: dict) -> dict | None:
    """The backup this verb wrote (or compared against), and how to put it back."""
    b = result.get("backup")
    if isinstance(b, dict):
        info = dict(b)
    elif isinstance(b, str):
        info = {"path": b}
    else:
        return None
    checked = result.get("backup_details")  # the backup's own checks (integrity, rows per table)
    if isinstance(checked, dict) and checked.get("path") == info.get("path"):
        info = {**checked, **info}
    source = doc["source"].get("path") or "dpro_agent.db"
    info["meaning"] = {"apply": "the legacy file as it was just before apply",
                       "rollback": "the database as it was just before rollback (migrated)",
                       "verify": "the backup apply wrote, which verify compared every row with"}.get(doc["verb"], "")
    info["restore"] = f'dpro-migrate restore "{info.get("path")}" --to "{source}"'
    if not doc["target"]["in_place"]:
        info["restore_note"] = ("restores the SQLite file only; `dpro-migrate rollback` removes what apply created on "
                                f'{doc["target"]["database"]}')
    return info
