"""Plans of format 1 (dpro-migrate 0.1.0: untyped steps), as ledgers of files migrated then still hold them:
read into typed operations, so that an upgraded dpro-migrate can still verify and roll them back."""

from __future__ import annotations

from typing import Any

from dpro_migrate.errors import BadInput


def _operation(step: dict[str, Any]) -> dict[str, Any]:
    kind, info = step["kind"], step.get("info") or {}
    base = {"name": step["name"], "sql": step["sql"], "reverse": step["reverse"]}
    if kind == "create_table" and info.get("archive_of"):  # PostgreSQL's archive was a create_table step
        return {"kind": "create_archive", **base, "table": info["table"], "archive_of": info["archive_of"]}
    if kind == "create_table":
        months = (info.get("partitioned") or {}).get("months")
        return {"kind": kind, **base, "table": info["table"], "extra_columns": info.get("extra_columns") or [],
                "new": bool(info.get("new")), "partition_months": months}
    if kind == "create_archive":
        return {"kind": kind, **base, "table": info["table"], "archive_of": info["archive_of"],
                "extra_columns": info.get("extra_columns") or []}
    if kind == "move_rows":
        move = {k: info[k] for k in ("legacy", "target", "columns", "extra_columns", "where")}
        if "types" in info:  # PostgreSQL: a COPY
            return {"kind": "copy_rows", **base, **move, "types": info["types"], "conversions": info["conversions"],
                    "source_sql": info["source_sql"]}
        return {"kind": kind, **base, **move, "reverse": step["reverse"][:1], "renumber": step["reverse"][1:]}
    if kind == "quarantine_rows":
        if "repeat" in info:  # SQLite: refusal SQL, then the copies, by position
            once, repeat = info["repeat"]
            return {"kind": kind, **base, "sql": step["sql"][repeat:], "tables": info["tables"],
                    "refusal_once": step["sql"][:once], "refusal_repeat": step["sql"][once:repeat]}
        return {"kind": kind, **base, **{k: info[k] for k in ("tables", "refusal_once", "refusal_repeat", "source_sql")}}
    fields = {
        "create_partition": ("parent", "month"), "keep_sequence": ("legacy", "targets"),
        "drop_legacy_trigger": ("table",), "drop_legacy_view": ("table",), "drop_legacy_table": ("rows",),
        "rename_table": ("table",), "recreate_view": ("legacy_sql",), "create_index": ("table", "unique", "partial", "new"),
        "create_trigger": ("table",), "enable_rls": ("table", "policy", "setting", "force"),
        "set_sequence": ("table", "legacy", "legacy_sequence"), "add_constraint": ("table", "columns", "new"),
    }.get(kind, ())
    out = {"kind": kind, **base, **{f: info[f] for f in fields if f in info}}
    if kind == "add_constraint":
        out["constraint"] = info["kind"]
    return out


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 plan's JSON as format 2."""
    try:
        data = dict(data)
        data["operations"] = [_operation(s) for s in data.pop("steps")]
        data["features"] = data.pop("extras", [])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInput(f"a format-1 plan that cannot be read ({type(exc).__name__}: {exc})") from None
    data["format"] = 2
    return data
