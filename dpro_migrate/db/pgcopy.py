"""SQLite -> PostgreSQL COPY (CSV), produced by SQLite itself so Python never touches a value.

Each row leaves SQLite as one finished CSV line, batches are joined by SQLite too; Python only hands
blocks to psycopg.
The lines themselves are built by the SQL of plan/copy_lines.py.
"""

from __future__ import annotations

import sqlite3
import threading
from queue import Full, Queue
from typing import Callable, Iterator


def stream_lines(src: sqlite3.Connection, lines_sql: str, block_bytes: int = 4 << 20,
                 max_rows: int = 20000, low: int | None = None, high: int | None = None) -> Iterator[tuple[bytes, int]]:
    """Blocks of COPY lines (bytes, no decoding) and their row counts, in primary-key batches that SQLite joins
    itself: Python handles one object per block. Each batch is sized from the previous one's mean line length
    to about `block_bytes`, so memory stays at a few blocks whatever the table's size or width.
    `low` <= id < `high`: one producer's share of a table whose id is its rowid (db/copy_producers.py); each
    batch seeks to its own lower bound (two lower bounds in one WHERE would leave SQLite to pick either).
    One reader per process: two threads reading at once contend on SQLite's global allocator mutex (3x the CPU)."""
    # A UTF-8 file's text goes as its bytes (no decoding in Python); a UTF-16 file's bytes are re-encoded here, a
    # lone surrogate kept as bytes PostgreSQL refuses (the preflight names its row), never a decoding error.
    codec = {"UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}.get(src.execute("PRAGMA encoding").fetchone()[0])
    block_sql = "CAST(group_concat(line, '') AS BLOB)"
    below = [f'"id" < {int(high)}'] if high is not None else []

    def batch_sql(bounds: list[str]) -> str:
        where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
        return (f"SELECT max(\"id\"), count(*), {block_sql} FROM "
                f"(SELECT \"id\", line FROM ({lines_sql}){where} ORDER BY \"id\" LIMIT ?)")

    # the first batch has no lower bound unless given: any id, -2**63 too
    sql, params, rows = batch_sql(([f'"id" >= {int(low)}'] if low is not None else []) + below), [], 100
    while True:
        top, n, block = src.execute(sql, params + [rows]).fetchone()
        if not n:
            return
        yield (block.decode(codec, "surrogatepass").encode("utf-8", "surrogatepass") if codec else block), n
        if top is None:
            return
        sql, params = batch_sql(['"id" > ?'] + below), [top]
        rows = max(1, min(max_rows, block_bytes * n // max(1, len(block))))


def prefetched(blocks: Iterator, depth: int = 3) -> Iterator:
    """Run a block generator in a thread, `depth` blocks ahead: SQLite builds the next block while
    PostgreSQL takes this one (sqlite3 and psycopg release the GIL while they work). Memory: depth blocks."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:  # False once the consumer has stopped: nobody will take it
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in blocks:
                if not put(block):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def stream_rows(src: sqlite3.Connection, select_sql: str, block_chars: int = 4 << 20) -> Iterator[tuple[str, int]]:
    """Blocks of about `block_chars` of COPY text from any SELECT of one text column, and the lines they end
    (the quarantine: its query gives a large value in pieces, so a block never holds one whole)."""
    block: list[str] = []
    size = lines = 0
    for (piece,) in src.execute(select_sql):
        block.append(piece)
        size += len(piece)
        lines += piece.endswith("\n")
        if size >= block_chars:
            yield "".join(block), lines
            block, size, lines = [], 0, 0
    if block:
        yield "".join(block), lines


def copy_into(pg_cursor, copy_sql: str, blocks, progress: Callable[[int], None] | None = None) -> int:
    total = 0
    with pg_cursor.copy(copy_sql) as cp:
        for block, n in blocks:
            cp.write(block)
            total += n
            if progress:
                progress(n)
    return total
