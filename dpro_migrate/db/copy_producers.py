"""COPY lines built by producer processes, each with its own SQLite connection, relayed into one COPY.

Why processes: the lines are built by SQLite (plan/copy_lines.py, the checking encoder), and two SQLite
readers in one process contend on SQLite's allocator mutex. Each producer is a child process that reads the
snapshot file through its own connection and writes framed blocks of finished lines to a pipe; the parent
relays whole blocks into the COPY of the move at hand (one COPY at a time, on apply's one connection and
transaction). A large move is split by id range over the producers, which build its lines at once.

Guarantees kept:
- Same lines: each producer runs the plan's own line SQL through stream_lines(); nothing is re-encoded.
- Same snapshot: the parent holds its read transaction on the snapshot file (rollback journal: no writer can
  commit while it does) and hands the producers the file's change counter, which each checks inside its own
  read transaction; a WAL file is never handed to producers (open_producers answers None).
- Nothing outlives dpro-migrate: a producer asks Linux to SIGKILL it when its parent dies (PR_SET_PDEATHSIG,
  then checks the parent is still the one that started it), and a write to a pipe nobody reads ends it too.
- Flat memory: a block is about BLOCK_BYTES; a producer blocks on its full pipe until the parent reads it.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import sqlite3
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

BLOCK_BYTES = 1 << 20  # per block: small enough that producers, pipes and the relay stay well under 200 MB
SPLIT_ROWS = 100_000  # a move with at least this many rows per producer is split over the producers
FRAME = struct.Struct("<qqq")  # (shard, rows or END/ERROR, payload bytes)
END, ERROR = -1, -2
PIPE_BYTES = 1 << 20  # F_SETPIPE_SZ: a producer runs one block ahead of the relay
_F_SETPIPE_SZ = 1031
_PR_SET_PDEATHSIG = 1


class ProducerFailed(Exception):
    """A producer process stopped before its shard's end (killed, or SQLite failed in it)."""


def change_counter(path: Path) -> str:
    """The file change counter and version-valid-for number of a rollback-journal database (header bytes 24-28
    and 92-96): both change with every committed write. Read while a read transaction holds the file's lock."""
    with open(path, "rb") as f:
        head = f.read(100)
    return (head[24:28] + head[92:96]).hex()


def rowid_alias_id(src: sqlite3.Connection, table: str) -> bool:
    """Is "id" the table's rowid (INTEGER PRIMARY KEY)? Then ids are distinct integers, never NULL, and an id
    range is a rowid range: splitting by it loses and repeats no row."""
    q = '"' + table.replace('"', '""') + '"'
    cols = src.execute(f"PRAGMA table_info({q})").fetchall()
    pks = [c for c in cols if c[5]]
    if len(pks) != 1 or pks[0][1] != "id" or (pks[0][2] or "").upper() != "INTEGER":
        return False
    # an INTEGER PRIMARY KEY DESC, or a WITHOUT ROWID table, keeps its key in an index of origin 'pk'
    return not any(ix[3] == "pk" for ix in src.execute(f"PRAGMA index_list({q})"))


def split_points(src: sqlite3.Connection, table: str, parts: int) -> list[int]:
    """parts - 1 ids that cut the table into parts of about equal row counts (rowid order)."""
    q = '"' + table.replace('"', '""') + '"'
    n = src.execute(f"SELECT count(*) FROM {q}").fetchone()[0]
    if parts < 2 or n < SPLIT_ROWS * parts:
        return []
    cuts = [src.execute(f'SELECT "id" FROM {q} ORDER BY "id" LIMIT 1 OFFSET ?', (n * k // parts,)).fetchone()[0]
            for k in range(1, parts)]
    return sorted(set(cuts))


@dataclass
class Move:
    """One move's rows: its line SQL, the legacy table it reads, and its shards once assigned."""

    lines_sql: str
    legacy: str
    shards: list[tuple[int, int]] = field(default_factory=list)  # (producer, shard id)


def open_producers(path: Path, src: sqlite3.Connection, moves: list[tuple[str, str]], workers: int,
                   refused: Iterable[tuple] = ()) -> Producers | None:
    """Producers for these moves (line SQL, legacy table), or None where they could not read the snapshot `src`
    holds: a WAL file lets a writer commit under a reader, so only a rollback-journal file is shared."""
    if workers < 2 or not moves or src.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return None
    return Producers(path, moves, src, workers, refused)


class Producers:
    """The producer processes of one apply, and the moves they build lines for, in plan order."""

    def __init__(self, path: Path, moves: list[tuple[str, str]], src: sqlite3.Connection, workers: int,
                 refused: Iterable[tuple] = ()):
        self.path = path
        self.counter = change_counter(path)
        self.moves = [Move(sql, legacy) for sql, legacy in moves]
        self.next_move = 0
        self.procs: list[subprocess.Popen] = []
        work: list[list[dict]] = [[] for _ in range(workers)]
        load = [0] * workers
        shard_id = 0
        for move in self.moves:
            cuts = split_points(src, move.legacy, workers) if rowid_alias_id(src, move.legacy) else []
            bounds = list(zip([None, *cuts], [*cuts, None], strict=True))
            rows = src.execute(f'SELECT count(*) FROM "{move.legacy.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
            # one shard per producer for a split move; a small move goes to the producer with the least work
            owners = range(len(bounds)) if len(bounds) > 1 else [min(range(workers), key=load.__getitem__)]
            for owner, (low, high) in zip(owners, bounds, strict=True):
                work[owner].append({"shard": shard_id, "sql": move.lines_sql, "low": low, "high": high})
                move.shards.append((owner, shard_id))
                load[owner] += rows // len(bounds)
                shard_id += 1
        refused_rows = [list(r) for r in refused]
        try:
            for shards in work:
                self.procs.append(_start(path, self.counter, shards, refused_rows))
        except BaseException:
            self.close()
            raise

    def blocks(self, lines_sql: str) -> Iterator[tuple[bytes, int]]:
        """The next move's blocks (bytes, rows), as its producers finish them: whole lines, any order."""
        move = self.moves[self.next_move]
        if move.lines_sql != lines_sql:
            raise AssertionError("moves copied out of plan order")
        self.next_move += 1
        pending = {self.procs[owner].stdout.fileno(): (owner, shard) for owner, shard in move.shards}
        with selectors.DefaultSelector() as sel:
            for fd in pending:
                sel.register(fd, selectors.EVENT_READ)
            while pending:
                for key, _ in sel.select():
                    owner, shard = pending[key.fd]
                    got, rows, size = FRAME.unpack(self._read(owner, FRAME.size))
                    if rows == ERROR:
                        raise ProducerFailed(self._read(owner, size).decode("utf-8", "replace"))
                    if got != shard:
                        raise ProducerFailed(f"copy producer {owner}: shard {got} where {shard} was due")
                    if rows == END:
                        sel.unregister(key.fd)
                        del pending[key.fd]
                    else:
                        yield self._read(owner, size), rows

    def _read(self, owner: int, size: int) -> bytes:
        fd = self.procs[owner].stdout.fileno()
        parts, left = [], size
        while left:
            chunk = os.read(fd, min(left, PIPE_BYTES))
            if not chunk:
                code = self.procs[owner].wait()
                raise ProducerFailed(f"copy producer {owner} stopped before its rows were all read (exit {code})")
            parts.append(chunk)
            left -= len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def check_snapshot(self) -> None:
        """After the copy, with the parent's read transaction still open: the file is the one every producer read."""
        if change_counter(self.path) != self.counter:
            raise ProducerFailed(f"{self.path} changed while it was copied")

    def close(self) -> None:
        """Stop every producer and reap it (no orphan, no open file left behind)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()
            p.stdout.close()

    def __enter__(self) -> Producers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _start(path: Path, counter: str, shards: list[dict], refused: list[list]) -> subprocess.Popen:
    spec = {"path": str(path), "counter": counter, "shards": shards, "refused": refused, "block_bytes": BLOCK_BYTES}
    # the child imports dpro_migrate from where this process did, whatever put it on sys.path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-m", "dpro_migrate.db.copy_producers", str(os.getpid())], env=env,
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, bufsize=0, close_fds=True)
    try:
        _widen(proc.stdout.fileno())
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def _widen(fd: int) -> None:
    if sys.platform.startswith("linux"):
        import fcntl

        try:
            fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # above /proc/sys/fs/pipe-max-size for an unprivileged user: the default size works
            pass


# --- the producer process ----------------------------------------------------------------------


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _write(out, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[out.write(view):]


def produce(spec: dict, out) -> None:
    from dpro_migrate.db.pgcopy import stream_lines

    path = Path(spec["path"])
    src = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    shard = -1
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the read lock: the file holds still from here
        if change_counter(path) != spec["counter"]:
            raise ProducerFailed(f"{path} is not the snapshot the copy started from (it was written since)")
        if spec["refused"]:  # policy quarantine: the moves leave out the rows the parent's preflight refused
            from dpro_migrate.plan.preflight import SETUP_SQL

            for stmt in SETUP_SQL:
                src.execute(stmt)
            src.executemany("INSERT INTO temp.dpro_refused (source_table, source_pk, rule) VALUES (?, ?, ?)",
                            spec["refused"])
        for item in spec["shards"]:
            shard = item["shard"]
            for block, n in stream_lines(src, item["sql"], block_bytes=spec["block_bytes"], low=item["low"],
                                         high=item["high"]):
                _write(out, FRAME.pack(shard, n, len(block)))
                _write(out, block)
            _write(out, FRAME.pack(shard, END, 0))
    except (sqlite3.Error, ProducerFailed) as exc:
        message = f"{exc.__class__.__name__}: {exc}".encode()
        _write(out, FRAME.pack(shard, ERROR, len(message)) + message)
    finally:
        src.close()


def main() -> None:
    _die_with(int(sys.argv[1]))
    spec = json.loads(sys.stdin.buffer.read())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us itself
    out = os.fdopen(sys.stdout.fileno(), "wb", buffering=0, closefd=False)
    try:
        produce(spec, out)
    except BrokenPipeError:  # the parent stopped reading (it failed, or died): nothing to say to anyone
        os._exit(1)


if __name__ == "__main__":
    main()
