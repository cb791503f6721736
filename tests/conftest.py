"""Fixtures build real SQLite databases with the example generator; small and fast by default."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from dpro_migrate.example import generate_legacy_db

_CACHE: dict[tuple, Path] = {}


@pytest.fixture(scope="session")
def _generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("generated")

    def make(shape: str = "18", messages: int = 300, extras: bool = False, seed: int = 0) -> Path:
        key = (shape, messages, extras, seed)
        if key not in _CACHE:
            path = root / f"legacy-{shape}-{messages}-{int(extras)}-{seed}.db"
            generate_legacy_db(path, messages=messages, shape=shape, extras=extras, seed=seed)
            _CACHE[key] = path
        return _CACHE[key]

    return make


@pytest.fixture
def legacy_db(_generated, tmp_path):
    """A fresh copy of a generated legacy database: legacy_db(shape="14", extras=True) -> Path."""

    def make(**kwargs) -> Path:
        dest = tmp_path / "dpro_agent.db"
        n = 0
        while dest.exists():
            n += 1
            dest = tmp_path / f"dpro_agent_{n}.db"
        shutil.copyfile(_generated(**kwargs), dest)
        return dest

    return make


def add_orphan_message(db: Path) -> None:
    """A message whose conversation was deleted: a row every target refuses (foreign key)."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO messages (conversation_id, sender_type, content) VALUES (987654321, 'user', 'orphan')")
    conn.commit()
    conn.close()


# The peak memory of a program run in a child, its own: the high-water mark of its address space (VmHWM).
# Not getrusage's ru_maxrss: Linux carries the spawning process's high-water mark over into the child at exec
# (the mm it replaces), so a child of a pytest that once held 350 MB "peaks" at 350 MB however little it uses.
OWN_PEAK_RSS_KB = ("next(int(line.split()[1]) for line in open('/proc/self/status') "
                   "if line.startswith('VmHWM:'))")


def own_peak_rss_mb(stdout: str) -> float:
    """The last line a child printed `OWN_PEAK_RSS_KB` on, in MB."""
    return int(stdout.split()[-1]) / 1024


def refused_in_one_line(calls, *words: str) -> list[str]:
    """Each call raises BadInput with one line holding every word; their messages."""
    from dpro_migrate.errors import BadInput

    messages = []
    for call in calls:
        with pytest.raises(BadInput) as refusal:
            call()
        message = str(refusal.value)
        assert "\n" not in message
        for word in words:
            assert word in message
        messages.append(message)
    return messages


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- PostgreSQL: a real server, throwaway databases ------------------------------------------------
# Every PostgreSQL test goes through pg_url (which goes through pg_server), and carries the postgres marker:
# `pytest -m "not postgres"` needs no server. The server is DPRO_MIGRATE_TEST_PG; under CI=true a missing
# server fails the PostgreSQL tests instead of skipping them.

import os  # noqa: E402
import uuid  # noqa: E402

from dpro_migrate.config import load_settings  # noqa: E402

PG_URL = load_settings().test_pg_url

PG_FIXTURES = frozenset({"pg_server", "pg_url"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the marker must be there when it looks
def pytest_collection_modifyitems(config, items):
    """A test that asks for a PostgreSQL fixture in its signature is a postgres test, marked or not."""
    for item in items:
        if PG_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def pg_server():
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG_URL, connect_timeout=5, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL server at {PG_URL} (set DPRO_MIGRATE_TEST_PG): {str(exc).strip()[:200]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the PostgreSQL tests: " + reason)
        pytest.skip(reason)
    conn.close()
    return PG_URL


@pytest.fixture
def pg_url(request):
    """A new empty database on the test server, dropped afterwards; yields its URL."""
    # Tests that reach it through request.getfixturevalue escape the collection hook: they must say so.
    if request.node.get_closest_marker("postgres") is None:
        pytest.fail(f"{request.node.nodeid} uses PostgreSQL (pg_url) without the postgres marker: "
                    "add @pytest.mark.postgres (or pytest.param(..., marks=pytest.mark.postgres))", pytrace=False)
    with throwaway_database(request.getfixturevalue("pg_server")) as url:
        yield url


TEST_MADE_ROLES = ("application_user",)  # features/app_roles.APPLICATION_ROLE


@contextlib.contextmanager
def throwaway_database(server: str):
    """A new empty database on `server`, dropped afterwards; yields its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"dpro_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(server, autocommit=True)
    roles = "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)"
    before = {r[0] for r in admin.execute(roles, (list(TEST_MADE_ROLES),))}
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        # a role is the server's, not the database's: one apply made here (--with app-roles) goes too, so the
        # next test that needs the name finds it free
        for (role,) in admin.execute(roles, (list(TEST_MADE_ROLES),)).fetchall():
            if role not in before:
                try:
                    admin.execute(f'DROP ROLE "{role}"')
                except psycopg.Error:
                    pass  # another test's database still grants it something: that test's teardown drops it
        admin.close()


def pg_query(url: str, sql: str, params=None) -> list:
    """Rows of one statement on its own autocommit connection ([] for a statement that returns none)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def sqlite_rows(db: Path, sql: str) -> list:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _restore_logging():
    """An Alembic env.py configures logging from alembic.ini (as every Alembic env does): undo it after each test."""
    root = logging.getLogger()
    saved = (root.level, root.handlers[:],
             {n: logging.getLogger(n).level for n in ("alembic", "sqlalchemy.engine")})
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
