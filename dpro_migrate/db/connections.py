"""Connection policy, in one place: how dpro-migrate opens the SQLite source, a SQLite file it writes,
and a PostgreSQL target, and how long it waits for locks.

Every lock wait is bounded by DPRO_MIGRATE_BUSY_TIMEOUT_MS, counted from when the lock is asked for, and
a refusal is a `Locked` error that names the lock. A SQLite file dpro-migrate writes is first claimed with
an advisory lock beside it (`<file>.dpro-migrate.lock`), so that a second dpro-migrate refuses at once
instead of answering from a state the first one is about to change.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import psycopg

from dpro_migrate.config import load_settings
from dpro_migrate.errors import BadInput, Locked
from dpro_migrate.model.legacy import check_sqlite_file, connect_readonly, is_busy
from dpro_migrate.targets import Target

try:
    import fcntl
except ImportError:  # Windows: no flock; SQLite's own locks still keep two writers apart
    fcntl = None  # type: ignore[assignment]

NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, APFS)
LOCK_KEY = 0x6470726F  # "dpro": one dpro-migrate at a time per target database
MIGRATE_LOCK_SUFFIX = ".dpro-migrate.lock"

# Told what a lock wait is waiting for, once, when the wait begins.
Waiting = Callable[[str], None]

APPLICATION_NAME = "dpro-migrate"  # pg_stat_activity.application_name of every session dpro-migrate opens


def lock_timeout_ms() -> int:
    """How long to wait for another writer (the application, another dpro-migrate) before refusing."""
    return load_settings().busy_timeout_ms


def locked_message(path: Path, timeout_ms: int | None = None, outcome: str = "nothing was changed") -> str:
    waited = (f" for longer than the busy timeout ({timeout_ms} ms, DPRO_MIGRATE_BUSY_TIMEOUT_MS)"
              if timeout_ms is not None else "")
    return f"{path}: is locked by another connection (a reader transaction or a writer){waited}; {outcome}"


@contextmanager
def lock_errors_named(path: Path) -> Iterator[None]:
    """Readers opened elsewhere (model/legacy.py, verify/) turn SQLITE_BUSY into "is not a usable SQLite
    database" or "cannot be read"; here such an error, the busy error being its context, becomes `Locked`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise Locked(locked_message(path)) from None
        raise
    except BadInput as exc:
        if not isinstance(exc, Locked) and is_busy(exc.__context__):
            raise Locked(locked_message(path)) from None
        raise


# --- one dpro-migrate per file ---------------------------------------------------------------------

_claims: dict[tuple[str, int], list[int]] = {}  # (lock file, thread) -> [descriptor, depth]: re-entry by one thread


def migrate_lock_path(path: Path) -> Path:
    """<file>.dpro-migrate.lock beside the file; a name too long for that is cut and tagged with its hash.
    realpath, not resolve(): a symbolic link loop is refused by the file checks that follow, in one line."""
    path = Path(os.path.realpath(path))
    name = os.fsencode(path.name)
    if len(name) + len(MIGRATE_LOCK_SUFFIX) > NAME_MAX:
        tag = "~" + hashlib.sha256(name).hexdigest()[:8]
        keep = NAME_MAX - len(MIGRATE_LOCK_SUFFIX) - len(tag)
        return path.with_name(os.fsdecode(name[:keep]) + tag
                              + MIGRATE_LOCK_SUFFIX)
    return path.with_name(path.name + MIGRATE_LOCK_SUFFIX)


def claim(path: Path) -> tuple[str, int]:
    """Take the advisory lock of `path` for this thread, or refuse at once: another dpro-migrate is at work.
    The kernel releases it when the process ends, however it ends. Returns what `unclaim` takes."""
    lock = migrate_lock_path(path)
    key = (str(lock), threading.get_ident())
    if key in _claims:
        _claims[key][1] += 1
        return key
    fd = _flock(lock, Path(path)) if fcntl else -1
    _claims[key] = [fd, 1]
    return key


def unclaim(key: tuple[str, int]) -> None:
    entry = _claims[key]
    entry[1] -= 1
    if entry[1]:
        return
    del _claims[key]
    if entry[0] >= 0:
        # Removed while still locked: a process that opened it meanwhile sees, once it holds the lock, that
        # the name leads elsewhere and starts again (see _flock); so the file never outlives its use.
        Path(key[0]).unlink(missing_ok=True)
        os.close(entry[0])


@contextmanager
def migrate_lock(path: Path) -> Iterator[None]:
    key = claim(path)
    try:
        yield
    finally:
        unclaim(key)


def _flock(lock: Path, path: Path) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BadInput(f"{lock.parent}: cannot create {lock.name} there ({exc.strerror}); dpro-migrate "
                           "needs to write beside the database") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise Locked(f"{path}: another dpro-migrate{holder} is at work on it; nothing was changed") from None
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # the holder removed it before releasing it: take the new one


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (process {pid})" if pid.isdigit() else ""


# --- a SQLite file dpro-migrate writes -------------------------------------------------------------


class WriteConnection(sqlite3.Connection):
    """A connection to a file dpro-migrate writes: it holds the file's dpro-migrate lock until closed."""

    claimed: tuple[str, int] | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.claimed:
                claimed, self.claimed = self.claimed, None
                unclaim(claimed)


def open_for_write(path: Path, *, waiting: Waiting | None = None) -> WriteConnection:
    check_sqlite_file(path)
    if len(os.fsencode(path.name + "-journal")) > NAME_MAX:
        raise BadInput(f"{path}: the name is too long for the -journal file SQLite writes beside it "
                       f"(at most {NAME_MAX - len('-journal')} bytes); rename the file")
    if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222:  # root too respects a chmod a-w
        raise BadInput(f"{path}: is read-only; dpro-migrate needs to write it")
    if not os.access(path.resolve().parent, os.W_OK):
        raise BadInput(f"{path.resolve().parent}: is read-only; SQLite needs to write its journal there")
    claimed = claim(path)  # before the file is opened: a second dpro-migrate reads nothing the first may change
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, factory=WriteConnection)
        conn.claimed, claimed = claimed, None
        # Room for the sorts of index builds and the copies: bounded, so memory stays flat with size.
        conn.execute("PRAGMA cache_size = -40000")
        # Builds that overwrite freed pages with zeros (Debian's) would write and journal every page of the
        # dropped tables; FAST zeroes only what is written anyway. The rows of a dropped table live on in the
        # table that replaced it, so no deleted content is left behind that the file does not still hold.
        conn.execute("PRAGMA secure_delete = FAST")
        wait_for_lock(conn, path, "SELECT count(*) FROM sqlite_master", waiting).fetchone()
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        raise BadInput(f"{path}: is not a usable SQLite database ({exc})") from None
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    finally:
        if claimed:
            unclaim(claimed)
    return conn


def wait_for_lock(conn: sqlite3.Connection, path: Path, sql: str, waiting: Waiting | None = None) -> sqlite3.Cursor:
    """Run `sql`, the statement that takes a lock, waiting at most the busy timeout for it, counted from now.
    `waiting` is told what it waits for when the lock is not free at once."""
    timeout_ms = lock_timeout_ms()
    try:
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            return conn.execute(sql)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or timeout_ms <= 0:
                raise
        if waiting:
            waiting(f"waiting for {path}: another connection holds it (a reader transaction or a writer); "
                    f"up to {timeout_ms / 1000:g} s (DPRO_MIGRATE_BUSY_TIMEOUT_MS)")
        conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        return conn.execute(sql)
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise Locked(locked_message(path, timeout_ms)) from None
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")


@dataclass
class WriteTransaction:
    """What write_transaction yields. `locks_out_readers`: the file is locked exclusively for the whole
    transaction (rollback journal, exclusive=True), so no other connection, not even one of this process,
    can read it until the commit."""

    conn: sqlite3.Connection
    path: Path
    locks_out_readers: bool
    changes_at_begin: int

    @contextmanager
    def outside_transaction(self) -> Iterator[None]:
        """Only while nothing is written yet: end the empty transaction but keep the exclusive lock (locking
        mode EXCLUSIVE), so that this connection can read the file as one (SQLite's backup API refuses a
        source in a write transaction), then begin again, which waits for nothing: the lock is still ours."""
        if not self.locks_out_readers or self.conn.total_changes != self.changes_at_begin:
            raise RuntimeError("outside_transaction: only before the first write of an exclusive transaction")
        self.conn.execute("COMMIT")
        try:
            yield
        finally:
            self.conn.execute("BEGIN IMMEDIATE")


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path, *, exclusive: bool = False,
                      waiting: Waiting | None = None) -> Iterator[WriteTransaction]:
    """Foreign keys off (it cannot change inside a transaction, and with it on DROP TABLE cascades), the
    write lock, and everything undone unless the block ends cleanly.

    `exclusive`: with a rollback journal, the exclusive lock is taken at BEGIN, waiting at most the busy
    timeout for the application's readers and writers, and kept to the commit. Otherwise SQLite asks for it
    whenever the transaction outgrows the page cache, and for the commit: every such request waits the busy
    timeout again for a reader that holds on, while the cache grows past its size. So the only wait is
    at BEGIN, before anything is done, and readers are locked out for the whole transaction. In WAL mode
    it is the same as without: readers are never locked out and never waited for."""
    fk_before = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    hold = exclusive and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
    try:
        wait_for_lock(conn, path, "BEGIN EXCLUSIVE" if hold else "BEGIN IMMEDIATE", waiting)
        try:
            if hold:
                conn.execute("PRAGMA locking_mode = EXCLUSIVE")  # for outside_transaction: its COMMIT keeps the lock
            yield WriteTransaction(conn, path, hold, conn.total_changes)
            if hold:
                conn.execute("PRAGMA locking_mode = NORMAL")  # the commit releases the lock and removes the journal
            conn.execute("COMMIT")
        except BaseException as exc:
            if hold:
                conn.execute("PRAGMA locking_mode = NORMAL")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if is_busy(exc):  # a wait inside the transaction (without `exclusive`): a lock, now rolled back
                raise Locked(locked_message(path, lock_timeout_ms())) from None
            raise
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(fk_before)}")


# --- PostgreSQL ------------------------------------------------------------------------------------


def connect(target: Target) -> psycopg.Connection:
    return connect_postgres(target.conninfo, target.display)


def pg_lock_timeout_ms() -> int:
    """How long a statement of dpro-migrate waits for a lock another session holds (PostgreSQL lock_timeout)."""
    return load_settings().pg_lock_timeout_ms


def copy_producers() -> int:
    """How many processes build COPY lines for a PostgreSQL apply (1: a thread of dpro-migrate's own process)."""
    # at most 3 by default: each producer is about 24 MB, and apply with its producers stays under 200 MB to 5M
    return load_settings().copy_producers or max(2, min(3, os.cpu_count() or 1))


def session_settings_sql() -> list[str]:
    """What every dpro-migrate session sets, whatever the role or database defaults say: no statement_timeout
    (a COPY or an index build may take minutes, and a cancelled verify would blame the data), a bounded wait
    for locks (a waiting ALTER or DROP queues every later query of the application on that table behind it),
    and row_security off: a table whose policies would hide rows from this role is an error, never a
    silently smaller table to verify, compare or write back (superusers and BYPASSRLS roles are unaffected;
    a FORCE'd table's owner is refused)."""
    return ["SET statement_timeout = 0", f"SET lock_timeout = {int(pg_lock_timeout_ms())}", "SET row_security = off"]


def connection_failure(exc: Exception) -> str:
    """libpq's own reason ("Connection refused", "password authentication failed for user ..."), then its hint;
    libpq puts the reason at the end of its first line, after the server it tried."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return "connection failed"
    reason = lines[0].rpartition(" failed: ")[2] if " failed: " in lines[0] else lines[0]
    reason = reason.removeprefix("FATAL:").strip()
    return reason + (f" ({' '.join(lines[1:])})" if lines[1:] else "")


def connect_postgres(conninfo: str, display: str) -> psycopg.Connection:
    """`display` is what messages may show: the URL without its password. The session is named
    `dpro-migrate` (pg_stat_activity.application_name) for the DBA."""
    try:
        # autocommit: every unit of work is an explicit `with conn.transaction()`, nothing left open by accident.
        conn = psycopg.connect(conninfo, connect_timeout=10, autocommit=True, application_name=APPLICATION_NAME)
    except psycopg.OperationalError as exc:
        raise BadInput(f"cannot connect to {display}: {connection_failure(exc)}") from None
    try:
        for statement in session_settings_sql():
            conn.execute(statement)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def locked_transaction(conn: psycopg.Connection, target: Target) -> Iterator[None]:
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            raise Locked(f"{target.display}: another dpro-migrate is at work on this database; nothing was changed")
        for statement in transaction_settings_sql():
            conn.execute(statement)
        yield


def claim_session(conn: psycopg.Connection, target: Target) -> None:
    """Take dpro-migrate's advisory lock for the session (released when it ends), or refuse: another
    dpro-migrate is at work on this database."""
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
        raise Locked(f"{target.display}: another dpro-migrate is at work on this database; nothing was changed")


@contextmanager
def claim_database(conn: psycopg.Connection, target: Target) -> Iterator[None]:
    """The same advisory lock as locked_transaction, held by the session from before the checks a verb makes
    ahead of its transaction (apply reads the ledger first) to its end, so that a second dpro-migrate
    refuses before it reads a state the first is changing. locked_transaction inside it is granted: a
    session that holds an advisory lock gets it again at any level."""
    claim_session(conn, target)
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def transaction_settings_sql() -> list[str]:
    """The settings of dpro-migrate's own transactions (SET LOCAL: they hold through a pooler that hands the
    session to someone else afterwards)."""
    return ["SET LOCAL TIME ZONE 'UTC'", "SET LOCAL maintenance_work_mem = '256MB'", "SET LOCAL statement_timeout = 0",
            f"SET LOCAL lock_timeout = {int(pg_lock_timeout_ms())}"]


def open_source(path: Path) -> sqlite3.Connection:
    conn = connect_readonly(path, any_thread=True)  # read by prefetched() in a thread, one user at a time
    conn.execute("BEGIN")  # one snapshot for the whole read
    return conn
