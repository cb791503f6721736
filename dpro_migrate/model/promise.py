"""A promise: an object an operation says verify will find in the database's own catalog."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Promise:
    kind: str  # schema | table | index | constraint | trigger | function | view
    name: str  # as the dialect's catalog names it (SQLite: iam_users; PostgreSQL: iam.users)
