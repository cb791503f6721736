"""The target schema: ddl/*.sql parsed with sqlglot into a dialect-neutral model.

ddl/ is written in PostgreSQL syntax with schema-qualified names (iam.users); dialects/ renders it for
each target. ddl/new/ (the tables seed 003 lists as missing) is parsed the same way.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp

from dpro_migrate import DOMAINS
from dpro_migrate.errors import BadInput

# ddl/triggers.<dialect>.sql: triggers are written per dialect (sqlglot cannot translate their bodies).
TRIGGER_FILES = ("sqlite", "postgresql")
NEW_DIR = "new"  # under ddl/: the tables no legacy table feeds


def ddl_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "ddl", package.parent / "ddl"):  # installed wheel, then a checkout
        if (candidate / "iam.sql").exists():
            return candidate
    raise BadInput("the target schema (ddl/) is missing from this installation")


@dataclass
class Column:
    name: str
    type: str  # canonical (PostgreSQL) type
    nullable: bool
    default: str | None  # canonical SQL
    identity: bool
    node: exp.ColumnDef = field(repr=False)


@dataclass
class Constraint:
    name: str
    kind: str  # primary_key | unique | check | foreign_key
    columns: list[str]
    node: exp.Expression = field(repr=False)  # the exp.Constraint

    @property
    def references(self) -> str | None:
        if self.kind != "foreign_key":
            return None
        ref_table = self.node.find(exp.Reference).find(exp.Table)
        return f"{ref_table.db}.{ref_table.name}"


@dataclass
class Table:
    domain: str
    name: str
    columns: list[Column]
    constraints: list[Constraint]
    node: exp.Create = field(repr=False)

    @property
    def qualified(self) -> str:
        return f"{self.domain}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass
class Index:
    name: str
    table: str  # qualified
    unique: bool
    partial: bool
    node: exp.Create = field(repr=False)


@dataclass
class Trigger:
    name: str | None  # None for helper statements (PostgreSQL functions)
    sql: str
    kind: str  # trigger | function


@dataclass
class TargetSchema:
    tables: dict[str, Table]
    indexes: list[Index]
    triggers: dict[str, list[Trigger]]

    def table(self, qualified: str) -> Table:
        try:
            return self.tables[qualified]
        except KeyError:
            raise BadInput(f"the target schema has no table {qualified}") from None


# --- loading ------------------------------------------------------------------------------------


def _parse_file(path: Path) -> list[exp.Expression]:
    try:
        statements = [s for s in sqlglot.parse(path.read_text(), read="postgres") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise BadInput(f"{path.name}: cannot be parsed ({str(exc).splitlines()[0]})") from None
    for s in statements:
        if not isinstance(s, exp.Create) or s.kind not in ("TABLE", "INDEX"):
            raise BadInput(f"{path.name}: only CREATE TABLE and CREATE INDEX belong here: {s.sql()[:60]}")
    return statements


def _column(node: exp.ColumnDef) -> Column:
    constraints = [c.args["kind"] for c in node.args.get("constraints") or []]
    default = next((c for c in constraints if isinstance(c, exp.DefaultColumnConstraint)), None)
    return Column(
        name=node.name,
        type=node.args["kind"].sql("postgres"),
        nullable=not any(isinstance(c, (exp.NotNullColumnConstraint, exp.PrimaryKeyColumnConstraint)) for c in constraints),
        default=default.this.sql("postgres") if default else None,
        identity=any(isinstance(c, exp.GeneratedAsIdentityColumnConstraint) for c in constraints),
        node=node,
    )


def _constraints(table: str, create: exp.Create) -> list[Constraint]:
    out = []
    for col in create.this.expressions:
        if isinstance(col, exp.ColumnDef) and any(
            isinstance(c.args["kind"], exp.PrimaryKeyColumnConstraint) for c in col.args.get("constraints") or []
        ):
            out.append(Constraint(f"{table}_pkey", "primary_key", [col.name], col))
    for con in create.this.expressions:
        if not isinstance(con, exp.Constraint):
            continue
        body = con.expressions[0]
        if isinstance(body, exp.UniqueColumnConstraint):
            out.append(Constraint(con.name, "unique", [i.name for i in body.this.expressions], con))
        elif isinstance(body, exp.CheckColumnConstraint):
            out.append(Constraint(con.name, "check", sorted({c.name for c in body.find_all(exp.Column)}), con))
        elif isinstance(body, exp.ForeignKey):
            out.append(Constraint(con.name, "foreign_key", [i.name for i in body.expressions], con))
        else:
            raise BadInput(f"unsupported constraint in ddl/: {con.sql()}")
    return out


def _split_marked(text: str) -> list[str]:
    """Trigger files put a line `-- statement` before each statement."""
    parts = re.split(r"^--\s*statement\s*$", text, flags=re.M)
    return [p.strip() for p in parts[1:] if p.strip()]


_TRIGGER_NAME = re.compile(r"CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)\"?", re.I)
_FUNCTION_NAME = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w.\"]+)", re.I)


def _triggers(path: Path) -> list[Trigger]:
    out = []
    for stmt in _split_marked(path.read_text()):
        if m := _TRIGGER_NAME.search(stmt):
            out.append(Trigger(m.group(1), stmt, "trigger"))
        elif m := _FUNCTION_NAME.search(stmt):
            out.append(Trigger(m.group(1).replace('"', ""), stmt, "function"))
        else:
            raise BadInput(f"{path.name}: expected CREATE TRIGGER or CREATE FUNCTION: {stmt[:60]}")
    return out


@functools.lru_cache(maxsize=None)
def load_schema(directory: str | None = None) -> TargetSchema:
    root = Path(directory) if directory else ddl_dir()
    tables: dict[str, Table] = {}
    indexes: list[Index] = []
    for domain in DOMAINS:
        path = root / f"{domain}.sql"
        for stmt in _parse_file(path):
            tbl = stmt.this.find(exp.Table) if stmt.kind == "INDEX" else stmt.this.this
            if tbl.db != domain:
                raise BadInput(f"{path.name}: {tbl.sql()} is not in the {domain} domain")
            if stmt.kind == "TABLE":
                cols = [_column(c) for c in stmt.this.expressions if isinstance(c, exp.ColumnDef)]
                tables[f"{domain}.{tbl.name}"] = Table(domain, tbl.name, cols, _constraints(tbl.name, stmt), stmt)
            else:
                indexes.append(_index(stmt, domain, tbl.name))
    triggers = {d: _triggers(root / f"triggers.{d}.sql") for d in TRIGGER_FILES}
    return TargetSchema(tables, indexes, triggers)


# --- ddl/new/: the tables no legacy table feeds (seed 003) --------------------------------------


@dataclass
class NewSchema:
    tables: dict[str, Table]  # qualified name -> Table, in file order (domains in DOMAINS order)
    indexes: list[Index]


def _index(stmt: exp.Create, domain: str, name: str) -> Index:
    return Index(stmt.this.name, f"{domain}.{name}", bool(stmt.args.get("unique")),
                 stmt.find(exp.IndexParameters).args.get("where") is not None, stmt)


@functools.lru_cache(maxsize=None)
def load_new(directory: str | None = None) -> NewSchema:
    """ddl/new/<domain>.sql parsed like ddl/<domain>.sql. A domain without a file has no new table.

    Refuses (BadInput) a table outside its file's domain, a table ddl/ already has, and a constraint or
    index name ddl/ or another new file already uses (PostgreSQL needs index names unique per schema,
    SQLite per database)."""
    root = Path(directory) if directory else ddl_dir() / NEW_DIR
    base = load_schema()
    tables: dict[str, Table] = {}
    indexes: list[Index] = []
    for domain in DOMAINS:
        path = root / f"{domain}.sql"
        if not path.exists():
            continue
        for stmt in _parse_file(path):
            tbl = stmt.this.find(exp.Table) if stmt.kind == "INDEX" else stmt.this.this
            if tbl.db != domain:
                raise BadInput(f"new/{path.name}: {tbl.sql()} is not in the {domain} domain")
            qualified = f"{domain}.{tbl.name}"
            if stmt.kind == "TABLE":
                if qualified in base.tables or qualified in tables:
                    raise BadInput(f"new/{path.name}: {qualified} is defined twice")
                cols = [_column(c) for c in stmt.this.expressions if isinstance(c, exp.ColumnDef)]
                tables[qualified] = Table(domain, tbl.name, cols, _constraints(tbl.name, stmt), stmt)
            else:
                indexes.append(_index(stmt, domain, tbl.name))
    for index in indexes:
        if index.table not in tables:
            raise BadInput(f"ddl/new/: index {index.name} is on {index.table}, which is not a new table")
    names = [c.name for t in [*base.tables.values(), *tables.values()] for c in t.constraints]
    names += [i.name for i in [*base.indexes, *indexes]]
    names += [q.replace(".", "_") for q in [*base.tables, *tables]]  # SQLite's table names share one namespace
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"ddl/new/: names used twice across ddl/ and ddl/new/: {', '.join(dupes)}")
    return NewSchema(tables, indexes)


def new_tables() -> list[Table]:
    return list(load_new().tables.values())


def new_indexes() -> list[Index]:
    return list(load_new().indexes)
