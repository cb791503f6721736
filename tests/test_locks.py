"""Locks, measured: how long in-place apply and rollback wait for the application's readers and writers
(DPRO_MIGRATE_BUSY_TIMEOUT_MS, then exit 4 with nothing changed and no backup), what the application sees
meanwhile in each journal mode (what the README's window section says), and two dpro-migrates at once.

The application is another process (APP below): a writer inserting every 10 ms, a reader every 50 ms.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from dpro_migrate.safety import history

from dpro_migrate import verbs
from dpro_migrate.backends.sqlite import WaitingForLock, apply_in_place, rollback_in_place
from dpro_migrate.compare import logical_differences
from dpro_migrate.db.connections import MIGRATE_LOCK_SUFFIX
from dpro_migrate.errors import LOCKED, Locked
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.planning import make_plan

from tests.conftest import OWN_PEAK_RSS_KB, file_digest, own_peak_rss_mb

# Timed waits on real locks (busy timeouts, readers held for seconds): the quick subset leaves them out.
pytestmark = pytest.mark.slow

SPILLING = 200_000  # messages: a 45 MB file, more than apply's 40 MB page cache: its transaction spills
WINDOW = 60_000  # messages: apply and rollback last about a second each in-process, long enough for reads inside
TIMEOUT_MS = 1000
SLACK = 1.0  # seconds allowed past the busy timeout, on a loaded 2-core machine


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "dpro_migrate", *map(str, args)]


def beside(db: Path) -> list[str]:
    """A journal or a dpro-migrate lock file left beside the file."""
    return [p.name for p in (db.with_name(db.name + "-journal"), db.with_name(db.name + MIGRATE_LOCK_SUFFIX))
            if p.exists()]


def leftovers(db: Path) -> list[str]:
    """What a refused command must not leave: a journal, a lock file, a backup (in bk/ beside the file). The
    history's line saying it was refused is expected."""
    backups = db.parent / "bk"
    return beside(db) + ([p.name for p in backups.iterdir() if p.name != history.HISTORY_FILE] if backups.exists() else [])


@pytest.fixture(scope="module")
def spilling(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("locks") / "spilling.db"
    generate_legacy_db(path, messages=SPILLING)
    assert path.stat().st_size > 40_000 * 1024, "larger than apply's page cache (db.connections: cache_size)"
    return path


@pytest.fixture(scope="module")
def windowed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("locks") / "window.db"
    generate_legacy_db(path, messages=WINDOW)
    return path


# --- the application, as another process -------------------------------------------------------------

HOLD_READ = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    print("reading", flush=True)
    sys.stdin.read()  # holds its read transaction until told to stop
    conn.execute("COMMIT")
""")

HOLD_WRITE = HOLD_READ.replace('"BEGIN"', '"BEGIN IMMEDIATE"')


@contextmanager
def held(db: Path, script: str = HOLD_READ):
    """Another process holding a read (or write) transaction on db until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "reading"
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(30)


APP = textwrap.dedent("""
    import json, sqlite3, sys, threading, time
    db, stop = sys.argv[1], threading.Event()
    writes, reads = [], []

    def writer():
        # Autocommit inserts every 10 ms, each waiting up to 30 s for the lock. The old application writes
        # messages, the migrated one communication_messages: it follows whichever exists.
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        conversation = conn.execute("SELECT min(id) FROM conversations").fetchone()[0]
        tables, n = ["messages", "communication_messages"], 0
        while not stop.is_set():
            content, before = f"app #{n}", time.monotonic()
            try:
                cur = conn.execute(f"INSERT INTO {tables[0]} (conversation_id, sender_type, content) "
                                   "VALUES (?, 'user', ?)", (conversation, content))
                writes.append([before, time.monotonic(), tables[0], cur.lastrowid, content])  # acknowledged
                n += 1
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                tables.reverse()
            time.sleep(0.01)

    def reader():
        # Does not wait: every 20 ms, either it reads at once or the file is locked.
        conn = sqlite3.connect(db, timeout=0, isolation_level=None)
        while not stop.is_set():
            before = time.monotonic()
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                reads.append([before, time.monotonic(), "ok"])
            except sqlite3.OperationalError as exc:
                reads.append([before, time.monotonic(), str(exc)])
            time.sleep(0.02)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    print("running", flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join()
    print(json.dumps({"writes": writes, "reads": reads}))
""")


@contextmanager
def application(db: Path):
    """Yields a dict filled, when the block ends, with the application's acknowledged writes
    [asked at, acknowledged at, table, id, content] and its reads [asked at, answered at, "ok" or the error]."""
    proc = subprocess.Popen([sys.executable, "-c", APP, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    seen: dict = {}
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.3)  # some writes before the command starts
        yield seen
        time.sleep(0.3)  # and some after
    finally:
        out, _ = proc.communicate("", timeout=60)
    seen.update(json.loads(out))


class Steps:
    """A progress callback that notes when the transaction ran its first and its last operation."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, i, total, step) -> None:
        if not isinstance(step, WaitingForLock):
            self.times.append(time.monotonic())

    @property
    def window(self) -> tuple[float, float]:
        return self.times[0], self.times[-1]


# --- waiting for the application, bounded --------------------------------------------------------------


def test_a_long_reader_makes_apply_refuse_within_its_timeout(spilling, tmp_path, monkeypatch):
    """Before: apply waited as long as the reader held on (35 s for a 30 s reader), holding the write lock,
    growing its cache. Now: the busy timeout, counted from the request, then Locked, nothing changed."""
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(spilling, db)
    plan = make_plan(db)
    monkeypatch.setenv("DPRO_MIGRATE_BUSY_TIMEOUT_MS", str(TIMEOUT_MS))
    waits: list[tuple[float, str]] = []
    with held(db):
        started = time.monotonic()
        with pytest.raises(Locked) as refused:
            apply_in_place(plan, backup_dir=tmp_path / "bk", waiting=lambda what: waits.append((time.monotonic(), what)))
        ended = time.monotonic()
        other = sqlite3.connect(db, timeout=0)
        assert other.execute("SELECT count(*) FROM users").fetchone()[0] > 0, "once refused, it holds nothing"
        other.close()
    print(f"\nrefused after {ended - started:.2f}s (busy timeout {TIMEOUT_MS} ms): {refused.value}")
    assert len(waits) == 1 and "a reader transaction or a writer" in waits[0][1], waits
    assert TIMEOUT_MS / 1000 - 0.05 <= ended - waits[0][0] <= TIMEOUT_MS / 1000 + SLACK
    assert ended - started <= TIMEOUT_MS / 1000 + SLACK
    message = str(refused.value)
    assert "is locked by another connection (a reader transaction or a writer)" in message
    assert message.endswith("nothing was changed") and "\n" not in message
    assert refused.value.exit_code == LOCKED == 4
    assert file_digest(db) == file_digest(spilling), "not a byte written"
    assert logical_differences(spilling, db) == []
    assert leftovers(db) == [], "no journal, no lock file, no backup"


def test_new_readers_are_held_off_while_apply_waits_for_a_reader(legacy_db, tmp_path, monkeypatch):
    db = legacy_db()
    monkeypatch.setenv("DPRO_MIGRATE_BUSY_TIMEOUT_MS", "3000")
    outcome: list = []
    with held(db):
        waiting = threading.Event()
        worker = threading.Thread(target=lambda: outcome.append(_refusal(
            lambda: apply_in_place(make_plan(db), backup_dir=tmp_path / "bk", waiting=lambda what: waiting.set()))))
        worker.start()
        assert waiting.wait(30)
        time.sleep(0.2)
        newcomer = subprocess.run([sys.executable, "-c", "import sqlite3, sys; sqlite3.connect(sys.argv[1], timeout=0)"
                                   ".execute('SELECT count(*) FROM users').fetchone()", str(db)],
                                  capture_output=True, text=True)
        worker.join(30)
    assert "database is locked" in newcomer.stderr, "a reader arriving while apply waits is held off"
    assert isinstance(outcome[0], Locked)


def _refusal(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - handed to the test thread
        return exc


def test_a_writer_makes_rollback_refuse_within_its_timeout(legacy_db, tmp_path, monkeypatch):
    db = legacy_db()
    verbs.apply(db, backup_dir=tmp_path / "bk")
    before = file_digest(db)
    shutil.rmtree(tmp_path / "bk")
    monkeypatch.setenv("DPRO_MIGRATE_BUSY_TIMEOUT_MS", str(TIMEOUT_MS))
    waited: list[WaitingForLock] = []
    with held(db, HOLD_WRITE):
        started = time.monotonic()
        with pytest.raises(Locked, match="is locked by another connection"):
            rollback_in_place(db, backup_dir=tmp_path / "bk", progress=lambda i, n, step: waited.append(step))
        took = time.monotonic() - started
    assert took <= TIMEOUT_MS / 1000 + SLACK
    assert [type(w) for w in waited] == [WaitingForLock] and waited[0].describe().startswith(f"waiting for {db}")
    assert file_digest(db) == before
    assert leftovers(db) == []


def test_the_cli_refuses_with_exit_4_and_one_line(legacy_db, tmp_path):
    db = legacy_db()
    before = file_digest(db)
    with held(db):
        done = subprocess.run(cli("apply", db, "--yes", "--backup-dir", tmp_path / "bk"), capture_output=True,
                              text=True, env={**os.environ, "DPRO_MIGRATE_BUSY_TIMEOUT_MS": "300"})
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and "is locked by another connection" in done.stderr, done.stderr
    assert "cannot be read" not in done.stderr and "not a usable" not in done.stderr
    assert file_digest(db) == before and leftovers(db) == []


def test_readers_refused_while_dpro_migrate_holds_the_file_are_told_it_is_locked(legacy_db, tmp_path):
    """status and verify meeting apply's lock (rollback journal) name the lock, not an unreadable file."""
    db = legacy_db()
    inside, go = threading.Event(), threading.Event()

    def hold(i, total, step):
        if not inside.is_set():
            inside.set()
            go.wait(60)

    worker = threading.Thread(target=lambda: verbs.apply(db, backup_dir=tmp_path / "bk", progress=hold))
    worker.start()
    try:
        assert inside.wait(60)
        status = subprocess.run(cli("status", db), capture_output=True, text=True)
    finally:
        go.set()
        worker.join(60)
    assert status.returncode == 4, status.stderr
    assert "is locked by another connection" in status.stderr and "not a usable" not in status.stderr
    assert verbs.status(db).state == "migrated"


@pytest.mark.slow
def test_memory_does_not_grow_while_apply_waits(spilling, tmp_path):
    """The CLI's peak memory when refused after 2 s and after 6 s of waiting for a reader: the same."""
    peaks = {}
    for timeout_ms in (2000, 6000):  # both long enough for the plan and the page cache to be made first
        db = tmp_path / f"dpro_agent-{timeout_ms}.db"
        shutil.copyfile(spilling, db)
        with held(db):
            # the CLI, printing its own peak (VmHWM) last as it exits: ru_maxrss would start at pytest's own peak
            program = (f"import atexit, runpy, sys; atexit.register(lambda: print({OWN_PEAK_RSS_KB}, file=sys.stderr)); "
                       "sys.argv[0] = 'dpro-migrate'; runpy.run_module('dpro_migrate', run_name='__main__')")
            proc = subprocess.run([sys.executable, "-c", program, "apply", db, "--yes", "--quiet", "--backup-dir",
                                   tmp_path / "bk"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "DPRO_MIGRATE_BUSY_TIMEOUT_MS": str(timeout_ms)})
        assert proc.returncode == 4, proc.stderr
        peaks[timeout_ms] = own_peak_rss_mb(proc.stderr)
        assert file_digest(db) == file_digest(spilling)
    print(f"\npeak memory of a refused apply, by busy timeout: {peaks} MB")
    # Measured as ru_maxrss, the longer wait once peaked 40 MB higher under pytest: that was pytest's own peak,
    # which Linux carries over into a child at exec (tests/conftest.py OWN_PEAK_RSS_KB). Each run's own peak:
    assert abs(peaks[6000] - peaks[2000]) < 20, peaks
    assert not list((tmp_path / "bk").glob("*.bak"))  # no backup left (the history records the refusals)


# --- what the application sees, per journal mode ------------------------------------------------------


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_a_live_application_through_apply_and_rollback(windowed, tmp_path, journal_mode):
    """The README's window section, measured. Writers wait in both modes and lose nothing. Readers: in
    rollback-journal mode, locked out from apply's lock to its commit; in WAL mode, never."""
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(windowed, db)
    conn = sqlite3.connect(db)
    assert conn.execute(f"PRAGMA journal_mode = {journal_mode}").fetchone()[0] == journal_mode
    conn.close()
    applying, rolling_back = Steps(), Steps()
    with application(db) as app:
        verbs.apply(db, backup_dir=tmp_path / "bk", progress=applying)
        time.sleep(0.3)  # the migrated application writes
        verbs.rollback(db, backup_dir=tmp_path / "bk", progress=rolling_back)
    writes, reads = app["writes"], app["reads"]
    tables = {w[2] for w in writes}
    assert tables == {"messages", "communication_messages"}, "it wrote before, between and after"

    conn = sqlite3.connect(db)
    kept = dict(conn.execute("SELECT id, content FROM messages WHERE content LIKE 'app #%'"))
    conn.close()
    assert kept == {w[3]: w[4] for w in writes}, "every acknowledged write is there, with its id"

    summary = {}
    for name, steps in (("apply", applying), ("rollback", rolling_back)):
        start, end = steps.window
        inside = [r[2] for r in reads if start < r[0] and r[1] < end]  # asked and answered inside
        assert not [w for w in writes if start < w[0] and w[1] < end], f"no write lands during {name}"
        assert inside, f"the reader tried during {name}"
        if journal_mode == "wal":
            assert set(inside) == {"ok"}, f"WAL: readers read all through {name}"
        else:
            assert set(inside) == {"database is locked"}, f"rollback journal: readers locked out during {name}"
        summary[name] = f"{end - start:.2f}s, reads {len(inside)}: {sorted(set(inside))}"
    assert {r[2] for r in reads} <= {"ok", "database is locked"}
    if journal_mode == "wal":
        assert {r[2] for r in reads} == {"ok"}, "WAL: not one read refused, from start to end"
    print(f"\n{journal_mode}: {len(writes)} acknowledged writes; {summary}")


# --- two dpro-migrates at once ------------------------------------------------------------------------


def _outcome(proc: subprocess.CompletedProcess) -> tuple[int, dict]:
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("first, second", [("apply", "rollback"), ("rollback", "apply")])
def test_a_second_dpro_migrate_refuses_while_the_first_works(legacy_db, tmp_path, first, second):
    """Never a stale exit 0 ("not migrated: nothing to roll back", "already migrated"): exit 4."""
    db = legacy_db()
    if first == "rollback":
        verbs.apply(db, backup_dir=tmp_path / "bk")
    inside, go = threading.Event(), threading.Event()

    def hold(i, total, step):  # runs inside the first one's transaction
        if not inside.is_set():
            inside.set()
            go.wait(60)

    run = {"apply": lambda: verbs.apply(db, backup_dir=tmp_path / "bk", progress=hold),
           "rollback": lambda: verbs.rollback(db, backup_dir=tmp_path / "bk", progress=hold)}[first]
    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert inside.wait(60)
        code, doc = _outcome(subprocess.run(cli(second, db, "--yes", "--json", "--backup-dir", tmp_path / "bk2"),
                                            capture_output=True, text=True))
    finally:
        go.set()
        worker.join(60)
    assert code == 4 and doc["exit_code"] == 4, doc
    assert "another dpro-migrate" in doc["error"] and "is at work on it" in doc["error"], doc
    assert not list((tmp_path / "bk2").glob("*.bak")), "the refused one made no backup"
    assert verbs.status(db).state == {"apply": "migrated", "rollback": "legacy"}[first]
    assert beside(db) == [], "the lock file is gone with the first one"


@pytest.mark.slow
@pytest.mark.parametrize("first, second", [("apply", "rollback"), ("rollback", "apply")])
def test_apply_and_rollback_started_together(spilling, tmp_path, first, second):
    """Two processes, the second started once the first has claimed the file: the first works; the second
    refuses (exit 4) or, if the first was done by then, does its own work. Never an exit 0 that did nothing
    ("not migrated: nothing to roll back", "already migrated") because it looked while the first worked."""
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(spilling, db)
    if first == "rollback":
        verbs.apply(db, backup_dir=tmp_path / "bk")
    one = subprocess.Popen(cli(first, db, "--yes", "--json", "--backup-dir", tmp_path / "bk"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = db.with_name(db.name + MIGRATE_LOCK_SUFFIX)
    while not lock.exists():
        assert one.poll() is None, one.communicate()
        time.sleep(0.005)
    code, doc = _outcome(subprocess.run(cli(second, db, "--yes", "--json", "--backup-dir", tmp_path / "bk"),
                                        capture_output=True, text=True))
    out, err = one.communicate(timeout=300)
    print(f"\n{first}, then {second}: exit {code}: {doc.get('error') or 'did its work'}")
    assert one.returncode == 0, err
    assert not _did_nothing(json.loads(out))
    state = {"apply": "migrated", "rollback": "legacy"}
    if code == 4:
        assert "another dpro-migrate" in doc["error"], doc
        assert verbs.status(db).state == state[first]
    else:
        assert code == 0 and not _did_nothing(doc), doc
        assert verbs.status(db).state == state[second]


def _did_nothing(doc: dict) -> bool:
    return bool(doc.get("already_migrated") or doc.get("nothing_to_do"))


# --- PostgreSQL: the advisory lock ------------------------------------------------------------------------


def test_a_database_claimed_by_one_dpro_migrate_refuses_another(pg_url):
    """claim_database holds the key locked_transaction takes, from before a verb's first check: the same
    session still gets its transaction, another one is refused with exit 4."""
    from dpro_migrate.db.connections import claim_database, connect, locked_transaction
    from dpro_migrate.targets import parse_target

    target = parse_target(pg_url)
    first, second = connect(target), connect(target)
    try:
        with claim_database(first, target):
            with locked_transaction(first, target):
                pass
            with pytest.raises(Locked, match="another dpro-migrate is at work on this database"):
                with claim_database(second, target):
                    pass
            with pytest.raises(Locked) as refused:
                with locked_transaction(second, target):
                    pass
            assert refused.value.exit_code == LOCKED
        with locked_transaction(second, target):  # released with the block
            pass
    finally:
        first.close()
        second.close()


def test_readers_name_a_lock_as_a_lock(legacy_db):
    """inspect and plan (the readers) facing a writer that locks every reader out: exit 4, worded as a lock,
    never as an unusable or unreadable file."""
    db = legacy_db()
    exclusive = HOLD_READ.replace('"BEGIN"', '"BEGIN EXCLUSIVE"')
    with held(db, exclusive):
        for verb in ("inspect", "plan"):
            done = subprocess.run(cli(verb, db), capture_output=True, text=True,
                                  env={**os.environ, "DPRO_MIGRATE_BUSY_TIMEOUT_MS": "200"})
            assert done.returncode == 4, (verb, done.stderr)
            assert "is locked by another connection" in done.stderr, done.stderr
            assert "not a usable" not in done.stderr and "cannot be read" not in done.stderr
