"""The COPY producers (db/copy_producers.py): processes that build apply's COPY lines from the snapshot.

They must give exactly the lines one reader gives (split by id range or not), die with dpro-migrate (a SIGKILL
leaves no producer and no open descriptor of the file), refuse a file written under them, keep memory flat,
and leave a refused value explained with its table, row and rule as before."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.db import copy_producers
from dpro_migrate.db.copy_producers import ProducerFailed, Producers, change_counter, open_producers, rowid_alias_id
from dpro_migrate.db.pgcopy import stream_lines
from dpro_migrate.errors import Blocked, ChecksFailed
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.plan.copy_lines import copy_lines_sql
from dpro_migrate.targets import parse_target
from dpro_migrate.types import type_class_of_pg

ROOT = Path(__file__).resolve().parent.parent


def make_table(path: Path, ids, ddl: str = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)") -> str:
    conn = sqlite3.connect(path)
    conn.execute(ddl)
    conn.executemany("INSERT INTO t (id, v) VALUES (?, ?)", [(i, f"row {i}, \"quoted\"") for i in ids])
    conn.commit()
    conn.close()
    return copy_lines_sql("t", [("id", type_class_of_pg("bigint")), ("v", type_class_of_pg("text"))], None)


def reader(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def lines_of(blocks) -> list[bytes]:
    out = []
    for block, n in blocks:
        lines = block.splitlines(keepends=True)
        assert len(lines) == n and all(line.endswith(b"\n") for line in lines)  # whole lines, counted right
        out += lines
    return out


@pytest.mark.parametrize("ids", [range(1, 5001), [-(2**63), -5, 0, 7, 2**62, 2**63 - 1] + list(range(100, 3000, 7)),
                                 [1, 2], []], ids=["dense", "sparse and extreme", "two", "empty"])
def test_split_moves_give_exactly_the_lines_of_one_reader(tmp_path, monkeypatch, ids):
    monkeypatch.setattr(copy_producers, "SPLIT_ROWS", 1)  # split whatever the size
    db = tmp_path / "s.db"
    sql = make_table(db, ids)
    counter = change_counter(db)
    src = reader(db)
    whole = sorted(lines_of(stream_lines(src, sql)))
    with Producers(db, counter, [(sql, "t"), (sql, "t")], src, 3) as producers:
        assert len(producers.moves[0].shards) == (3 if len(ids) >= 3 else 1)
        for _ in range(2):  # the same move twice: each producer keeps its shards in order
            assert sorted(lines_of(producers.blocks(sql))) == whole
    assert len(whole) == len(ids)


def test_only_a_rowid_id_is_split(tmp_path):
    cases = {"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)": True,
             "CREATE TABLE t (id integer primary key, v TEXT)": True,
             "CREATE TABLE t (id INTEGER PRIMARY KEY DESC, v TEXT)": False,  # not the rowid (SQLite quirk)
             "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)": False,
             "CREATE TABLE t (id INTEGER, v TEXT)": False,
             "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID": False}
    for n, (ddl, split) in enumerate(cases.items()):
        db = tmp_path / f"{n}.db"
        make_table(db, [1, 2], ddl)
        conn = sqlite3.connect(db)
        assert rowid_alias_id(conn, "t") == split, ddl
        conn.close()


def test_a_wal_file_is_read_by_one_reader_not_producers(tmp_path):
    db = tmp_path / "w.db"
    sql = make_table(db, range(10))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    assert open_producers(db, change_counter(db), reader(db), [(sql, "t")], 2) is None


def test_a_file_written_since_the_copy_began_is_refused(tmp_path, monkeypatch):
    db = tmp_path / "c.db"
    sql = make_table(db, range(1, 100))
    counter = change_counter(db)
    with sqlite3.connect(db) as writer:  # committed after the counter was read, before the copy's reader opened
        writer.execute("UPDATE t SET v = 'changed' WHERE id = 1")
    writer.close()
    with Producers(db, counter, [(sql, "t")], reader(db), 2) as producers:
        with pytest.raises(ProducerFailed, match="not the snapshot"):
            list(producers.blocks(sql))


def test_a_producer_killed_midway_stops_the_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(copy_producers, "BLOCK_BYTES", 4096)
    db = tmp_path / "k.db"
    sql = make_table(db, range(1, 300_000))  # several MB: more than the pipes hold
    with Producers(db, change_counter(db), [(sql, "t")], reader(db), 2) as producers:
        blocks = producers.blocks(sql)
        next(blocks)
        owner = producers.moves[0].shards[0][0]
        producers.procs[owner].kill()
        with pytest.raises(ProducerFailed, match="stopped before its rows were all read"):
            list(blocks)


def holders_of(path: Path) -> list[int]:
    """Processes with a descriptor open on this file."""
    out = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(path) for fd in fd_dir.iterdir()):
                out.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return out


def producer_pids(parent: int) -> list[int]:
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"dpro_migrate.db.copy_producers" in cmd and str(parent).encode() in cmd:
            stat = (proc / "stat").read_text()
            if stat[stat.rindex(")") + 2:].split()[0] != "Z":
                out.append(int(proc.name))
    return out


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_producers_die_with_a_sigkill_of_their_parent(tmp_path):
    """The parent opens producers and stops reading (they block on full pipes, holding the file open), then is
    SIGKILLed: every producer is gone, and nothing holds the file open."""
    db = tmp_path / "p.db"
    make_table(db, range(1, 200_000))
    script = textwrap.dedent(f"""
        import sqlite3, sys, time
        from pathlib import Path
        from dpro_migrate.db import copy_producers
        from dpro_migrate.plan.copy_lines import copy_lines_sql
        from dpro_migrate.types import type_class_of_pg
        copy_producers.SPLIT_ROWS = 1
        db = Path({str(db)!r})
        counter = copy_producers.change_counter(db)
        src = sqlite3.connect(db.as_uri() + "?mode=ro", uri=True, isolation_level=None)
        src.execute("BEGIN"); src.execute("SELECT 1 FROM sqlite_master").fetchall()
        sql = copy_lines_sql("t", [("id", type_class_of_pg("bigint")), ("v", type_class_of_pg("text"))], None)
        p = copy_producers.Producers(db, counter, [(sql, "t")], src, 2)
        print("started", flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert parent.stdout.readline() == b"started\n"
        assert wait_until(lambda: len(producer_pids(parent.pid)) == 2)
        producers = producer_pids(parent.pid)
        assert wait_until(lambda: set(producers) <= set(holders_of(db)))  # each reads the file
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: not producer_pids(parent.pid)), "a producer outlived its parent"
        assert wait_until(lambda: not holders_of(db)), f"{holders_of(db)} still hold {db} open"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in producer_pids(parent.pid):
            os.kill(pid, signal.SIGKILL)


# --- through apply, into PostgreSQL --------------------------------------------------------------


@pytest.fixture(scope="module")
def big_legacy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("producers") / "dpro_agent.db"
    generate_legacy_db(path, messages=150_000)
    return path


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_apply_leaves_no_producer_and_no_open_snapshot(big_legacy, tmp_path, pg_url):
    backups = tmp_path / "bk"
    proc = subprocess.Popen([sys.executable, "-m", "dpro_migrate", "apply", str(big_legacy), "--yes", "--quiet",
                             "--backup-dir", str(backups), "--target", pg_url], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "DPRO_MIGRATE_COPY_PRODUCERS": "2"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: len(producer_pids(proc.pid)) == 2 or proc.poll() is not None, 120)
        producers = producer_pids(proc.pid)
        assert producers, "apply ended before its producers were seen"
        proc.kill()
        proc.wait()
        assert wait_until(lambda: not producer_pids(proc.pid)), "a producer outlived dpro-migrate"
        snapshots = list(backups.glob("*.bak"))
        assert snapshots
        assert wait_until(lambda: not any(holders_of(s) for s in snapshots)), "the snapshot is still open"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in producer_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
    with psycopg.connect(pg_url) as conn:  # the killed transaction committed nothing
        wait_until(lambda: not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                            "AND pid <> pg_backend_pid()").fetchone()[0])
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'communication'").fetchone()[0] == 0
    verbs.apply(big_legacy, parse_target(pg_url), backup_dir=backups)  # and a rerun migrates
    report = verbs.verify(big_legacy, parse_target(pg_url))
    assert report.ok, report.failures


@pytest.mark.postgres
@pytest.mark.slow
def test_a_refused_value_in_a_split_move_names_its_table_row_and_rule(big_legacy, tmp_path, pg_url, monkeypatch):
    monkeypatch.setattr(copy_producers, "SPLIT_ROWS", 1000)  # messages split over the producers
    monkeypatch.setenv("DPRO_MIGRATE_COPY_PRODUCERS", "3")
    db = tmp_path / "dirty.db"
    db.write_bytes(big_legacy.read_bytes())
    with sqlite3.connect(db) as conn:  # in the last producer's share
        last = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
        conn.execute("UPDATE messages SET created_at = '2024-01-05T10:00:00Z' WHERE id = ?", (last - 3,))
    conn.close()
    with pytest.raises(ChecksFailed) as refused:
        verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path / "bk")
    assert {"table": "messages", "rule": "type communication.messages.created_at timestamptz", "rows": 1} \
        in refused.value.details["findings"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'communication'").fetchone()[0] == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_a_split_apply_loads_every_row_once(big_legacy, tmp_path, pg_url, monkeypatch):
    monkeypatch.setattr(copy_producers, "SPLIT_ROWS", 1000)
    monkeypatch.setenv("DPRO_MIGRATE_COPY_PRODUCERS", "3")
    target = parse_target(pg_url)
    verbs.apply(big_legacy, target, backup_dir=tmp_path / "bk")
    report = verbs.verify(big_legacy, target)
    assert report.ok, report.failures


@pytest.mark.postgres
def test_a_producer_killed_during_apply_changes_nothing(legacy_db, tmp_path, pg_url, monkeypatch):
    db = legacy_db()
    real_start = copy_producers._start

    def killed(*args):  # a producer killed from outside (the OOM killer, an operator) before it wrote its rows
        proc = real_start(*args)
        proc.kill()
        proc.wait()
        return proc

    monkeypatch.setattr(copy_producers, "_start", killed)
    monkeypatch.setenv("DPRO_MIGRATE_COPY_PRODUCERS", "2")
    with pytest.raises(Blocked, match="nothing was changed"):
        verbs.apply(db, parse_target(pg_url), backup_dir=tmp_path / "bk")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'iam'").fetchone()[0] == 0


MEMORY_SCRIPT = r"""
import os, sys, threading, time, json
from pathlib import Path
from dpro_migrate import verbs
from dpro_migrate.targets import parse_target

def tree_kb(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            total += next((int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")), 0)
        except OSError:
            pass
    return total

peak, producers_seen, stop = [0], [0], threading.Event()
def sample():
    while not stop.wait(0.02):
        peak[0] = max(peak[0], tree_kb(os.getpid()))
threading.Thread(target=sample, daemon=True).start()
verbs.apply(Path(sys.argv[1]), parse_target(sys.argv[2]), backup_dir=Path(sys.argv[3]))
stop.set()
print(json.dumps({"peak_tree_mb": peak[0] / 1024}))
"""


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_memory_of_apply_and_its_producers_stays_bounded(big_legacy, tmp_path, pg_url):
    """The whole process tree (apply and its producers), sampled every 20 ms, stays well under 200 MB."""
    import json

    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(big_legacy), pg_url, str(tmp_path / "bk")],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "DPRO_MIGRATE_COPY_PRODUCERS": "3"},
                          capture_output=True, text=True, check=True)
    peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_tree_mb"]
    assert 0 < peak < 200, peak


def test_the_number_of_producers_is_a_setting():
    from dpro_migrate.config import load_settings
    from dpro_migrate.errors import BadInput

    assert load_settings({}).copy_producers is None
    assert load_settings({"DPRO_MIGRATE_COPY_PRODUCERS": " 3 "}).copy_producers == 3
    for bad in ("0", "17", "two", "+2", "2.0"):
        with pytest.raises(BadInput, match="DPRO_MIGRATE_COPY_PRODUCERS"):
            load_settings({"DPRO_MIGRATE_COPY_PRODUCERS": bad})
