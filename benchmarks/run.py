#!/usr/bin/env python3
"""dpro-migrate benchmark: the tool against pgloader and raw baselines, on one generated legacy file.

    .venv/bin/python benchmarks/run.py [--messages N] [--out FILE.json] [--pg URL] [--keep]

One legacy database is generated into a temporary directory (N messages, the other tables in
proportion, see dpro_migrate.example.row_plan) and copied afresh for every contender that writes it.
Every contender runs as a subprocess of a fresh measuring child, which reports wall time and
getrusage(RUSAGE_CHILDREN).ru_maxrss: the peak RSS of the largest process of the contender's tree
(for a pipe, of its largest member). The PostgreSQL server's own memory is not counted for anyone.

Contenders (see benchmarks/README.md): dpro-migrate backup / apply / verify / rollback in place on SQLite;
dpro-migrate apply / verify to PostgreSQL; pgloader; the raw `sqlite3 -csv | psql \\copy` pipe for
messages; SQLite's own INSERT INTO copy SELECT * FROM t for all legacy tables in one transaction; and the
library's apply run in-process with a progress callback, to time each step kind (the copy phase is the
move_rows steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
DPRO = str(VENV_BIN / "dpro-migrate") if (VENV_BIN / "dpro-migrate").exists() else shutil.which("dpro-migrate")
PGLOADER = shutil.which("pgloader")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"

# Targets from issue 5, and issue 17's (apply and its copy against the floor of the same work).
TARGETS = {
    "pg_apply / floor": ("<=", 1.25),
    "pg copy / floor pipes": ("<=", 1.3),
    "pg_apply / pgloader": ("<=", 1 / 3),
    "pg copy phase / raw pipe": ("<=", 1.5),
    "sqlite_apply / raw insert-select": ("<=", 2.0),
    "sqlite verify / apply": ("<=", 1.0),
    "pg verify / apply": ("<=", 1.0),
    "peak RSS of dpro-migrate (MB)": ("<", 200.0),
}

# The measuring child: runs one command, reports wall time and two peaks of memory: the largest single
# process of its tree (getrusage RUSAGE_CHILDREN ru_maxrss) and the whole tree at once (the sum of VmRSS over
# every descendant, sampled every 50 ms from /proc; shared pages count once per process, so it errs high).
MEASURE = r"""
import json, os, resource, subprocess, sys, threading, time
spec = json.loads(sys.argv[1])

def tree_rss_kb(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total

peak, stop = [0], threading.Event()
def sample(pid):
    while not stop.wait(0.05):
        peak[0] = max(peak[0], tree_rss_kb(pid))

with open(spec["stdout"], "wb") as out, open(spec["stderr"], "wb") as err:
    t = time.perf_counter()
    p = subprocess.Popen(spec["cmd"], stdout=out, stderr=err, env=spec.get("env"))
    sampler = threading.Thread(target=sample, args=(p.pid,), daemon=True)
    if os.path.isdir("/proc"):
        sampler.start()
    p.wait()
    wall = time.perf_counter() - t
    stop.set()
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall_s": wall, "peak_rss_kb": max(ru.ru_maxrss, peak[0]),
                  "peak_largest_process_kb": ru.ru_maxrss, "peak_tree_kb": peak[0],
                  "cpu_user_s": ru.ru_utime, "cpu_sys_s": ru.ru_stime}))
"""


# --- small helpers ------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(name: str, cmd: list[str], workdir: Path, env: dict | None = None) -> dict:
    """Run cmd in a fresh measuring child; stdout/stderr go to files in workdir."""
    out, err = workdir / f"{name}.stdout", workdir / f"{name}.stderr"
    spec = {"cmd": cmd, "stdout": str(out), "stderr": str(err), "env": env}
    log(f"{name}: {' '.join(cmd) if len(' '.join(cmd)) < 300 else ' '.join(cmd)[:300] + ' ...'}")
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(spec)], capture_output=True, text=True, check=True)
    res = json.loads(done.stdout)
    res["command"] = cmd
    res["stdout_file"], res["stderr_file"] = str(out), str(err)
    res["ok"] = res["rc"] == 0
    if not res["ok"]:
        tail = err.read_text(errors="replace").strip().splitlines()[-3:]
        res["error"] = " | ".join(tail)
        log(f"{name}: FAILED rc={res['rc']}: {res['error']}")
    else:
        log(f"{name}: {res['wall_s']:.2f}s, peak RSS {res['peak_rss_kb'] / 1024:.0f} MB")
    return res


def with_rows(res: dict, rows: int) -> dict:
    res["rows"] = rows
    res["rows_per_s"] = rows / res["wall_s"] if res["wall_s"] > 0 else None
    res["peak_rss_mb"] = res["peak_rss_kb"] / 1024
    return res


def db_url(admin_url: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


class Databases:
    """Fresh PostgreSQL databases, created and dropped through the admin URL (autocommit)."""

    def __init__(self, admin_url: str):
        import psycopg

        self.admin_url = admin_url
        self.conn = psycopg.connect(db_url(admin_url, _dbname(admin_url) or "postgres"), autocommit=True)
        self.made: list[str] = []
        self.prefix = f"dpro_bench_{os.getpid()}_"

    def fresh(self, label: str) -> str:
        name = self.prefix + label
        self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return db_url(self.admin_url, name)

    def checkpoint(self) -> None:
        """Flush what the previous contender left dirty, so it is not billed to the next one."""
        try:
            self.conn.execute("CHECKPOINT")
        except Exception as exc:  # needs superuser (or pg_checkpoint); without it, just go on
            log(f"CHECKPOINT refused ({exc.__class__.__name__}); continuing")

    def scalar(self, url: str, sql: str):
        import psycopg

        with psycopg.connect(url, autocommit=True) as c:
            return c.execute(sql).fetchone()[0]

    def drop_all(self) -> None:
        for name in self.made:
            try:
                self.conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:
                log(f"could not drop {name}: {exc}")
        self.conn.close()


def _dbname(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).database


def copy_legacy(src: Path, workdir: Path, name: str) -> Path:
    dest = workdir / name
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "dpro_agent.db"
    shutil.copyfile(src, path)
    return path


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- machine ------------------------------------------------------------------------------------


def machine_info(admin_url: str) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    pg_version = pg_settings = None
    try:
        import psycopg

        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as c:
            pg_version = c.execute("SHOW server_version").fetchone()[0]
            pg_settings = {k: c.execute(f"SHOW {k}").fetchone()[0] for k in
                           ("shared_buffers", "max_wal_size", "maintenance_work_mem", "work_mem", "fsync",
                            "synchronous_commit", "wal_level", "max_parallel_maintenance_workers")}
    except Exception as exc:
        pg_version = f"unreachable ({exc.__class__.__name__})"
    sqlite_cli = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()[:1] \
        if shutil.which("sqlite3") else ["not installed"]
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {
        "git_head": git("rev-parse", "--short", "HEAD"),
        "library_uncommitted": git("status", "--porcelain", "--", "dpro_migrate", "ddl").splitlines(),
        "nproc": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite_python_module": sqlite3.sqlite_version,
        "sqlite3_cli": sqlite_cli[0] if sqlite_cli else None,
        "postgresql": pg_version,
        "postgresql_settings": pg_settings,
        "pgloader": pgloader_version(),
    }


def pgloader_version() -> str | None:
    if not PGLOADER:
        return None
    out = subprocess.run([PGLOADER, "--version"], capture_output=True, text=True).stdout
    m = re.search(r'version "?([^"\s]+)', out)
    return m.group(1) if m else out.strip().splitlines()[0] if out.strip() else "unknown"


# --- in-process phase timing (runs in a fresh child, through MEASURE) ----------------------------


# Library functions timed inside the in-process apply (wrapped in this child only; absent ones are skipped).
# Nested: make_plan contains _read and preflight.run; the refusals contain run_refusal.
TIMED = [
    ("dpro_migrate.verbs", "make_plan"),
    ("dpro_migrate.planning", "read_file"),
    ("dpro_migrate.plan.preflight", "run"),
    ("dpro_migrate.plan.preflight", "run_refusal"),
    ("dpro_migrate.plan.preflight", "refuse_if_found"),
    ("dpro_migrate.backends.sqlite", "copy_file"),  # the copy; its check runs on another thread, beside the operations
    ("dpro_migrate.backends.sqlite", "_failed_check"),
    ("dpro_migrate.backends.postgres", "backup_file"),  # the snapshot of the source the load reads
    ("dpro_migrate.backends.postgres", "_refuse"),
    ("dpro_migrate.backends.postgres", "pg_dump"),
    ("dpro_migrate.backends.postgres", "_check_counts"),
]


def _wrap_timed(calls: dict[str, list[float]]) -> None:
    import importlib

    for module, attr in TIMED:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        fn = getattr(mod, attr, None)
        if not callable(fn):
            continue
        key = f"{module.removeprefix('dpro_migrate.')}.{attr}"

        def timed(*a, _fn=fn, _key=key, **kw):
            t = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                calls.setdefault(_key, []).append(time.perf_counter() - t)

        setattr(mod, attr, timed)


def _vm_hwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _growth(rss: list[tuple[str, float]], marks: list) -> dict[str, float]:
    """How much the peak RSS grew during each step kind (the first step's growth counts for its kind)."""
    if not marks:
        return {}
    out: dict[str, float] = {}
    prev = None
    for kind, hwm in rss:
        if prev is not None and hwm > prev:
            out[kind] = out.get(kind, 0.0) + (hwm - prev)
        prev = hwm
    return {k: round(v, 1) for k, v in out.items()}


def phases_child(spec: dict) -> None:
    """verbs.apply with a progress callback that timestamps step boundaries; writes JSON to spec['out']."""
    from dpro_migrate import verbs
    from dpro_migrate.targets import parse_target

    calls: dict[str, list[float]] = {}
    _wrap_timed(calls)
    marks: list[tuple[float, str, str, str]] = []  # (t, kind, name, legacy)

    rss: list[tuple[str, float]] = []  # (step that just ended, VmHWM MB at that point)

    def progress(i, total, step):
        if marks:
            rss.append((marks[-1][1], _vm_hwm_mb()))
        marks.append((time.perf_counter(), step.kind, step.name, getattr(step, "legacy", "")))

    t0 = time.perf_counter()
    plan, result = verbs.apply(Path(spec["source"]), parse_target(spec.get("target")),
                                  backup_dir=Path(spec["backup_dir"]), progress=progress)
    t_end = time.perf_counter()
    by_kind: dict[str, float] = {}
    moves: list[dict] = []
    for j, (t, kind, name, legacy) in enumerate(marks):
        nxt = marks[j + 1][0] if j + 1 < len(marks) else None
        if nxt is None:  # the last step ends somewhere inside the checks; it is never a move here
            continue
        by_kind[kind] = by_kind.get(kind, 0.0) + (nxt - t)
        if kind in ("move_rows", "copy_rows"):
            moves.append({"step": name, "legacy": legacy, "seconds": nxt - t,
                          "rows": (result.rows_moved or {}).get(name)})
    last = marks[-1] if marks else (t0, "", "", "")
    out = {
        "wall_s": t_end - t0,
        "before_steps_s": (marks[0][0] - t0) if marks else t_end - t0,  # read, plan, preflight, backup
        "steps_s": (last[0] - marks[0][0]) if marks else 0.0,
        "last_step_and_after_s": t_end - last[0],  # last step + count checks, FK check, ledger, commit
        "last_step_kind": last[1],
        "by_kind_s": by_kind,
        "functions_s": {k: sum(v) for k, v in calls.items()},
        "function_calls": {k: len(v) for k, v in calls.items()},
        # Peak RSS (VmHWM) before the first step, and the step kinds during which it grew
        "hwm_before_steps_mb": rss[0][1] if rss else None,
        "hwm_growth_by_kind_mb": _growth(rss, marks),
        "hwm_end_mb": _vm_hwm_mb(),
        "moves": moves,
        "copy_phase_s": sum(m["seconds"] for m in moves),
        "rows_moved": sum((result.rows_moved or {}).values()),
        "library_seconds": result.seconds,
        "steps": len(plan.operations) if plan else 0,
    }
    Path(spec["out"]).write_text(json.dumps(out, indent=1))


def run_phases(name: str, source: Path, target: str | None, workdir: Path) -> dict:
    spec = {"source": str(source), "target": target, "backup_dir": str(workdir / f"{name}-backups"),
            "out": str(workdir / f"{name}.phases.json")}
    res = measure(name, [sys.executable, str(Path(__file__).resolve()), "--_phases", json.dumps(spec)], workdir)
    if res["ok"]:
        res["phases"] = json.loads(Path(spec["out"]).read_text())
    return res


# --- baselines ----------------------------------------------------------------------------------


def raw_pipe_table_sql(legacy: Path, table: str, plan_types: dict[str, str]) -> tuple[str, list[str]]:
    """CREATE TABLE for the raw pipe: the legacy columns, typed as dpro-migrate types them (same work for PostgreSQL):
    as the plan types them, else as apply types a column that rides along."""
    from dpro_migrate.types import pg_type_for_legacy

    conn = sqlite3.connect(legacy)
    try:
        cols = [(r[1], r[2]) for r in conn.execute(f"PRAGMA table_info({quote(table)})")]
    finally:
        conn.close()
    defs = ", ".join(f"{quote(c)} {plan_types.get(c) or pg_type_for_legacy(t)}" for c, t in cols)
    return f"CREATE TABLE raw_{table} ({defs})", [c for c, _ in cols]


INSERT_SELECT = r"""
import json, sqlite3, sys, time
spec = json.loads(sys.argv[1])
conn = sqlite3.connect(spec["path"], isolation_level=None)
tables = [(n, s) for n, s in conn.execute(
    "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    if n in spec["tables"]]
q = lambda n: '"' + n.replace('"', '""') + '"'
t = time.perf_counter()
conn.execute("BEGIN IMMEDIATE")
rows = 0
for name, sql in tables:
    head, rest = sql.split("(", 1)
    conn.execute(f"CREATE TABLE {q('copy_' + name)} (" + rest)
    # WHERE 1 turns off SQLite's transfer optimisation (whole records copied without decoding them)
    rows += conn.execute(f"INSERT INTO {q('copy_' + name)} SELECT * FROM {q(name)}" + spec["where"]).rowcount
built = 0
for stmt in spec.get("indexes", []):
    try:
        conn.execute(stmt)
        built += 1
    except sqlite3.OperationalError:  # a column the legacy table lacks (the target adds it)
        pass
conn.execute("COMMIT")
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t, "tables": len(tables), "indexes": built}))
"""


# The floor of a PostgreSQL apply's own work, in one measured child: the plan's DDL before the first move
# (schemas, bare tables), every move as a raw `sqlite3 -csv | psql \copy` pipe run one after another, then
# every statement after the last move (keys, indexes, sequences, functions, triggers) as plain SQL in one
# psql transaction with apply's maintenance_work_mem.
FLOOR = r"""
import json, subprocess, sys, time
spec = json.loads(sys.argv[1])
psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", spec["url"]]
def script(path):
    subprocess.run(psql + ["-1", "-f", path], check=True, stdout=subprocess.DEVNULL)
t0 = time.perf_counter()
script(spec["setup"])
t1 = time.perf_counter()
per_pipe = []
for select, copy in spec["pipes"]:
    t = time.perf_counter()
    producer = subprocess.Popen(["sqlite3", "-csv", spec["legacy"], select], stdout=subprocess.PIPE)
    loader = subprocess.Popen(psql + ["-c", copy], stdin=producer.stdout, stdout=subprocess.DEVNULL)
    producer.stdout.close()
    if loader.wait() or producer.wait():
        sys.exit(f"pipe failed: {select} | {copy}")
    per_pipe.append([copy.split(" (")[0].removeprefix("\\copy "), time.perf_counter() - t])
t2 = time.perf_counter()
script(spec["post"])
t3 = time.perf_counter()
print(json.dumps({"setup_s": t1 - t0, "pipes_s": t2 - t1, "post_s": t3 - t2, "per_pipe": per_pipe}))
"""


def floor_spec(legacy: Path, url: str, work: Path) -> dict:
    """The plan's work for the floor: DDL files before and after the moves, and one raw pipe per move."""
    from dpro_migrate import verbs
    from dpro_migrate.plan.operations import CopyRows
    from dpro_migrate.targets import parse_target

    plan = verbs.make_plan(legacy, parse_target(url))
    ops = plan.operations
    moves = [i for i, op in enumerate(ops) if isinstance(op, CopyRows)]
    if any(not ops[i].moves_rows for i in range(moves[0], moves[-1] + 1)):
        raise SystemExit("the plan interleaves other steps with its moves: the floor assumes DDL, moves, DDL")
    setup, post = work / "floor-setup.sql", work / "floor-post.sql"
    setup.write_text("".join(f"{s};\n" for op in ops[:moves[0]] for s in op.sql))
    post.write_text("SET maintenance_work_mem = '256MB';\n"
                    + "".join(f"{s};\n" for op in ops[moves[-1] + 1:] for s in op.sql))
    pipes = []
    for i in moves:
        move = ops[i]
        cols = ", ".join(quote(c) for c in move.columns)
        where = f" WHERE {move.where}" if move.where else ""
        target = ".".join(quote(p) for p in move.target.split(".", 1))
        pipes.append([f"SELECT {cols} FROM {quote(move.legacy)}{where}", f"\\copy {target} ({cols}) FROM pstdin CSV"])
    return {"url": url, "legacy": str(legacy), "setup": str(setup), "post": str(post), "pipes": pipes}


def run_floor(name: str, legacy: Path, url: str, work: Path, total: int) -> dict:
    res = measure(name, [sys.executable, "-c", FLOOR, json.dumps(floor_spec(legacy, url, work))], work)
    if res["ok"]:
        res["phases"] = json.loads(Path(res["stdout_file"]).read_text())
    return with_rows(res, total)


def plan_indexes_on_copies(legacy: Path) -> list[str]:
    """The plan's CREATE INDEX statements, each on the raw copy of its legacy table (UNIQUE dropped: a split
    table's copy holds both halves): the index work a fair in-file baseline must do as well."""
    from dpro_migrate import verbs
    from dpro_migrate.dialects import physical_name
    from dpro_migrate.plan.operations import CreateIndex

    plan = verbs.make_plan(legacy, find_now=False)
    legacy_of = {physical_name(m.target, "sqlite"): m.legacy for m in plan.moves}
    out = []
    for step in plan.of_type(CreateIndex):
        m = re.match(r'CREATE (?:UNIQUE )?INDEX "([^"]+)" ON "([^"]+)"(.*)', step.sql[0], re.S)
        if m and m.group(2) in legacy_of:
            out.append(f'CREATE INDEX "raw_{m.group(1)}" ON {quote("copy_" + legacy_of[m.group(2)])}{m.group(3)}')
    return out


def one_round(r: int, legacy: Path, counts: dict[str, int], work: Path, dbs: Databases, msg_types: dict[str, str]
              , only_pg: bool = False) -> dict[str, dict]:
    """Every contender once, on fresh copies and fresh databases (only_pg: the PostgreSQL ones)."""
    total = sum(counts.values())
    tag = f"_r{r}" if r else ""
    runs: dict[str, dict] = {}
    if not only_pg:
        sqlite_contenders(runs, tag, legacy, work, total)
    pg_contenders(runs, tag, legacy, counts, work, dbs, msg_types)
    if not only_pg:
        raw_sqlite_contenders(runs, tag, legacy, counts, work, total)
    return runs


def sqlite_contenders(runs: dict, tag: str, legacy: Path, work: Path, total: int) -> None:
    # 1. SQLite in place: backup alone (apply's share), apply, verify, rollback; then the same apply in-process.
    f = copy_legacy(legacy, work, f"sqlite_backup{tag}")
    runs["sqlite_backup"] = with_rows(measure(f"sqlite_backup{tag}", [DPRO, "backup", str(f), "--backup-dir",
                                                                        str(f.parent / "bk"), "--create"], work), total)
    f.unlink()
    f = copy_legacy(legacy, work, f"sqlite{tag}")
    bk = f.parent / "bk"
    runs["sqlite_apply"] = with_rows(measure(
        f"sqlite_apply{tag}", [DPRO, "apply", str(f), "--yes", "--quiet", "--backup-dir", str(bk)], work), total)
    runs["sqlite_apply"]["file_bytes_after"] = f.stat().st_size
    runs["sqlite_verify"] = with_rows(measure(f"sqlite_verify{tag}", [DPRO, "verify", str(f), "--json"], work), total)
    _verify_ok(runs["sqlite_verify"])
    runs["sqlite_rollback"] = with_rows(measure(
        f"sqlite_rollback{tag}", [DPRO, "rollback", str(f), "--yes", "--quiet", "--backup-dir", str(bk)], work), total)
    shutil.rmtree(f.parent)
    f = copy_legacy(legacy, work, f"sqlite_phases{tag}")
    runs["sqlite_apply_inprocess"] = with_rows(run_phases(f"sqlite_apply_inprocess{tag}", f, None, work), total)
    shutil.rmtree(f.parent)


def pg_contenders(runs: dict, tag: str, legacy: Path, counts: dict[str, int], work: Path, dbs: Databases,
                  msg_types: dict[str, str]) -> None:
    total = sum(counts.values())
    # 2. The floor of the same work (bare tables, raw pipes, then the plan's DDL), then apply, verify; then the
    # same apply in-process, into another fresh database. Each in its own fresh database.
    if shutil.which("sqlite3") and shutil.which("psql"):
        dbs.checkpoint()
        runs["pg_floor"] = run_floor(f"pg_floor{tag}", legacy, dbs.fresh(f"floor{tag}"), work, total)
    else:
        runs["pg_floor"] = {"ok": False, "skipped": True, "error": "sqlite3 or psql is not installed"}
    dbs.checkpoint()
    url = dbs.fresh(f"apply{tag}")
    runs["pg_apply"] = with_rows(measure(f"pg_apply{tag}", [DPRO, "apply", str(legacy), "--yes", "--quiet",
                                                           "--target", url], work), total)
    runs["pg_verify"] = with_rows(measure(f"pg_verify{tag}", [DPRO, "verify", str(legacy), "--json", "--target", url],
                                          work), total)
    _verify_ok(runs["pg_verify"])
    dbs.checkpoint()
    url2 = dbs.fresh(f"phases{tag}")
    runs["pg_apply_inprocess"] = with_rows(run_phases(f"pg_apply_inprocess{tag}", legacy, url2, work), total)

    # 3. pgloader, same file, another fresh database.
    if PGLOADER:
        dbs.checkpoint()
        url3 = dbs.fresh(f"pgloader{tag}")
        res = measure(f"pgloader{tag}", [PGLOADER, f"sqlite://{legacy}", url3], work)
        try:
            loaded = dbs.scalar(url3, "SELECT count(*) FROM public.messages")
        except Exception as exc:
            loaded = None
            res["ok"] = False
            res["error"] = f"no public.messages after pgloader ({exc.__class__.__name__})"
        res["messages_loaded"] = loaded
        if loaded != counts["messages"]:
            res["ok"] = False
            res.setdefault("error", f"pgloader loaded {loaded} of {counts['messages']} messages")
        summary = Path(res["stdout_file"]).read_text(errors="replace") + Path(res["stderr_file"]).read_text(errors="replace")
        m = re.search(r"Total import time\s+\S+\s+(\d+)", summary)
        res["rows_reported"] = int(m.group(1)) if m else None
        runs["pgloader"] = with_rows(res, total)
    else:
        runs["pgloader"] = {"ok": False, "skipped": True, "error": "pgloader is not installed"}
        log("pgloader is not installed: skipped")

    # 4a. Raw pipe: sqlite3 -csv | psql \copy, messages only, into a plain table of the same columns.
    if shutil.which("sqlite3") and shutil.which("psql"):
        dbs.checkpoint()
        url4 = dbs.fresh(f"pipe{tag}")
        create, _ = raw_pipe_table_sql(legacy, "messages", msg_types)
        _exec(url4, create)
        pipe = (f"sqlite3 -csv {_sh(str(legacy))} 'SELECT * FROM messages' | "
                f"psql {_sh(url4)} -v ON_ERROR_STOP=1 -q -c '\\copy raw_messages FROM pstdin CSV'")
        res = measure(f"raw_pipe{tag}", ["bash", "-o", "pipefail", "-c", pipe], work)
        loaded = dbs.scalar(url4, "SELECT count(*) FROM raw_messages")
        if loaded != counts["messages"]:
            res["ok"] = False
            res.setdefault("error", f"pipe loaded {loaded} of {counts['messages']} messages")
        res["table_sql"] = create
        runs["raw_pipe"] = with_rows(res, counts["messages"])
    else:
        runs["raw_pipe"] = {"ok": False, "skipped": True, "error": "sqlite3 or psql is not installed"}


def raw_sqlite_contenders(runs: dict, tag: str, legacy: Path, counts: dict[str, int], work: Path, total: int) -> None:
    # 4b. Raw SQLite: INSERT INTO copy SELECT * FROM t, every legacy table, one transaction, in a copy.
    # Literally as specified (SQLite copies whole records: its transfer optimisation), then row by row.
    # Then the same with the plan's 59 indexes built on the copies: the in-file work apply cannot skip.
    for name, where, indexes in (("raw_insert_select", "", []), ("raw_insert_select_rowwise", " WHERE 1", []),
                                 ("raw_insert_select_indexed", "", plan_indexes_on_copies(legacy))):
        f = copy_legacy(legacy, work, name + tag)
        spec = {"path": str(f), "tables": list(counts), "where": where, "indexes": indexes}
        res = measure(name + tag, [sys.executable, "-c", INSERT_SELECT, json.dumps(spec)], work)
        if res["ok"]:
            res["inner"] = json.loads(Path(res["stdout_file"]).read_text())
        runs[name] = with_rows(res, total)
        shutil.rmtree(f.parent)


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="rows in messages (default 1,000,000; "
                    "200000 for a quick try, 5000000 to see whether memory stays flat)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json", help="JSON results")
    ap.add_argument("--md", type=Path, default=HERE / "results.md",
                    help="committed summary, one section per --messages size (default benchmarks/results.md)")
    ap.add_argument("--no-md", action="store_true", help="do not update the committed summary")
    ap.add_argument("--pg", default=os.environ.get("DPRO_BENCH_PG", DEFAULT_PG),
                    help="admin URL of a PostgreSQL server; fresh databases are created and dropped through it")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every contender (median wall, max RSS)")
    ap.add_argument("--only-pg", action="store_true", help="only the PostgreSQL contenders (floor, apply, verify, "
                    "pgloader, raw pipe)")
    ap.add_argument("--no-workload", action="store_true",
                    help="skip the application's workload (benchmarks/workload: its queries timed on the legacy file, "
                         "SQLite migrated in place and PostgreSQL plain and partitioned)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory and the databases")
    ap.add_argument("--workdir", type=Path, default=None, help="where the temporary directory goes (default $TMPDIR)")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None, metavar="JSON",
                    help="run nothing: print these results again and put them in --md")
    ap.add_argument("--_phases", dest="phases", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.from_json:
        for f in args.from_json:
            doc = json.loads(f.read_text())
            print_report(doc)
            if not args.no_md:
                update_md(args.md, doc)
        return 0

    if args.phases:
        phases_child(json.loads(args.phases))
        return 0

    from dpro_migrate import verbs
    from dpro_migrate.example import generate_legacy_db
    from dpro_migrate.targets import parse_target

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    loadavg_start = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    work = Path(tempfile.mkdtemp(prefix="dpro-bench-", dir=args.workdir))
    log(f"work directory {work}")
    machine = machine_info(args.pg)
    dbs = Databases(args.pg)
    notes: list[str] = []
    try:
        # 0. The legacy file, once.
        legacy = work / "legacy.db"
        t = time.perf_counter()
        counts = generate_legacy_db(legacy, messages=args.messages, shape="18")
        gen_s = time.perf_counter() - t
        total = sum(counts.values())
        log(f"generated {legacy}: {total:,} rows ({counts['messages']:,} messages), "
            f"{legacy.stat().st_size / 1e6:,.0f} MB in {gen_s:.1f}s")

        # The column types dpro-migrate gives messages in PostgreSQL (the raw pipe's table uses them too).
        msg_types: dict[str, str] = {}
        for st in verbs.make_plan(legacy, parse_target(db_url(args.pg, "x"))).moves:
            if st.legacy == "messages":
                msg_types.update(st.types)
        rounds = []
        for r in range(args.repeat):
            if args.repeat > 1:
                log(f"round {r + 1} of {args.repeat}")
            rounds.append(one_round(r, legacy, counts, work, dbs, msg_types, args.only_pg))
        runs = aggregate(rounds)
        if PGLOADER and not runs["pgloader"].get("ok"):
            notes.append(f"pgloader failed: {runs['pgloader'].get('error', '')}")
        if not PGLOADER:
            notes.append("pgloader is not installed: skipped, and the ratio pg_apply / pgloader is not computed")
        if args.repeat > 1:
            notes.append(f"{args.repeat} rounds: wall time is the median, peak RSS the maximum over the rounds")

        result = {
            "started_at": started_at,
            "messages": args.messages,
            "rows": counts,
            "total_rows": total,
            "legacy_bytes": legacy.stat().st_size,
            "generate_s": gen_s,
            "machine": machine,
            "repeat": args.repeat,
            "loadavg_start": loadavg_start,
            "loadavg_end": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
            "runs": runs,
            "notes": notes,
        }
        head_end = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip()
        lib_changed = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", str(machine.get("git_head")), "--",
                                      "dpro_migrate", "ddl"]).returncode
        if lib_changed:
            notes.append(f"the library changed during the run: HEAD {machine.get('git_head')} at the start, "
                         f"{head_end} at the end (dpro_migrate/ or ddl/ differ)")
        if not args.no_workload:
            log("workload: the application's queries on the legacy file and the migrated databases")
            result["workload"] = workload_section(legacy, work, dbs)
        result["git_head_end"] = head_end
        result["ratios"] = ratios(result)
        result["breakdown"] = breakdown(result)
    finally:
        if not args.keep:
            dbs.drop_all()
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work} and databases {', '.join(dbs.made)}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    per_size = HERE / "results" / f"messages-{args.messages}.json"
    per_size.parent.mkdir(parents=True, exist_ok=True)
    if per_size.resolve() != args.out.resolve():
        per_size.write_text(json.dumps(result, indent=1, default=str))
    log(f"wrote {args.out} and {per_size}")
    print_report(result)
    if not args.no_md:
        update_md(args.md, result)
        log(f"updated {args.md}")
    # A failing dpro-migrate run or baseline makes the exit status 1; pgloader failing is a finding, not ours.
    failed = [n for n, r in runs.items() if not r.get("ok") and not r.get("skipped") and n != "pgloader"]
    return 1 if failed else 0


def workload_section(legacy: Path, work: Path, dbs: "Databases", repeat: int = 20) -> dict:
    """The application's queries (benchmarks/workload/queries.toml) timed side by side: the legacy file, a copy
    migrated in place, PostgreSQL, and PostgreSQL --with partition-by-month (what partitioning costs)."""
    import psycopg

    sys.path.insert(0, str(ROOT))
    from benchmarks.workload.workload import report, run_workload
    from dpro_migrate import verbs
    from dpro_migrate.targets import parse_target

    migrated = work / "workload-migrated.db"
    shutil.copyfile(legacy, migrated)
    verbs.apply(migrated, backup_dir=work)
    plain, partitioned = dbs.fresh("workload"), dbs.fresh("workload_partitioned")
    verbs.apply(legacy, parse_target(plain), backup_dir=work)
    verbs.apply(legacy, parse_target(partitioned), backup_dir=work, features=("partition-by-month",))
    with sqlite3.connect(legacy) as old, sqlite3.connect(migrated) as new, \
            psycopg.connect(plain, autocommit=True) as pg, psycopg.connect(partitioned, autocommit=True) as part:
        outcomes = run_workload(old, new, pg, partitioned=part, repeat=repeat)
    return {"repeat": repeat, "table_md": report(outcomes),
            "queries": [{"name": o.name, "rows": o.rows, "same_rows": o.same_rows, "indexed": o.indexed,
                         "ms": {t: round(v * 1000, 3) for t, v in o.seconds.items()}, "plans": o.plans}
                        for o in outcomes]}


def aggregate(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """One entry per contender: the run with the median wall time, with the maximum peak RSS of all rounds."""
    if len(rounds) == 1:
        return rounds[0]
    out = {}
    for name in rounds[0]:
        rs = [rd[name] for rd in rounds if name in rd]
        if any(x.get("skipped") for x in rs):
            out[name] = rs[0]
            continue
        ranked = sorted(rs, key=lambda x: x.get("wall_s") or 0.0)
        base = dict(ranked[(len(ranked) - 1) // 2])
        base["wall_s_rounds"] = [x.get("wall_s") for x in rs]
        base["peak_rss_mb_rounds"] = [round((x.get("peak_rss_kb") or 0) / 1024, 1) for x in rs]
        base["peak_rss_kb"] = max(x.get("peak_rss_kb") or 0 for x in rs)
        base["ok"] = all(x.get("ok") for x in rs)
        if not base["ok"]:
            base["error"] = next(x.get("error") for x in rs if not x.get("ok"))
        out[name] = with_rows(base, base["rows"])
    return out


def _exec(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        c.execute(sql)


def _sh(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _verify_ok(res: dict) -> None:
    """verify --json: ok only if the command says every check passed."""
    try:
        doc = json.loads(Path(res["stdout_file"]).read_text())
        res["verified"] = bool(doc.get("ok"))
        if not res["verified"]:
            res["ok"] = False
            res["error"] = "verify reported failures: " + ", ".join(c["name"] for c in doc.get("checks", []) if not c["ok"])
    except (OSError, ValueError) as exc:
        res["verified"] = None
        res.setdefault("error", f"unreadable verify output ({exc.__class__.__name__})")


# --- ratios, breakdown, report ------------------------------------------------------------------


def _wall(runs: dict, name: str) -> float | None:
    r = runs.get(name) or {}
    return r.get("wall_s") if r.get("ok") else None


def _ratio(name: str, num: float | None, den: float | None, detail: str) -> dict:
    op, target = TARGETS[name]
    value = num / den if num is not None and den else None
    met = None if value is None else (value <= target if op == "<=" else value < target)
    return {"value": value, "target": f"{op} {target:.3g}", "met": met, "detail": detail}


def ratios(result: dict) -> dict:
    runs = result["runs"]
    out = {}
    floor = (runs.get("pg_floor") or {}).get("phases") or {}
    ph = (runs.get("pg_apply_inprocess") or {}).get("phases") or {}
    out["pg_apply / floor"] = _ratio(
        "pg_apply / floor", _wall(runs, "pg_apply"), _wall(runs, "pg_floor"),
        "whole CLI apply (plan, backup, checks, one transaction) / bare tables + a raw sqlite3 -csv | psql \\copy "
        "pipe per move + the plan's keys, indexes, sequences and triggers as plain SQL"
        + (f"; in-process apply / floor: {ph['wall_s'] / _wall(runs, 'pg_floor'):.2f}"
           if ph.get("wall_s") and _wall(runs, "pg_floor") else ""))
    out["pg copy / floor pipes"] = _ratio(
        "pg copy / floor pipes", ph.get("copy_phase_s") or None, floor.get("pipes_s"),
        "the copy_rows steps of the in-process apply / the floor's raw pipes, all moves"
        + (f"; floor: pipes {floor['pipes_s']:.2f}s, DDL after {floor['post_s']:.2f}s, apply's steps after the "
           f"copy {sum(v for k, v in ph.get('by_kind_s', {}).items() if k not in ('copy_rows', 'create_table', 'create_schema')):.2f}s"
           if floor and ph else ""))
    out["pg_apply / pgloader"] = _ratio("pg_apply / pgloader", _wall(runs, "pg_apply"), _wall(runs, "pgloader"),
                                       "wall time, whole process each")
    msg_copy = sum(m["seconds"] for m in ph.get("moves", []) if m["legacy"] == "messages") or None
    out["pg copy phase / raw pipe"] = _ratio(
        "pg copy phase / raw pipe", msg_copy, _wall(runs, "raw_pipe"),
        "copy_rows steps of messages (in-process apply) / sqlite3 -csv | psql \\copy of messages; "
        f"all copy_rows together: {ph.get('copy_phase_s', 0):.2f}s for {result['total_rows']:,} rows")
    out["sqlite_apply / raw insert-select"] = _ratio(
        "sqlite_apply / raw insert-select", _wall(runs, "sqlite_apply"), _wall(runs, "raw_insert_select"),
        "whole CLI apply (backup included) / INSERT ... SELECT * of all legacy tables, one transaction; "
        + (f"row by row (WHERE 1, no transfer optimisation): "
           f"{_wall(runs, 'sqlite_apply') / _wall(runs, 'raw_insert_select_rowwise'):.1f}"
           if _wall(runs, "sqlite_apply") and _wall(runs, "raw_insert_select_rowwise") else "")
        + (f"; with the plan's indexes built on the copies: "
           f"{_wall(runs, 'sqlite_apply') / _wall(runs, 'raw_insert_select_indexed'):.1f}"
           if _wall(runs, "sqlite_apply") and _wall(runs, "raw_insert_select_indexed") else ""))
    out["sqlite verify / apply"] = _ratio("sqlite verify / apply", _wall(runs, "sqlite_verify"),
                                          _wall(runs, "sqlite_apply"), "CLI wall times")
    out["pg verify / apply"] = _ratio("pg verify / apply", _wall(runs, "pg_verify"), _wall(runs, "pg_apply"),
                                      "CLI wall times")
    dpro = {n: r["peak_rss_mb"] for n, r in runs.items()
            if n.startswith(("sqlite_", "pg_")) and "inprocess" not in n and n != "pg_floor" and r.get("ok")}
    worst = max(dpro, key=dpro.get) if dpro else None
    r = _ratio("peak RSS of dpro-migrate (MB)", dpro[worst] if worst else None, 1.0,
               f"largest of the dpro-migrate CLI runs: {worst}")
    r["per_run_mb"] = dpro
    out["peak RSS of dpro-migrate (MB)"] = r
    return out


def breakdown(result: dict) -> dict:
    runs = result["runs"]
    out = {}
    b, a = _wall(runs, "sqlite_backup"), _wall(runs, "sqlite_apply")
    if b and a:
        out["backup share of sqlite_apply (CLI backup / CLI apply, both with start-up)"] = b / a
    ph = (runs.get("sqlite_apply_inprocess") or {}).get("phases") or {}
    inner = (ph.get("functions_s") or {}).get("backends.sqlite.copy_file")
    if inner and ph.get("wall_s"):
        out["backup share of sqlite_apply (in-process: the backup copy / apply; its check overlaps the steps)"] = inner / ph["wall_s"]
    floor = (runs.get("pg_floor") or {}).get("phases")
    if floor:
        out["pg_floor: phases"] = {k: v for k, v in floor.items() if k.endswith("_s")}
    for name in ("sqlite_apply_inprocess", "pg_apply_inprocess"):
        ph = (runs.get(name) or {}).get("phases")
        if ph:
            out[f"{name}: steps"] = {
                "before_steps_s": ph["before_steps_s"],
                **{f"{k}_s": v for k, v in sorted(ph["by_kind_s"].items(), key=lambda kv: -kv[1])},
                "last_step_and_after_s": ph["last_step_and_after_s"]}
            out[f"{name}: functions (nested)"] = {f"{k}_s": v for k, v in ph.get("functions_s", {}).items()}
    return out


ORDER = ["sqlite_backup", "sqlite_apply", "sqlite_apply_inprocess", "sqlite_verify", "sqlite_rollback",
         "pg_floor", "pg_apply", "pg_apply_inprocess", "pg_verify", "pgloader", "raw_pipe", "raw_insert_select",
         "raw_insert_select_rowwise", "raw_insert_select_indexed"]
LABELS = {
    "sqlite_backup": "dpro-migrate backup (SQLite)",
    "sqlite_apply": "dpro-migrate apply, SQLite in place",
    "sqlite_apply_inprocess": "  same in place, in-process (step timing)",
    "sqlite_verify": "dpro-migrate verify, SQLite",
    "sqlite_rollback": "dpro-migrate rollback, SQLite",
    "pg_floor": "floor: bare tables, raw pipe per move, plan's DDL",
    "pg_apply": "dpro-migrate apply, PostgreSQL",
    "pg_apply_inprocess": "  same to PostgreSQL, in-process (step timing)",
    "pg_verify": "dpro-migrate verify, PostgreSQL",
    "pgloader": "pgloader sqlite:// -> postgresql://",
    "raw_pipe": "raw: sqlite3 -csv | psql \\copy (messages)",
    "raw_insert_select": "raw: SQLite INSERT..SELECT * (all tables)",
    "raw_insert_select_rowwise": "  same, row by row (WHERE 1)",
    "raw_insert_select_indexed": "  same, then the plan's CREATE INDEX on the copies",
}


def rows_table(result: dict) -> list[list[str]]:
    lines = []
    for name in ORDER:
        r = result["runs"].get(name)
        if r is None:
            continue
        if r.get("skipped"):
            lines.append([LABELS[name], "skipped", "", "", "", r.get("error", "")])
            continue
        status = "ok" if r.get("ok") else f"FAILED: {r.get('error', '')}"[:80]
        lines.append([LABELS[name], f"{r['wall_s']:.2f}", f"{r['rows']:,}", f"{r['rows_per_s']:,.0f}",
                      f"{r['peak_rss_mb']:.0f}", status])
    return lines


def ratio_lines(result: dict) -> list[list[str]]:
    out = []
    for name, r in result["ratios"].items():
        v = "n/a" if r["value"] is None else (f"{r['value']:.0f}" if "MB" in name else f"{r['value']:.2f}")
        met = "n/a" if r["met"] is None else ("met" if r["met"] else "MISSED")
        out.append([name, v, r["target"], met, r["detail"]])
    return out


def print_report(result: dict) -> None:
    head = ["contender", "wall s", "rows", "rows/s", "peak RSS MB", "status"]
    rhead = ["ratio", "value", "target", "", "how"]
    try:
        from rich.console import Console
        from rich.table import Table

        con = Console(width=None if sys.stdout.isatty() else 150)
        t = Table(*head, title=f"{result['messages']:,} messages, {result['total_rows']:,} rows, "
                               f"{result['legacy_bytes'] / 1e6:,.0f} MB legacy file")
        for row in rows_table(result):
            t.add_row(*row)
        con.print(t)
        t = Table(*rhead, title="ratios")
        for row in ratio_lines(result):
            row[3] = {"met": "[green]met[/]", "MISSED": "[red]MISSED[/]"}.get(row[3], row[3])
            t.add_row(*row)
        con.print(t)
        t = Table("where the time goes", "seconds / share")
        for k, v in result["breakdown"].items():
            if isinstance(v, dict):
                t.add_row(k, ", ".join(f"{kk.removesuffix('_s')} {vv:.2f}" for kk, vv in v.items()))
            else:
                t.add_row(k, f"{v:.0%}")
        con.print(t)
        for n in result["notes"]:
            con.print(f"note: {n}")
    except ImportError:
        for row in [head] + rows_table(result):
            print(" | ".join(row))
        for row in [rhead] + ratio_lines(result):
            print(" | ".join(row))
        print(json.dumps(result["breakdown"], indent=1))


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows])


def section_md(result: dict) -> str:
    m = result["machine"]
    lines = [f"## {result['messages']:,} messages ({result['total_rows']:,} rows, "
             f"{result['legacy_bytes'] / 1e6:,.0f} MB legacy file), run {result['started_at']}", ""]
    lines.append(_md_table(["contender", "wall s", "rows", "rows/s", "peak RSS MB", "status"], rows_table(result)))
    lines += ["", _md_table(["ratio", "value", "target", "", "how"], ratio_lines(result)), ""]
    for k, v in result["breakdown"].items():
        if isinstance(v, dict):
            lines.append(f"- {k}: " + ", ".join(f"{kk.removesuffix('_s')} {vv:.2f}s" for kk, vv in v.items()))
        else:
            lines.append(f"- {k}: {v:.0%}")
    for n in result["notes"]:
        lines.append(f"- note: {n}")
    if result.get("workload"):
        lines += ["", f"The application's workload (median of {result['workload']['repeat']} runs per query, ms; "
                  "benchmarks/workload):", "", result["workload"]["table_md"], ""]
    dirty = m.get("library_uncommitted") or []
    lines.append(f"- library: git {m.get('git_head')}" + (f" with uncommitted changes in {len(dirty)} files" if dirty else "")
                 + (f" (HEAD {result.get('git_head_end')} at the end)"
                    if result.get("git_head_end") not in (None, m.get("git_head")) else ""))
    lines.append(f"- machine: {m['nproc']} CPUs, {m['memory_gb']} GB, {m['cpu_model']}; SQLite "
                 f"{m['sqlite_python_module']}; PostgreSQL {m['postgresql']}; pgloader {m['pgloader'] or 'not installed'}")
    return "\n".join(lines)


def update_md(path: Path, result: dict) -> None:
    """One section per --messages size, replaced on each run; machine description and memory-vs-size at the top."""
    text = path.read_text() if path.exists() else ""
    sections = dict(re.findall(r"<!-- run:(\d+) -->\n(.*?)\n<!-- /run -->", text, re.S))
    kept = re.search(r"<!-- notes -->\n.*?<!-- /notes -->", text, re.S)  # hand-written, kept as it is
    sections[str(result["messages"])] = section_md(result)
    m = result["machine"]
    head = [
        "# dpro-migrate benchmark results",
        "",
        "Written by `benchmarks/run.py` (see benchmarks/README.md); full JSON in benchmarks/results/ (not committed).",
        "",
        "Machine of the latest run:",
        "",
        f"- `nproc`: {m['nproc']}; memory: {m['memory_gb']} GB; CPU: {m['cpu_model']}; kernel {m['kernel']}",
        f"- SQLite {m['sqlite_python_module']} (Python module), {m['sqlite3_cli']} (sqlite3 CLI); "
        f"PostgreSQL {m['postgresql']} on the same machine; pgloader {m['pgloader'] or 'not installed'}; Python {m['python']}",
        "- PostgreSQL settings: " + (", ".join(f"{k}={v}" for k, v in (m["postgresql_settings"] or {}).items()) or "n/a"),
        "",
        memory_by_size_md(),
        "",
    ] + ([kept.group(0), ""] if kept else [])
    body = [f"<!-- run:{k} -->\n{sections[k]}\n<!-- /run -->" for k in sorted(sections, key=int)]
    path.write_text("\n".join(head) + "\n" + "\n\n".join(body) + "\n")


def memory_by_size_md() -> str:
    """Peak RSS of each dpro-migrate run at every size measured so far (benchmarks/results/messages-*.json)."""
    found = {}
    for f in (HERE / "results").glob("messages-*.json"):
        try:
            doc = json.loads(f.read_text())
            found[doc["messages"]] = doc
        except (OSError, ValueError, KeyError):
            continue
    if not found:
        return ""
    sizes = sorted(found)
    names = [n for n in ORDER if (n.startswith(("sqlite_", "pg_")) or n == "pgloader") and n != "pg_floor"]
    rows = []
    for n in names:
        vals = [found[s]["runs"].get(n, {}) for s in sizes]
        if not any(v.get("peak_rss_mb") for v in vals):
            continue
        rows.append([LABELS[n].strip()] + [f"{v['peak_rss_mb']:.0f}" if v.get("peak_rss_mb") else "" for v in vals])
    return "Peak RSS (MB) by size, from the latest run at each size:\n\n" + _md_table(
        ["contender"] + [f"{s:,} msgs" for s in sizes], rows)


if __name__ == "__main__":
    sys.exit(main())
