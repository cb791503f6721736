"""The DPRO application's typical queries on the legacy file, the file migrated in place and PostgreSQL.

    .venv/bin/python benchmarks/workload/workload.py --messages 20000 [--pg URL] [--repeat 20]

queries.toml holds each query in its three forms. This module runs them, checks that the three answers are
the same rows, shows each plan, says whether an index serves it, and times it; tests/test_workload.py and
benchmarks/run.py use the same functions.
"""

from __future__ import annotations

import json
import statistics
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUERIES = HERE / "queries.toml"
# A PostgreSQL table of at most this many pages is read whole faster than through an index: there the
# planner rightly picks a sequential scan, and the check asks instead whether an index *could* serve the
# query (enable_seqscan off).
SMALL_PAGES = 16


@dataclass(frozen=True)
class Query:
    name: str
    params: str  # SQLite, on the legacy file: one row, the parameters
    legacy: str
    sqlite: str
    postgresql: str
    uses: dict[str, str] = field(default_factory=dict)  # target -> the index its plan must name


@dataclass
class Outcome:
    name: str
    same_rows: bool
    rows: int
    plans: dict[str, list[str]] = field(default_factory=dict)
    indexed: dict[str, bool] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # median of the repeats
    note: str = ""


def load_queries(path: Path = QUERIES) -> list[Query]:
    return [Query(**q) for q in tomllib.loads(path.read_text())["query"]]


def parameters(legacy_conn, query: Query) -> tuple:
    row = legacy_conn.execute(query.params).fetchone()
    if row is None:
        raise ValueError(f"{query.name}: its parameter query found nothing in the legacy file")
    return tuple(row)


def pg_params(sql: str, params: tuple) -> Any:
    """Positional %s, or named %(p1)s when the query reuses a parameter."""
    return {f"p{i + 1}": v for i, v in enumerate(params)} if "%(p1)s" in sql else params


# --- SQLite ------------------------------------------------------------------------------------------------


def sqlite_plan(conn, sql: str, params: tuple) -> list[str]:
    return [r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()]


def sqlite_indexed(conn, plan: list[str]) -> bool:
    """No step reads a whole table: every SCAN of a real table goes through an index (or FTS5's)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for line in plan:
        if line.startswith("SCAN "):
            what = line.split()[1]
            if what in tables and "INDEX" not in line:
                return False
    return True


# --- PostgreSQL --------------------------------------------------------------------------------------------


def _nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def pg_plan(conn, sql: str, params: Any, *, force_index: bool = False) -> tuple[list[str], list[str]]:
    """(the plan's nodes as lines, relations read by a sequential scan)."""
    with conn.transaction():
        if force_index:
            conn.execute("SET LOCAL enable_seqscan = off")
        doc = conn.execute(f"EXPLAIN (FORMAT JSON, VERBOSE) {sql}", params).fetchone()[0]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    nodes = list(_nodes(doc[0]["Plan"]))
    lines = [" ".join(str(n[k]) for k in ("Node Type", "Relation Name", "Index Name") if k in n) for n in nodes]
    seq = [f"{n.get('Schema', '')}.{n['Relation Name']}".lstrip(".") for n in nodes if n["Node Type"] == "Seq Scan"]
    return lines, seq


def pg_pages(conn, relation: str) -> int:
    row = conn.execute("SELECT relpages FROM pg_class WHERE oid = to_regclass(%s)", (relation,)).fetchone()
    return row[0] if row else 0


def pg_indexed(conn, sql: str, params: Any) -> tuple[bool, list[str], str]:
    """(an index serves it, the plan, a note). A sequential scan is accepted only on a table of a few pages,
    and only when the same query with sequential scans off does use an index."""
    lines, seq = pg_plan(conn, sql, params)
    if not seq:
        return True, lines, ""
    if any(pg_pages(conn, r) > SMALL_PAGES for r in seq):
        return False, lines, f"sequential scan of {', '.join(seq)}"
    forced, still = pg_plan(conn, sql, params, force_index=True)
    note = f"{', '.join(seq)}: a few pages, read whole; with enable_seqscan off: {'; '.join(forced)}"
    return not still, lines, note


# --- running -----------------------------------------------------------------------------------------------


def _names(plan: list[str], query: Query, target: str) -> bool:
    wanted = query.uses.get(target)
    return wanted is None or any(wanted in line for line in plan)


def _timed(conn, sql: str, params: Any, repeat: int) -> float:
    """The median wall time of running and fetching the query `repeat` times."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        conn.execute(sql, params).fetchall()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_workload(legacy, migrated=None, pg=None, *, partitioned=None, repeat: int = 5,
                 queries: list[Query] | None = None) -> list[Outcome]:
    """Each query on the legacy connection, and on the migrated SQLite and PostgreSQL connections given
    (`partitioned`: a PostgreSQL database applied --with partition-by-month, reported beside the plain one)."""
    out = []
    for q in queries or load_queries():
        params = parameters(legacy, q)
        want = legacy.execute(q.legacy, params).fetchall()
        res = Outcome(q.name, True, len(want))
        res.plans["legacy"] = sqlite_plan(legacy, q.legacy, params)
        res.indexed["legacy"] = sqlite_indexed(legacy, res.plans["legacy"])
        res.seconds["legacy"] = _timed(legacy, q.legacy, params, repeat)
        if migrated is not None:
            got = migrated.execute(q.sqlite, params).fetchall()
            res.same_rows &= got == want
            res.plans["sqlite"] = sqlite_plan(migrated, q.sqlite, params)
            res.indexed["sqlite"] = sqlite_indexed(migrated, res.plans["sqlite"]) and _names(res.plans["sqlite"], q, "sqlite")
            res.seconds["sqlite"] = _timed(migrated, q.sqlite, params, repeat)
        if pg is not None:
            p = pg_params(q.postgresql, params)
            got = [tuple(r) for r in pg.execute(q.postgresql, p).fetchall()]
            res.same_rows &= got == want
            res.indexed["postgresql"], res.plans["postgresql"], res.note = pg_indexed(pg, q.postgresql, p)
            res.indexed["postgresql"] &= _names(res.plans["postgresql"], q, "postgresql")
            res.seconds["postgresql"] = _timed(pg, q.postgresql, p, repeat)
        if partitioned is not None:
            p = pg_params(q.postgresql, params)
            got = [tuple(r) for r in partitioned.execute(q.postgresql, p).fetchall()]
            res.same_rows &= got == want
            res.indexed["partitioned"], res.plans["partitioned"], _ = pg_indexed(partitioned, q.postgresql, p)
            res.seconds["partitioned"] = _timed(partitioned, q.postgresql, p, repeat)
        out.append(res)
    return out


def report(outcomes: list[Outcome]) -> str:
    """A Markdown table: median milliseconds per target, index use, same rows."""
    targets = [t for t in ("legacy", "sqlite", "postgresql", "partitioned") if any(t in o.seconds for o in outcomes)]
    head = ["query", "rows", *(f"{t} ms" for t in targets), "indexed (" + " / ".join(targets[1:]) + ")", "same rows"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for o in outcomes:
        ms = [f"{o.seconds[t] * 1000:.3f}" if t in o.seconds else "" for t in targets]
        idx = " / ".join("yes" if o.indexed.get(t) else "NO" for t in targets[1:] if t in o.indexed)
        lines.append("| " + " | ".join([o.name, str(o.rows), *ms, idx, "yes" if o.same_rows else "NO"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shutil
    import sqlite3
    import tempfile

    import psycopg
    from sqlalchemy.engine import make_url

    from dpro_migrate import verbs
    from dpro_migrate.example import generate_legacy_db
    from dpro_migrate.targets import parse_target

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--pg", default=None, help="an admin URL; a throwaway database is created and dropped")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--plans", action="store_true", help="print every plan")
    ap.add_argument("--partitioned", action="store_true",
                    help="also a PostgreSQL database applied --with partition-by-month, timed beside the plain one")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        legacy_path, migrated_path = Path(tmp) / "legacy.db", Path(tmp) / "migrated.db"
        generate_legacy_db(legacy_path, messages=args.messages)
        shutil.copyfile(legacy_path, migrated_path)
        verbs.apply(migrated_path, backup_dir=Path(tmp))  # the legacy file stays as the application left it
        admin = psycopg.connect(args.pg, autocommit=True) if args.pg else None
        databases = {}

        def database(name: str, features: tuple[str, ...]):
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
            url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
            verbs.apply(legacy_path, parse_target(url), backup_dir=Path(tmp), features=features)
            databases[name] = psycopg.connect(url, autocommit=True)
            return databases[name]

        pg = database("dpro_workload", ()) if args.pg else None
        partitioned = database("dpro_workload_partitioned", ("partition-by-month",)) if args.pg and args.partitioned else None
        legacy = sqlite3.connect(legacy_path)
        try:
            outcomes = run_workload(legacy, sqlite3.connect(migrated_path), pg, partitioned=partitioned,
                                    repeat=args.repeat)
        finally:
            for name, conn in databases.items():
                conn.close()
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        print(report(outcomes))
        if args.plans:
            for o in outcomes:
                print(f"\n{o.name}" + (f" ({o.note})" if o.note else ""))
                for target, plan in o.plans.items():
                    print(f"  {target}: " + " | ".join(plan))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
