"""Bring a SQLite database back from a backup: the backup is checked first and never written, the
destination is replaced in one step, and what it held just before is kept as a backup of its own."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dpro_migrate.errors import BadInput, ChecksFailed, DproMigrateError
from dpro_migrate.model.legacy import check_sqlite_file, is_symlink_loop
from dpro_migrate.safety.backup import (SHORTENED, BackupResult, backup_file, backup_name, default_backup_dir, fsync_path,
                                        name_within_limit, table_counts)

# <source name>.<UTC stamp>[-n].bak, as backup._backup_path names them
BACKUP_NAME = re.compile(r"^(?P<source>.+)\.\d{8}T\d{6}Z(?:-\d+)?\.bak$")
_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED as the backup API's progress callback reports them


@dataclass
class RestoreResult:
    backup: Path
    destination: Path
    created: bool  # the destination did not exist before
    method: str  # "sqlite backup api" (in place, under the write lock) or "file replace" (new or unreadable file)
    previous: BackupResult | None  # the destination as it was just before the restore
    previous_damaged_copy: Path | None  # a byte copy instead, when the destination could not be read as SQLite
    tables: dict[str, int]  # row counts, equal in the backup and the restored destination
    integrity: str
    bytes: int
    seconds: float


def default_destination(backup: Path) -> Path:
    """A backup written to the default place (dpro-migrate-backups/ beside the database) names its database."""
    if is_symlink_loop(backup):
        raise BadInput(f"{backup}: is a symbolic link loop")
    m = BACKUP_NAME.match(backup.name)
    parent = backup.resolve().parent
    if not m or parent.name != default_backup_dir(Path("x")).name:
        raise BadInput(f"{backup}: cannot tell which database this backup belongs to; pass --to")
    if not SHORTENED.search(m["source"]):
        return parent.parent / m["source"]
    # A name too long to keep whole in the backup's name: the database is the file whose name shortens to it.
    tail = backup.name[len(m["source"]):]
    found = [p for p in parent.parent.iterdir() if backup_name(p.name, tail) == backup.name]
    if len(found) != 1:
        raise BadInput(f"{backup}: cannot tell which database this backup belongs to (its name is shortened); pass --to")
    return found[0]


def check_backup(backup: Path) -> tuple[dict[str, int], str]:
    """integrity_check and row counts of a backup, read only. BadInput when it is not a sound SQLite file."""
    check_sqlite_file(backup)
    try:
        conn = sqlite3.connect(backup.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise BadInput(f"{backup}: cannot be opened ({exc}); nothing was changed") from None
    try:
        if backup.with_name(backup.name + "-journal").exists() or backup.with_name(backup.name + "-wal").exists():
            raise BadInput(f"{backup}: has a journal beside it, so it is not a finished backup; nothing was changed")
        conn.execute("BEGIN")
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BadInput(f"{backup}: failed its integrity check ({'; '.join(problems[:3])}); nothing was changed")
        return table_counts(conn), "ok"
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{backup}: is not a usable SQLite database ({exc}); nothing was changed") from None
    finally:
        conn.close()


def _busy_timeout_ms() -> int:
    from dpro_migrate.db.connections import lock_timeout_ms

    return lock_timeout_ms()


def _readable_sqlite(path: Path) -> bool:
    """Whether SQLite can open and read the file (a read-write open also rolls back a hot journal)."""
    try:
        check_sqlite_file(path)
        conn = sqlite3.connect(path, isolation_level=None)
    except (DproMigrateError, sqlite3.Error):
        return False
    try:
        conn.execute(f"PRAGMA busy_timeout = {_busy_timeout_ms()}")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BadInput(f"{path}: is locked by another writer ({exc}); nothing was changed") from None
        return False
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()


def _byte_copy(path: Path, directory: Path) -> Path:
    """Keep a file SQLite cannot read, byte for byte, before it is replaced."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = directory / name_within_limit(path.name, f".{stamp}-{secrets.token_hex(3)}.damaged")
    fd = os.open(dest, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as out, path.open("rb") as src:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())
    return dest


def _copy_in_place(backup: Path, destination: Path) -> None:
    """SQLite's backup API from the backup into the destination, all pages in one step: SQLite takes the
    destination's write lock (waiting up to the busy timeout for the application's readers and writers)
    and replaces its content in one transaction; connections the application holds see the new content."""
    src = sqlite3.connect(backup.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    dst = sqlite3.connect(destination, isolation_level=None)
    try:
        dst.execute(f"PRAGMA busy_timeout = {_busy_timeout_ms()}")

        def refuse_when_busy(status: int, remaining: int, total: int) -> None:
            if status in _BUSY:
                raise _Locked()

        try:
            src.backup(dst, pages=-1, progress=refuse_when_busy)
        except _Locked:
            raise BadInput(f"{destination}: is locked by another writer (waited "
                           f"{_busy_timeout_ms()} ms, DPRO_MIGRATE_BUSY_TIMEOUT_MS); nothing was changed") from None
        except sqlite3.Error as exc:
            raise BadInput(f"{destination}: could not be replaced from the backup ({exc}); nothing was changed") from None
    finally:
        dst.close()
        src.close()


class _Locked(Exception):
    pass


def _copy_to_new_file(backup: Path, destination: Path) -> None:
    """A new (or unreadable) destination: written beside it as a temporary file, fsynced, renamed over it."""
    tmp = destination.with_name(name_within_limit(f".{destination.name}", f".restore-{secrets.token_hex(4)}.tmp",
                                                     reserve=len("-journal")))
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600 if not destination.exists()
                     else destination.stat().st_mode & 0o777)
        os.close(fd)
    except OSError as exc:
        raise BadInput(f"{destination.parent}: cannot write there ({exc.strerror}); nothing was changed") from None
    try:
        src = sqlite3.connect(backup.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(dst, pages=-1)
        finally:
            dst.close()
            src.close()
        fsync_path(tmp)
        os.replace(tmp, destination)
        fsync_path(destination.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def restore(backup: Path, destination: Path | None = None, *, backup_dir: Path | None = None) -> RestoreResult:
    """Replace `destination` (default: the database the backup's name and place point to) with `backup`.

    The backup is checked (a SQLite file, integrity_check, row counts) before anything is touched and is
    only ever opened read-only. An existing destination is first backed up itself (to backup_dir, default
    dpro-migrate-backups/ beside it), then replaced through SQLite's backup API under its write lock.
    """
    started = time.monotonic()
    backup = Path(backup)
    destination = Path(destination) if destination else default_destination(backup)
    expected, _ = check_backup(backup)
    if is_symlink_loop(destination):
        raise BadInput(f"{destination}: is a symbolic link loop; nothing was changed")
    if destination.exists() and destination.resolve() == backup.resolve():
        raise BadInput(f"{destination}: is the backup itself; nothing was changed")
    if destination.is_dir():
        raise BadInput(f"{destination}: is a directory; pass the database file with --to")
    if not destination.resolve().parent.is_dir():
        raise BadInput(f"{destination.parent}: no such directory; nothing was changed")
    created = not destination.exists()
    previous, damaged = None, None
    backup_dir = Path(backup_dir) if backup_dir else default_backup_dir(destination)
    if created:
        _copy_to_new_file(backup, destination)
        method = "file replace"
    elif _readable_sqlite(destination):
        if not os.access(destination, os.W_OK) or not os.access(destination.resolve().parent, os.W_OK):
            raise BadInput(f"{destination}: is read-only (or its directory is); nothing was changed")
        try:
            previous = backup_file(destination, backup_dir, busy_timeout_ms=_busy_timeout_ms())
        except ChecksFailed:  # readable but damaged: keep its bytes instead
            damaged = _byte_copy(destination, backup_dir)
        _copy_in_place(backup, destination)
        method = "sqlite backup api"
    else:
        damaged = _byte_copy(destination, backup_dir)
        _copy_to_new_file(backup, destination)
        method = "file replace"
    conn = sqlite3.connect(destination.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")
        integrity = "; ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        restored = table_counts(conn)
    finally:
        conn.close()
    if integrity != "ok" or restored != expected:
        raise ChecksFailed(f"{destination}: after the restore it does not match the backup "
                           f"(integrity {integrity}; row counts {'equal' if restored == expected else 'differ'})")
    return RestoreResult(backup, destination, created, method, previous, damaged, restored, integrity,
                         destination.stat().st_size, time.monotonic() - started)
