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


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
