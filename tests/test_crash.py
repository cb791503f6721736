"""Fault injection with real processes: `dpro-migrate apply` and `rollback` killed (SIGKILL) at seeded random
moments, interrupted with Ctrl-C, two applies racing, and an application writing while apply runs.

After every fault the database is either as it was (logically identical to the original) or completely
migrated, never in between, and running the command again finishes the job.

DPRO_MIGRATE_KILL_POINTS (default 20 per verb) and DPRO_MIGRATE_KILL_SEED change the sampling; the outcomes
seen are printed (pytest -s) as "kill summary" lines.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from dpro_migrate import DOMAINS, verbs
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.targets import parse_target

from tests.conftest import file_digest

pytestmark = pytest.mark.slow

KILL_POINTS = int(os.environ.get("DPRO_MIGRATE_KILL_POINTS", "20"))
SEED = int(os.environ.get("DPRO_MIGRATE_KILL_SEED", "6"))
MESSAGES = 60_000  # apply lasts about 1-1.5 s as a process
PG_MESSAGES = 12_000  # about the same for an apply into PostgreSQL
BEYOND = 1.2  # kill moments go a little past the measured duration: the end of the run (commit, exit) too


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "dpro_migrate", *map(str, args)]


def journal(db: Path) -> Path:
    return db.with_name(db.name + "-journal")


def journal_state(db: Path) -> str:
    """SQLite rolls a journal back only when it is hot: its header was written (first byte not 0), which
    happens just before the first page of the database file is overwritten. A journal with a zeroed header
    means the file itself was not written yet; SQLite ignores it and reuses it."""
    j = journal(db)
    if not j.exists():
        return "none"
    with j.open("rb") as f:
        return "hot" if f.read(1) not in (b"", b"\0") else "ignored"


@dataclass
class Files:
    root: Path
    legacy: Path
    legacy_digest: str
    migrated: Path  # big.legacy migrated by a full apply
    apply_seconds: float  # wall time of the whole apply process
    rollback_seconds: float
    rolled_back_digest: str  # sha256 of `migrated` rolled back: a file logically identical to `legacy`


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Files:
    root = tmp_path_factory.mktemp("crash")
    legacy = root / "dpro_agent.db"
    generate_legacy_db(legacy, messages=MESSAGES, extras=True)
    migrated = root / "migrated.db"
    apply_seconds = min(timed(cli("apply", copy_of(legacy, db), "--yes", "--quiet", "--backup-dir", root / "bk"))
                        for db in (root / "first-run.db", migrated))  # the shorter of two: a warm run
    probe = root / "probe.db"
    rollback_seconds = min(timed(cli("rollback", copy_of(migrated, probe), "--yes", "--quiet", "--backup-dir",
                                     root / "bk-probe")) for _ in range(2))
    assert logical_differences(legacy, probe) == []
    rolled_back_digest = file_digest(probe)
    probe.unlink()
    (root / "first-run.db").unlink()
    shutil.rmtree(root / "bk-probe")
    return Files(root, legacy, file_digest(legacy), migrated, apply_seconds, rollback_seconds, rolled_back_digest)


def copy_of(source: Path, dest: Path) -> Path:
    shutil.copyfile(source, dest)
    return dest


def timed(args: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(args, check=True, capture_output=True)
    return time.monotonic() - started


def kill_delays(n: int, seconds: float, seed: int) -> list[float]:
    """n moments spread over the whole run (and a little past its measured end, where it commits and exits,
    as runs vary): one uniformly random moment in each of n equal slices."""
    rng = random.Random(seed)
    return [(i + rng.random()) / n * seconds * BEYOND for i in range(n)]


def run_and_kill(args: list[str], delay: float, stderr: Path) -> tuple[bool, int]:
    """Start the command, SIGKILL it after `delay` seconds unless it ended; (killed, returncode)."""
    with stderr.open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        try:
            proc.wait(timeout=delay)
            return False, proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return True, proc.returncode


def recover_and_check_integrity(db: Path) -> dict:
    """What a crash left, then integrity_check through an ordinary read-write connection, which rolls a hot
    journal back (as the application's next connection would)."""
    facts = {"journal": journal_state(db)}
    try:
        verbs.status(db)
        facts["status_before_recovery"] = "ok"
    except BadInput as exc:
        facts["status_before_recovery"] = str(exc)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    assert journal_state(db) in ("none", "ignored")
    return facts


def same_as_original(original: Path, original_digest: str, db: Path, *also_identical: str) -> str:
    """Logically identical to the original; byte-identical to it (or to a file known to be logically
    identical to it) settles that without comparing every row."""
    digest = file_digest(db)
    if digest == original_digest or digest in also_identical:
        return "byte-identical"
    diffs = logical_differences(original, db)
    assert diffs == [], diffs
    return "logically identical"


def kill_once(*, verb: str, source: Path, i: int, delay: float, seconds: float, tmp_path: Path, notes: Counter):
    """Run `verb` on a fresh copy of source, SIGKILL it after `delay`, recover and check the file.
    Returns (db, backup dir, whether it was killed, integrity facts, a label for assertions)."""
    db, bk = tmp_path / f"{verb}-{i}.db", tmp_path / f"bk-{i}"
    shutil.copyfile(source, db)
    killed, rc = run_and_kill(cli(verb, db, "--yes", "--quiet", "--backup-dir", bk), delay, tmp_path / "err")
    where = f"kill point {i} at {delay:.3f}s of {seconds:.2f}s"
    assert killed or rc == 0, (where, (tmp_path / "err").read_text())
    facts = recover_and_check_integrity(db)
    notes[f"journal left: {facts['journal']}"] += 1
    notes["status refused before recovery"] += facts["status_before_recovery"] != "ok"
    notes["stale .tmp backup left"] += len(list(bk.glob("*.tmp"))) if bk.exists() else 0
    return db, bk, killed, facts, where


def summary(label: str, seconds: float, outcomes: Counter, notes: Counter) -> None:
    print(f"\nkill summary {label}: {sum(outcomes.values())} kill points over {seconds:.2f}s x {BEYOND}, "
          f"outcomes {dict(outcomes)}, {dict(notes)}")


# --- SIGKILL, SQLite ------------------------------------------------------------------------------


def test_sigkill_during_apply_leaves_before_or_after(big, tmp_path):
    outcomes, notes = Counter(), Counter()
    for i, delay in enumerate(kill_delays(KILL_POINTS, big.apply_seconds, SEED)):
        db, bk, killed, facts, where = kill_once(verb="apply", source=big.legacy, i=i, delay=delay, seconds=big.apply_seconds,
                                                 tmp_path=tmp_path, notes=notes)
        state = verbs.status(db).state
        if state == "legacy":
            outcome = "before (" + same_as_original(big.legacy, big.legacy_digest, db) + ")"
        else:
            assert state == "migrated", (where, state, facts)
            assert verbs.verify(db).ok, where
            outcome = "after" if killed else "finished"
        outcomes[outcome] += 1
        _, again = verbs.apply(db, backup_dir=bk)  # running apply again finishes the job
        assert again.already_migrated == (state == "migrated"), where
        if state == "legacy":
            assert verbs.verify(db).ok, where
        db.unlink()
        shutil.rmtree(bk, ignore_errors=True)
    summary("apply (SQLite)", big.apply_seconds, outcomes, notes)
    assert sum(outcomes.values()) == KILL_POINTS


def test_sigkill_during_rollback_leaves_before_or_after(big, tmp_path):
    outcomes, notes = Counter(), Counter()
    for i, delay in enumerate(kill_delays(KILL_POINTS, big.rollback_seconds, SEED + 1)):
        db, bk, killed, facts, where = kill_once(verb="rollback", source=big.migrated, i=i, delay=delay, seconds=big.rollback_seconds,
                                                 tmp_path=tmp_path, notes=notes)
        state = verbs.status(db).state
        if state == "migrated":  # the rollback run next and the comparison after it prove the rows survived
            outcome = "before (still migrated)"
        else:
            assert state == "legacy", (where, state, facts)
            digest = file_digest(db)
            outcome = ("after" if killed else "finished") + " (" + same_as_original(
                big.legacy, big.legacy_digest, db, big.rolled_back_digest) + ")"
        outcomes[outcome] += 1
        again = verbs.rollback(db, backup_dir=bk)  # running rollback again finishes the job
        assert again.nothing_to_do == (state == "legacy"), where
        if state == "migrated":
            notes["rerun rollback: " + same_as_original(big.legacy, big.legacy_digest, db, big.rolled_back_digest)] += 1
        else:
            assert file_digest(db) == digest
        db.unlink()
        shutil.rmtree(bk, ignore_errors=True)
    summary("rollback (SQLite)", big.rollback_seconds, outcomes, notes)
    assert sum(outcomes.values()) == KILL_POINTS


CRASHING_WRITER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 10")  # tiny cache: changed pages go to the file before the commit
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE messages SET content = content || ' (edited)'")
os._exit(9)  # dies in the middle of its transaction
"""


def crash_a_writer(db: Path) -> None:
    """What an application (or a dpro-migrate) killed in the middle of a big transaction leaves: a hot journal."""
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(db)])
    assert journal_state(db) == "hot"


def test_a_hot_journal_is_rolled_back_by_rollback_and_by_an_ordinary_connection(big, tmp_path):
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(big.legacy, db)
    crash_a_writer(db)
    result = subprocess.run(cli("rollback", db, "--yes", "--quiet", "--backup-dir", tmp_path / "bk"),
                            capture_output=True, text=True)
    assert result.returncode == 0 and "nothing to roll back" in result.stdout, result
    assert journal_state(db) == "none"
    assert file_digest(db) == big.legacy_digest


def test_apply_right_after_a_crash_recovers_by_itself(big, tmp_path):
    db, bk = tmp_path / "dpro_agent.db", tmp_path / "bk"
    shutil.copyfile(big.legacy, db)
    crash_a_writer(db)
    again = subprocess.run(cli("apply", db, "--yes", "--quiet", "--backup-dir", bk), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert verbs.verify(db).ok


# --- SIGKILL, PostgreSQL --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_legacy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crash-pg") / "dpro_agent.db"
    generate_legacy_db(path, messages=PG_MESSAGES, extras=True)
    return path


def _pg(url: str, sql: str, params=None):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _wait_for_killed_backends(url: str, timeout: float = 30.0) -> bool:
    """The server ends a dead client's backend (rolling its transaction back) when it next talks to it.
    Whether one was still there."""
    started, found = time.monotonic(), False
    while _pg(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()")[0][0]:
        found = True
        assert time.monotonic() - started < timeout, "the killed apply's backend is still there"
        time.sleep(0.02)
    return found


def _drop_domain_schemas(url: str) -> None:
    _pg(url, "; ".join(f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for s in DOMAINS))


@pytest.mark.postgres
def test_sigkill_during_apply_to_postgres_leaves_nothing_or_everything(pg_legacy, pg_url, tmp_path):
    digest = file_digest(pg_legacy)
    target = parse_target(pg_url)
    args = cli("apply", pg_legacy, "--yes", "--quiet", "--backup-dir", tmp_path / "bk", "--target", pg_url)
    seconds = []
    for _ in range(2):  # the shorter of two runs: a warm one
        seconds.append(timed(args))
        assert verbs.verify(pg_legacy, target).ok
        _drop_domain_schemas(pg_url)
    seconds = min(seconds)
    outcomes, notes = Counter(), Counter()
    for i, delay in enumerate(kill_delays(KILL_POINTS, seconds, SEED + 2)):
        killed, rc = run_and_kill(args, delay, tmp_path / "err")
        where = f"kill point {i} at {delay:.3f}s of {seconds:.2f}s"
        assert killed or rc == 0, (where, (tmp_path / "err").read_text())
        notes["killed backend still on the server"] += _wait_for_killed_backends(pg_url)
        status = verbs.status(pg_legacy, target)
        if status.state == "legacy":
            assert status.domain_tables == [] and not status.history, where  # none of the seven schemas
            outcome = "before (nothing)"
        else:
            assert status.state == "migrated", (where, status)
            assert sorted(status.domain_tables) == sorted(DOMAINS) and status.history, where
            outcome = "after" if killed else "finished"
        outcomes[outcome] += 1
        _, again = verbs.apply(pg_legacy, target, backup_dir=tmp_path / "bk")  # the rerun finishes the job
        assert again.already_migrated == (status.state == "migrated"), where
        assert verbs.status(pg_legacy, target).state == "migrated", where
        if i % 5 == 4:
            assert verbs.verify(pg_legacy, target).ok, where
        assert file_digest(pg_legacy) == digest, "the source is only read"
        _drop_domain_schemas(pg_url)
    summary("apply (PostgreSQL)", seconds, outcomes, notes)
    assert sum(outcomes.values()) == KILL_POINTS


# --- Ctrl-C ----------------------------------------------------------------------------------------


def _wait_for(condition, proc, timeout: float = 60.0) -> None:
    started = time.monotonic()
    while not condition():
        assert proc.poll() is None, "the command ended before the moment to interrupt it"
        assert time.monotonic() - started < timeout
        time.sleep(0.002)


@pytest.mark.parametrize("moment", ["while backing up", "while moving rows"])
def test_ctrl_c_during_apply_says_so_and_changes_nothing(big, tmp_path, moment):
    db, bk = tmp_path / "dpro_agent.db", tmp_path / "bk"
    shutil.copyfile(big.legacy, db)
    proc = subprocess.Popen(cli("apply", db, "--yes", "--quiet", "--backup-dir", bk),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if moment == "while backing up":
        _wait_for(lambda: bk.exists() and any(bk.glob("*.tmp")), proc)
    else:
        _wait_for(lambda: journal(db).exists(), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "the database is as before" in err and "Traceback" not in err, err
    assert not journal(db).exists(), "the process rolled its transaction back itself"
    assert verbs.status(db).state == "legacy"
    same_as_original(big.legacy, big.legacy_digest, db)
    assert not list(bk.glob("*.tmp")), "an interrupted backup removes its temporary file"


# --- two applies at once ---------------------------------------------------------------------------


def _outcome(proc: subprocess.Popen) -> tuple[int, dict, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out), err


@pytest.mark.parametrize("stagger", [0.0, 0.2])
def test_two_applies_at_once_one_migrates(big, tmp_path, stagger):
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(big.legacy, db)
    args = cli("apply", db, "--yes", "--json", "--backup-dir", tmp_path / "bk")
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(stagger)
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = [_outcome(first), _outcome(second)]
    winners = [r for r in results if r[0] == 0 and r[1].get("already_migrated") is False]
    assert len(winners) == 1, results
    (code, doc, err), = [r for r in results if r is not winners[0]]
    # errors.LOCKED: the other one held the file's dpro-migrate lock; "already migrated": it had finished
    assert (code == 0 and doc["already_migrated"] is True) or (
        code == 4 and doc["exit_code"] == 4 and "another dpro-migrate" in doc["error"]), (code, doc, err)
    print(f"\nrace (stagger {stagger}s): the other apply: exit {code}: {doc.get('error') or 'already migrated'}")
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    assert verbs.status(db).state == "migrated"
    assert verbs.verify(db).ok
    assert len(list((tmp_path / "bk").glob("*.bak"))) == 1, "only the winner took a backup"


def test_an_apply_started_while_another_works_refuses_at_once(big, tmp_path):
    """The second one does not wait for the first (nor answer from the state the first is changing): it
    refuses with errors.LOCKED at once, even with a long busy timeout; the first one migrates."""
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(big.legacy, db)
    holding, go = threading.Event(), threading.Event()

    def hold_the_lock(i, total, step):  # apply's progress callback runs inside its transaction
        if i == 0 and not holding.is_set():
            holding.set()
            go.wait(60)

    first = threading.Thread(target=lambda: verbs.apply(db, backup_dir=tmp_path / "bk", progress=hold_the_lock))
    first.start()
    try:
        assert holding.wait(60)
        started = time.monotonic()
        second = subprocess.run(cli("apply", db, "--yes", "--json", "--backup-dir", tmp_path / "bk"),
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "DPRO_MIGRATE_BUSY_TIMEOUT_MS": "60000"})
        took = time.monotonic() - started
    finally:
        go.set()
        first.join(60)
    doc = json.loads(second.stdout)
    print(f"\nthe apply started during another: exit {second.returncode} after {took:.2f}s: {doc}")
    assert second.returncode == 4 and "another dpro-migrate" in doc["error"], (second.returncode, doc)
    assert took < 30, "refused at once, not after the busy timeout"
    assert verbs.status(db).state == "migrated"
    assert len(list((tmp_path / "bk").glob("*.bak"))) == 1, "only the first took a backup"


# --- the application writes while apply runs --------------------------------------------------------


def test_application_writes_during_apply_are_migrated_or_refused_never_lost(big, tmp_path):
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(big.legacy, db)
    conn = sqlite3.connect(db)
    legacy_rows = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    conversation = conn.execute("SELECT min(id) FROM conversations").fetchone()[0]
    conn.close()
    stop = threading.Event()
    committed: list[tuple[int, str]] = []
    refused: Counter = Counter()
    reads: list[float] = []
    read_errors: Counter = Counter()

    def writer(name: str, busy_seconds: float) -> None:
        # an application connection: autocommit inserts, waiting up to its busy timeout for the write lock
        app = sqlite3.connect(db, timeout=busy_seconds, isolation_level=None, check_same_thread=False)
        n = 0
        while not stop.is_set():
            content = f"{name} #{n}"
            try:
                cur = app.execute("INSERT INTO messages (conversation_id, sender_type, content) VALUES (?, 'user', ?)",
                                  (conversation, content))
                committed.append((cur.lastrowid, content))
            except sqlite3.OperationalError as exc:
                refused[f"{name}: {exc}"] += 1
                if "no such table" in str(exc):
                    break
            n += 1
            time.sleep(0.002)
        app.close()

    def reader() -> None:
        app = sqlite3.connect(db, timeout=30, isolation_level=None, check_same_thread=False)
        while not stop.is_set():
            try:
                app.execute("SELECT count(*) FROM messages").fetchone()
                reads.append(time.monotonic())
            except sqlite3.OperationalError as exc:
                read_errors[str(exc)] += 1
                if "no such table" in str(exc):
                    break
            time.sleep(0.002)
        app.close()

    threads = [threading.Thread(target=writer, args=("patient app", 30.0)),
               threading.Thread(target=writer, args=("impatient app", 0.05)),
               threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # some writes land before apply starts
    proc = subprocess.Popen(cli("apply", db, "--yes", "--quiet", "--backup-dir", tmp_path / "bk"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    locked_at = None
    while proc.poll() is None:
        if locked_at is None and journal(db).exists():
            locked_at = time.monotonic()  # apply holds the write lock and is moving rows
        time.sleep(0.002)
    out, err = proc.communicate()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert proc.returncode == 0, err
    assert committed, "the application wrote before apply"
    print(f"\napplication during apply: {len(committed)} inserts committed, refused {dict(refused)}, "
          f"{len(reads)} reads, read errors {dict(read_errors)}")
    assert set(refused) <= {"patient app: no such table: messages", "impatient app: no such table: messages",
                            "impatient app: database is locked"}, refused
    assert set(read_errors) <= {"no such table: messages"}, read_errors
    # In this rollback-journal file the reader waits (its busy timeout) while apply holds the lock; it is
    # never refused. How long readers wait in each journal mode: tests/test_locks.py.
    assert locked_at and reads and read_errors["no such table: messages"] == 1, "the reader read on after the commit"
    conn = sqlite3.connect(db)
    migrated = dict(conn.execute("SELECT id, content FROM communication_messages WHERE content LIKE '% app #%'"))
    total = conn.execute("SELECT count(*) FROM communication_messages").fetchone()[0]
    conn.close()
    assert migrated == dict(committed), "every committed write is in the migrated table, with its id"
    assert total == legacy_rows + len(committed)
    assert verbs.verify(db).ok
