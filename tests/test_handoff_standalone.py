"""The Alembic environment on its own: it runs where only SQLAlchemy, Alembic and the driver are installed, its
baseline is written down as SQLAlchemy source, and the application sees the same behaviour on both targets
(updated_at in RETURNING, timestamps with an offset kept as the same instant, foreign keys on SQLite).
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from dpro_migrate.dialects import POSTGRES, SQLITE, get_dialect
from dpro_migrate.handoff.applied import Applied
from dpro_migrate.handoff.connect import sqlalchemy_url
from dpro_migrate.handoff.drift import schema_drift
from dpro_migrate.handoff.environment import PACKAGE, URL_ENV, alembic_init

from tests.test_handoff_features import NEW_COLUMNS, Handed, _add_to_env, _add_to_schema, _check_finds, \
    _hand_over, _upgrade_body

DIALECTS = [SQLITE, pytest.param(POSTGRES, marks=pytest.mark.postgres)]
ALLOWED_IMPORTS = {"sqlalchemy", "alembic", PACKAGE}
_loaded = itertools.count()


def load_baseline(environment: Path):
    """The environment's dpro_baseline package, imported under a name of its own (several per test run)."""
    name = f"dpro_baseline_{next(_loaded)}"
    package = environment / PACKAGE
    spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    schema = importlib.import_module(f"{name}.schema")
    connections = importlib.import_module(f"{name}.connections")
    return schema, connections


def _every_applied(dialect: str) -> Applied:
    """What apply builds with every --with option the dialect has, as a plan would say (no database)."""
    partitioned = {"communication.messages": {"partition_by": 'RANGE ("created_at")',
                                              "primary_key": ["id", "created_at"]}} if dialect == POSTGRES else {}
    return Applied(dialect, {"iam.users": [["nickname", "VARCHAR(40)"]]}, True, partitioned,
                   {"iam_users_archive" if dialect == SQLITE else "iam.users_archive": "archive"},
                   {"tasks.tasks": "user_isolation"} if dialect == POSTGRES else {},
                   {"iam.authentication_logs": "iam.activity_logs_id_seq"} if dialect == POSTGRES else {})


# --- the files: no dpro_migrate anywhere ----------------------------------------------------------


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES])
def test_no_generated_file_imports_dpro_migrate(dialect, tmp_path):
    url = "postgresql://app@db.example/dpro" if dialect == POSTGRES else f"sqlite:///{tmp_path / 'x.db'}"
    alembic_init(tmp_path / "env", url, applied=_every_applied(dialect))
    files = sorted((tmp_path / "env").rglob("*.py"))
    assert {p.relative_to(tmp_path / "env").as_posix() for p in files} >= {
        "env.py", f"{PACKAGE}/schema.py", f"{PACKAGE}/sqlite_batch.py", f"{PACKAGE}/runtime.py"}
    for path in files:
        foreign = _imports(path) - ALLOWED_IMPORTS - set(sys.stdlib_module_names)
        assert not foreign, f"{path.name} imports {foreign}"
        assert "dpro_migrate" not in _imports(path)


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES])
def test_the_written_schema_is_the_metadata(dialect, tmp_path):
    """schema.py, imported, declares what handoff's metadata declares: the same DDL for every table and index
    on the dialect, the same Python-side behaviour (onupdate, types), every table under its qualified name."""
    applied = _every_applied(dialect)
    url = "postgresql://app@db.example/dpro" if dialect == POSTGRES else f"sqlite:///{tmp_path / 'x.db'}"
    alembic_init(tmp_path / "env", url, applied=applied)
    schema, _ = load_baseline(tmp_path / "env")
    want = applied.metadata()
    got = schema.metadata
    compiler = (sa.dialects.postgresql if dialect == POSTGRES else sa.dialects.sqlite).dialect()
    assert set(got.tables) == set(want.tables) and set(schema.tables) == set(applied.schema().tables)
    for key, table in want.tables.items():
        mine = got.tables[key]
        assert str(sa.schema.CreateTable(mine).compile(dialect=compiler)) == \
            str(sa.schema.CreateTable(table).compile(dialect=compiler)), key
        assert mine.dialect_kwargs == table.dialect_kwargs
        indexes = lambda t: sorted(str(sa.schema.CreateIndex(i).compile(dialect=compiler)) for i in t.indexes)  # noqa: E731
        assert indexes(mine) == indexes(table), key
        for col in table.columns:
            other = mine.c[col.name]
            assert (other.onupdate is None) == (col.onupdate is None), f"{key}.{col.name}"
            assert type(other.type).__name__ == type(col.type).__name__ or col.type._variant_mapping
            assert other.autoincrement == col.autoincrement and (other.identity is None) == (col.identity is None)
    assert {t.name for t in got.tables.values() if t.c.get("updated_at") is not None and t.c.updated_at.onupdate} \
        >= {"users", "iam_users"} & {t.name for t in got.tables.values()}


# --- the environment in a virtualenv with SQLAlchemy, Alembic and psycopg only ---------------------


@pytest.fixture(scope="session")
def app_venv(tmp_path_factory) -> Path:
    """A virtualenv an application team would have: SQLAlchemy, Alembic, psycopg (from the package index)."""
    venv = tmp_path_factory.mktemp("appvenv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "sqlalchemy", "alembic", "psycopg[binary]"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"pip could not install SQLAlchemy, Alembic and psycopg: {done.stderr.strip()[-300:]}")
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import dpro_migrate"], capture_output=True,
                           env=_bare_environment(), cwd=tmp_path_factory.getbasetemp())
    assert probe.returncode != 0, "dpro_migrate must not be importable in the application's venv"
    return venv


def _bare_environment(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PGPASSWORD")}
    return {**keep, **extra}


def _alembic(venv: Path, handed: Handed, *args: str) -> subprocess.CompletedProcess:
    # cwd: not the worktree (alembic.ini's prepend_sys_path puts the working directory on sys.path)
    return subprocess.run([str(venv / "bin" / "alembic"), "-c", str(handed.ini), *args], capture_output=True,
                          text=True, env=_bare_environment(**{URL_ENV: handed.url}), cwd=handed.ini.parent.parent)


@pytest.mark.slow
@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_environment_runs_in_a_venv_without_dpro_migrate(dialect, app_venv, legacy_db, tmp_path, request):
    """alembic current, check, revision --autogenerate, upgrade and downgrade in the application's venv, after an
    apply with every --with option: clean, exactly the model change, and the round trip an identity."""
    db = _hand_over(dialect, get_dialect(dialect).features, legacy_db, tmp_path, request, compat_views=True)
    current = _alembic(app_venv, db, "current")
    assert current.returncode == 0 and "(head)" in current.stdout, current.stderr
    check = _alembic(app_venv, db, "check")
    assert check.returncode == 0 and "No new upgrade operations detected" in check.stdout + check.stderr, check.stderr
    before = db.dump()
    _add_to_schema(db, NEW_COLUMNS)
    made = _alembic(app_venv, db, "revision", "--autogenerate", "-m", "columns")
    assert made.returncode == 0, made.stderr
    (revision,) = [p for p in (db.ini.parent / "versions").glob("*_columns.py")]
    changes = [line for line in _upgrade_body(revision) if line.startswith(("op.", "batch_op."))]
    assert len(changes) == 2 and all(".add_column(" in line for line in changes), changes
    for step in (("upgrade", "head"), ("check",), ("downgrade", "-1")):
        done = _alembic(app_venv, db, *step)
        assert done.returncode == 0, (step, done.stderr)
    assert db.dump() == before


# --- what the application sees: the same on both targets ------------------------------------------


def _engine(db: Handed):
    _, connections = load_baseline(db.ini.parent)
    return connections.configure(sa.create_engine(sqlalchemy_url(db.url), poolclass=sa.pool.NullPool))


@pytest.fixture(params=DIALECTS)
def handed(request, legacy_db, tmp_path) -> Handed:
    return _hand_over(request.param, (), legacy_db, tmp_path, request)


def test_update_returning_sees_the_new_updated_at(handed):
    """SQLite's trigger sets updated_at after the UPDATE, which RETURNING does not see; the baseline's column
    sets it in the UPDATE itself (onupdate), so RETURNING answers as PostgreSQL's BEFORE trigger does."""
    schema, _ = load_baseline(handed.ini.parent)
    users = schema.tables["iam.users"]
    engine = _engine(handed)
    old = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(sa.select(sa.func.min(users.c.id))).scalar()
            conn.execute(sa.update(users).where(users.c.id == user_id).values(updated_at=old))  # an explicit value wins
            assert conn.execute(sa.select(users.c.updated_at).where(users.c.id == user_id)).scalar() == old
            returned = conn.execute(sa.update(users).where(users.c.id == user_id).values(full_name="Renamed")
                                    .returning(users.c.updated_at)).scalar()
            stored = conn.execute(sa.select(users.c.updated_at).where(users.c.id == user_id)).scalar()
        assert returned == stored and returned > old + dt.timedelta(days=365)
        assert returned.tzinfo is not None and returned.utcoffset() == dt.timedelta(0)
    finally:
        engine.dispose()


def test_a_timestamp_with_an_offset_is_kept_as_the_same_instant(handed):
    """10:00+02:00 is 08:00 UTC on both targets (SQLite used to store 10:00, the offset dropped); read back as
    an aware UTC datetime on both; a naive datetime is UTC."""
    schema, _ = load_baseline(handed.ini.parent)
    users = schema.tables["iam.users"]
    engine = _engine(handed)
    plus_two = dt.datetime(2024, 1, 5, 10, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    utc = dt.datetime(2024, 1, 5, 8, 0, 0, tzinfo=dt.timezone.utc)
    try:
        with engine.begin() as conn:
            ids = conn.execute(sa.select(users.c.id).order_by(users.c.id).limit(2)).scalars().all()
            conn.execute(sa.update(users).where(users.c.id == ids[0]).values(last_login=plus_two))
            conn.execute(sa.update(users).where(users.c.id == ids[1]).values(last_login=utc.replace(tzinfo=None)))
            read = conn.execute(sa.select(users.c.last_login).where(users.c.id.in_(ids)).order_by(users.c.id)).scalars()
            assert list(read) == [utc, utc]
            assert conn.execute(sa.select(users.c.id).where(users.c.last_login == plus_two, users.c.id == ids[0])).all()
    finally:
        engine.dispose()
    if handed.dialect == SQLITE:
        raw = handed.query(f"SELECT last_login FROM iam_users WHERE id IN ({ids[0]}, {ids[1]})")
        assert raw == [("2024-01-05 08:00:00",), ("2024-01-05 08:00:00",)]  # the one form every reader expects
    assert schema_drift(handed.url) == []


@pytest.mark.slow  # ~1.5s: the quick subset (-m 'not postgres and not slow') leaves it to the full run
def test_configure_turns_foreign_keys_on_for_sqlite(legacy_db, tmp_path, request):
    """Without PRAGMA foreign_keys no ON DELETE CASCADE runs on SQLite; configure() sets it on every connection."""
    db = _hand_over(SQLITE, (), legacy_db, tmp_path, request)
    schema, _ = load_baseline(db.ini.parent)
    users, sessions = schema.tables["iam.users"], schema.tables["iam.user_sessions"]
    engine = _engine(db)
    try:
        with engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            user_id = conn.execute(sa.select(sessions.c.user_id).limit(1)).scalar()
            conn.execute(sa.delete(users).where(users.c.id == user_id))
            assert conn.execute(sa.select(sa.func.count()).where(sessions.c.user_id == user_id)).scalar() == 0
    finally:
        engine.dispose()


# --- the application's models ----------------------------------------------------------------------

APP_MODULE = '''
"""An application's models, declared on the baseline's own MetaData (test_handoff_standalone)."""
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dpro_baseline.schema import metadata, tables
from dpro_baseline.types import UTCTimestamp


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __table__ = tables["iam.users"]


class Note(Base):
    __tablename__ = "notes"
    __table_args__ = {SCHEMA}
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey(tables["iam.users"].c.id, ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(sa.Text)
    seen_at = mapped_column(UTCTimestamp(), nullable=True)
'''


def test_models_declared_on_the_baseline_metadata(handed):
    """The README's second way: the application's Base uses the baseline's MetaData; its ORM classes map the
    baseline's tables (User) and add their own (Note, in iam on PostgreSQL): one autogenerate creates the new
    table, and the next finds nothing."""
    schema_arg = "{'schema': 'iam'}" if handed.dialect == POSTGRES else "{}"
    sys.modules.pop("app_models", None)  # another test's, bound to another environment's metadata
    (handed.ini.parent / "app_models.py").write_text(APP_MODULE.replace("{SCHEMA}", schema_arg))
    _add_to_env(handed, "import app_models  # noqa: E402,F401  (declares its tables on baseline_metadata)\n")
    body = _upgrade_body(handed.autogenerate("notes"))
    creates = [line for line in body if line.startswith("op.create_table(")]
    assert creates == ["op.create_table('notes',"], body
    assert not [line for line in body if "drop" in line], body
    command.upgrade(handed.config, "head")
    assert _check_finds(handed) is None
    assert _upgrade_body(handed.autogenerate("again")) == ["pass"]
    # The ORM over both: a note with a +02:00 time is the same instant, read back in UTC, on both targets.
    app_models = sys.modules["app_models"]
    from sqlalchemy.orm import Session

    engine = _engine(handed)
    try:
        with Session(engine) as session:
            user = session.scalars(sa.select(app_models.User).limit(1)).one()
            seen = dt.datetime(2024, 1, 5, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
            session.add(app_models.Note(user_id=user.id, body="hello", seen_at=seen))
            session.commit()
            note = session.scalars(sa.select(app_models.Note)).one()
            assert note.seen_at == seen and note.seen_at.utcoffset() == dt.timedelta(0)
    finally:
        engine.dispose()


# --- verify --schema-only --alembic DIR ------------------------------------------------------------


@pytest.mark.slow  # ~3s: the quick subset (-m 'not postgres and not slow') leaves it to the full run
def test_verify_compares_with_the_environments_models_through_the_cli(legacy_db, tmp_path):
    """At the baseline and after the application's revision: clean, saying it compared with the environment's
    models; a column added by hand beside the revisions is drift there (and only there)."""
    import json

    from typer.testing import CliRunner

    from dpro_migrate.cli import app

    def verify(code: int, *extra) -> dict:
        result = CliRunner().invoke(app, ["verify", str(db.path), "--schema-only", "--json", *map(str, extra)])
        assert result.exit_code == code and "Traceback" not in result.stdout + result.stderr, result.stdout
        return json.loads(result.stdout)

    db = _hand_over(SQLITE, (), legacy_db, tmp_path, None)
    environment = db.ini.parent
    at_baseline = verify(0, "--alembic", environment)
    assert at_baseline["differences"] == [] and str(environment) in at_baseline["basis"]
    _add_to_schema(db, NEW_COLUMNS)
    for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        del sys.modules[name]  # schema.py changed: as a new process would, env.py imports it again
    db.autogenerate("columns")
    assert "head is" in verify(1, "--alembic", environment)["basis"]  # a revision not yet applied: differences
    command.upgrade(db.config, "head")
    assert verify(0, "--alembic", environment)["differences"] == []
    db.sql("ALTER TABLE iam_users ADD COLUMN by_hand TEXT")
    assert verify(0)["differences"] == []  # past the baseline, without the environment: what Alembic cannot see
    found = verify(1, "--alembic", environment)["differences"]
    assert [(d["kind"], d["object"]) for d in found] == [("unexpected_column", "iam_users.by_hand")]
    missing = CliRunner().invoke(app, ["verify", str(db.path), "--schema-only", "--alembic", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no alembic.ini" in missing.stdout + missing.stderr


# --- UTCTimestamp's conversion, property-tested ------------------------------------------------------

from hypothesis import example, given, strategies as st  # noqa: E402

from dpro_migrate.handoff.standalone.types import from_text, to_utc_text  # noqa: E402

OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
MOMENTS = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9998, 12, 30))


@given(MOMENTS, OFFSETS)
@example(dt.datetime(2024, 1, 5, 10, 0, 0), dt.timezone(dt.timedelta(hours=2)))
@example(dt.datetime(2024, 3, 31, 0, 30, 0), dt.timezone(dt.timedelta(hours=5, minutes=30)))
def test_utc_text_is_the_same_instant_in_the_canonical_form(wall, offset):
    """Any aware datetime becomes the canonical UTC text of its instant (to the second), which SQLite's own
    datetime() reads as itself and SQLite converts ISO text with the offset to as well; read back, the instant."""
    import sqlite3

    moment = wall.replace(tzinfo=offset)
    text = to_utc_text(moment)
    conn = sqlite3.connect(":memory:")
    try:
        assert conn.execute("SELECT datetime(?)", (text,)).fetchone()[0] == text
        assert conn.execute("SELECT datetime(?)", (moment.replace(microsecond=0).isoformat(),)).fetchone()[0] == text
    finally:
        conn.close()
    assert from_text(text) == moment.replace(microsecond=0)
    assert to_utc_text(moment.isoformat()) == text  # ISO text, as PostgreSQL would read it
    assert to_utc_text(moment.astimezone(dt.timezone.utc).replace(tzinfo=None)) == text  # naive: UTC


def test_utc_text_refuses_what_is_no_timestamp():
    with pytest.raises(ValueError):
        to_utc_text("next tuesday")
    with pytest.raises(TypeError):
        to_utc_text(12345)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_baseline_revision_states_the_schema_as_at_the_cutover(dialect, tmp_path, request):
    """SCHEMA_AT_CUTOVER, run on an empty database, builds what apply builds: no drift at all."""
    url = request.getfixturevalue("pg_url") if dialect == POSTGRES else f"sqlite:///{tmp_path / 'empty.db'}"
    alembic_init(tmp_path / "env", url, extra_columns={})
    (revision,) = (tmp_path / "env" / "versions").glob("*_dpro_baseline.py")
    spec = importlib.util.spec_from_file_location(f"baseline_{next(_loaded)}", revision)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.SCHEMA_AT_CUTOVER
    assert "CREATE TABLE" in text and "CREATE TRIGGER trg_iam_users_updated_at" in text
    engine = sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            if dialect == SQLITE:
                conn.connection.driver_connection.executescript(text)
            else:
                conn.exec_driver_sql(text)
    finally:
        engine.dispose()
    assert schema_drift(url) == []
