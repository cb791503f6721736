"""Hand the migrated database over to Alembic: an Alembic environment whose baseline is what apply created.

alembic_init() writes an Alembic environment that runs without dpro-migrate: what apply built (handoff.applied:
the MetaData of ddl/ and of the plan's `--with` tables) written out as SQLAlchemy source (baseline_source.py),
the tables Alembic must leave alone and the comparison options of handoff.drift as literals in env.py, and the
code env.py runs copied from standalone/. stamp_baseline() records its baseline revision in the database, once
schema_drift() finds nothing. The pieces, by job: metadata.py (SQLAlchemy MetaData from ddl/), applied.py (what
the plan in the ledger adds to it), connect.py (URLs, connections, the ledger), drift.py (the comparison;
drift_<dialect>.py read each catalog), standalone/ (what the environment runs).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dpro_migrate import DOMAINS
from dpro_migrate.dialects import get_dialect, physical_name
from dpro_migrate.errors import BadInput
from dpro_migrate.handoff.applied import Applied
from dpro_migrate.handoff.connect import Bind, applied_plan, database_dialect, dialect_of, has_table, sqlalchemy_url
from dpro_migrate.handoff.baseline_source import render_schema
from dpro_migrate.handoff.catalogs import catalog_for
from dpro_migrate.handoff.drift import dialect_options, schema_drift
from dpro_migrate.model.mapping import LEDGER_TABLE
from dpro_migrate.model.search import load_search
from dpro_migrate.safety.alembic_version import BASELINE_PREFIX, VERSION_TABLE
from dpro_migrate.config import DATABASE_URL_ENV

# schema_drift is imported by verbs from here.
__all__ = ["BASELINE_SLUG", "URL_ENV", "alembic_init", "baseline_revision", "schema_drift", "stamp_baseline"]

# Alembic's version table: the dialect's version_table_schema. PostgreSQL: system.alembic_version; SQLite (no
# schemas): a plain alembic_version. Why system and not public on PostgreSQL: the seven domain schemas are the
# whole application and system already holds tool bookkeeping (migration_ledger) and the trigger functions;
# public may be absent or not writable by the application role (PostgreSQL 15 revokes CREATE on public from
# PUBLIC); and the stamp then lives and dies with the migrated schema instead of surviving a rollback as a
# stale claim in public. The price: rollback drops the system schema without CASCADE, so it must drop the
# version table first (release_baseline), and refuses when Alembic has moved the database beyond the baseline.

# The baseline revision's file is versions/<rev>_dpro_baseline.py; its id is BASELINE_PREFIX ("dpro") + Alembic's
# 12 hex digits: recognisable without the Alembic directory (release_baseline), within alembic_version's VARCHAR(32).
BASELINE_SLUG = "dpro_baseline"
PACKAGE = "dpro_baseline"  # the environment's own package: the baseline's tables and the code env.py runs
URL_ENV = DATABASE_URL_ENV  # read by the generated env.py itself: it runs under Alembic, not dpro-migrate


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

It needs SQLAlchemy, Alembic and the database's driver, nothing else: the code it runs is in dpro_baseline/
beside it. target_metadata starts with the baseline, the schema `dpro-migrate apply` built, as it was at the
cutover (dpro_baseline/schema.py), so on the freshly migrated database `alembic check` finds nothing. Alembic
sees {scope}, and every table in them but those in EXCLUDED below, which it never proposes to drop or change.
Triggers and row-level security policies are invisible to it: `dpro-migrate verify --schema-only` checks them.
"""

import os
import sys
from logging.config import fileConfig
from pathlib import Path

import sqlalchemy as sa  # noqa: F401  (for changes to the metadata made here)
from alembic import context

HERE = Path(__file__).resolve().parent
if str(HERE) in sys.path:
    sys.path.remove(str(HERE))
sys.path.insert(0, str(HERE))
# Another environment's dpro_baseline, loaded earlier in this process: this environment uses its own.
loaded = sys.modules.get("dpro_baseline")
if loaded is not None and Path(getattr(loaded, "__file__", None) or HERE).resolve().parent.parent != HERE:
    for name in [m for m in sys.modules if m == "dpro_baseline" or m.startswith("dpro_baseline.")]:
        del sys.modules[name]

from dpro_baseline import options, runtime  # noqa: E402
from dpro_baseline.schema import metadata as baseline_metadata  # noqa: E402

# What Alembic compares: these schemas (None: SQLite's one database) and every schema your models name.
SCHEMAS = {schemas!r}

# Tables Alembic leaves alone (include_name), each with the reason. A partition of a table in PARTITIONED is
# left alone whatever its name, a month added after the cutover too (include_object).
EXCLUDED = {excluded}
PARTITIONED = {partitioned!r}

# Where Alembic keeps its version table, and what this database needs of Alembic.
VERSION_TABLE_SCHEMA = {version_table_schema!r}
DATABASE_OPTIONS = {database_options!r}

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# Your application's models go beside the baseline (Alembic compares a list of MetaData):
#   from myapp.models import Base
#   target_metadata = [baseline_metadata, Base.metadata]
# or declare them on the baseline's own MetaData (Base = declarative_base(metadata=baseline_metadata)).
# Never give Base.metadata alone: Alembic would then propose to drop every table of the baseline.
target_metadata = [baseline_metadata]


def database_url() -> str:
    # {env} holds the full URL, password included, so that alembic.ini never has to.
    return runtime.database_url(os.environ.get({env!r}) or config.get_main_option("sqlalchemy.url"))


def alembic_options() -> dict:
    return options.context_options(schemas=SCHEMAS, excluded=EXCLUDED, partition_parents=PARTITIONED,
                                   version_table_schema=VERSION_TABLE_SCHEMA, dialect_options=DATABASE_OPTIONS,
                                   metadata=target_metadata)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={{"paramstyle": "named"}}, **alembic_options())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # SQLite: the whole migration is one transaction, and a batch alters in place where SQLite can and
    # otherwise keeps the table's triggers, AUTOINCREMENT and indexes through its rebuild (sqlite_batch.py).
    given = config.attributes.get("connection")  # a caller's own (dpro-migrate verify --alembic passes one)
    if given is not None:
        context.configure(connection=given, target_metadata=target_metadata, **alembic_options())
        runtime.prepare_context(context.get_context())
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = runtime.migration_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **alembic_options())
        runtime.prepare_context(context.get_context())
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

_PACKAGE = '''\
"""The dpro baseline of this Alembic environment ({dialect}), written by dpro-migrate {version} on {date}.

What `dpro-migrate apply` built, and the code the environment runs, so that neither needs dpro-migrate:

schema.py       the baseline's tables and indexes as SQLAlchemy Tables, as they were at the cutover
                (revision {rev}); `tables["iam.users"]` finds a table by its name on either target
types.py        UTCTimestamp: SQLite timestamps kept in UTC (an offset applied, never dropped)
connections.py  configure(engine): the settings your application needs on every connection
options.py      what Alembic compares and how (include_name, include_object)
runtime.py      the engine Alembic migrates with, and SQLite's safeguards (sqlite_batch.py)
"""

DIALECT = {dialect!r}
REVISION = {rev!r}
'''

_SCHEMA_HEAD = '''\
"""The schema `dpro-migrate apply` built ({dialect}): the dpro baseline, revision {rev}, as at the cutover.

Written by dpro-migrate {version} on {date} from its ddl/ and the plan apply ran ({features}). Alembic compares
the database with these tables (env.py's target_metadata[0]); the baseline revision stands for them as written
here at the cutover. From then on this file is your model of them: a change your revision makes to one of
these tables goes here (or into your models: tables["iam.users"].append_column(...)), with that revision.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql  # noqa: F401  (the PostgreSQL types below)
from sqlalchemy.sql.elements import conv  # a ddl/ name, taken as written (not through the naming convention)

from .types import UTCTimestamp  # noqa: F401  (SQLite's timestamps)

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

The seven domain schemas ({domains}) with their tables, keys, checks, indexes and triggers, as
dpro-migrate {version} built them: SCHEMA_AT_CUTOVER below states them as the database's own DDL, as they
were at the cutover, and dpro_baseline/schema.py as the SQLAlchemy tables env.py compares with (yours to
change from then on; this record stays). This revision does not create them: `dpro-migrate apply` did, and
stamped this revision. On a database dpro-migrate has not migrated, run `dpro-migrate apply` first;
`alembic upgrade` on an empty database would record this revision over nothing.
"""
from typing import Sequence, Union

# revision identifiers, used by Alembic.
revision: str = {rev!r}
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Marks the revision dpro-migrate stamps (dpro_migrate.handoff.stamp_baseline).
DPRO_BASELINE = True

# The baseline as the database states it ({dialect}): tables and indexes as SQLAlchemy compiles the baseline's
# tables, then the triggers (and trigger functions) of dpro-migrate's ddl/, as written. Partitions, archive
# tables and row-level security policies apply built with --with options are not repeated here.
SCHEMA_AT_CUTOVER = {schema_sql}


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
    # libpq also takes secrets as query parameters (?password=, ?sslpassword=): those stay out too
    query = {k: v for k, v in parsed.query.items() if k.lower() not in ("password", "sslpassword")}
    bare = sa.engine.URL.create(parsed.drivername, parsed.username, None, parsed.host, parsed.port,
                                parsed.database, query)
    return bare.render_as_string(hide_password=False).replace("%", "%%")


def _literal(value, indent: int = 4) -> str:
    """A dict as Python source, one item a line (readable in env.py)."""
    if not value:
        return "{}"
    pad = " " * indent
    return "{\n" + "".join(f"{pad}{k!r}: {v!r},\n" for k, v in value.items()) + " " * (indent - 4) + "}"


def baseline_sql(applied: Applied) -> str:
    """The baseline's DDL for its dialect: CREATE TABLE and CREATE INDEX compiled from the metadata, then ddl/'s
    triggers and trigger functions as written."""
    from sqlalchemy.dialects import registry

    dialect = registry.load(applied.dialect)()
    metadata = applied.metadata()
    statements = [f"CREATE SCHEMA IF NOT EXISTS {name}" for name in sorted({t.schema for t in metadata.sorted_tables
                                                                            if t.schema})]
    # ddl/search.toml: an index the metadata holds (PostgreSQL) needs its extension first; the objects it does
    # not hold (SQLite's FTS table and triggers) come after the tables
    searches = [get_dialect(applied.dialect).search_objects(s) for s in load_search(applied.schema())]
    statements += [sql for o in searches if o.index for sql in o.prepare]
    for table in metadata.sorted_tables:
        statements.append(str(sa.schema.CreateTable(table).compile(dialect=dialect)).strip())
        statements += [str(sa.schema.CreateIndex(i).compile(dialect=dialect)).strip()
                       for i in sorted(table.indexes, key=lambda i: str(i.name))]
    statements += [t.sql.strip().rstrip(";") for t in applied.schema().triggers.get(applied.dialect, [])]
    statements += [sql for o in searches if not o.index for sql in o.sql]
    return "\n\n".join(s + ";" for s in statements) + "\n"


def _python_text(text: str) -> str:
    """text as a Python literal, triple-quoted where it can be (readable), repr() otherwise."""
    if "'''" in text or "\\" in text:
        return repr(text)
    return "'''\\\n" + text + "'''"


def _features(applied: Applied) -> str:
    done = [name for name, on in (("new tables", applied.new_tables), ("partitions", applied.partitioned),
                                  ("row-level security", applied.policies),
                                  ("archives", any("archive" in why for why in applied.excluded.values())))
            if on]
    return "with " + ", ".join(done) if done else "no --with options"


def write_baseline_package(directory: Path, applied: Applied, rev: str, date: str) -> None:
    """directory/dpro_baseline/: the baseline's tables (schema.py, rendered from applied's metadata) and the
    code the environment runs (standalone/, copied)."""
    from dpro_migrate import __version__
    from dpro_migrate.handoff import standalone

    package = directory / PACKAGE
    package.mkdir()
    source = Path(standalone.__file__).parent
    for name in standalone.FILES:
        (package / name).write_text((source / name).read_text())
    (package / "__init__.py").write_text(_PACKAGE.format(dialect=applied.dialect, version=__version__, date=date,
                                                         rev=rev))
    qualified = {physical_name(q, applied.dialect): q for q in applied.schema().tables}
    head = _SCHEMA_HEAD.format(dialect=applied.dialect, rev=rev, version=__version__, date=date,
                               features=_features(applied))
    (package / "schema.py").write_text(head + "\n" + render_schema(applied.metadata(), applied.dialect, qualified))


def alembic_init(directory: str | Path, target_url: str | Path, dialect: str | None = None, *,
                 extra_columns: dict[str, list[tuple[str, str]]] | None = None,
                 applied: Applied | None = None) -> Path:
    """Write an Alembic environment for a migrated database into directory (new or empty); return its alembic.ini.

    Written: alembic.ini (sqlalchemy.url without a password), env.py (target_metadata: the baseline, the
    filters and options of schema_drift as literals), script.py.mako, dpro_baseline/ (the baseline's tables as
    SQLAlchemy source, and the code env.py runs: the environment needs no dpro-migrate), and
    versions/<rev>_dpro_baseline.py, the baseline revision (an empty upgrade; a downgrade that refuses).
    applied: what apply built; None reads it from the plan in the database's ledger (connecting to target_url;
    no ledger: ddl/ alone), unless extra_columns (the legacy columns apply carried along) is given: then ddl/
    with those columns, without connecting.
    """
    from alembic.util import rev_id

    from dpro_migrate import __version__

    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BadInput(f"{directory}: exists and is not an empty directory; nothing was written")
    url = sqlalchemy_url(target_url)
    live = database_dialect(sa.engine.make_url(url).get_backend_name())
    dialect = dialect or live
    if get_dialect(dialect).name != live:
        raise BadInput(f"the target URL is {live}, not {dialect}")
    if applied is None and extra_columns is None:
        with Bind(url, read_only=True) as conn:
            applied = Applied.from_plan(applied_plan(conn, dialect), dialect)
    elif applied is None:
        applied = replace(Applied.from_plan(None, dialect),
                          extra_columns={t: [list(c) for c in cols] for t, cols in extra_columns.items()})
    rev = BASELINE_PREFIX + rev_id()
    from datetime import datetime, timezone

    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    impl = get_dialect(dialect)
    try:
        (directory / "versions").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{directory}: cannot be created ({exc.strerror}); nothing was written") from None
    (directory / "alembic.ini").write_text(_INI.format(version=__version__, date=date, rev=rev, slug=BASELINE_SLUG,
                                                       env=URL_ENV, url=_ini_url(url)))
    schemas = sorted(catalog_for(dialect).SCHEMAS, key=lambda n: (n is not None, n or ""))
    (directory / "env.py").write_text(_ENV.format(
        dialect=dialect, version=__version__, env=URL_ENV, scope=impl.alembic_scope, schemas=schemas,
        excluded=_literal(applied.excluded), partitioned=sorted(applied.partition_parents()),
        version_table_schema=impl.version_table_schema, database_options=dialect_options(dialect)))
    (directory / "script.py.mako").write_text(_MAKO)
    write_baseline_package(directory, applied, rev, date)
    (directory / "versions" / f"{rev}_{BASELINE_SLUG}.py").write_text(
        _BASELINE.format(rev=rev, date=date, version=__version__, domains=", ".join(DOMAINS), dialect=dialect,
                         schema_sql=_python_text(baseline_sql(applied))))
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
    with Bind(connection_or_url, read_only=False) as conn:
        dialect = dialect_of(conn)
        if not has_table(conn, dialect, LEDGER_TABLE):
            raise BadInput("the database was not migrated by dpro-migrate apply (no ledger); nothing was stamped")
        if check:
            drift = schema_drift(conn, dialect)
            if drift:
                raise ChecksFailed(f"the schema differs from the baseline in {len(drift)} places "
                                   f"(first: {drift[0]}); nothing was stamped", details=[str(d) for d in drift])
        opts = {"version_table": VERSION_TABLE}
        if schema_name := get_dialect(dialect).version_table_schema:
            opts["version_table_schema"] = schema_name
        context = MigrationContext.configure(conn, opts=opts)
        current = context.get_current_heads()
        if current and current != (rev,):
            raise BadInput(f"the database is already at Alembic revision {', '.join(current)}; nothing was stamped")
        if not current:
            context.stamp(ScriptDirectory(str(directory)), rev)
        if owned:
            conn.commit()
    return rev
