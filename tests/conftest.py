"""Fixtures build real SQLite databases with the example generator; small and fast by default."""

from __future__ import annotations

import hashlib
import shutil
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


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- PostgreSQL: a real server, throwaway databases ------------------------------------------------

import os  # noqa: E402
import uuid  # noqa: E402

from dpro_migrate.config import load_settings  # noqa: E402

PG_URL = load_settings().test_pg_url


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
def pg_url(pg_server):
    """A new empty database on the test server, dropped afterwards; yields its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"dpro_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(pg_server, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
