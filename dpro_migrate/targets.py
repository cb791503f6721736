"""--target URLs (SQLAlchemy style). Passwords never leave this module unmasked except to the driver."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dpro_migrate.errors import BadInput
from dpro_migrate.dialects import POSTGRES, SQLITE

IN_PLACE = "sqlite:in-place"


@dataclass(frozen=True)
class Target:
    dialect: str
    display: str  # safe to print, log and record: no password
    conninfo: str | None = None  # PostgreSQL, for psycopg
    path: Path | None = None  # a separate SQLite file

    @property
    def in_place(self) -> bool:
        return self.display == IN_PLACE


def in_place() -> Target:
    return Target(SQLITE, IN_PLACE)


def parse_target(url: str | None) -> Target:
    if not url:
        return in_place()
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadInput(f"--target {mask(url)!r} is not a database URL (postgresql://... or sqlite:///path)") from None
    backend = parsed.get_backend_name()
    if backend not in TARGETS:
        raise BadInput(f"--target {backend}: only postgresql:// and sqlite:/// targets are supported")
    return TARGETS[backend](parsed)


def _sqlite_file(url: URL) -> Target:
    if not url.database:
        raise BadInput("--target sqlite:// needs a file path (sqlite:///path/to/target.db)")
    return Target(SQLITE, f"sqlite:///{url.database}", path=Path(url.database))


def _postgres_server(url: URL) -> Target:
    plain = url.set(drivername="postgresql")
    return Target(POSTGRES, plain.render_as_string(hide_password=True), conninfo=plain.render_as_string(hide_password=False))


# SQLAlchemy's backend name of a --target URL -> the target it names
TARGETS = {SQLITE: _sqlite_file, POSTGRES: _postgres_server}


def mask(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"
