"""Column types of the baseline whose behaviour on SQLite must match PostgreSQL's.

UTCTimestamp: a TIMESTAMP WITH TIME ZONE column on SQLite. SQLite has no timestamp type: dpro-migrate stores
a moment as the text 'YYYY-MM-DD HH:MM:SS' in UTC, the form CURRENT_TIMESTAMP writes, apply wrote and
every dpro-migrate check reads. SQLAlchemy's own SQLite DateTime writes an aware datetime's wall clock and
drops its offset (10:00+02:00 becomes 10:00, two hours off), and adds '.000000'. This type converts an aware
datetime to UTC first (the same instant: nothing is lost), takes a naive one as UTC (as CURRENT_TIMESTAMP
and PostgreSQL with TimeZone=UTC do), writes the canonical form (whole seconds, as CURRENT_TIMESTAMP keeps),
and reads aware UTC datetimes back, as psycopg does from timestamptz. ISO 8601 text is read as PostgreSQL reads
it (its offset applied); text that is no timestamp is refused (ValueError). PostgreSQL's timestamptz does all
this itself: there the type is TIMESTAMP(timezone=True)'s own, so one model serves both targets.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

CANONICAL = "{0.year:04d}-{0.month:02d}-{0.day:02d} {0.hour:02d}:{0.minute:02d}:{0.second:02d}"
SQLITE = "sqlite"  # SQLAlchemy's name of the database whose timestamps are text


def to_utc_text(value: dt.datetime | str | None) -> str | None:
    """The canonical UTC text of a datetime (naive: taken as UTC), or of ISO 8601 text (as PostgreSQL reads
    '2024-01-05T10:00:00+02:00'); ValueError for text that is no timestamp."""
    if value is None:
        return None
    if isinstance(value, str):
        value = from_text(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"a timestamp column takes a datetime or ISO 8601 text, not {type(value).__name__} {value!r}")
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return CANONICAL.format(value)  # not strftime: its %Y drops the leading zeros of years before 1000


def from_text(value) -> dt.datetime | None:
    """An aware UTC datetime from stored ISO 8601 text (the canonical form, or one with 'T', fractions or an
    offset, which is applied)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment.astimezone(dt.timezone.utc)
    return moment.replace(tzinfo=dt.timezone.utc)


class UTCTimestamp(sa.types.TypeDecorator):
    """TIMESTAMP (WITH TIME ZONE) on SQLite, holding UTC: see the module's docstring."""

    impl = sa.TIMESTAMP
    cache_ok = True

    def __init__(self, timezone: bool = True):
        super().__init__(timezone=timezone)

    # SQLite only: elsewhere (PostgreSQL's timestamptz keeps the instant itself) the type is TIMESTAMP's own.
    def bind_processor(self, dialect):
        if dialect.name != SQLITE:
            return super().bind_processor(dialect)
        return to_utc_text  # the whole conversion (SQLAlchemy's SQLite DateTime would add '.000000')

    def result_processor(self, dialect, coltype):
        if dialect.name != SQLITE:
            return super().result_processor(dialect, coltype)
        return from_text

    def literal_processor(self, dialect):
        if dialect.name != SQLITE:
            return super().literal_processor(dialect)
        return lambda value: "'" + to_utc_text(value) + "'"

    @property
    def python_type(self):
        return dt.datetime

    def __repr__(self) -> str:
        return "UTCTimestamp()" if self.impl.timezone else "UTCTimestamp(timezone=False)"
