"""The plan as data: what `plan` writes, `apply` executes, `verify` checks and `rollback` inverts."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from dpro_migrate import __version__
from dpro_migrate.errors import BadInput
from dpro_migrate.plan import format_v1
from dpro_migrate.model.promise import Promise
from dpro_migrate.plan.operations import (CreateArchive, CreateTable, Operation, RowMove,
                                          operation_from_dict)

PLAN_FORMAT = 2  # 2: typed operations ("operations", each with its "kind"); 1 had untyped steps

Op = TypeVar("Op", bound=Operation)


@dataclass
class Plan:
    source: str
    source_fingerprint: str
    target: str  # "sqlite:in-place", or a URL without its password
    dialect: str
    operations: list[Operation]
    legacy_tables: dict[str, dict]  # name -> {"rows": n, "sql": original DDL}
    legacy_objects: list[dict]  # indexes, triggers, views: {"type", "name", "table", "sql"}
    unknown_tables: dict[str, str | None]
    missing_legacy_tables: list[str]
    extra_columns: dict[str, list[list[str]]]
    on_reject: str = "fail"  # fail | quarantine
    preflight: dict = field(default_factory=dict)  # findings per rule, with every offending id
    compat_views: bool = False  # views with the legacy names over the domain tables, until `finalize`
    features: list[str] = field(default_factory=list)  # the seeds' options asked for with --with
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tool_version: str = __version__
    format: int = PLAN_FORMAT

    def of_type(self, kind: type[Op]) -> list[Op]:
        return [op for op in self.operations if isinstance(op, kind)]

    @property
    def moves(self) -> list[RowMove]:
        return self.of_type(RowMove)

    def promises(self) -> list[Promise]:
        return [p for op in self.operations for p in op.promises()]

    def archived_tables(self) -> set[str]:
        """Live domain tables that have an archive (verify and rollback read both)."""
        return {op.archive_of for op in self.of_type(CreateArchive)}

    def tables_without_legacy_home(self) -> list[CreateTable]:
        """Domain tables no legacy table of this file feeds: rows in them were written after the cutover."""
        fed = {m.target for m in self.moves}
        return [op for op in self.of_type(CreateTable) if op.table not in fed]

    def to_json(self) -> str:
        data = asdict(self)
        data["operations"] = [op.to_dict() for op in self.operations]
        return json.dumps(data, indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("format") == 1:  # recorded by dpro-migrate 0.1.0
            data = format_v1.upgrade(data)
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise BadInput(f"plan format {found!r} is not supported (expected {PLAN_FORMAT}); make a new plan")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BadInput(f"unknown field {unknown[0]!r}")
        ops = data.get("operations")
        if not isinstance(ops, list):
            raise BadInput("its operations are not a list")
        data["operations"] = [operation_from_dict(op, f"operation {i + 1}") for i, op in enumerate(ops)]
        return cls(**data)


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
    except BadInput as exc:
        raise BadInput(f"{path}: is not a dpro-migrate plan: {exc}") from None
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


def refuse_other_source(recorded: Plan, source, target: str) -> None:
    """A target holds the migration of one legacy file: another file is not in it, and verify, rollback and
    apply must not answer about it as if it were (rollback writes back into the recorded file)."""
    if os.path.realpath(recorded.source) != os.path.realpath(source):
        raise BadInput(f"{target} was migrated from {recorded.source}, not {source}: name that file (verify and "
                       "rollback compare with it and write into it); nothing was changed")
