"""`--report FILE.html` (or FILE.json): what a verb did, as one file a DBA attaches to the change ticket.

document.py gathers the data (the verb's --json result, the plan, source, target, schema, history);
html.py renders it with diagram.py's pictures. The library never prints: the CLI calls `write`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from dpro_migrate.errors import BadInput
from dpro_migrate.report.document import VERBS, build
from dpro_migrate.report.html import render

__all__ = ["VERBS", "build", "render", "check_destination", "write"]


def check_destination(path: Path, *, taken: tuple[Path, ...] = ()) -> Path:
    """Before the verb runs: the report's directory exists, the name says HTML or JSON, and the file is new or an
    earlier report: never the plan `taken` names, a backup's record or any other file (exit 2, nothing done)."""
    path = Path(path)
    for other in taken:
        if other is not None and Path(other).resolve() == path.resolve():
            raise BadInput(f"{path}: is also where the plan goes (--out); give the report a name of its own")
    if path.is_file() and not _is_report(path):
        raise BadInput(f"{path}: exists and is not a dpro-migrate report; --report replaces only an earlier report")
    if path.suffix.lower() not in (".html", ".htm", ".json"):
        raise BadInput(f"{path}: --report writes FILE.html (the page) or FILE.json (its data)")
    if not path.parent.is_dir():
        raise BadInput(f"{path.parent}: no such directory for the report")
    if path.is_dir():
        raise BadInput(f"{path}: is a directory; --report takes a file name")
    try:  # a directory the report cannot be written in is found now, not after the verb changed the database
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise BadInput(f"{path}: the report cannot be written there ({exc.strerror or exc}); nothing was done") from None
    return path


def _is_report(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4000)
        if path.suffix.lower() == ".json":
            return '"report_format"' in head and isinstance(json.loads(Path(path).read_text(encoding="utf-8")), dict)
        return '<meta name="dpro-migrate-verb"' in head
    except (OSError, ValueError):
        return False


def write(path: Path, doc: dict) -> Path:
    """The page (or, for FILE.json, the document itself), written whole or not at all."""
    path = Path(path)
    text = json.dumps(doc, indent=2, ensure_ascii=False, default=str) if path.suffix.lower() == ".json" else render(doc)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"{path}: the report cannot be written ({exc.strerror or exc})") from None
    return path
