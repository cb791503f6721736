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


# libpq parameters that carry a secret when given in a URL's query (postgresql://host/db?password=...)
SECRET_PARAMS = frozenset({"password", "sslpassword"})
HIDDEN = "***"


def parse_target(url: str | None) -> Target:
    if not url:
        return in_place()
    try:
        parsed = make_url(url)
        port = parsed.port  # SQLAlchemy reads it as a number: "5432x" fails here
    except (ArgumentError, ValueError) as exc:
        reason = "not a database URL" if isinstance(exc, ArgumentError) else "its port is not a number"
        raise BadInput(f"--target {mask(url)!r}: {reason} (postgresql://user@host:5432/db or sqlite:///path)") from None
    if port is not None and not 0 < port < 65536:
        raise BadInput(f"--target {mask(url)!r}: port {port} is not between 1 and 65535")
    backend = parsed.get_backend_name()
    if backend not in TARGETS:
        raise BadInput(f"--target {backend}: only postgresql:// (or postgres://) and sqlite:/// targets are supported")
    return TARGETS[backend](parsed)


def recorded_target(display: str) -> Target:
    """The target a plan file records (its URL without the password): libpq then takes the password from
    PGPASSWORD or ~/.pgpass, or --target gives the whole URL."""
    if display == IN_PLACE:
        return in_place()
    url = make_url(display)
    if url.password == HIDDEN:
        url = url._replace(password=None)  # set(password=None) would keep it
    hidden = [k for k, v in url.query.items() if v == HIDDEN]
    return parse_target(url.difference_update_query(hidden).render_as_string(hide_password=False) if hidden else
                        url.render_as_string(hide_password=False))


def _sqlite_file(url: URL) -> Target:
    if not url.database:
        raise BadInput("--target sqlite:// needs a file path (sqlite:///path/to/target.db)")
    return Target(SQLITE, f"sqlite:///{url.database}", path=Path(url.database))


def _postgres_server(url: URL) -> Target:
    plain = url.set(drivername="postgresql")
    if not plain.database and not plain.query.get("dbname"):
        # libpq would connect to the database named like the user (psql's habit): the wrong one, silently
        raise BadInput(f"--target {_shown(plain)}: names no database; add it to the URL "
                       f"(postgresql://user@host:5432/dpro); nothing was changed")
    return Target(POSTGRES, _shown(plain), conninfo=plain.render_as_string(hide_password=False))


def _shown(url: URL) -> str:
    """The URL as it may be printed, logged and stored: every secret it carries replaced by ***."""
    secrets = {k: HIDDEN for k in url.query if k.lower() in SECRET_PARAMS}
    text = url.update_query_dict(secrets).render_as_string(hide_password=True) if secrets else \
        url.render_as_string(hide_password=True)
    return text.replace("%2A%2A%2A", HIDDEN)


# SQLAlchemy's backend name of a --target URL -> the target it names
TARGETS = {SQLITE: _sqlite_file, POSTGRES: _postgres_server, "postgres": _postgres_server}  # libpq takes both


def mask(url: str) -> str:
    try:
        return _shown(make_url(url))
    except (ArgumentError, ValueError):
        # Unparsable: show the scheme and host part only, never what may be a password.
        scheme, sep, rest = url.partition("://")
        host = rest.rpartition("@")[2].split("/")[0].split("?")[0]
        return f"{scheme}{sep}…@{host}" if sep and "@" in rest else (f"{scheme}{sep}{host}" if sep else "<unparsable URL>")
