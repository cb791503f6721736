"""The engine and migration-context setup Alembic runs with: the environment's own copy (standalone/), named
here for environments written by dpro-migrate 0.1, whose env.py imports it from dpro_migrate."""

from __future__ import annotations

from dpro_migrate.handoff.standalone.runtime import CONTEXT_SETUP, ENGINE_SETUP, migration_engine, prepare_context

__all__ = ["CONTEXT_SETUP", "ENGINE_SETUP", "migration_engine", "prepare_context"]
