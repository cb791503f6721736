"""Hand the migrated database over to Alembic: an Alembic environment whose baseline is what apply created.

alembic_init() writes an Alembic environment whose env.py describes what apply built (handoff.applied: the
MetaData of ddl/ and of the plan's `--with` tables, the tables Alembic must leave alone) and uses
handoff.drift's filters and comparison options; stamp_baseline() records its baseline revision in the
database, once schema_drift() finds nothing. The pieces, by job: metadata.py (SQLAlchemy MetaData from ddl/),
applied.py (what the plan in the ledger adds to it), connect.py (URLs, connections, the ledger), drift.py (the
comparison; drift_<dialect>.py read each catalog).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dpro_migrate import DOMAINS
from dpro_migrate.dialects import get_dialect
from dpro_migrate.errors import BadInput
from dpro_migrate.handoff.applied import Applied
from dpro_migrate.handoff.connect import Bind, applied_plan, database_dialect, dialect_of, has_table, sqlalchemy_url
from dpro_migrate.handoff.drift import schema_drift
from dpro_migrate.model.mapping import LEDGER_TABLE
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

target_metadata starts with dpro-migrate's own description of what apply built (ddl/, and the `--with` tables
the plan in the ledger lists), so on a freshly migrated database `alembic check` finds nothing. Alembic sees
{scope}, and every table in them but those in EXCLUDED below, which it never proposes to drop or change.
Triggers and row-level security policies are invisible to it: `dpro-migrate verify --schema-only` checks them.
"""

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from dpro_migrate.handoff.applied import Applied
from dpro_migrate.handoff.connect import sqlalchemy_url
from dpro_migrate.handoff.drift import context_options
from dpro_migrate.handoff.runtime import migration_engine, prepare_context

DIALECT = {dialect!r}

# Legacy columns that `dpro-migrate apply` carried into domain tables (they are not in ddl/ but they are in
# the database): {{qualified table: [[column, legacy declared type]]}}.
EXTRA_COLUMNS = {extra}

# Whether `apply --with new-tables` created the ddl/new/ tables.
NEW_TABLES = {new_tables!r}

# Tables apply partitioned (--with partition-by-month), with their primary key, which holds the partition key.
PARTITIONED = {partitioned}

# Tables Alembic leaves alone (include_name), each with the reason. A partition of a partitioned table is
# left alone whatever its name, a month added after the cutover too (include_object).
EXCLUDED = {excluded}

# Row-level security policies apply created (--with row-level-security): invisible to Alembic.
POLICIES = {policies}

# The parts of a split legacy table whose ids come from one shared sequence (PostgreSQL), and the triggers
# that keep their counters level (SQLite): {{qualified table: sequence}}, [trigger].
SHARED_IDS = {shared_ids}
OWN_TRIGGERS = {own_triggers}

APPLIED = Applied(DIALECT, EXTRA_COLUMNS, NEW_TABLES, PARTITIONED, EXCLUDED, POLICIES, SHARED_IDS, OWN_TRIGGERS)

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# The application's own models go beside dpro-migrate's (Alembic compares a list of MetaData), e.g.
#   from myapp.models import Base
#   target_metadata.append(Base.metadata)
target_metadata = [APPLIED.metadata()]


def database_url() -> str:
    # {env} holds the full URL, password included, so that alembic.ini never has to.
    url = os.environ.get({env!r}) or config.get_main_option("sqlalchemy.url")
    return sqlalchemy_url(url)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={{"paramstyle": "named"}}, **context_options(DIALECT, APPLIED, target_metadata))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # SQLite: the whole migration is one transaction, and a batch alters in place where SQLite can and
    # otherwise keeps the table's triggers, AUTOINCREMENT and indexes through its rebuild (batch_sqlite.py).
    engine = migration_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          **context_options(DIALECT, APPLIED, target_metadata))
        prepare_context(context.get_context())
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


def _literal(value, indent: int = 4) -> str:
    """A dict as Python source, one item a line (readable in env.py)."""
    if not value:
        return "{}"
    pad = " " * indent
    return "{\n" + "".join(f"{pad}{k!r}: {v!r},\n" for k, v in value.items()) + " " * (indent - 4) + "}"


def alembic_init(directory: str | Path, target_url: str | Path, dialect: str | None = None, *,
                 extra_columns: dict[str, list[tuple[str, str]]] | None = None,
                 applied: Applied | None = None) -> Path:
    """Write an Alembic environment for a migrated database into directory (new or empty); return its alembic.ini.

    Written: alembic.ini (sqlalchemy.url without a password), env.py (target_metadata: what apply built, the
    filters and options of schema_drift), script.py.mako, and versions/<rev>_dpro_baseline.py, the baseline
    revision (an empty upgrade; a downgrade that refuses). applied: what apply built; None reads it from the
    plan in the database's ledger (connecting to target_url; no ledger: ddl/ alone), unless extra_columns
    (the legacy columns apply carried along) is given: then ddl/ with those columns, without connecting.
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
    extra = {t: [list(c) for c in cols] for t, cols in sorted(applied.extra_columns.items())}
    rev = BASELINE_PREFIX + rev_id()
    from datetime import datetime, timezone

    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    scope = get_dialect(dialect).alembic_scope
    try:
        (directory / "versions").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{directory}: cannot be created ({exc.strerror}); nothing was written") from None
    (directory / "alembic.ini").write_text(_INI.format(version=__version__, date=date, rev=rev, slug=BASELINE_SLUG,
                                                       env=URL_ENV, url=_ini_url(url)))
    (directory / "env.py").write_text(_ENV.format(
        dialect=dialect, version=__version__, env=URL_ENV, scope=scope, extra=_literal(extra),
        excluded=_literal(applied.excluded), new_tables=applied.new_tables,
        partitioned=_literal(applied.partitioned), policies=_literal(applied.policies),
        shared_ids=_literal(applied.shared_ids), own_triggers=repr(list(applied.own_triggers))))
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
