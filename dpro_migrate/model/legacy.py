"""Read a legacy SQLite file (sqlite_master and PRAGMAs) into a model, refusing files that are not usable."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from dpro_migrate.errors import BadInput, Locked
from dpro_migrate.sqlnames import quote_ident

SQLITE_HEADER = b"SQLite format 3\x00"
STAT_TABLES = ("sqlite_stat1", "sqlite_stat4")  # ANALYZE's statistics (stat4 only in builds that enable it)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """A name as SQLite compares it: case-insensitively, for ASCII letters only (Messages is messages, Ä is not ä)."""
    return name.translate(_ASCII_LOWER)


def same_name(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and fold(a) == fold(b)


class TablesByName(dict):
    """Tables by their name as the file spells it, looked up the way SQLite looks names up (case-insensitively):
    `"messages" in tables` is true for a table created as Messages, and tables["messages"] is that table."""

    def _key(self, name):
        if isinstance(name, str) and not dict.__contains__(self, name):
            return next((k for k in self if fold(k) == fold(name)), name)
        return name

    def __contains__(self, name) -> bool:
        return dict.__contains__(self, self._key(name))

    def __getitem__(self, name):
        return dict.__getitem__(self, self._key(name))

    def get(self, name, default=None):
        return dict.get(self, self._key(name), default)


@dataclass
class LegacyColumn:
    name: str
    decl_type: str
    notnull: bool
    default: str | None
    pk: int


@dataclass
class GeneratedColumn:
    """A GENERATED ALWAYS AS column, as the table's SQL declares it (its expression is SQLite's own text)."""

    name: str
    decl_type: str
    expression: str  # between the parentheses of AS (...)
    stored: bool

    def definition(self) -> str:
        """The declaration after the column's name, for another table with the same columns."""
        return (f"{self.decl_type} GENERATED ALWAYS AS ({self.expression}) {'STORED' if self.stored else 'VIRTUAL'}"
                .strip())


@dataclass
class LegacyTable:
    name: str
    sql: str
    columns: list[LegacyColumn]  # the columns rows can be written to (generated ones are not among them)
    rows: int
    kind: str = "table"  # table | virtual | shadow (a virtual table's storage), as PRAGMA table_list says
    without_rowid: bool = False
    strict: bool = False
    rowid_alias: bool = True  # its primary key is the rowid (a single INTEGER PRIMARY KEY column)
    generated: list[GeneratedColumn] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # tables its foreign keys name, as written

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> LegacyColumn | None:
        return next((c for c in self.columns if same_name(c.name, name)), None)


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

    stat_tables: list[str] = field(default_factory=list)  # those of STAT_TABLES the file holds

    def __post_init__(self):
        if not isinstance(self.tables, TablesByName):
            self.tables = TablesByName(self.tables)

    def table(self, name: str) -> LegacyTable | None:
        """The table SQLite would find under this name (case-insensitively), or None."""
        return self.tables.get(name)

    def objects_on(self, table: str) -> list[SchemaObject]:
        return [o for o in self.objects if same_name(o.table, table)]

    def object_names(self, type_: str) -> list[str]:
        return [o.name for o in self.objects if o.type == type_]


def is_symlink_loop(path: Path) -> bool:
    """Whether path names a symbolic link that leads back to itself (Path.exists() just says False)."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def is_busy(exc: BaseException | None) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds a lock (not a damaged or unreadable file)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def check_file_stat(path: Path) -> None:
    """Refuse, with one line, what cannot be a SQLite file by its directory entry alone (never opened)."""
    if not path.exists():
        raise BadInput(f"{path}: is a symbolic link loop" if is_symlink_loop(path) else f"{path}: no such file")
    if path.is_dir():
        raise BadInput(f"{path}: is a directory, not a SQLite database file")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{path}: cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: is empty, not a SQLite database")


def check_sqlite_file(path: Path) -> None:
    """Refuse, with one line, anything that is not an intact SQLite file. Reads the header only."""
    check_file_stat(path)
    size = path.stat().st_size
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
            if is_busy(exc):
                raise Locked(f"{path}: is locked by another connection (a writer); nothing was changed") from None
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
        tables: dict[str, LegacyTable] = TablesByName()
        objects: list[SchemaObject] = []
        listed = {r[1]: r for r in conn.execute("PRAGMA main.table_list")}
        for type_, name, tbl_name, sql in master:
            if type_ == "table":
                tables[name] = _read_table(conn, name, sql, listed.get(name))
            else:
                objects.append(SchemaObject(type_, name, tbl_name, sql))
        stat_tables = [r[0] for r in conn.execute(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name IN ('sqlite_stat1', 'sqlite_stat4') "
            "ORDER BY name")]
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
        if is_busy(exc):
            raise Locked(f"{path}: is locked by another connection (a writer); nothing was changed") from None
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
        stat_tables=stat_tables,
    )


def _read_table(conn: sqlite3.Connection, name: str, sql: str, listed: tuple | None) -> LegacyTable:
    quoted = quote_ident(name)
    xinfo = conn.execute(f"PRAGMA main.table_xinfo({quoted})").fetchall()
    # hidden 0: ordinary; 1: a virtual table's hidden column; 2, 3: generated (VIRTUAL, STORED)
    cols = [LegacyColumn(r[1], r[2] or "", bool(r[3]), r[4], r[5]) for r in xinfo if r[6] == 0]
    expressions = generated_expressions(sql or "")
    generated = [GeneratedColumn(r[1], r[2] or "", expressions.get(fold(r[1]), ""), r[6] == 3)
                 for r in xinfo if r[6] in (2, 3)]
    rows = conn.execute(f"SELECT count(*) FROM main.{quoted}").fetchone()[0]
    kind, without_rowid, strict = (listed[2], bool(listed[4]), bool(listed[5])) if listed else ("table", False, False)
    pk = [c for c in cols if c.pk]
    # INTEGER PRIMARY KEY DESC and WITHOUT ROWID keep the key in an index of its own: no rowid alias then
    keyed_by_index = any(r[3] == "pk" for r in conn.execute(f"PRAGMA main.index_list({quoted})"))
    alias = (kind == "table" and not without_rowid and len(pk) == 1 and fold(pk[0].decl_type) == "integer"
             and not keyed_by_index)
    references = list(dict.fromkeys(r[2] for r in conn.execute(f"PRAGMA main.foreign_key_list({quoted})")))
    return LegacyTable(name, sql, cols, rows, kind, without_rowid, strict, alias, generated, references)


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


# --- the column definitions of a CREATE TABLE, as written ------------------------------------------


def _skip(sql: str, i: int) -> int:
    """The index after a quoted name or string, or a comment, that starts at i (i itself if none does)."""
    ch = sql[i]
    if ch in "'\"`[":
        close = "]" if ch == "[" else ch
        j = i + 1
        while j < len(sql):
            if sql[j] == close:
                if close != "]" and sql.startswith(close * 2, j):
                    j += 2
                    continue
                return j + 1
            j += 1
        return len(sql)
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return len(sql) if end < 0 else end + 2
    return i


def _tokens(sql: str):
    """(index, character) of every character outside quotes and comments."""
    i = 0
    while i < len(sql):
        j = _skip(sql, i)
        if j != i:
            i = j
            continue
        yield i, sql[i]
        i += 1


def _parenthesised(sql: str, start: int) -> int:
    """The index of the parenthesis that closes the one at `start`."""
    depth = 0
    for i, ch in _tokens(sql[start:]):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return start + i
    return len(sql)


def _column_definitions(sql: str) -> list[str]:
    """The parts of CREATE TABLE t (...) between top-level commas: column definitions and table constraints."""
    open_ = next((i for i, ch in _tokens(sql) if ch == "("), None)
    if open_ is None:
        return []
    close = _parenthesised(sql, open_)
    body = sql[open_ + 1:close]
    parts, depth, start = [], 0, 0
    for i, ch in _tokens(body):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    return parts + [body[start:]]


_NAME = re.compile(r"""\s*(?:"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|\[([^\]]*)\]|'((?:[^']|'')*)'|([^\s(]+))""")


def generated_expressions(sql: str) -> dict[str, str]:
    """Folded column name -> the text of its AS (...) expression, for each generated column of the table."""
    out = {}
    for part in _column_definitions(sql):
        m = _NAME.match(part)
        if not m:
            continue
        quoted = next((g for g in m.groups()[:4] if g is not None), None)
        name = (quoted.replace('""', '"').replace("``", "`").replace("''", "'") if quoted is not None
                else m.group(5))
        rest = part[m.end():]
        words = list(_tokens(rest))  # outside strings and comments: an 'AS (' in a CHECK's string is not it
        at = re.search(r"\bAS\s*\(", "".join(ch for _, ch in words).upper())
        if at is None:  # not a generated column (only those are looked up)
            continue
        start = words[at.end() - 1][0]  # the opening parenthesis, in `rest`
        out[fold(name)] = rest[start + 1:_parenthesised(rest, start)]
    return out
