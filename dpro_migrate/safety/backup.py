"""Consistent, verified, atomically written backups of a SQLite file (SQLite's online backup API)."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from dpro_migrate.db.connections import NAME_MAX, is_busy, lock_timeout_ms, locked_message
from dpro_migrate.errors import BadInput, ChecksFailed, Locked
from dpro_migrate.model.legacy import check_file_stat
from dpro_migrate.safety import partial_files
from dpro_migrate.sqlnames import quote_ident


@dataclass
class BackupResult:
    path: Path
    tables: dict[str, int]  # row counts, equal in source and copy
    integrity: str
    bytes: int
    left_overs: list[str] = field(default_factory=list)  # partial files of killed runs removed from the folder


def default_backup_dir(source: Path) -> Path:
    # realpath, not Path.resolve(): a symlink loop is for the file checks to refuse, not a RuntimeError here
    return Path(os.path.realpath(source)).parent / "dpro-migrate-backups"


SHORTENED = re.compile(r"~[0-9a-f]{8}$")  # the end of a stem name_within_limit() cut


def name_within_limit(stem: str, suffix: str, *, reserve: int = 0) -> str:
    """stem + suffix in at most NAME_MAX bytes, less `reserve` for a suffix added later (.tmp). A stem too long
    to keep whole is cut and ends in ~ and 8 hex digits of its hash, so two long names that share a start
    stay apart; the suffix (the timestamp) is kept whole."""
    room = NAME_MAX - reserve - len(os.fsencode(suffix))
    if len(os.fsencode(stem)) <= room:
        return stem + suffix
    tag = "~" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
    cut = stem
    while len(os.fsencode(cut + tag)) > room:
        cut = cut[:-1]
    return cut + tag + suffix


def backup_name(source_name: str, tail: str) -> str:
    """The name of a backup: the source's name and tail (.<stamp>.bak), leaving room for the .tmp the copy is
    written as and for the -journal SQLite writes beside it."""
    return name_within_limit(source_name, tail, reserve=len(".tmp-journal"))


def _backup_path(source: Path, directory: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        suffix = f"-{n}" if n else ""
        path = directory / backup_name(source.name, f".{stamp}{suffix}.bak")
        if not path.exists() and not path.with_name(path.name + ".tmp").exists():
            return path
    raise BadInput(f"{directory}: too many backups with the same timestamp")


def table_counts(conn: sqlite3.Connection, schema: str = "main") -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {n: conn.execute(f"SELECT count(*) FROM {schema}.{quote_ident(n)}").fetchone()[0] for n in names}


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory (so a rename in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class CopiedBackup:
    """A backup whose pages are copied into `tmp` (mode 0600, locked by `lock`, an open descriptor, until it is
    sealed or removed: see partial_files) but not yet checked: `seal()` checks it (integrity_check, row counts
    equal to `tables`, the source's), fsyncs it and renames it to `final`."""
    source: Path
    tmp: Path
    final: Path
    tables: dict[str, int]
    lock: int = -1
    left_overs: list[str] = field(default_factory=list)

    def _unlock(self) -> None:
        if self.lock >= 0:
            os.close(self.lock)
            self.lock = -1

    def seal(self) -> BackupResult:
        try:
            try:
                check = sqlite3.connect(self.tmp, isolation_level=None)
                try:
                    integrity = check.execute("PRAGMA integrity_check").fetchone()[0]
                    copied = table_counts(check)
                finally:
                    check.close()
            except sqlite3.DatabaseError as exc:  # the copy holds the source's pages: the source is damaged
                raise BadInput(f"{self.source}: cannot be backed up, it is damaged ({exc})") from None
            if integrity != "ok":
                raise ChecksFailed(f"backup {self.final} failed its integrity check: {integrity}")
            if copied != self.tables:
                diff = sorted(k for k in self.tables.keys() | copied.keys() if self.tables.get(k) != copied.get(k))
                raise ChecksFailed(f"backup {self.final} does not hold the same rows as the source (tables: {', '.join(diff)})")
            with open(self.tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, self.final)
            fsync_path(self.final.parent)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        finally:
            self._unlock()
        return BackupResult(self.final, self.tables, integrity, self.final.stat().st_size, list(self.left_overs))


@contextmanager
def sealing(copied: CopiedBackup) -> Iterator[Callable[[], BackupResult]]:
    """Seal the backup on another thread while the caller goes on (SQLite releases the GIL while it checks);
    yields a function that waits for the sealed backup. A caller that holds the write lock must call it
    before it commits: nothing is committed unless its backup is good."""
    with ThreadPoolExecutor(1, thread_name_prefix="dpro-migrate-backup") as pool:
        yield pool.submit(copied.seal).result


def copy_connection(conn: sqlite3.Connection, source: Path, directory: Path | None = None,
                    progress: Callable[[int, int], None] | None = None) -> CopiedBackup:
    """Copy what `conn` sees to a new file. Nothing may change the file meanwhile, so the copy and the
    counts agree: `conn` is a reader in an open read transaction, or holds the file's exclusive lock
    outside any transaction (copy_under_lock).
    The copy is <name>.tmp until sealed: a backup file that exists under its final name is complete."""
    directory = Path(directory) if directory else default_backup_dir(source)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BadInput(f"{directory}: cannot create the backup directory ({exc.strerror})") from None
    left_overs = [str(p) for p in partial_files.remove_left_overs(directory)]
    final = _backup_path(source, directory)
    tmp = final.with_name(final.name + ".tmp")
    try:
        lock = partial_files.create_locked(tmp)  # held until sealed: a killed run's .tmp is the next run's to remove
    except OSError as exc:
        raise BadInput(f"{directory}: cannot write a backup there ({exc.strerror})") from None
    try:
        dest = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.backup(dest, pages=4096,
                        progress=(lambda status, remaining, total: progress(total - remaining, total)) if progress else None)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
        return CopiedBackup(source, tmp, final, table_counts(conn), lock, left_overs)
    except sqlite3.OperationalError as exc:
        tmp.unlink(missing_ok=True)
        os.close(lock)
        if is_busy(exc):
            raise
        # the backup's side (a full disk, an I/O error): said in one line, before anything changed
        raise BadInput(f"{directory}: cannot write the backup there ({exc}); nothing was changed") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        os.close(lock)
        raise


def _check_without_opening(source: Path) -> None:
    """legacy.check_file_stat, the part of check_sqlite_file that does not open the file; SQLite itself
    refuses a file that is not a database.

    backup_file must not open the database file from Python: apply and rollback call it while their
    connection holds SQLite's write lock, and closing any descriptor of that file releases every POSIX
    lock this process holds on it, so another process could start writing in the middle of the migration.
    """
    check_file_stat(source)


def copy_under_lock(transaction, directory: Path | None = None, progress=None) -> CopiedBackup:
    """The backup apply and rollback take inside their write transaction (db.connections.write_transaction),
    before they change anything. When that transaction locks every other connection out (rollback
    journal), its own connection copies the file, between two transactions that keep the lock; otherwise
    (WAL) a second, reading connection does, and the application's readers go on meanwhile."""
    if transaction.locks_out_readers:
        with transaction.outside_transaction():
            return copy_connection(transaction.conn, transaction.path, directory, progress)
    return copy_file(transaction.path, directory, progress)


def copy_file(source: Path, directory: Path | None = None, progress=None, *,
              busy_timeout_ms: int | None = None) -> CopiedBackup:
    """Backup of a live file, copied but not yet sealed. A read transaction keeps writers from committing
    meanwhile; a caller that holds the write lock itself can call this too, unless that lock keeps readers
    out (see copy_under_lock). `busy_timeout_ms`: by default DPRO_MIGRATE_BUSY_TIMEOUT_MS."""
    _check_without_opening(source)
    timeout_ms = lock_timeout_ms() if busy_timeout_ms is None else busy_timeout_ms
    conn = sqlite3.connect(source.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return copy_connection(conn, source, directory, progress)
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise Locked(locked_message(source, timeout_ms, outcome="no backup was made")) from None
        raise BadInput(f"{source}: cannot be backed up ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{source}: cannot be backed up, it is damaged ({exc})") from None
    finally:
        conn.close()


def backup_file(source: Path, directory: Path | None = None, progress=None, *,
                busy_timeout_ms: int | None = None) -> BackupResult:
    """A verified backup of a live file: copied, checked, fsynced, renamed."""
    return copy_file(source, directory, progress, busy_timeout_ms=busy_timeout_ms).seal()
