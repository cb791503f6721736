"""Connection policy, in one place: how dpro-migrate opens the SQLite source, a SQLite file it writes,
and a PostgreSQL target, and how long it waits for locks."""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg

from dpro_migrate.config import load_settings
from dpro_migrate.errors import BadInput
from dpro_migrate.model.legacy import check_sqlite_file, connect_readonly
from dpro_migrate.targets import Target

NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, APFS)
LOCK_KEY = 0x6470726F  # "dpro": one dpro-migrate at a time per target database
APPLICATION_NAME = "dpro-migrate"  # pg_stat_activity.application_name of every session dpro-migrate opens


def lock_timeout_ms() -> int:
    """How long to wait for another writer (the application, another dpro-migrate) before refusing."""
    return load_settings().busy_timeout_ms


def open_for_write(path: Path) -> sqlite3.Connection:
    check_sqlite_file(path)
    busy_timeout_ms = lock_timeout_ms()
    if len(os.fsencode(path.name + "-journal")) > NAME_MAX:
        raise BadInput(f"{path}: the name is too long for the -journal file SQLite writes beside it "
                       f"(at most {NAME_MAX - len('-journal')} bytes); rename the file")
    if not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222:  # root too respects a chmod a-w
        raise BadInput(f"{path}: is read-only; dpro-migrate needs to write it")
    if not os.access(path.resolve().parent, os.W_OK):
        raise BadInput(f"{path.resolve().parent}: is read-only; SQLite needs to write its journal there")
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Room for the sorts of index builds and the copies: bounded, so memory stays flat with size.
        conn.execute("PRAGMA cache_size = -40000")
        # Builds that overwrite freed pages with zeros (Debian's) would write and journal every page of the
        # dropped tables; FAST zeroes only what is written anyway. The rows of a dropped table live on in the
        # table that replaced it, so no deleted content is left behind that the file does not still hold.
        conn.execute("PRAGMA secure_delete = FAST")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path}: is not a usable SQLite database ({exc})") from None
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    """Foreign keys off (it cannot change inside a transaction, and with it on DROP TABLE cascades),
    BEGIN IMMEDIATE for the write lock, and everything undone unless the block ends cleanly."""
    fk_before = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise BadInput(f"{path}: is locked by another writer ({exc}); nothing was changed") from None
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(fk_before)}")


def connect(target: Target) -> psycopg.Connection:
    return connect_postgres(target.conninfo, target.display)


def pg_lock_timeout_ms() -> int:
    """How long a statement of dpro-migrate waits for a lock another session holds (PostgreSQL lock_timeout)."""
    return load_settings().pg_lock_timeout_ms


def session_settings_sql() -> list[str]:
    """What every dpro-migrate session sets, whatever the role or database defaults say: no statement_timeout
    (a COPY or an index build may take minutes, and a cancelled verify would blame the data), a bounded wait
    for locks (a waiting ALTER or DROP queues every later query of the application on that table behind it),
    and row_security off: a table whose policies would hide rows from this role is an error, never a
    silently smaller table to verify, compare or write back (superusers and BYPASSRLS roles are unaffected;
    a FORCE'd table's owner is refused)."""
    return ["SET statement_timeout = 0", f"SET lock_timeout = {int(pg_lock_timeout_ms())}", "SET row_security = off"]


def connect_postgres(conninfo: str, display: str) -> psycopg.Connection:
    """`display` is what messages may show: the URL without its password. The session is named
    `dpro-migrate` (pg_stat_activity.application_name) for the DBA."""
    try:
        # autocommit: every unit of work is an explicit `with conn.transaction()`, nothing left open by accident.
        conn = psycopg.connect(conninfo, connect_timeout=10, autocommit=True, application_name=APPLICATION_NAME)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
        raise BadInput(f"cannot connect to {display}: {reason}") from None
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
            raise BadInput(f"{target.display}: another dpro-migrate is working on this database; nothing was changed")
        for statement in transaction_settings_sql():
            conn.execute(statement)
        yield


def transaction_settings_sql() -> list[str]:
    """The settings of dpro-migrate's own transactions (SET LOCAL: they hold through a pooler that hands the
    session to someone else afterwards)."""
    return ["SET LOCAL TIME ZONE 'UTC'", "SET LOCAL maintenance_work_mem = '256MB'", "SET LOCAL statement_timeout = 0",
            f"SET LOCAL lock_timeout = {int(pg_lock_timeout_ms())}"]


def open_source(path: Path) -> sqlite3.Connection:
    conn = connect_readonly(path, any_thread=True)  # read by prefetched() in a thread, one user at a time
    conn.execute("BEGIN")  # one snapshot for the whole read
    return conn
