"""Read a legacy SQLite file (sqlite_master and PRAGMAs) into a model, refusing files that are not usable."""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from dpro_migrate.errors import BadInput
from dpro_migrate.sqlnames import quote_ident

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass
class LegacyColumn:
    name: str
    decl_type: str
    notnull: bool
    default: str | None
    pk: int


@dataclass
class LegacyTable:
    name: str
    sql: str
    columns: list[LegacyColumn]
    rows: int

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass
class SchemaObject:
    """An index, trigger or view as sqlite_master holds it."""

    type: str
    name: str
    table: str
    sql: str | None


@dataclass
class LegacyDatabase:
    path: Path
    tables: dict[str, LegacyTable]
    objects: list[SchemaObject]
    sequences: dict[str, int]
    fingerprint: str
    page_size: int = 0
    page_count: int = 0
    user_version: int = 0
    journal_mode: str = ""
    extra: dict = field(default_factory=dict)

    def objects_on(self, table: str) -> list[SchemaObject]:
        return [o for o in self.objects if o.table == table]

    def object_names(self, type_: str) -> list[str]:
        return [o.name for o in self.objects if o.type == type_]


def is_symlink_loop(path: Path) -> bool:
    """Whether path names a symbolic link that leads back to itself (Path.exists() just says False)."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def check_sqlite_file(path: Path) -> None:
    """Refuse, with one line, anything that is not an intact SQLite file. Reads the header only."""
    if not path.exists():
        raise BadInput(f"{path}: is a symbolic link loop" if is_symlink_loop(path) else f"{path}: no such file")
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a SQLite database file")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{path}: cannot be read (permission denied)")
    size = path.stat().st_size
    if size == 0:
        raise BadInput(f"{path}: is empty, not a SQLite database")
    with path.open("rb") as f:
        header = f.read(100)
    if not header.startswith(SQLITE_HEADER):
        raise BadInput(f"{path}: is not a SQLite database (no SQLite header)")
    if len(header) < 100:
        raise BadInput(f"{path}: is truncated (shorter than a SQLite header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    change_counter = header[24:28]
    valid_for = header[92:96]
    if page_size < 512 or page_size & (page_size - 1):
        raise BadInput(f"{path}: is corrupt (invalid page size {page_size})")
    # The in-header page count is only trustworthy when it was written by the same change as the counter.
    if page_count and valid_for == change_counter and size < page_size * page_count:
        raise BadInput(
            f"{path}: is truncated ({size} bytes, the header promises {page_size * page_count})"
        )
    if size % page_size:
        raise BadInput(f"{path}: is truncated or corrupt (size is not a multiple of the page size)")


def connect_readonly(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """A read-only connection. A file a crashed writer left with a hot journal is first recovered the way
    SQLite recovers it (its unfinished transaction rolled back), which a read-only connection cannot do."""
    check_sqlite_file(path)
    uri = path.resolve().as_uri() + "?mode=ro"
    for attempt in (1, 2):
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=not any_thread)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            if attempt == 1 and "readonly" in str(exc) and _recover_hot_journal(path):
                continue
            raise BadInput(f"{path}: is not a usable SQLite database ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"{path}: is not a usable SQLite database ({exc})") from None
    raise AssertionError("unreachable")


def _recover_hot_journal(path: Path) -> bool:
    """Open once with write access so SQLite rolls back an interrupted transaction. Never called while this
    process holds a lock on the file (closing any connection would release it: POSIX locks are per process)."""
    journal = path.with_name(path.name + "-journal")
    if not journal.exists() or not os.access(path, os.W_OK):
        return False
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()
    return True


def read_database(conn: sqlite3.Connection, path: Path) -> LegacyDatabase:
    """Model every table (with row counts), index, trigger and view of the main schema."""
    try:
        master = conn.execute(
            "SELECT type, name, tbl_name, sql FROM main.sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
        tables: dict[str, LegacyTable] = {}
        objects: list[SchemaObject] = []
        for type_, name, tbl_name, sql in master:
            if type_ == "table":
                cols = [
                    LegacyColumn(r[1], r[2] or "", bool(r[3]), r[4], r[5])
                    for r in conn.execute(f"PRAGMA main.table_xinfo({quote_ident(name)})")
                    if r[6] == 0  # hidden/generated columns cannot be inserted into
                ]
                rows = conn.execute(f"SELECT count(*) FROM main.{quote_ident(name)}").fetchone()[0]
                tables[name] = LegacyTable(name, sql, cols, rows)
            else:
                objects.append(SchemaObject(type_, name, tbl_name, sql))
        sequences = {}
        if conn.execute(
            "SELECT 1 FROM main.sqlite_master WHERE name = 'sqlite_sequence'"
        ).fetchone():
            sequences = dict(conn.execute("SELECT name, seq FROM main.sqlite_sequence"))
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        user_version = conn.execute("PRAGMA user_version").fetchone()[0]
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path}: cannot be read as a SQLite database ({exc})") from None
    return LegacyDatabase(
        path=path,
        tables=tables,
        objects=objects,
        sequences=sequences,
        fingerprint=fingerprint(master),
        page_size=page_size,
        page_count=page_count,
        user_version=user_version,
        journal_mode=journal_mode,
    )


def fingerprint(master_rows) -> str:
    """A digest of the schema (not the data): a plan is only valid for the schema it was made from."""
    digest = hashlib.sha256()
    for row in sorted(master_rows, key=lambda r: (r[0], r[1])):
        digest.update(repr(tuple(row)).encode())
    return "sha256:" + digest.hexdigest()


def schema_fingerprint(conn: sqlite3.Connection) -> str:
    return fingerprint(
        conn.execute(
            "SELECT type, name, tbl_name, sql FROM main.sqlite_master WHERE name NOT LIKE 'sqlite_%'"
        ).fetchall()
    )


def open_legacy(path: str | os.PathLike) -> LegacyDatabase:
    path = Path(path)
    conn = connect_readonly(path)
    try:
        return read_database(conn, path)
    finally:
        conn.close()
