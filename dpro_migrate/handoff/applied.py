"""What `dpro-migrate apply` built, as the Alembic handoff needs to know it.

Read from the plan the ledger recorded (connect.applied_plan), written into the env.py that alembic_init
writes, and read back by schema_drift: so `alembic check` and `verify --schema-only` compare the very same
metadata with the very same tables. Every table apply created is either described by the metadata (ddl/,
ddl/new/ with --with new-tables, partitioned tables with the primary key apply gave them) or excluded by
name, with the reason (partitions, archives, dpro-migrate's bookkeeping, legacy tables left in place).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from dpro_migrate.dialects import get_dialect, physical_name
from dpro_migrate.handoff.catalogs import catalog_for
from dpro_migrate.handoff.metadata import metadata_for
from dpro_migrate.model.search import load_search
from dpro_migrate.model.schema import TargetSchema, load_new, load_schema
from dpro_migrate.plan.operations import (AddConstraint, CreateArchive, CreatePartition, CreateSearchIndex, CreateTable,
                                          EnableRowLevelSecurity, ShareIdSpace)

_PARTITION_BY = re.compile(r"\bPARTITION\s+BY\s+(.+?)\s*$", re.I | re.S)


@dataclass(frozen=True)
class Applied:
    """What apply built beyond ddl/*.sql, for one database.

    extra_columns: {qualified table: [[column, legacy declared type]]}, the legacy columns apply carried along.
    new_tables: the ddl/new/ tables were created (--with new-tables).
    partitioned: {qualified table: {"partition_by": 'RANGE ("created_at")', "primary_key": [columns]}}
        (--with partition-by-month): the partition key joins the primary key, so it is NOT NULL.
    excluded: {physical table name: why Alembic leaves it alone}.
    policies: {qualified table: policy name} (--with row-level-security); Alembic cannot see policies,
        schema_drift checks them.
    shared_ids: {qualified table: sequence}: the parts of a split whose ids come from one sequence (PostgreSQL).
    own_triggers: triggers apply added beyond ddl/ (SQLite: those keeping a split's counters level).
    """

    dialect: str
    extra_columns: dict[str, list[list[str]]] = field(default_factory=dict)
    new_tables: bool = False
    partitioned: dict[str, dict[str, Any]] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    shared_ids: dict[str, str] = field(default_factory=dict)
    own_triggers: list[str] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan, dialect: str) -> Applied:
        """From the plan of the last apply; None (no ledger): ddl/ alone, and only the bookkeeping excluded."""
        dialect = get_dialect(dialect).name
        excluded = dict(catalog_for(dialect).bookkeeping(plan))
        if plan is None:  # every apply builds ddl/search.toml's objects: ddl/ alone holds them too
            own = []
            for index in load_search(load_schema()):
                objects = get_dialect(dialect).search_objects(index)
                excluded.update({t: f"search index of {index.table}.{index.column} (FTS5, kept in step by triggers)"
                                 for t in objects.tables})
                own += objects.triggers
            return cls(dialect, excluded=dict(sorted(excluded.items())), own_triggers=own)
        extra = {op.table: [list(c) for c in op.extra_columns] for op in plan.of_type(CreateTable) if op.extra_columns}
        keys = {op.table: list(op.columns) for op in plan.of_type(AddConstraint) if op.constraint == "primary_key"}
        partitioned = {}
        for op in plan.of_type(CreateTable):
            if op.partition_months is None:
                continue
            by = _PARTITION_BY.search(op.sql[0])
            partitioned[op.table] = {"partition_by": by.group(1) if by else None,
                                     "primary_key": keys.get(op.table, [])}
        for op in plan.of_type(CreatePartition):
            rows = f"its rows of {op.month[:7]}" if op.month else "its rows of no other partition's month"
            excluded[physical_name(op.name, dialect)] = f"partition of {op.parent} (--with partition-by-month): {rows}"
        for op in plan.of_type(CreateArchive):
            excluded[physical_name(op.table, dialect)] = (
                f"archive of {op.archive_of} (--with archive-tables): `dpro-migrate archive` moves its old rows "
                "here, column for column")
        policies = {op.table: op.policy for op in plan.of_type(EnableRowLevelSecurity)}
        shared = {t: op.sequence for op in plan.of_type(ShareIdSpace) if op.sequence for t in op.tables}
        own_triggers = [t for op in plan.of_type(ShareIdSpace) for t in op.triggers]
        for op in plan.of_type(CreateSearchIndex):  # SQLite: an FTS5 table and its shadow tables, kept by triggers
            for table in op.tables:
                excluded[table] = f"search index of {op.table}.{op.column} (FTS5, kept in step by triggers)"
            own_triggers += op.triggers
        return cls(dialect, extra, any(op.new for op in plan.of_type(CreateTable)), partitioned,
                   dict(sorted(excluded.items())), policies, shared, own_triggers)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Applied:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def schema(self) -> TargetSchema:
        """ddl/, and ddl/new/ when apply created those tables."""
        schema = load_schema()
        if not self.new_tables:
            return schema
        new = load_new()
        return TargetSchema({**schema.tables, **new.tables}, schema.indexes + list(new.indexes), schema.triggers)

    def metadata(self) -> sa.MetaData:
        return metadata_for(self.dialect, self.extra_columns, self.schema(), partitioned=self.partitioned,
                            shared_ids=self.shared_ids)

    def partition_parents(self) -> set[str]:
        return {physical_name(q, self.dialect) for q in self.partitioned}
