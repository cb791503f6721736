"""pg_dump backups of a PostgreSQL target, and bringing schemas back from them.

Taken with no secret in any command line (the password reaches pg_dump through its environment), private from
the first byte (created 0600 by dpro-migrate before pg_dump writes into it, and locked while it does, so that
the next run can tell a left-over file from one being written), and counted in the dump's own snapshot: the
rows reported are the rows the dump holds. A manifest beside the dump (`<dump>.json`) records those counts and
the dump's SHA-256, which a restore checks before anything changes.

A restore never hands the server a connection of pg_restore's: pg_restore only turns the archive into SQL
(`-f -`), which runs on dpro-migrate's own connection, inside the caller's transaction."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dpro_migrate import DOMAINS, __version__
from dpro_migrate.errors import BadInput
from dpro_migrate.safety import partial_files
from dpro_migrate.targets import Target

MAGIC = b"PGDMP"  # the first bytes of a custom-format archive


@dataclass
class PgBackup:
    """A pg_dump of the whole target database. `tables`: rows per table ("schema.table") of `schemas`, the
    domain schemas the dump was taken to keep (those apply replaces), counted in the dump's snapshot."""

    path: Path
    bytes: int
    tables: dict[str, int] = field(default_factory=dict)
    schemas: list[str] = field(default_factory=list)
    database_tables: int = 0  # every table the dump holds, the seven schemas' and any other's
    sha256: str = ""
    integrity: str = "pg_dump ok"
    left_overs: list[str] = field(default_factory=list)  # partial files of killed runs removed from the folder
    # "schema.table" -> its rows' fingerprint in the dump's snapshot (table_fingerprint): the replace compares it
    # again under its lock, so a row written between the dump and the drop is never dropped unsaved
    fingerprints: dict[str, str] = field(default_factory=dict)


def manifest_path(dump: Path) -> Path:
    return dump.with_name(dump.name + ".json")


def is_pg_dump(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def libpq_command(target: Target) -> tuple[str, dict[str, str]]:
    """(conninfo without its password, the environment with PGPASSWORD): how a libpq client program (pg_dump)
    is told where to connect without a secret in its argv. `sslpassword` has no environment variable: refused
    rather than shown."""
    params = {k: v for k, v in conninfo_to_dict(target.conninfo).items() if v is not None}
    if "sslpassword" in params:
        raise BadInput(f"{target.display}: sslpassword cannot be handed to pg_dump without showing it on its command "
                       "line; use a key without a passphrase or a service file (?service=NAME)")
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = password
    env["PGAPPNAME"] = "dpro-migrate (pg_dump)"
    return make_conninfo("", **params), env


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _child_of(parent: int) -> None:
    """In the child, before exec: files it creates are private, and it is killed when dpro-migrate dies."""
    os.umask(0o077)
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # dpro-migrate died before prctl took effect
            os._exit(1)


def remove_left_overs(directory: Path) -> list[Path]:
    """Partial files a killed dpro-migrate left behind: a `.dump.tmp` (or a backup's `.bak.tmp`) nobody holds
    locked any more."""
    return partial_files.remove_left_overs(directory)


TABLES_OF_SCHEMAS_SQL = """
SELECT n.nspname, c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = ANY(%s) ORDER BY 1, 2"""

_DATABASE_TABLES_SQL = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'"""


def table_fingerprint(conn, schema: str, table: str) -> tuple[int, str]:
    """(rows, fingerprint) of one table: the sum of each row's hash (order does not matter), so an insert, an
    update or a delete changes it."""
    count, digest = conn.execute(pgsql.SQL(
        # ROW(r.*): the whole row even when a column is named like the alias (a bare `r` would be that column)
        "SELECT count(*), coalesce(sum(('x' || substr(md5(ROW(r.*)::text), 1, 15))::bit(60)::bigint), 0)::text "
        "FROM {}.{} AS r").format(pgsql.Identifier(schema), pgsql.Identifier(table))).fetchone()
    return count, f"{count}:{digest}"


def pg_dump(target: Target, directory: Path, conn=None, schemas: Iterable[str] = ()) -> PgBackup:
    """A custom-format dump of the whole target database, written under a temporary name then renamed.

    With `conn` (dpro-migrate's own session, outside any transaction), the dump reads the snapshot of a
    REPEATABLE READ transaction on it (`pg_dump --snapshot`), in which the rows of `schemas` are counted:
    the counts are what the dump holds."""
    if not shutil.which("pg_dump"):
        raise BadInput("the target holds data and pg_dump is not installed to back it up first")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    left_overs = remove_left_overs(directory)
    conninfo, env = libpq_command(target)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"pg-{stamp}.dump"
    tmp = final.with_name(final.name + ".tmp")
    schemas = [s for s in DOMAINS if s in set(schemas)]
    # Created here, 0600, and locked for as long as it is written: pg_dump opens it by name and truncates it,
    # keeping its mode; a file left by a killed run is unlocked, and the next run removes it.
    fd = partial_files.create_locked(tmp)
    try:
        counted: dict[str, int] = {}
        fingerprints: dict[str, str] = {}
        database_tables = 0
        if conn is None:
            _run_pg_dump(target, conninfo, env, tmp, None)
        else:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")  # open while pg_dump runs
                snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
                for schema, table, _ in conn.execute(TABLES_OF_SCHEMAS_SQL, (schemas,)).fetchall():
                    counted[f"{schema}.{table}"], fingerprints[f"{schema}.{table}"] = table_fingerprint(conn, schema, table)
                database_tables = conn.execute(_DATABASE_TABLES_SQL).fetchone()[0]
                _run_pg_dump(target, conninfo, env, tmp, snapshot)
        digest = _sha256(tmp)
        os.fsync(fd)
        tmp.replace(final)
    finally:
        os.close(fd)
        tmp.unlink(missing_ok=True)
    backup = PgBackup(final, final.stat().st_size, counted, schemas, database_tables, digest,
                      left_overs=[str(p) for p in left_overs], fingerprints=fingerprints)
    _write_manifest(backup, target)
    return backup


def _run_pg_dump(target: Target, conninfo: str, env: dict[str, str], path: Path, snapshot: str | None) -> None:
    parent = os.getpid()
    args = ["pg_dump", "-Fc", "-f", str(path), *(["--snapshot", snapshot] if snapshot else []), "-d", conninfo]
    done = subprocess.run(args, capture_output=True, text=True, env=env, preexec_fn=lambda: _child_of(parent))
    if done.returncode:
        raise BadInput(f"pg_dump of {target.display} failed: "
                       f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f'exit {done.returncode}'}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _write_manifest(backup: PgBackup, target: Target) -> None:
    record = {"format": 1, "tool_version": __version__, "target": target.display,
              "taken_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sha256": backup.sha256,
              "bytes": backup.bytes, "schemas": backup.schemas, "tables": backup.tables,
              "database_tables": backup.database_tables}
    path = manifest_path(backup.path)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


# --- reading a dump back ---------------------------------------------------------------------------


@dataclass
class DumpContents:
    path: Path
    schemas: list[str]  # the seven domain schemas the dump holds
    manifest: dict | None  # what pg_dump was asked to keep, when dpro-migrate took it


def check_dump(dump: Path, schemas: Iterable[str] | None = None) -> DumpContents:
    """A dump is usable before anything changes: pg_restore reads its table of contents, its SHA-256 is the
    one its manifest recorded (when it has one: a dump made by hand has none), and it holds the schemas asked
    for (None: whichever of the seven it holds)."""
    dump = Path(dump)
    if not dump.is_file():
        raise BadInput(f"{dump}: no such file; nothing was changed")
    if not is_pg_dump(dump):
        raise BadInput(f"{dump}: is not a pg_dump archive (custom format); nothing was changed")
    if not shutil.which("pg_restore"):
        raise BadInput("pg_restore is not installed: it is needed to read the pg_dump backup; nothing was changed")
    manifest = None
    if manifest_path(dump).exists():
        try:
            manifest = json.loads(manifest_path(dump).read_text())
        except (OSError, ValueError) as exc:
            raise BadInput(f"{manifest_path(dump)}: cannot be read ({exc}); nothing was changed") from None
        if manifest.get("sha256") and manifest["sha256"] != _sha256(dump):
            raise BadInput(f"{dump}: its content is not what pg_dump wrote (SHA-256 differs from "
                           f"{manifest_path(dump).name}); nothing was changed")
    held = [s for s in DOMAINS if s in _schema_entries(_toc(dump))]
    wanted = held if schemas is None else list(schemas)
    missing = [s for s in wanted if s not in held]
    if missing:
        raise BadInput(f"{dump}: holds no schema {', '.join(missing)}; nothing was changed")
    return DumpContents(dump, wanted, manifest)


def _toc(dump: Path) -> list[str]:
    done = subprocess.run(["pg_restore", "-l", str(dump)], capture_output=True, text=True)
    if done.returncode:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise BadInput(f"{dump}: pg_restore cannot read it ({reason}); nothing was changed")
    return [line for line in done.stdout.splitlines() if line and not line.startswith(";")]


_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<rest>.*)$")


def _schema_entries(toc: list[str]) -> set[str]:
    found = set()
    for line in toc:
        m = _ENTRY.match(line)
        if m and m["rest"].startswith("SCHEMA - "):
            found.add(m["rest"].split(" ")[2])
    return found


def entries_of(toc: list[str], schemas: list[str]) -> list[str]:
    """The table-of-contents lines that make up `schemas`: each schema itself (its comment, its grants) and
    every entry in it. Entry types are upper case and the seven names lower case, which is what tells the
    namespace field from a multi-word type (`TABLE DATA iam users`)."""
    names = "|".join(re.escape(s) for s in schemas)
    own = re.compile(rf"^(?:SCHEMA - (?:{names})|(?:COMMENT|ACL|SECURITY LABEL) - SCHEMA (?:{names})) ")
    inside = re.compile(rf"^[A-Z][A-Z ]*? (?:{names}) ")
    # the database's extensions (pg_dump writes CREATE EXTENSION IF NOT EXISTS): the schemas' objects may use
    # them (a trigram index its operator class), and a rollback may have dropped one apply created since. Not
    # their comments: COMMENT ON EXTENSION needs its owner, and one that exists is left as it is.
    extension = re.compile(r"^EXTENSION - (?!plpgsql )")
    return [line for line in toc if (m := _ENTRY.match(line))
            and (own.match(m["rest"]) or inside.match(m["rest"]) or extension.match(m["rest"]))]


# --- running pg_restore's SQL on dpro-migrate's connection ------------------------------------------

_COPY = re.compile(rb"^COPY (?P<table>.+?) (?:\(.*\) )?FROM stdin;\n$")
_SKIPPED = (b"SET lock_timeout", b"SET statement_timeout", b"SET idle_in_transaction_session_timeout")


def restore_schemas(cur, dump: Path, schemas: list[str]) -> dict[tuple[str, str], int]:
    """Create `schemas` as the dump holds them, on `cur` (inside the caller's transaction: all of it or none).
    Returns the rows each table's COPY carried ((schema, table) -> rows)."""
    entries = entries_of(_toc(dump), schemas)
    with tempfile.NamedTemporaryFile("w", prefix="dpro-migrate-", suffix=".list") as listing:
        listing.write("\n".join(entries) + "\n")
        listing.flush()
        proc = subprocess.Popen(["pg_restore", "-L", listing.name, "-f", "-", str(dump)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=lambda parent=os.getpid(): _child_of(parent))
        try:
            rows = _run_script(cur, proc.stdout)
            err = proc.stderr.read().decode(errors="replace")
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if proc.returncode:
            reason = err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
            raise BadInput(f"{dump}: pg_restore failed ({reason})")
    cur.execute("RESET search_path")  # pg_restore's script empties it for the session
    return rows


_DATA_HEADER = re.compile(rb"^-- Data for Name: (?P<name>.*); Type: TABLE DATA; Schema: (?P<schema>.*); Owner: ")


def _run_script(cur, lines: Iterator[bytes]) -> dict[tuple[str, str], int]:
    """pg_restore's SQL: statements run as one simple-query batch up to each COPY, whose rows follow it up to
    `\\.`; psql's meta-commands (`\\restrict`, `\\unrestrict`) are psql's business and skipped. A COPY is
    recognised only right after the `Type: TABLE DATA` header pg_restore writes before it, which names its table."""
    rows: dict[tuple[str, str], int] = {}
    batch: list[bytes] = []
    data_for: tuple[str, str] | None = None

    def flush() -> None:
        text = b"".join(batch).strip()
        if text:
            cur.execute(text)
        batch.clear()

    for line in lines:
        if header := _DATA_HEADER.match(line):
            data_for = (header["schema"].decode(), header["name"].decode())
        elif data_for and _COPY.match(line):
            flush()
            n, block = 0, []
            with cur.copy(line.decode().rstrip(";\n")) as copy:
                for data in lines:
                    if data == b"\\.\n":
                        break
                    block.append(data)
                    n += 1
                    if len(block) == 4096:
                        copy.write(b"".join(block))
                        block.clear()
                if block:
                    copy.write(b"".join(block))
            rows[data_for] = n
            data_for = None
            continue
        elif line.strip() and not line.startswith(b"--"):
            data_for = None
        if line.startswith(b"\\"):
            flush()
            if not line.startswith((b"\\restrict", b"\\unrestrict")):
                raise BadInput(f"pg_restore wrote a psql command dpro-migrate does not run: {line[:40]!r}")
            continue
        if line.startswith(_SKIPPED):  # dpro-migrate's own settings stay (its lock_timeout above all)
            continue
        batch.append(line)
    flush()
    return rows
