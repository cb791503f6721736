"""What every verb did, one JSON line each, in a file beside the backups.

The ledger lives inside the migrated database, so rollback drops it with the schema; this file stays.
Each line is written with a single write() on a descriptor opened O_APPEND, then fsynced: the kernel
appends each write whole, so processes appending at the same time never interleave their lines.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dpro_migrate import __version__
from dpro_migrate.safety.backup import fsync_path

HISTORY_FILE = "dpro-migrate-history.jsonl"

OK, REFUSED, FAILED, OUTCOME_UNKNOWN = "ok", "refused", "failed", "outcome unknown"


@dataclass(kw_only=True)
class HistoryLine:
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    verb: str
    source: str  # the legacy file, absolute
    target: str  # Target.display: never a password
    outcome: str  # ok, refused, failed or outcome unknown
    message: str | None = None  # one line: the error, or a note on what was done
    counts: dict[str, int] = field(default_factory=dict)
    backup: str | None = None  # the backup the verb wrote (or compared against)
    report: str | None = None  # the --report page written for this run, absolute (it may be gone since)
    tool_version: str = __version__


def history_path(backup_dir: Path) -> Path:
    return Path(backup_dir) / HISTORY_FILE


def append(backup_dir: Path, line: HistoryLine) -> Path:
    """Append one line, durably. OSError when the directory or the file cannot be written."""
    path = history_path(backup_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = (json.dumps(asdict(line), ensure_ascii=False, default=str) + "\n").encode()
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, data)
        if written != len(data):  # a full disk: say so rather than leave half a line unexplained
            raise OSError(f"{path}: only {written} of {len(data)} bytes written")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_path(path.parent)  # the new file's name is durable too
    return path


def read(backup_dir: Path, source: Path | None = None) -> list[dict]:
    """Every line of the history, oldest first; with `source`, only that file's (a backup directory can be
    shared). A line that is not JSON (a crash during its write) comes back as outcome "unreadable"."""
    path = history_path(backup_dir)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:  # status still answers; the table says why the history is missing
        return [{"verb": None, "outcome": "unreadable", "message": f"{path}: cannot be read ({exc.strerror})"}]
    lines = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError:
            entry = {"verb": None, "outcome": "unreadable", "message": raw[:200]}
        if source is None or entry.get("source") in (None, str(Path(source).resolve())):
            lines.append(entry)
    return lines
