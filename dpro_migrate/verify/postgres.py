"""Prove the move on PostgreSQL: the source rows, converted as apply converted them, compared with the domain
tables: in the server (loaded into a temporary table), or, on a read-only hot standby, streamed from both sides
in id order and merge-joined here."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import datetime
from decimal import Decimal
from itertools import chain, groupby
from operator import itemgetter
from pathlib import Path
from typing import Callable, Iterator

import psycopg

import dpro_migrate.safety.ledger as ledger
from dpro_migrate.db.connections import claim_session, connect, open_source
from dpro_migrate.db.pgerrors import classify
from dpro_migrate.db.pgcopy import copy_into, prefetched, stream_lines
from dpro_migrate.dialects import POSTGRES, get_dialect, table_sql
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE
from dpro_migrate.plan.archived import rows_with_archive_sql
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.operations import CopyRows, CreateTable, QuarantineRows
from dpro_migrate.plan.preflight import REFUSED, SETUP_SQL
from dpro_migrate.sqlnames import quote_ident
from dpro_migrate.targets import Target
from dpro_migrate.types import (BIGINT, BOOLEAN, BYTEA, DOUBLE, JSONB, NUMERIC, REFUSED_FIELD, TEXT, TIMESTAMPTZ,
                                type_class_of_pg, varchar_length)
from dpro_migrate.verify.report import (SAMPLE, Check, MoveCount, VerifyReport, accounting_check, move_check,
                                         promises_check, source_since_snapshot)

DIALECT = get_dialect(POSTGRES)


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def has_ledger(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table_sql(LEDGER_TABLE, POSTGRES),)).fetchone()[0]


def read_ledger(target: Target, *, claim: bool = False):
    """(connection, the last apply's ledger entry or None). `claim`: first take dpro-migrate's lock for the
    session, so that a verb that changes the database never reads a state another dpro-migrate is changing."""
    conn = connect(target)
    try:
        if claim:
            claim_session(conn, target)
        if not has_ledger(conn):
            return conn, None
        return conn, ledger.latest_apply(ledger.read_entries(conn, POSTGRES))
    except BaseException:
        conn.close()
        raise


def load_source_rows(cur, src: sqlite3.Connection, move: CopyRows, temp: str) -> None:
    """The source rows of one move, converted exactly as apply converts them, in a temporary table."""
    cur.execute(f"DROP TABLE IF EXISTS {temp}")
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in move.types.items())
    cur.execute(f"CREATE TEMP TABLE {temp} ({cols}) ON COMMIT DROP")
    try:
        copy_into(cur, DIALECT.copy_statement(temp, move.written_columns), prefetched(stream_lines(src, move.source_sql)))
    except (psycopg.DataError, psycopg.IntegrityError) as exc:  # the source changed since apply, into values apply
        # would have refused; any other failure (a lost connection, a cancel) is said as what it is by the caller
        raise ChecksFailed(f"rows of {move.legacy} in the source no longer convert as apply converted them "
                           f"(the file changed after apply?): {first_line(exc)}") from None
    cur.execute(f"CREATE INDEX ON {temp} (\"id\")")
    cur.execute(f"ANALYZE {temp}")


def rows_of(move: CopyRows, archived: set[str]) -> str:
    """The domain table of a move, with its archive's rows when it has one."""
    if move.target in archived:
        return rows_with_archive_sql(move.target, move.columns, POSTGRES)
    return table_sql(move.target, POSTGRES)


def compare_move(cur, move: CopyRows, archived: set[str], apply_xid: str | None) -> tuple[MoveCount, list]:
    """One move, the snapshot's rows (in _dpro_source) against the domain table, in one join. A row that
    differs and still carries apply's transaction id (xmin) is one apply wrote wrongly; one with another
    xmin was written after the cutover (an UPDATE writes a new row version). Without a recorded id (an
    apply by an older dpro-migrate) every difference counts as apply's."""
    target = rows_of(move, archived)
    with_xmin = (rows_with_archive_sql(move.target, move.columns, POSTGRES, also="xmin AS dpro_xmin")
                 if move.target in archived else f"(SELECT *, xmin AS dpro_xmin FROM {target})")
    left = ", ".join(f"s.{quote_ident(c)}" for c in move.columns)
    right = ", ".join(f"t.{quote_ident(c)}" for c in move.columns)
    joined = f"FROM _dpro_source s LEFT JOIN {with_xmin} t ON t.\"id\" = s.\"id\""
    differs = f"t.\"id\" IS NOT NULL AND ({left}) IS DISTINCT FROM ({right})"
    by_apply = f"t.dpro_xmin = {_xid(apply_xid)}" if apply_xid else "true"
    wrong = f"({differs} AND {by_apply})"
    source_rows, found, bad, changed = cur.execute(
        f"SELECT count(*), count(t.\"id\"), count(*) FILTER (WHERE {wrong}), "
        f"count(*) FILTER (WHERE {differs} AND NOT {wrong}) {joined}").fetchone()
    sample = [r[0] for r in cur.execute(f"SELECT s.\"id\" {joined} WHERE {wrong} ORDER BY 1 LIMIT {SAMPLE}")] if bad else []
    added = cur.execute(f"SELECT count(*) FROM {target} t").fetchone()[0] - found
    deleted = source_rows - found
    return MoveCount(move.legacy, move.target, source_rows, found - bad - changed, bad, added, changed, deleted), sample


def _xid(xid: str) -> str:
    return f"{int(xid)}::text::xid"


def open_source_as_applied(cur, plan: Plan, path: Path | None = None) -> sqlite3.Connection:
    """The source (or the snapshot of it apply loaded: `path`), with the rows apply quarantined marked again
    (read back from system.quarantine), so the plan's source queries select exactly the rows apply moved."""
    src = open_source(path or Path(plan.source))
    for stmt in SETUP_SQL:
        src.execute(stmt)
    if plan.of_type(QuarantineRows):
        rows = cur.execute(f"SELECT source_table, source_pk, rule FROM {table_sql(QUARANTINE_TABLE, POSTGRES)}").fetchall()
        src.executemany(f"INSERT INTO {REFUSED} VALUES (?, ?, ?)", rows)
    return src


def verify_postgres(target: Target, *, strict: bool = False, streamed: bool | None = None) -> VerifyReport:
    """Against the snapshot apply loaded (the source as it was then). Changes made in PostgreSQL since the
    cutover are reported as such, and fail only with `strict`; what apply wrote differently never passes.
    `streamed`: compare without writing anything (stream_compare_move); None: so on a server in recovery."""
    started = time.monotonic()
    try:
        conn, entry = read_ledger(target)
    except psycopg.Error as exc:
        raise classify(exc, None, display=target.display, work="verify", changes=False) from None
    try:
        if entry is None:
            raise BadInput(f"{target.display}: is not migrated (no ledger); nothing to verify")
        plan = entry.plan
        snapshot = Path(entry.state["snapshot"]) if entry.state.get("snapshot") else None
        if snapshot and not snapshot.exists():
            raise BadInput(f"the snapshot apply loaded is gone: {snapshot}; verify compares with it")
        if streamed is None:
            streamed = in_recovery(conn)
        checks, counts = [], []
        with conn.transaction(), conn.cursor() as cur:
            if streamed:
                cur.execute("SET TRANSACTION READ ONLY")
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            src = open_source_as_applied(cur, plan, snapshot)
            try:
                quarantined = dict(src.execute(
                    f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
                for move in plan.of_type(CopyRows):
                    began = time.monotonic()
                    if streamed:
                        count, sample = stream_compare_move(conn, src, move, plan.archived_tables(),
                                                            entry.state.get("xid"))
                    else:
                        load_source_rows(cur, src, move, "_dpro_source")
                        count, sample = compare_move(cur, move, plan.archived_tables(), entry.state.get("xid"))
                    count.seconds = time.monotonic() - began
                    counts.append(count)
                    checks.append(move_check(f"rows {move.name}", count, sample, strict))
                checks.append(accounting_check(counts, quarantined, lambda name: count_rows(src, name)))
            finally:
                src.close()
            checks.append(promises_check(plan, DIALECT.catalog(cur)))
            partitioned = [op.table for op in plan.of_type(CreateTable) if op.partition_months is not None]
            if partitioned:
                checks.append(default_partition_check(cur, partitioned))
        if snapshot:
            checks.append(source_since_snapshot(Path(plan.source), snapshot, list(plan.legacy_tables)))
        return VerifyReport(str(plan.source), entry.backup, checks, counts, seconds=time.monotonic() - started,
                            quarantined=quarantined, database=target.display)
    except psycopg.errors.SerializationFailure as exc:  # a standby cancels a read that holds up its replay
        raise BadInput(f"{target.display}: the server cancelled verify's read ({first_line(exc)}); run verify again, "
                       "or let the standby wait for it (hot_standby_feedback, max_standby_streaming_delay)") from None
    except psycopg.Error as exc:  # a lost connection, a cancel, a missing privilege: said as what happened
        raise classify(exc, conn, display=target.display, work="verify", changes=False) from None
    finally:
        conn.close()


def default_partition_check(cur, tables: list[str]) -> Check:
    """Rows sitting in a DEFAULT partition (--with partition-by-month): reported, not failed. They are the rows of
    months no partition covers; while DEFAULT holds them their month's partition cannot be created:
    `dpro-migrate partitions` makes it and moves them."""
    found = {}
    for qualified in tables:
        row = cur.execute(
            "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
            (table_sql(qualified, POSTGRES),)).fetchone()
        if row:
            n = cur.execute(f"SELECT count(*) FROM {row[0]}").fetchone()[0]
            if n:
                found[row[0]] = n
    detail = ("none" if not found else ", ".join(f"{t} {n} rows" for t, n in found.items())
              + ": run `dpro-migrate partitions` to give their months partitions and move them there")
    return Check("rows in DEFAULT partitions", True, detail, [found] if found else [])


def count_rows(src: sqlite3.Connection, table: str) -> int:
    return src.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0]


# --- the read-only comparison (a hot standby): both sides streamed in id order, merge-joined here ---------


def in_recovery(conn: psycopg.Connection) -> bool:
    """A hot standby (or a server still replaying): it refuses every write, a temporary table too."""
    return conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]


def _target_value_sql(column: str, pg_type: str) -> str:
    """A target value in its legacy SQLite representation (the type class's write-back). The write-back of a
    timestamp keeps whole seconds of years 1-9999 only; any other timestamp is given as timestamptz text
    (with its zone, so never equal to a source value), as the server comparison finds it different too."""
    cls = type_class_of_pg(pg_type)
    back = cls.write_back(column)
    if cls is not TIMESTAMPTZ:
        return back
    c = quote_ident(column)
    return (f"CASE WHEN isfinite({c}) AND {c} = date_trunc('second', {c}) AND {c} >= '0001-01-01 00:00:00+00' "
            f"AND {c} < '10000-01-01 00:00:00+00' THEN {back} ELSE {c}::text END")


def target_rows_sql(move: CopyRows, archived: set[str], apply_xid: str | None) -> str:
    """The domain table's rows (its archive's too) in id order: the move's columns as the legacy file holds
    them, then whether the row version is apply's own (its xmin is apply's transaction)."""
    table = (rows_with_archive_sql(move.target, move.columns, POSTGRES, also="xmin AS dpro_xmin")
             if move.target in archived else f"(SELECT *, xmin AS dpro_xmin FROM {table_sql(move.target, POSTGRES)})")
    values = ", ".join(_target_value_sql(c, move.types[c]) for c in move.columns)
    by_apply = f"dpro_xmin = {_xid(apply_xid)}" if apply_xid else "true"
    return f"SELECT {values}, {by_apply} FROM {table} t ORDER BY \"id\""


def source_rows_sql(move: CopyRows) -> str:
    """The snapshot's rows of the move in id order, each value as apply's COPY encoder sends it."""
    fields = ", ".join(type_class_of_pg(move.types[c]).copy_field(c) for c in move.columns)
    where = f" WHERE {move.where}" if move.where else ""
    return f"SELECT {fields} FROM {quote_ident(move.legacy)}{where} ORDER BY \"id\""


# A COPY field -> the value the server stores, in its legacy representation (what the target side streams).
# COPY reads an unquoted field as written and a quoted one with "" for "; numbers arrive bare. Text (and JSON
# text, compared parsed when the texts differ) is unquoted inline in _source_rows: one call per value costs.
_FROM_COPY_FIELD: dict[str, Callable | None] = {
    BIGINT.name: None,  # integers pass as they are
    DOUBLE.name: float,  # the 21 significant digits SQLite printed, read back as the server reads them
    BOOLEAN.name: lambda v: 1 if v == "t" else 0,
    TIMESTAMPTZ.name: None,  # the canonical text, which the write-back gives back
    BYTEA.name: lambda v: bytes.fromhex(v[2:]),  # '\x' then hex digits
    NUMERIC.name: lambda v: Decimal(str(v)),  # the decimal sent, compared by value with the stored one's text
}
_TEXT_FIELDS = (TEXT.name, JSONB.name)
_REFUSED_VALUE = REFUSED_FIELD.strip("'")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# As jsonb reads JSON: the last of duplicate keys wins (as in a dict), fractions exact (integers are anyway).
_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def _json(text: str):
    try:  # most values have no whitespace around them (jsonb's text never has): skip decode()'s regex
        value, end = _JSON.raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
        pass
    return _JSON.decode(text)


class _Column:
    """One column's comparison, as the server's IS DISTINCT FROM between the loaded value and the stored one."""

    def __init__(self, move: CopyRows, column: str):
        self.move, self.name, self.pg_type = move, column, move.types[column]
        self.cls = type_class_of_pg(self.pg_type)
        self.max_length = varchar_length(self.pg_type)

    def same(self, source, target) -> bool:
        """Called only when the two differ as Python values."""
        if source is None or target is None:
            self.stored(source)
            return False
        stored = self.stored(source)
        if self.cls is JSONB:
            if stored != (parsed := _json(target)):
                return False
            # Python's == takes true for 1: only a value with a boolean needs the strict comparison.
            return _json_equal(stored, parsed) if any(w in v for w in ("true", "false") for v in (source, target)) else True
        if self.cls is DOUBLE:
            return source != source and target != target  # NaN equals NaN in PostgreSQL
        if self.cls.name == NUMERIC.name:
            return stored == Decimal(target)  # 20 sent, '20.00' stored
        return stored == target

    def stored(self, value):
        """The source value as the server stores it (a JSON value parsed), or ChecksFailed where the server
        refuses it (COPY would have refused the load)."""
        if value is None:
            return None
        try:
            if self.cls is JSONB:
                if "\\u0000" in value:
                    raise ValueError("unsupported Unicode escape sequence \\u0000")
                return _json(value)
            if self.cls is TIMESTAMPTZ:
                datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
            if self.max_length is not None and len(value) > self.max_length:
                if value[self.max_length:].strip(" "):
                    raise ValueError(f"value too long for type {self.pg_type.lower()}")
                return value[:self.max_length]  # spaces beyond a VARCHAR(n) are cut, not refused
        except ValueError as exc:
            raise _no_longer_converts(self.move, f"{self.name}: {exc}") from None
        return value


def _no_longer_converts(move: CopyRows, why: str) -> ChecksFailed:
    return ChecksFailed(f"rows of {move.legacy} in the source no longer convert as apply converted them "
                        f"(the file changed after apply?): {why}")


def _json_equal(a, b) -> bool:
    """jsonb equality: true and false equal only themselves, numbers by value, objects by keys, arrays in order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _differs(columns: list[_Column], source: tuple, target: tuple) -> bool:
    """IS DISTINCT FROM over the move's columns (`target` ends with one more value: apply's or not)."""
    return any(a != b and not column.same(a, b) for column, a, b in zip(columns, source, target, strict=False))


def _batches(cursor, batch_rows: int) -> Iterator[list]:
    while batch := cursor.fetchmany(batch_rows):
        yield batch


def _source_rows(batches: Iterator[list], move: CopyRows) -> Iterator[tuple]:
    """The snapshot's rows of the move, converted as the server converts the COPY fields."""
    classes = [type_class_of_pg(move.types[c]).name for c in move.columns]
    texts = [i for i, name in enumerate(classes) if name in _TEXT_FIELDS]
    convert = [(i, f) for i, name in enumerate(classes) if (f := _FROM_COPY_FIELD.get(name)) is not None]
    for batch in batches:
        for row in batch:
            if _REFUSED_VALUE in row:
                column = move.columns[row.index(_REFUSED_VALUE)]
                raise _no_longer_converts(move, f"{column}: a value the load refuses (a storage class the column "
                                                "does not take, or a value PostgreSQL would change)")
            row = list(row)
            for i in texts:
                v = row[i]
                if v.__class__ is str:
                    if v[:1] == '"':
                        row[i] = v[1:-1].replace('""', '"')
                elif v is not None:
                    row[i] = str(v)
            for i, f in convert:
                if (v := row[i]) is not None:
                    row[i] = f(v)
            yield tuple(row)


def stream_compare_move(conn: psycopg.Connection, src: sqlite3.Connection, move: CopyRows, archived: set[str],
                        apply_xid: str | None, batch_rows: int = 5000) -> tuple[MoveCount, list]:
    """compare_move without writing: the snapshot's rows and the domain table's, both in id order (a
    server-side cursor on the target), merge-joined here; both sides are read a few batches ahead in threads
    (memory: those batches). Counts and sample are those of compare_move's join, row for row."""
    columns = [_Column(move, c) for c in move.columns]
    key = itemgetter(move.columns.index("id"))
    source_rows = found = bad = changed = target_rows = 0
    sample: list = []
    with conn.cursor(name="dpro_target_rows") as cur:
        cur.execute(target_rows_sql(move, archived, apply_xid))
        with (closing(prefetched(_batches(src.execute(source_rows_sql(move)), batch_rows))) as source_batches,
              closing(prefetched(_batches(cur, batch_rows))) as target_batches):
            targets = groupby(chain.from_iterable(target_batches), key)
            target_id, group = next(targets, (None, ()))
            for source_id, sources in groupby(_source_rows(source_batches, move), key):
                while target_id is not None and target_id < source_id:  # added after the cutover
                    target_rows += sum(1 for _ in group)
                    target_id, group = next(targets, (None, ()))
                matches = []
                if target_id == source_id:
                    matches = list(group)
                    target_rows += len(matches)
                    target_id, group = next(targets, (None, ()))
                for s in sources:
                    if not matches:  # deleted after the cutover (the load would still have read it)
                        source_rows += 1
                        for column, value in zip(columns, s, strict=True):
                            column.stored(value)
                    for t in matches:
                        source_rows += 1
                        found += 1
                        if s != t[:-1] and _differs(columns, s, t):
                            if t[-1]:
                                bad += 1
                                if len(sample) < SAMPLE:
                                    sample.append(source_id)
                            else:
                                changed += 1
            while target_id is not None:
                target_rows += sum(1 for _ in group)
                target_id, group = next(targets, (None, ()))
    return MoveCount(move.legacy, move.target, source_rows, found - bad - changed, bad, target_rows - found, changed,
                     source_rows - found), sample
