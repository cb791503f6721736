"""Hand the migrated database over to Alembic: SQLAlchemy metadata from ddl/, a drift check, an Alembic environment.

ddl/ stays the one source of the target schema: metadata_for() builds SQLAlchemy objects from load_schema(),
never from a second copy. schema_drift() compares a live database with that metadata through Alembic's own
autogenerate comparison (so "no drift" here means "`alembic revision --autogenerate` finds nothing"), plus
the triggers Alembic cannot see. alembic_init() writes an Alembic environment whose env.py uses the same
metadata, filter and comparison options; stamp_baseline() records its baseline revision in the database.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import conv
from sqlglot import exp

from dpro_migrate import DOMAINS
from dpro_migrate.handoff.drift import Difference, from_alembic, index_differences, trigger_differences
from dpro_migrate.errors import BadInput
from dpro_migrate.model.mapping import LEDGER_TABLE, QUARANTINE_TABLE
from dpro_migrate.model.schema import Constraint, Index, Table, TargetSchema, load_schema
from dpro_migrate.dialects import POSTGRES, SQLITE, expression_sql, pg_type_for_legacy, physical_name, table_sql
from dpro_migrate.model.schema import load_new
from dpro_migrate.plan.archived import archive_index_name
from dpro_migrate.plan.document import Plan
from dpro_migrate.plan.operations import CreateArchive, CreatePartition, CreateTable
from dpro_migrate.safety.alembic_version import (BASELINE_PREFIX, VERSION_TABLE)
from dpro_migrate.config import DATABASE_URL_ENV

# Alembic's version table. PostgreSQL: system.alembic_version; SQLite (no schemas): a plain alembic_version.
# Why system and not public on PostgreSQL: the seven domain schemas are the whole application and system
# already holds tool bookkeeping (migration_ledger) and the trigger functions; public may be absent or not
# writable by the application role (PostgreSQL 15 revokes CREATE on public from PUBLIC); and the stamp then
# lives and dies with the migrated schema instead of surviving a rollback as a stale claim in public. The
# price: rollback drops the system schema without CASCADE, so it must drop the version table first
# (release_baseline), and refuses when Alembic has moved the database beyond the baseline.
VERSION_TABLE_SCHEMA = {POSTGRES: "system", SQLITE: None}
# Baseline revision ids are "dpro" + Alembic's 12 hex digits: recognisable without the Alembic directory
# (release_baseline), and within alembic_version's VARCHAR(32).
BASELINE_SLUG = "dpro_baseline"
URL_ENV = DATABASE_URL_ENV  # read by the generated env.py itself: it runs under Alembic, not dpro-migrate

# Every constraint in ddl/ is named; conv() marks those names as final. The convention names anything a later
# Alembic migration adds without a name, so autogenerate can always compare constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "%(table_name)s_pkey",
}

_ON_DELETE = re.compile(r"ON\s+DELETE\s+(CASCADE|SET\s+NULL|SET\s+DEFAULT|RESTRICT|NO\s+ACTION)", re.I)
_ON_UPDATE = re.compile(r"ON\s+UPDATE\s+(CASCADE|SET\s+NULL|SET\s+DEFAULT|RESTRICT|NO\s+ACTION)", re.I)


def _check_dialect(dialect: str) -> None:
    if dialect not in (SQLITE, POSTGRES):
        raise BadInput(f"unknown dialect {dialect!r}: choose {SQLITE} or {POSTGRES}")


# --- metadata -----------------------------------------------------------------------------------

_T = exp.DataType.Type


def sa_type(node: exp.DataType) -> sa.types.TypeEngine:
    """A ddl/ (PostgreSQL) type as a SQLAlchemy type that renders, on each dialect, what apply declared.

    On SQLite apply declares the names of schema.SQLITE_TYPES (INTEGER, VARCHAR(n), TEXT, BOOLEAN, TIMESTAMP,
    JSON, REAL, BLOB); the variants make the same type compile to exactly those, which is what Alembic compares.
    """
    params = [int(p.name) for p in node.expressions]
    kind = node.this
    if kind == _T.BIGINT:
        # BIGINT on PostgreSQL; INTEGER on SQLite (64-bit there anyway; a rowid alias needs exactly INTEGER).
        return sa.BigInteger().with_variant(sa.INTEGER(), SQLITE)
    if kind == _T.INT:
        return sa.Integer()
    if kind == _T.VARCHAR:
        return sa.String(*params)
    if kind == _T.TEXT:
        return sa.Text()
    if kind == _T.BOOLEAN:
        return sa.Boolean()
    if kind == _T.TIMESTAMPTZ:
        return sa.TIMESTAMP(timezone=True)
    if kind == _T.TIMESTAMP:
        return sa.TIMESTAMP()
    if kind == _T.JSONB:
        return sa.JSON().with_variant(postgresql.JSONB(), POSTGRES)
    if kind == _T.JSON:
        return sa.JSON()
    if kind == _T.DOUBLE:
        # DOUBLE PRECISION on PostgreSQL; SQLite's declared type is REAL (sa.Double would render DOUBLE).
        return sa.Double().with_variant(sa.REAL(), SQLITE)
    if kind == _T.VARBINARY:
        return sa.LargeBinary()
    raise BadInput(f"ddl/ uses a type with no SQLAlchemy mapping: {node.sql('postgres')}")


def _legacy_type(decl_type: str, dialect: str) -> sa.types.TypeEngine:
    """The type of a ride-along legacy column, as apply declared it (see schema._declared)."""
    if dialect == SQLITE:
        # Declared verbatim by apply (any text, or none); resolved by the very function SQLAlchemy's SQLite
        # reflection uses, so both sides agree. No type at all is NullType, which Alembic does not compare.
        from sqlalchemy.dialects.sqlite.base import SQLiteDialect

        resolve = getattr(SQLiteDialect(), "_resolve_type_affinity", None)
        return resolve(decl_type) if resolve else sa.types.NullType()
    return sa_type(exp.DataType.build(pg_type_for_legacy(decl_type), dialect="postgres"))


def _sql_text(sql: str) -> sa.TextClause:
    """Rendered ddl/ SQL as sa.text, its colons escaped so that none is read as a bind parameter (':x')."""
    return sa.text(re.sub(r"(?<!:):(?!:)", r"\\:", sql))


def _sa_table(meta: sa.MetaData, table: Table, dialect: str, extra: list[tuple[str, str]]) -> sa.Table:
    ident = next((c for c in table.columns if c.identity), None)
    pk = next(c for c in table.constraints if c.kind == "primary_key")
    columns = []
    for col in table.columns:
        kw: dict[str, Any] = {"nullable": col.nullable}
        if col.default is not None:
            default = col.node.find(exp.DefaultColumnConstraint).this
            kw["server_default"] = _sql_text(expression_sql(default, dialect))
        if col.name in pk.columns:
            kw["primary_key"] = True
            kw["autoincrement"] = col is ident
            if dialect == SQLITE:
                # Quirk: apply declares `INTEGER PRIMARY KEY AUTOINCREMENT` without NOT NULL (a rowid alias can
                # never be NULL anyway) and SQLite reflection reports such a column nullable; a NOT NULL
                # metadata column would be a false modify_nullable on every table. Declare it as apply does.
                kw["nullable"] = True
        args: list[Any] = []
        if col is ident and dialect == POSTGRES:
            args.append(sa.Identity())  # GENERATED BY DEFAULT AS IDENTITY, default options
        columns.append(sa.Column(col.name, sa_type(col.node.args["kind"]), *args, **kw))
    for name, decl in extra:
        columns.append(sa.Column(name, _legacy_type(decl, dialect), nullable=True))
    constraints = [_sa_constraint(c, dialect) for c in table.constraints]
    kw = {"schema": table.domain} if dialect == POSTGRES else {"sqlite_autoincrement": ident is not None}
    return sa.Table(physical_name(table.qualified, dialect).split(".")[-1], meta, *columns, *constraints, **kw)


def _sa_constraint(con: Constraint, dialect: str) -> sa.Constraint:
    if con.kind == "primary_key":
        # SQLite keeps no name for the inline INTEGER PRIMARY KEY; nor does Alembic compare primary keys.
        return sa.PrimaryKeyConstraint(*con.columns, name=conv(con.name) if dialect == POSTGRES else None)
    if con.kind == "unique":
        return sa.UniqueConstraint(*con.columns, name=conv(con.name))
    body = con.node.expressions[0]
    if con.kind == "check":
        return sa.CheckConstraint(_sql_text(expression_sql(body.this, dialect)), name=conv(con.name))
    ref = body.args["reference"]
    ref_table = ref.find(exp.Table)
    ref_cols = [i.name for i in ref.this.expressions]
    target = physical_name(f"{ref_table.db}.{ref_table.name}", dialect)
    options = " ".join(str(o) for o in ref.args.get("options") or [])
    on_delete, on_update = _ON_DELETE.search(options), _ON_UPDATE.search(options)
    return sa.ForeignKeyConstraint(
        con.columns, [f"{target}.{c}" for c in ref_cols], name=conv(con.name),
        ondelete=on_delete.group(1).upper() if on_delete else None,
        onupdate=on_update.group(1).upper() if on_update else None,
    )


def _sa_index(index: Index, tables: dict[str, sa.Table], dialect: str) -> sa.Index:
    table = tables[index.table]
    params = index.node.find(exp.IndexParameters)
    exprs = []
    for item in params.args["columns"]:
        column = table.c[item.this.name]
        exprs.append(column.desc() if item.args.get("desc") else column)
    kw: dict[str, Any] = {}
    where = params.args.get("where")
    if where is not None:
        kw[f"{dialect}_where"] = _sql_text(expression_sql(where.this, dialect))
    return sa.Index(conv(index.name), *exprs, unique=index.unique, **kw)


def metadata_for(dialect: str, extra_columns: dict[str, list[tuple[str, str]]] | None = None,
                 schema: TargetSchema | None = None) -> sa.MetaData:
    """The target schema as SQLAlchemy MetaData: PostgreSQL Table("users", schema="iam"), SQLite Table("iam_users").

    extra_columns: {qualified table: [(column, legacy declared type)]}, the legacy columns apply carried along
    (a plan's create_table steps list them; see ride_along_columns()).
    """
    _check_dialect(dialect)
    schema = schema or load_schema()
    meta = sa.MetaData(naming_convention=NAMING_CONVENTION)
    extra_columns = extra_columns or {}
    tables = {q: _sa_table(meta, t, dialect, [tuple(c) for c in extra_columns.get(q, [])])
              for q, t in schema.tables.items()}
    for index in schema.indexes:
        _sa_index(index, tables, dialect)
    return meta


# --- connections and the ledger -----------------------------------------------------------------


def sqlalchemy_url(url: str | Path) -> str:
    """A URL SQLAlchemy can open with what dpro-migrate installs: postgresql:// -> postgresql+psycopg://
    (SQLAlchemy's default PostgreSQL driver is psycopg2); a bare file path -> sqlite:///path."""
    text = str(url)
    if "://" not in text:
        return sa.engine.URL.create("sqlite", database=str(Path(text).resolve())).render_as_string()
    try:
        parsed = sa.engine.make_url(text)
    except sa.exc.ArgumentError:
        raise BadInput("not a database URL (postgresql://... or sqlite:///path)") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _dialect_of(bind: sa.engine.Connection) -> str:
    name = bind.dialect.name
    if name not in (SQLITE, POSTGRES):
        raise BadInput(f"unsupported database {name}: only PostgreSQL and SQLite")
    return name


class _Bind:
    """A Connection from a Connection (caller's), an Engine, a URL or a SQLite path (ours: disposed on exit)."""

    def __init__(self, connection_or_url: Any, *, read_only: bool):
        self.given = connection_or_url
        self.read_only = read_only
        self.engine: sa.engine.Engine | None = None
        self.conn: sa.engine.Connection | None = None

    def __enter__(self) -> sa.engine.Connection:
        given = self.given
        if isinstance(given, sa.engine.Connection):
            return given
        if isinstance(given, sa.engine.Engine):
            self.conn = given.connect()
            return self.conn
        url = sa.engine.make_url(sqlalchemy_url(given))
        if url.get_backend_name() == SQLITE:
            path = Path(url.database or "")
            if not url.database or not path.is_file():
                raise BadInput(f"{url.database or 'sqlite://'}: no such SQLite file")
            # Opened by sqlite3 itself (no URL round trip for odd file names); read-only when only looking,
            # so the file is never created or written.
            target = f"{path.resolve().as_uri()}?mode=ro" if self.read_only else str(path)
            self.engine = sa.create_engine("sqlite://", poolclass=sa.pool.NullPool,
                                           creator=lambda: sqlite3.connect(target, uri=self.read_only))
        else:
            self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            self.conn = self.engine.connect()
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[-1] if str(exc.orig).strip() else "connection failed"
            raise BadInput(f"cannot connect to {url.render_as_string(hide_password=True)}: {reason}") from None
        return self.conn

    def __exit__(self, *exc_info) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.engine is not None:
            self.engine.dispose()


def _has_table(conn: sa.engine.Connection, dialect: str, qualified: str) -> bool:
    schema_name, name = qualified.split(".", 1)
    if dialect == SQLITE:
        return sa.inspect(conn).has_table(f"{schema_name}_{name}")
    return sa.inspect(conn).has_table(name, schema=schema_name)


def applied_plan(conn: sa.engine.Connection, dialect: str | None = None):
    """The plan of the last apply, from the ledger in the database; None when there is none."""

    dialect = dialect or _dialect_of(conn)
    if not _has_table(conn, dialect, LEDGER_TABLE):
        return None
    row = conn.exec_driver_sql(
        f"SELECT \"plan\" FROM {table_sql(LEDGER_TABLE, dialect)} WHERE \"action\" = 'apply' ORDER BY \"id\" DESC LIMIT 1"
    ).fetchone()
    return Plan.from_json(row[0]) if row and row[0] else None


def ride_along_columns(conn: sa.engine.Connection, dialect: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Legacy columns the last apply carried into domain tables (not in ddl/), from the ledger in the database:
    {qualified table: [(column, legacy declared type)]}. Empty when there is no ledger."""
    plan = applied_plan(conn, dialect)
    if plan is None:
        return {}
    return {op.table: [tuple(c) for c in op.extra_columns] for op in plan.of_type(CreateTable) if op.extra_columns}


def _expected_schema(plan, schema: TargetSchema) -> tuple[TargetSchema, set[str]]:
    """What apply promised beyond ddl/*.sql: the new tables (ddl/new/) join the expected schema; archive
    tables and monthly partitions are the plan's own, compared by verify, not here (names returned)."""
    if plan is None:
        return schema, set()
    if "new-tables" in plan.features:
        new = load_new()
        schema = TargetSchema({**schema.tables, **new.tables}, schema.indexes + list(new.indexes), schema.triggers)
    own = {op.name for op in plan.operations if isinstance(op, (CreateArchive, CreatePartition))}
    own |= {name.split(".")[-1] for name in own}
    own |= {archive_index_name(op.archive_of) for op in plan.of_type(CreateArchive)}
    # Partitioning makes the partition key NOT NULL (it is in the primary key).
    own |= {f"{op.name}.created_at" for op in plan.of_type(CreateTable) if op.partition_months is not None}
    return schema, own


def _planned_object(difference, planned: set[str]) -> bool:
    """A difference about an archive table or a partition the plan created (or their indexes and keys)."""
    words = f"{difference.object} {difference.detail}".replace(",", " ").split()
    return any(w in planned or w.split(".")[-1] in planned for w in words)


# --- Alembic options shared by schema_drift and the written env.py --------------------------------


def include_name_filter(dialect: str, schema: TargetSchema | None = None) -> Callable[[str | None, str, dict], bool]:
    """Alembic include_name: what of the live database is compared with ddl/.

    PostgreSQL: the seven domain schemas (not public, where compat views live, nor any other), every table in
    them but dpro-migrate's bookkeeping (system.migration_ledger, system.quarantine) and Alembic's
    system.alembic_version: a table someone adds to a domain schema is drift. SQLite: the domain tables by
    name, nothing else: the file also holds legacy tables a migration leaves behind (unknown ones such as
    legacy_feedback, under any name), the ledger, the quarantine tables and alembic_version.
    """
    _check_dialect(dialect)
    schema = schema or load_schema()
    tables = {physical_name(q, dialect) for q in schema.tables}
    bookkeeping = {physical_name(LEDGER_TABLE, POSTGRES), physical_name(QUARANTINE_TABLE, POSTGRES),
                   f"{VERSION_TABLE_SCHEMA[POSTGRES]}.{VERSION_TABLE}"}

    def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
        if type_ == "schema":
            return name in DOMAINS if dialect == POSTGRES else name is None
        if type_ == "table":
            if dialect == SQLITE:
                return name in tables
            full = f"{parent_names.get('schema_name')}.{name}"
            return parent_names.get("schema_name") in DOMAINS and full not in bookkeeping
        return True

    return include_name


AUTOGENERATE_PLUGINS = [
    "alembic.autogenerate.*",
    # Compares named CHECK constraints by name (added, removed; not their expressions). Opt-in since Alembic
    # 1.19.2 ("recommended only for schemas that name all constraints", which ddl/ and NAMING_CONVENTION do).
    # Without it a renamed or dropped CHECK is invisible to autogenerate.
    "alembic.ext.checkconstraint_byname",
]


def _autogenerate_plugins() -> list[str] | None:
    try:
        import alembic.ext.checkconstraint_byname  # noqa: F401  (Alembic >= 1.19.2)
    except ImportError:
        return None  # older Alembic: its defaults (and no CHECK comparison)
    return list(AUTOGENERATE_PLUGINS)


def context_options(dialect: str, schema: TargetSchema | None = None) -> dict[str, Any]:
    """Keyword arguments for MigrationContext.configure(opts=...) / EnvironmentContext.configure(**...)."""
    _check_dialect(dialect)
    opts: dict[str, Any] = {
        "include_schemas": True,
        "include_name": include_name_filter(dialect, schema),
        "compare_type": True,
        "compare_server_default": True,
        "version_table": VERSION_TABLE,
    }
    if (plugins := _autogenerate_plugins()) is not None:
        opts["autogenerate_plugins"] = plugins
    if VERSION_TABLE_SCHEMA[dialect]:
        opts["version_table_schema"] = VERSION_TABLE_SCHEMA[dialect]
    if dialect == SQLITE:
        # SQLite has no ALTER for most changes: Alembic's batch mode (copy-and-move). Caution: a batch
        # recreate loses the triggers and the DESC of indexes (schema_drift reports both).
        opts["render_as_batch"] = True
    return opts


# --- drift --------------------------------------------------------------------------------------


def schema_drift(connection_or_url: Any, dialect: str | None = None, *,
                 extra_columns: dict[str, list[tuple[str, str]]] | None = None) -> list[Difference]:
    """How the live database differs from ddl/: empty on a database dpro-migrate apply has just migrated.

    connection_or_url: a SQLAlchemy Connection or Engine, a URL (postgresql://..., sqlite:///path) or a SQLite
    file path; the database is only read. dialect: checked against the connection (None: taken from it).
    extra_columns: the legacy columns apply carried along; None reads them from the ledger in the database.
    """
    with _Bind(connection_or_url, read_only=True) as conn:
        live = _dialect_of(conn)
        if dialect is not None and dialect != live:
            raise BadInput(f"the database is {live}, not {dialect}")
        schema, planned = _expected_schema(applied_plan(conn, live), load_schema())
        if extra_columns is None:
            extra_columns = ride_along_columns(conn, live)
        metadata = metadata_for(live, extra_columns, schema)
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        opts = {k: v for k, v in context_options(live, schema).items() if k != "render_as_batch"}
        context = MigrationContext.configure(conn, opts=opts)
        differences = from_alembic(compare_metadata(context, metadata))
        reported = {d.object.split(" on ")[0] for d in differences if d.kind.endswith("_index")}
        differences += index_differences(conn, live, schema, reported)
        differences += trigger_differences(conn, live, schema)
        differences = [d for d in differences if not _planned_object(d, planned)]
        if conn.in_transaction() and not isinstance(connection_or_url, sa.engine.Connection):
            conn.rollback()
        return differences


# --- an Alembic environment ---------------------------------------------------------------------

_INI = """\
# Alembic environment written by dpro-migrate {version} (alembic-init) on {date}.
# The database schema was created by `dpro-migrate apply` from dpro-migrate's ddl/; revision {rev}
# (versions/{rev}_{slug}.py) is that schema, and `dpro-migrate apply` / stamp_baseline() records it.
#
# No password is written here: env.py reads the whole URL from the environment variable {env}
# when it is set, and falls back to sqlalchemy.url below.

[alembic]
script_location = %(here)s
prepend_sys_path = .
path_separator = os
sqlalchemy.url = {url}

[post_write_hooks]

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""

_ENV = '''\
"""Alembic environment for a database migrated by dpro-migrate ({dialect}); written by dpro-migrate {version}.

target_metadata is dpro-migrate's own description of the schema (built from its ddl/), so on a freshly
migrated database `alembic revision --autogenerate` finds nothing to do. Alembic sees only {scope};
triggers are invisible to it: `dpro-migrate verify --schema-only` checks them too.
"""

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from dpro_migrate.handoff.environment import context_options, metadata_for, sqlalchemy_url

DIALECT = {dialect!r}

# Legacy columns that `dpro-migrate apply` carried into domain tables (they are not in ddl/ but they are in
# the database): {{qualified table: [(column, legacy declared type)]}}.
EXTRA_COLUMNS = {extra!r}

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata_for(DIALECT, EXTRA_COLUMNS)


def database_url() -> str:
    # {env} holds the full URL, password included, so that alembic.ini never has to.
    url = os.environ.get({env!r}) or config.get_main_option("sqlalchemy.url")
    return sqlalchemy_url(url)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={{"paramstyle": "named"}}, **context_options(DIALECT))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = sa.create_engine(database_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **context_options(DIALECT))
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

_MAKO = '''\
"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: Union[str, Sequence[str], None] = ${repr(down_revision)}
branch_labels: Union[str, Sequence[str], None] = ${repr(branch_labels)}
depends_on: Union[str, Sequence[str], None] = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''

_BASELINE = '''\
"""dpro baseline: the schema `dpro-migrate apply` created

Revision ID: {rev}
Revises:
Create Date: {date}

The seven domain schemas ({domains}) with their tables, keys, checks, indexes and triggers, exactly as
dpro-migrate {version} defines them in its ddl/. This revision does not create them: `dpro-migrate apply`
did, and stamped this revision. On a database dpro-migrate has not migrated, run `dpro-migrate apply`
first; `alembic upgrade` on an empty database would record this revision over nothing.
"""
from typing import Sequence, Union

# revision identifiers, used by Alembic.
revision: str = {rev!r}
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Marks the revision dpro-migrate stamps (dpro_migrate.handoff.stamp_baseline).
DPRO_BASELINE = True


def upgrade() -> None:
    # Nothing to do: the schema was created by `dpro-migrate apply` (from dpro-migrate's ddl/), which also
    # moved the legacy data and recorded the move in system.migration_ledger.
    pass


def downgrade() -> None:
    raise RuntimeError(
        "the dpro baseline cannot be downgraded by Alembic: the schema and its data were created by "
        "dpro-migrate apply; use `dpro-migrate rollback` to return to the legacy database"
    )
'''


def _ini_url(url: str) -> str:
    """The URL for alembic.ini: no password, and % doubled for ConfigParser interpolation."""
    parsed = sa.engine.make_url(sqlalchemy_url(url))
    # URL.set(password=None) leaves the password as it is: build the URL again without one.
    bare = sa.engine.URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port,
                                parsed.database, parsed.query)
    return bare.render_as_string(hide_password=False).replace("%", "%%")


def alembic_init(directory: str | Path, target_url: str | Path, dialect: str | None = None, *,
                 extra_columns: dict[str, list[tuple[str, str]]] | None = None) -> Path:
    """Write an Alembic environment for a migrated database into directory (new or empty); return its alembic.ini.

    Written: alembic.ini (sqlalchemy.url without a password), env.py (target_metadata = metadata_for(dialect),
    the include_name filter and options of schema_drift), script.py.mako, and versions/<rev>_dpro_baseline.py,
    the baseline revision (an empty upgrade; a downgrade that refuses). extra_columns: the legacy columns apply
    carried along; None reads them from the database's ledger (connecting to target_url; no ledger: none).
    """
    from alembic.util import rev_id

    from dpro_migrate import __version__

    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BadInput(f"{directory}: exists and is not an empty directory; nothing was written")
    url = sqlalchemy_url(target_url)
    live = sa.engine.make_url(url).get_backend_name()
    if live not in (SQLITE, POSTGRES):
        raise BadInput(f"unsupported database {live}: only PostgreSQL and SQLite")
    dialect = dialect or live
    if dialect != live:
        raise BadInput(f"the target URL is {live}, not {dialect}")
    if extra_columns is None:
        with _Bind(url, read_only=True) as conn:
            extra_columns = ride_along_columns(conn, dialect)
    extra = {t: [list(c) for c in cols] for t, cols in sorted(extra_columns.items())}
    rev = BASELINE_PREFIX + rev_id()
    from datetime import datetime, timezone

    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    scope = ("the seven domain schemas" if dialect == POSTGRES
             else "the domain tables (legacy leftovers, the ledger and alembic_version are left out)")
    try:
        (directory / "versions").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{directory}: cannot be created ({exc.strerror}); nothing was written") from None
    (directory / "alembic.ini").write_text(_INI.format(version=__version__, date=date, rev=rev, slug=BASELINE_SLUG,
                                                       env=URL_ENV, url=_ini_url(url)))
    (directory / "env.py").write_text(_ENV.format(dialect=dialect, version=__version__, extra=extra, env=URL_ENV,
                                                  scope=scope))
    (directory / "script.py.mako").write_text(_MAKO)
    (directory / "versions" / f"{rev}_{BASELINE_SLUG}.py").write_text(
        _BASELINE.format(rev=rev, date=date, version=__version__, domains=", ".join(DOMAINS)))
    return directory / "alembic.ini"


def baseline_revision(directory: str | Path) -> str:
    """The dpro baseline revision of an Alembic environment written by alembic_init()."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        script = ScriptDirectory(str(directory))
        bases = script.get_bases()
    except CommandError as exc:
        raise BadInput(f"{directory}: not an Alembic environment ({exc})") from None
    found = [b for b in bases if getattr(script.get_revision(b).module, "DPRO_BASELINE", False)]
    if len(found) != 1:
        raise BadInput(f"{directory}: has no dpro baseline revision (write one with alembic-init)")
    return found[0]


def stamp_baseline(connection_or_url: Any, directory: str | Path, *, check: bool = True) -> str:
    """Record the dpro baseline revision of directory in the database's alembic_version table; return it.

    PostgreSQL: system.alembic_version; SQLite: alembic_version. The database must have been migrated by apply
    (a ledger holds an apply) and, with check, show no schema drift: the stamp says "this is the baseline".
    Already stamped with the baseline: nothing changes. Stamped with another revision: refused (a database
    Alembic has moved on is never stamped back). A Connection passed in is left for the caller to commit.
    """
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from dpro_migrate.errors import ChecksFailed

    rev = baseline_revision(directory)
    owned = not isinstance(connection_or_url, sa.engine.Connection)
    with _Bind(connection_or_url, read_only=False) as conn:
        dialect = _dialect_of(conn)
        if not _has_table(conn, dialect, LEDGER_TABLE):
            raise BadInput("the database was not migrated by dpro-migrate apply (no ledger); nothing was stamped")
        if check:
            drift = schema_drift(conn, dialect)
            if drift:
                raise ChecksFailed(f"the schema differs from the baseline in {len(drift)} places "
                                   f"(first: {drift[0]}); nothing was stamped", details=[str(d) for d in drift])
        opts = {"version_table": VERSION_TABLE}
        if VERSION_TABLE_SCHEMA[dialect]:
            opts["version_table_schema"] = VERSION_TABLE_SCHEMA[dialect]
        context = MigrationContext.configure(conn, opts=opts)
        current = context.get_current_heads()
        if current and current != (rev,):
            raise BadInput(f"the database is already at Alembic revision {', '.join(current)}; nothing was stamped")
        if not current:
            context.stamp(ScriptDirectory(str(directory)), rev)
        if owned:
            conn.commit()
    return rev
