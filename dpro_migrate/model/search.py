"""ddl/search.toml: the columns the application searches with LIKE '%...%', each given a search index."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from dpro_migrate.errors import BadInput
from dpro_migrate.model.schema import TargetSchema, ddl_dir


@dataclass(frozen=True)
class SearchIndex:
    name: str  # the PostgreSQL index
    table: str  # qualified
    column: str


def load_search(schema: TargetSchema, path: str | Path | None = None) -> list[SearchIndex]:
    path = Path(path) if path else ddl_dir() / "search.toml"
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
        out = [SearchIndex(s["name"], s["table"], s["column"]) for s in data.get("search", [])]
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise BadInput(f"{path}: cannot read the search indexes ({exc})") from None
    for s in out:
        if schema.table(s.table).column(s.column) is None:
            raise BadInput(f"{path}: {s.table} has no column {s.column!r} to search")
    return out
