"""Execute a plan into PostgreSQL: one transaction, COPY streamed from SQLite, source never written."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import psycopg
from psycopg import sql as pgsql

from dpro_migrate import DOMAINS
import dpro_migrate.safety.ledger as ledger
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.model.legacy import connect_readonly, schema_fingerprint
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.backends.pgcopy import copy_into, copy_statement, prefetched, stream_lines, stream_rows, type_class
from dpro_migrate.plan.document import Plan
from dpro_migrate.model.schema import POSTGRES, table_sql
from dpro_migrate.sqlnames import column_list, quote_ident
from dpro_migrate.targets import Target
from dpro_migrate.features.archive import rows_with_archive_sql
from dpro_migrate.verify.sqlite import archived_tables
from dpro_migrate.verify.sqlite import Check, MoveCount, VerifyReport, accounting_check, per_legacy, unaccounted
from dpro_migrate.backends.sqlite import ApplyResult, RollbackResult, open_for_write, write_transaction

LOCK_KEY = 0x6470726F  # "dpro": one dpro-migrate at a time per target database


@dataclass
class PgBackup:
    path: Path
    bytes: int
    tables: dict[str, int] = field(default_factory=dict)
    integrity: str = "pg_dump ok"


def connect(target: Target) -> psycopg.Connection:
    try:
        # autocommit: every unit of work is an explicit `with conn.transaction()`, nothing left open by accident.
        return psycopg.connect(target.conninfo, connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
        raise BadInput(f"cannot connect to {target.display}: {reason}") from None


@contextmanager
def locked_transaction(conn: psycopg.Connection, target: Target) -> Iterator[None]:
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            raise BadInput(f"{target.display}: another dpro-migrate is working on this database; nothing was changed")
        conn.execute("SET LOCAL TIME ZONE 'UTC'")
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        yield


def open_source(path: Path) -> sqlite3.Connection:
    conn = connect_readonly(path, any_thread=True)  # read by prefetched() in a thread, one user at a time
    conn.execute("BEGIN")  # one snapshot for the whole read
    return conn


def has_ledger(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table_sql(LEDGER_TABLE, POSTGRES),)).fetchone()[0]


def existing_schemas(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1",
                                       (list(DOMAINS),))]


def user_table_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                        "AND n.nspname NOT LIKE 'pg_toast%%'").fetchone()[0]


def pg_dump(target: Target, directory: Path) -> PgBackup:
    """A custom-format dump of the whole target database, written under a temporary name then renamed."""
    if not shutil.which("pg_dump"):
        raise BadInput("the target holds data and pg_dump is not installed to back it up first")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    final = directory / f"pg-{stamp}.dump"
    tmp = final.with_name(final.name + ".tmp")
    done = subprocess.run(["pg_dump", "-Fc", "-f", str(tmp), "-d", target.conninfo], capture_output=True, text=True)
    if done.returncode:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"pg_dump of {target.display} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
    tmp.chmod(0o600)
    tmp.replace(final)
    return PgBackup(final, final.stat().st_size)


def apply_postgres(plan: Plan, target: Target, *, backup_dir: Path, replace_existing: bool = False,
                   progress=None, rows_progress=None) -> ApplyResult:
    started = time.monotonic()
    source = Path(plan.source)
    src = open_source(source)
    conn = connect(target)
    try:
        if has_ledger(conn):
            last = ledger.latest_apply(ledger.read_entries(conn, POSTGRES))
            return ApplyResult(True, applied_at=last.at if last else None)
        if schema_fingerprint(src) != plan.source_fingerprint:
            raise BadInput(f"{source}: its schema changed since the plan was made (fingerprint differs); make a new plan")
        existing = existing_schemas(conn)
        if existing and not replace_existing:
            raise BadInput(f"{target.display} already holds schemas {', '.join(existing)}; nothing was changed "
                           "(pass --replace-existing to back them up with pg_dump and replace them)")
        refused = _refuse(src, plan)
        backup = pg_dump(target, backup_dir) if user_table_count(conn) else None
        moved: dict[str, int] = {}
        with locked_transaction(conn, target), conn.cursor() as cur:
            for name in existing:
                cur.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(name)))
            for i, step in enumerate(plan.steps):
                if progress:
                    progress(i, len(plan.steps), step)
                if step.kind == "quarantine_rows":
                    for source_sql in step.info["source_sql"].values():
                        copy_into(cur, step.sql[0], stream_rows(src, source_sql))
                elif step.kind == "move_rows":
                    blocks = prefetched(stream_lines(src, step.info["source_sql"]))
                    moved[step.name] = copy_into(cur, step.sql[0], blocks,
                                                 (lambda n, s=step: rows_progress(s, n)) if rows_progress else None)
                else:
                    for stmt in step.sql:
                        cur.execute(stmt)
            _check_counts(src, plan, moved, refused)
            cur.execute(ledger.create_sql(POSTGRES))
            cur.execute(ledger.insert_sql(POSTGRES),
                        ledger.entry_values("apply", plan, str(backup.path) if backup else None, {"target": target.display}))
        return ApplyResult(False, backup, moved, time.monotonic() - started)
    except psycopg.Error as exc:
        if plan.on_reject == "fail":  # say which rows, under which rules
            from dpro_migrate.plan.preflight import refuse_if_found

            refuse_if_found(src, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
        raise ChecksFailed(f"PostgreSQL refused the load, nothing was changed: {_first_line(exc)}") from None
    finally:
        conn.close()
        src.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _refuse(src: sqlite3.Connection, plan: Plan) -> dict[str, int]:
    """Policy quarantine: the preflight on the source snapshot, into the source connection's temp table the
    loads read. Policy fail runs nothing here: the server enforces every rule atomically and the load's
    encoder refuses what the server would convert silently; a refusal is explained afterwards."""
    from dpro_migrate.plan.preflight import REFUSED, run_refusal

    if plan.on_reject == "fail":
        return {}
    run_refusal(src, plan.preflight["sql_once"], plan.preflight["sql_repeat"])
    refused = dict(src.execute(f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
    planned = set(plan.steps_of("quarantine_rows")[0].info["tables"]) if plan.steps_of("quarantine_rows") else set()
    if set(refused) - planned:
        raise ChecksFailed(f"rows of {', '.join(sorted(set(refused) - planned))} break rules now but did not when "
                           "the plan was made; nothing was changed: make a new plan")
    return refused


def _count(src: sqlite3.Connection, table: str) -> int:
    return src.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0]


def _check_counts(src: sqlite3.Connection, plan: Plan, moved: dict[str, int], refused: dict[str, int]) -> None:
    wrong = unaccounted(per_legacy((s.info["legacy"], moved.get(s.name, 0)) for s in plan.steps_of("move_rows")),
                        refused, lambda name: _count(src, name))
    if wrong:
        raise ChecksFailed(f"rows copied do not add up to the legacy tables ({', '.join(wrong)}); nothing was changed")


# --- verify -------------------------------------------------------------------------------------


def load_source_rows(cur, src: sqlite3.Connection, move: dict, temp: str) -> None:
    """The source rows of one move, converted exactly as apply converts them, in a temporary table."""
    cur.execute(f"DROP TABLE IF EXISTS {temp}")
    cols = ", ".join(f"{quote_ident(c)} {t}" for c, t in move["types"].items())
    cur.execute(f"CREATE TEMP TABLE {temp} ({cols}) ON COMMIT DROP")
    try:
        copy_into(cur, copy_statement(temp, move["columns"]), prefetched(stream_lines(src, move["source_sql"])))
    except psycopg.Error as exc:  # the source changed since apply, into values apply would have refused
        raise ChecksFailed(f"rows of {move['legacy']} in the source no longer convert as apply converted them "
                           f"(the file changed after apply?): {_first_line(exc)}") from None
    cur.execute(f"CREATE INDEX ON {temp} (\"id\")")
    cur.execute(f"ANALYZE {temp}")


def _rows_of(move: dict, archived: set[str]) -> str:
    """The domain table of a move, with its archive's rows when it has one."""
    if move["target"] in archived:
        return rows_with_archive_sql(move["target"], move["columns"], POSTGRES)
    return table_sql(move["target"], POSTGRES)


def compare_move(cur, move: dict, archived: set[str] = frozenset()) -> tuple[int, int, int, list]:
    """(source rows, missing or different, added after the cutover, sample ids) for one move."""
    target = _rows_of(move, archived)
    cols = move["columns"]
    left = ", ".join(f"s.{quote_ident(c)}" for c in cols)
    right = ", ".join(f"t.{quote_ident(c)}" for c in cols)
    # ids are primary keys on both sides: what the target holds beyond the ids found was added after the cutover
    joined = f"FROM _dpro_source s LEFT JOIN {target} t ON t.\"id\" = s.\"id\""
    differs = f"t.\"id\" IS NULL OR ({left}) IS DISTINCT FROM ({right})"
    source_rows, found, bad = cur.execute(f"SELECT count(*), count(t.\"id\"), count(*) FILTER (WHERE {differs}) "
                                          f"{joined}").fetchone()
    sample = [r[0] for r in cur.execute(f"SELECT s.\"id\" {joined} WHERE {differs} ORDER BY 1 LIMIT 10")] if bad else []
    added = cur.execute(f"SELECT count(*) FROM {target} t").fetchone()[0] - found
    return source_rows, bad, added, sample


def open_source_as_applied(cur, plan: Plan) -> sqlite3.Connection:
    """The source, with the rows apply quarantined marked again (read back from system.quarantine),
    so the plan's source queries select exactly the rows apply moved."""
    from dpro_migrate.model.mapping import QUARANTINE_TABLE
    from dpro_migrate.plan.preflight import REFUSED, SETUP_SQL

    src = open_source(Path(plan.source))
    for stmt in SETUP_SQL:
        src.execute(stmt)
    if plan.steps_of("quarantine_rows"):
        rows = cur.execute(f"SELECT source_table, source_pk, rule FROM {table_sql(QUARANTINE_TABLE, POSTGRES)}").fetchall()
        src.executemany(f"INSERT INTO {REFUSED} VALUES (?, ?, ?)", rows)
    return src


def catalog_objects(cur) -> set[tuple[str, str]]:
    """(kind, name) of what exists in the seven schemas, as the plan names them."""
    out = {("create_schema", r[0]) for r in cur.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (list(DOMAINS),))}
    out |= {("create_table", f"{s}.{t}") for s, t in cur.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s)", (list(DOMAINS),))}
    out |= {("create_index", r[0]) for r in cur.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = ANY(%s)", (list(DOMAINS),))}
    out |= {("add_constraint", r[0]) for r in cur.execute(
        "SELECT c.conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = ANY(%s) AND c.convalidated", (list(DOMAINS),))}
    out |= {("create_trigger", r[0]) for r in cur.execute(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE n.nspname = ANY(%s) AND NOT t.tgisinternal AND t.tgenabled <> 'D'",
        (list(DOMAINS),))}
    out |= {("create_function", f"{s}.{f}") for s, f in cur.execute(
        "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = ANY(%s)", (list(DOMAINS),))}
    return out


def finalize_postgres(target: Target) -> list[str]:
    """End of the cutover window: drop the compatibility views."""
    conn, entry = read_ledger(target)
    try:
        if entry is None:
            raise BadInput(f"{target.display}: is not migrated; nothing to finalize")
        plan = entry.plan
        with locked_transaction(conn, target), conn.cursor() as cur:
            dropped = [s.name for s in plan.steps_of("create_compat_view")
                       if cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f'public."{s.name}"',)).fetchone()[0]]
            for step in plan.steps_of("create_compat_view"):
                for stmt in step.reverse:
                    cur.execute(stmt)
            cur.execute(ledger.insert_sql(POSTGRES), ledger.entry_values("finalize", plan, None, {"dropped": dropped}))
        return dropped
    finally:
        conn.close()


def read_ledger(target: Target):
    conn = connect(target)
    try:
        if not has_ledger(conn):
            return conn, None
        return conn, ledger.latest_apply(ledger.read_entries(conn, POSTGRES))
    except BaseException:
        conn.close()
        raise


# --- rollback -----------------------------------------------------------------------------------


def _stranded(cur, src, plan: Plan) -> dict[str, dict]:
    """Per move: rows in the domain table that the source does not have (written after the cutover)."""
    out = {}
    archived = archived_tables(plan)
    for step in plan.steps_of("move_rows"):
        load_source_rows(cur, src, step.info, "_dpro_source")
        target = _rows_of(step.info, archived)
        n = cur.execute(f"SELECT count(*) FROM {target} t WHERE NOT EXISTS "
                        f"(SELECT 1 FROM _dpro_source s WHERE s.\"id\" = t.\"id\")").fetchone()[0]
        if n:
            out[step.name] = {"step": step, "rows": n}
    fed = {s.info["target"] for s in plan.steps_of("move_rows")}
    for step in plan.steps_of("create_table"):
        if step.info["table"] not in fed and not step.info.get("archive_of"):
            n = cur.execute(f"SELECT count(*) FROM {table_sql(step.info['table'], POSTGRES)}").fetchone()[0]
            if n:
                out[step.name] = {"step": None, "rows": n}
    return out


def _as_sqlite_sql(column: str, pg_type: str) -> str:
    """PostgreSQL -> the legacy SQLite representation, for write-back."""
    c = quote_ident(column)
    cls = type_class(pg_type)
    if cls == "boolean":
        return f"{c}::int"
    if cls == "timestamptz":
        return f"to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    if cls == "jsonb":
        return f"{c}::text"
    return c


def _write_back(cur, source: Path, plan: Plan, stranded: dict[str, dict], backup_dir: Path) -> tuple[dict, int, object]:
    """Copy rows written after the cutover into the legacy SQLite tables, in one SQLite transaction."""
    from dpro_migrate.safety.backup import backup_file

    rows_by_table: dict[str, list[tuple[list[str], list[tuple]]]] = {}
    for name, item in stranded.items():
        step = item["step"]
        info = step.info
        src_conn = open_source_as_applied(cur, plan)
        load_source_rows(cur, src_conn, info, "_dpro_source")
        src_conn.close()
        select = ", ".join(_as_sqlite_sql(c, info["types"][c]) for c in info["columns"])
        rows = cur.execute(f"SELECT {select} FROM {_rows_of(info, archived_tables(plan))} t WHERE NOT EXISTS "
                           f"(SELECT 1 FROM _dpro_source s WHERE s.\"id\" = t.\"id\") ORDER BY \"id\"").fetchall()
        rows_by_table.setdefault(info["legacy"], []).append((info["columns"], rows))
    conn = open_for_write(source)
    written, renumbered = {}, 0
    try:
        with write_transaction(conn, source):
            backup = backup_file(source, backup_dir)
            for legacy, parts in rows_by_table.items():
                for columns, rows in parts:
                    for row in rows:
                        values = dict(zip(columns, row))
                        same = " AND ".join(f"{quote_ident(c)} IS ?" for c in values)
                        if conn.execute(f"SELECT 1 FROM {quote_ident(legacy)} WHERE {same}", row).fetchone():
                            continue  # written back by an earlier, interrupted rollback
                        taken = conn.execute(f"SELECT 1 FROM {quote_ident(legacy)} WHERE \"id\" = ?",
                                             (values["id"],)).fetchone()
                        if taken:  # two split parts handed out the same id after the cutover
                            values.pop("id")
                            renumbered += 1
                        conn.execute(f"INSERT INTO {quote_ident(legacy)} ({column_list(values)}) "
                                     f"VALUES ({', '.join('?' * len(values))})", list(values.values()))
                        written[legacy] = written.get(legacy, 0) + 1
    finally:
        conn.close()
    return written, renumbered, backup


def rollback_postgres(target: Target, *, write_back: bool = False, backup_dir: Path, progress=None) -> RollbackResult:
    started = time.monotonic()
    conn, entry = read_ledger(target)
    try:
        if entry is None:
            return RollbackResult(True)
        plan = entry.plan
        source = Path(plan.source)
        written, renumbered, backup = {}, 0, None
        with locked_transaction(conn, target), conn.cursor() as cur:
            src = open_source_as_applied(cur, plan)
            try:
                stranded = _stranded(cur, src, plan)
            finally:
                src.close()
            homeless = [n for n, item in stranded.items() if item["step"] is None]
            if homeless:
                raise ChecksFailed("rows written after the cutover have no legacy table to go back to: "
                                   + ", ".join(f"{n} ({stranded[n]['rows']} rows)" for n in homeless)
                                   + "; nothing was changed")
            if stranded and not write_back:
                raise ChecksFailed("the domain tables hold rows written after the cutover that the source does not have: "
                                   + ", ".join(f"{n} ({i['rows']} rows)" for n, i in stranded.items())
                                   + "; nothing was changed (pass --write-back to copy them into the legacy file first)",
                                   details={n: i["rows"] for n, i in stranded.items()})
            if stranded:
                written, renumbered, backup = _write_back(cur, source, plan, stranded, backup_dir)
            from dpro_migrate.handoff.environment import release_baseline  # Alembic only when rolling back

            release_baseline(cur, POSTGRES)  # Alembic's stamp goes with the schema it described
            cur.execute(f"DROP TABLE {table_sql(LEDGER_TABLE, POSTGRES)}")
            steps = list(reversed(plan.steps))
            for i, step in enumerate(steps):
                if progress:
                    progress(i, len(steps), step)
                for stmt in step.reverse:
                    cur.execute(stmt)
        return RollbackResult(False, backup, written, renumbered, time.monotonic() - started)
    except psycopg.Error as exc:
        raise ChecksFailed(f"PostgreSQL refused the rollback, nothing was changed: {_first_line(exc)}") from None
    finally:
        conn.close()


def verify_postgres(target: Target):

    conn, entry = read_ledger(target)
    try:
        if entry is None:
            raise BadInput(f"{target.display}: is not migrated (no ledger); nothing to verify")
        plan = entry.plan
        checks, counts = [], []
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL TIME ZONE 'UTC'")
            src = open_source_as_applied(cur, plan)
            try:
                from dpro_migrate.plan.preflight import REFUSED

                quarantined = dict(src.execute(
                    f"SELECT source_table, count(DISTINCT source_pk) FROM {REFUSED} GROUP BY 1"))
                for step in plan.steps_of("move_rows"):
                    info = step.info
                    load_source_rows(cur, src, info, "_dpro_source")
                    n, bad, added, sample = compare_move(cur, info, archived_tables(plan))
                    counts.append(MoveCount(info["legacy"], info["target"], n, n - bad, bad, added))
                    checks.append(Check(f"rows {step.name}", bad == 0,
                                        f"{n - bad} of {n} legacy rows present value for value"
                                        + (f", {added} added after the cutover" if added else ""),
                                        [{"legacy_id": i} for i in sample]))
                checks.append(accounting_check(counts, quarantined, lambda name: _count(src, name)))
            finally:
                src.close()
            present = catalog_objects(cur)
            promised = [(s.kind, s.name) for s in plan.steps
                        if s.kind in ("create_schema", "create_table", "create_index", "add_constraint",
                                      "create_trigger", "create_function")]
            missing = [f"{k.replace('create_', '').replace('add_', '')} {n}" for k, n in promised if (k, n) not in present]
            checks.append(Check("promised schemas, tables, constraints, indexes, triggers exist", not missing,
                                f"{len(promised) - len(missing)} of {len(promised)} present (constraints validated)",
                                missing))
        return VerifyReport(target.display, entry.backup, checks, counts)
    finally:
        conn.close()
