"""The environment settings dpro-migrate reads, read and validated in one place.

DPRO_MIGRATE_TARGET is not here: it is the default of the CLI's --target flag, which typer reads (TARGET_ENV).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import BadInput

BUSY_TIMEOUT_ENV = "DPRO_MIGRATE_BUSY_TIMEOUT_MS"
PG_LOCK_TIMEOUT_ENV = "DPRO_MIGRATE_PG_LOCK_TIMEOUT_MS"
DATABASE_URL_ENV = "DPRO_MIGRATE_DATABASE_URL"
TEST_PG_ENV = "DPRO_MIGRATE_TEST_PG"
TARGET_ENV = "DPRO_MIGRATE_TARGET"
COPY_PRODUCERS_ENV = "DPRO_MIGRATE_COPY_PRODUCERS"
PARTITION_AHEAD_ENV = "DPRO_MIGRATE_PARTITION_MONTHS_AHEAD"

DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_PG_LOCK_TIMEOUT_MS = 5000
MAX_BUSY_TIMEOUT_MS = 2**31 - 1  # SQLite's busy_timeout is a C int
MAX_COPY_PRODUCERS = 16
DEFAULT_TEST_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PARTITION_MONTHS_AHEAD = 3
MAX_PARTITION_MONTHS_AHEAD = 120


@dataclass(frozen=True)
class Settings:
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS  # how long to wait for another writer's lock before refusing
    database_url: str | None = None  # the full URL (password included) the generated Alembic env.py uses
    test_pg_url: str = DEFAULT_TEST_PG  # the PostgreSQL server the test suite creates its databases on
    log_dir: Path | None = None  # where the CLI writes the traceback of an unexpected error (None: the temp dir)
    # PostgreSQL's lock_timeout in dpro-migrate's sessions: a statement waiting longer for a lock another session
    # holds is cancelled (while it waits, every later request for that table queues behind it); 0: no limit
    pg_lock_timeout_ms: int = DEFAULT_PG_LOCK_TIMEOUT_MS
    # processes that build COPY lines for a PostgreSQL apply (None: one per CPU, 2 to 3; 1: in dpro-migrate's own)
    copy_producers: int | None = None
    # --with partition-by-month and `dpro-migrate partitions`: monthly partitions made ahead of the current month
    partition_months_ahead: int = DEFAULT_PARTITION_MONTHS_AHEAD


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from the environment; BadInput (one line, naming the variable) for a value that cannot be used.
    A variable set to the empty string counts as unset."""
    return Settings(
        busy_timeout_ms=_milliseconds(environ, BUSY_TIMEOUT_ENV, DEFAULT_BUSY_TIMEOUT_MS),
        pg_lock_timeout_ms=_milliseconds(environ, PG_LOCK_TIMEOUT_ENV, DEFAULT_PG_LOCK_TIMEOUT_MS),
        database_url=environ.get(DATABASE_URL_ENV) or None,
        test_pg_url=environ.get(TEST_PG_ENV) or DEFAULT_TEST_PG,
        log_dir=_log_dir(environ),
        copy_producers=_whole_number(environ, COPY_PRODUCERS_ENV, None, 1, MAX_COPY_PRODUCERS,
                                     f"from 1 to {MAX_COPY_PRODUCERS} (unset: one per CPU, 2 to 3; 1: lines built in "
                                     "dpro-migrate's own process)"),
        partition_months_ahead=_whole_number(environ, PARTITION_AHEAD_ENV, DEFAULT_PARTITION_MONTHS_AHEAD, 0,
                                             MAX_PARTITION_MONTHS_AHEAD,
                                             f"of months from 0 to {MAX_PARTITION_MONTHS_AHEAD} "
                                             f"(default {DEFAULT_PARTITION_MONTHS_AHEAD})"),
    )


def _whole_number(environ: Mapping[str, str], name: str, default: int | None, low: int, high: int,
                  meaning: str) -> int | None:
    """A setting that is a whole number from low to high; unset: default. `meaning` ends the refusal (its unit
    and what unset means)."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    # Digits only: int() would also take "+5", "5_000" and non-ASCII digits.
    if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
        raise BadInput(f"{name}={text!r}: expected a whole number {meaning}")
    return int(text)


def _milliseconds(environ: Mapping[str, str], name: str, default: int) -> int:
    return _whole_number(environ, name, default, 0, MAX_BUSY_TIMEOUT_MS,
                         f"of milliseconds from 0 to {MAX_BUSY_TIMEOUT_MS} (default {default}), such as 5000")


def _log_dir(environ: Mapping[str, str]) -> Path | None:
    """$XDG_STATE_HOME/dpro-migrate, else ~/.local/state/dpro-migrate (the XDG base directory spec ignores a
    relative XDG_STATE_HOME); None when neither gives an absolute path."""
    state = environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        home = environ.get("HOME", "")
        state = os.path.join(home, ".local", "state") if os.path.isabs(home) else ""
    return Path(state) / "dpro-migrate" if state else None
