"""What every target database answers the same question differently about: one class per dialect.

Like Alembic's `DefaultImpl` and sqlglot's `Dialect`: callers ask the dialect object, they never ask
which database it is. The registry maps the name a plan records ("sqlite", "postgresql") to its class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlglot import exp

from dpro_migrate.errors import BadInput
from dpro_migrate.model.schema import Constraint, Index, Table
from dpro_migrate.model.search import SearchIndex
from dpro_migrate.sqlnames import quote_ident

DIALECTS: dict[str, Dialect] = {}


@dataclass(frozen=True)
class SearchObjects:
    """What a search index (ddl/search.toml) is on one dialect: the SQL that builds it and its reverse, and the
    objects it leaves in the catalog (for verify's promises and for the Alembic handoff, which leaves them alone
    or describes them)."""

    sql: list[str]
    reverse: list[str]
    tables: list[str]  # tables it creates (SQLite: the FTS table and its shadow tables), physical names
    triggers: list[str]
    index: str | None  # an index on the searched table (PostgreSQL)
    # the statements of `sql` that prepare the database for it (PostgreSQL: the extension); the Alembic
    # baseline states them before its tables, whose metadata holds the index itself
    prepare: tuple[str, ...] = ()


@dataclass(frozen=True)
class ViewPart:
    """A domain table under a compatibility view and the view's rows it holds: those `where` takes (the
    mapping's rule, a SQLite expression on the legacy columns); None: every row."""

    table: str  # as SQL
    where: str | None = None


class Dialect:
    name: ClassVar[str]
    title: ClassVar[str]  # for people: "PostgreSQL"
    sqlglot_name: ClassVar[str]
    param: ClassVar[str]  # the driver's placeholder
    ledger_key: ClassVar[str]  # the ledger's id column
    has_schemas: ClassVar[bool]  # domains as schemas (iam.users) or as name prefixes (iam_users)
    # features (`--with`) this database can do
    features: ClassVar[tuple[str, ...]] = ("new-tables", "archive-tables")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        DIALECTS[cls.name] = cls()

    # --- naming -------------------------------------------------------------------------------
    def physical_name(self, qualified: str) -> str:
        raise NotImplementedError

    def table_sql(self, qualified: str) -> str:
        raise NotImplementedError

    def index_sql(self, qualified_table: str, index: str) -> str:
        """An index's name as DROP INDEX wants it."""
        raise NotImplementedError

    def compat_view_sql(self, legacy: str) -> str:
        raise NotImplementedError

    compat_view_options: ClassVar[str] = ""  # between a compatibility view's name and AS

    def compat_view_body(self, union: str) -> str:
        raise NotImplementedError

    def compat_view_write_sql(self, view: str, columns: list[str], parts: list[ViewPart],
                              defaults: dict[str, str]) -> list[str]:
        """The statements that let an unchanged application INSERT, UPDATE and DELETE through a compatibility
        view (`defaults`: column -> its default as SQL, for a column an INSERT leaves out); none: read-only."""
        raise NotImplementedError

    # --- DDL rendering ------------------------------------------------------------------------
    def transform(self, node: exp.Expression) -> exp.Expression:
        """ddl/ is written for PostgreSQL: what changes, node by node, for this dialect."""
        return node

    def render(self, node: exp.Expression) -> str:
        node = node.copy().transform(self.transform)
        return node.sql(self.sqlglot_name, identify=True, comments=False)

    def ride_along_column(self, name: str, decl_type: str) -> exp.ColumnDef:
        """A column that rides along from the legacy table, under its own name."""
        raise NotImplementedError

    def create_table_sql(self, table: Table, extra_columns: list[tuple[str, str]] = (), *,
                         constraints: bool = True) -> str:
        """CREATE TABLE; `constraints=False` leaves keys and checks for after a bulk load."""
        node = table.node.copy()
        schema = node.this
        keep = []
        for item in schema.expressions:
            if isinstance(item, exp.Constraint) and not constraints:
                continue
            if isinstance(item, exp.ColumnDef) and not constraints:
                item.set("constraints", [c for c in item.args.get("constraints") or []
                                         if not isinstance(c.args["kind"], exp.PrimaryKeyColumnConstraint)])
            keep.append(item)
        columns = [i for i in keep if isinstance(i, exp.ColumnDef)]
        rest = [i for i in keep if not isinstance(i, exp.ColumnDef)]
        schema.set("expressions", columns + [self.ride_along_column(n, t) for n, t in extra_columns] + rest)
        return self.render(node)

    def create_index_sql(self, index: Index) -> str:
        return self.render(index.node)

    def predicate_sql(self, where: exp.Where) -> str:
        """A partial index's predicate (the body of its WHERE) as this dialect's CREATE INDEX writes it."""
        return self.render(where.this)

    def add_constraint_sql(self, table: Table, constraint: Constraint) -> str:
        if constraint.kind == "primary_key":
            body = f"PRIMARY KEY ({quote_ident(constraint.columns[0])})"
        else:
            body = constraint.node.expressions[0].sql(self.sqlglot_name, identify=True)
        return f"ALTER TABLE {self.table_sql(table.qualified)} ADD CONSTRAINT {quote_ident(constraint.name)} {body}"

    def search_unavailable(self) -> str | None:
        """Why this installation cannot build search indexes (said at plan time), or None."""
        return None

    def search_objects(self, index: SearchIndex) -> SearchObjects:
        """The index that serves the application's `column LIKE '%...%'` on this dialect."""
        raise NotImplementedError

    def analyze_sql(self, tables: list[str]) -> list[str]:
        """Statistics for these tables (qualified names), and only them."""
        raise NotImplementedError

    def analyze_reverse_sql(self, stat_tables: list[str]) -> list[str]:
        """Undo what analyze_sql left beyond the tables it analyzed; `stat_tables`: the source's own."""
        return []

    # --- the ledger ---------------------------------------------------------------------------
    def placeholders(self, n: int) -> str:
        return ", ".join([self.param] * n)

    # --- SQLAlchemy and Alembic ---------------------------------------------------------------
    def sa_table_options(self, table: Table, autoincrement: bool) -> dict[str, Any]:
        raise NotImplementedError

    def sa_search_index(self, index: SearchIndex, table: Any) -> Any:
        """The search index as SQLAlchemy declares it on `table` (an sa.Table), when it is an index of the table."""
        return None

    alembic_options: ClassVar[dict[str, Any]] = {}
    version_table_schema: ClassVar[str | None] = None
    # For handoff/ (SQLAlchemy metadata that compares clean with what apply created):
    trigger_body_starts: ClassVar[str]  # a regex: where a CREATE TRIGGER's head (its table) ends
    names_primary_keys: ClassVar[bool]  # the catalog keeps a primary key's constraint name
    identity_columns: ClassVar[bool]  # an identity column is GENERATED BY DEFAULT AS IDENTITY (else: AUTOINCREMENT)
    primary_key_declared_nullable: ClassVar[bool]  # apply declares key columns without NOT NULL
    alembic_scope: ClassVar[str]  # what Alembic compares here, in words (for the env.py it writes)


def get_dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise BadInput(f"unknown dialect {name!r}: choose {' or '.join(DIALECTS)}") from None
