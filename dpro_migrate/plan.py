"""The plan as data: what `plan` writes, `apply` executes, `verify` checks and `rollback` inverts."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .errors import BadInput

PLAN_FORMAT = 1


@dataclass
class Step:
    kind: str  # create_table, keep_sequence, replace_view, move_rows, set_sequence, drop_legacy_table, create_index, create_trigger
    name: str  # the object the step is about
    sql: list[str]  # run in order by apply
    reverse: list[str]  # run in order by rollback (steps themselves in reverse order)
    info: dict = field(default_factory=dict)


@dataclass
class Plan:
    source: str
    source_fingerprint: str
    target: str  # "sqlite:in-place", or a URL without its password
    dialect: str
    steps: list[Step]
    legacy_tables: dict[str, dict]  # name -> {"rows": n, "sql": original DDL}
    legacy_objects: list[dict]  # indexes, triggers, views: {"type", "name", "table", "sql"}
    unknown_tables: dict[str, str | None]
    missing_legacy_tables: list[str]
    extra_columns: dict[str, list[list[str]]]
    on_reject: str = "fail"  # fail | quarantine
    preflight: dict = field(default_factory=dict)  # findings per rule, with every offending id
    compat_views: bool = False  # views with the legacy names over the domain tables, until `finalize`
    extras: list[str] = field(default_factory=list)  # options of the seeds asked for: see commands.EXTRAS
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tool_version: str = __version__
    format: int = PLAN_FORMAT

    def steps_of(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]

    @property
    def moves(self) -> list[dict]:
        return [s.info for s in self.steps_of("move_rows")]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        data = json.loads(text)
        if data.get("format") != PLAN_FORMAT:
            raise BadInput(f"plan format {data.get('format')!r} is not supported (expected {PLAN_FORMAT})")
        data["steps"] = [Step(**s) for s in data["steps"]]
        for step in data["steps"]:  # hand-edited plans: what apply would otherwise run character by character
            if not (isinstance(step.kind, str) and isinstance(step.name, str) and isinstance(step.info, dict)
                    and all(isinstance(part, list) and all(isinstance(q, str) for q in part)
                            for part in (step.sql, step.reverse))):
                raise TypeError(f"step {step.name!r}: sql and reverse must be lists of strings, info an object")
        return cls(**data)

    def sql_script(self, *, reverse: bool = False) -> str:
        """The exact statements apply (or rollback) runs, in order, one per line group."""
        steps = reversed(self.steps) if reverse else self.steps
        lines = []
        for step in steps:
            statements = step.reverse if reverse else step.sql
            if statements:
                lines.append(f"-- {step.kind}: {step.name}")
                lines.extend(s.rstrip().rstrip(";") + ";" for s in statements)
        return "\n".join(lines) + "\n"


def save_plan(plan: Plan, path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise BadInput(f"{path.parent}: no such directory; the plan was not written")
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(plan.to_json())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"{path}: cannot write the plan there ({exc.strerror or exc})") from None
    return path


def load_plan(path: str | os.PathLike) -> Plan:
    path = Path(path)
    try:
        return Plan.from_json(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the plan ({exc})") from None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:  # what malformed content raises
        detail = f"no {exc} key" if isinstance(exc, KeyError) else next(iter(str(exc).splitlines()), type(exc).__name__)
        raise BadInput(f"{path}: is not a dpro-migrate plan: {detail}") from None


def looks_like_plan(path: str | os.PathLike) -> bool:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return f.read(1) == b"{"
    except OSError:
        return False
