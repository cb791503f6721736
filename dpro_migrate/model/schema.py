"""The target schema: ddl/*.sql parsed with sqlglot into a dialect-neutral model, rendered per dialect.

ddl/ is written in PostgreSQL syntax with schema-qualified names (iam.users). On SQLite the
domain becomes a table-name prefix (iam_users) and every type is rendered so that its SQLite
type affinity is the one the legacy column had: values keep their storage class both ways.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp

from dpro_migrate import DOMAINS
from dpro_migrate.errors import BadInput
from dpro_migrate.sqlnames import quote_ident

SQLITE = "sqlite"
POSTGRES = "postgresql"
DIALECTS = (SQLITE, POSTGRES)
_SQLGLOT = {SQLITE: "sqlite", POSTGRES: "postgres"}

# Canonical (ddl/) type -> SQLite declared type, chosen for the affinity of the legacy column.
SQLITE_TYPES = {
    exp.DataType.Type.BIGINT: "INTEGER",
    exp.DataType.Type.INT: "INTEGER",
    exp.DataType.Type.TEXT: "TEXT",
    exp.DataType.Type.VARCHAR: "VARCHAR",
    exp.DataType.Type.BOOLEAN: "BOOLEAN",
    exp.DataType.Type.TIMESTAMPTZ: "TIMESTAMP",
    exp.DataType.Type.TIMESTAMP: "TIMESTAMP",
    exp.DataType.Type.JSONB: "JSON",
    exp.DataType.Type.JSON: "JSON",
    exp.DataType.Type.DOUBLE: "REAL",
    exp.DataType.Type.VARBINARY: "BLOB",
}

# A legacy declared type (for columns that ride along) -> PostgreSQL type.
PG_TYPES_BY_NAME = {"BOOLEAN": "BOOLEAN", "TIMESTAMP": "TIMESTAMPTZ", "DATETIME": "TIMESTAMPTZ", "JSON": "JSONB"}
PG_TYPES_BY_AFFINITY = {"INTEGER": "BIGINT", "TEXT": "TEXT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA", "NUMERIC": "TEXT"}


def sqlite_affinity(decl_type: str) -> str:
    """SQLite's affinity rules (datatype3.html, section 3.1), in their order."""
    t = decl_type.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


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


def physical_name(qualified: str, dialect: str) -> str:
    """iam.users is iam_users on SQLite, iam.users (schema iam) on PostgreSQL."""
    domain, name = qualified.split(".", 1)
    return f"{domain}_{name}" if dialect == SQLITE else qualified


def table_sql(qualified: str, dialect: str) -> str:
    domain, name = qualified.split(".", 1)
    if dialect == SQLITE:
        return quote_ident(f"{domain}_{name}")
    return f"{quote_ident(domain)}.{quote_ident(name)}"


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


def _triggers(path: Path, dialect: str) -> list[Trigger]:
    out = []
    for stmt in _split_marked(path.read_text()):
        if dialect == SQLITE and not sqlite3.complete_statement(stmt):
            raise BadInput(f"{path.name}: statement is not complete: {stmt[:60]}")
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
                indexes.append(
                    Index(stmt.this.name, f"{domain}.{tbl.name}", bool(stmt.args.get("unique")),
                          stmt.find(exp.IndexParameters).args.get("where") is not None, stmt)
                )
    triggers = {d: _triggers(root / f"triggers.{d}.sql", d) for d in DIALECTS}
    return TargetSchema(tables, indexes, triggers)


# --- rendering ----------------------------------------------------------------------------------


def _to_sqlite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DataType) and node.this != exp.DataType.Type.USERDEFINED:
        name = SQLITE_TYPES.get(node.this)
        if name is None:
            raise BadInput(f"ddl/ uses a type with no SQLite rendering: {node.sql()}")
        params = ", ".join(p.sql() for p in node.expressions)
        return exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=f"{name}({params})" if params else name)
    if isinstance(node, exp.Table) and node.args.get("db"):
        return exp.Table(this=exp.to_identifier(f"{node.db}_{node.name}"))
    if isinstance(node, exp.Boolean):
        return exp.Literal.number(1 if node.this else 0)
    if isinstance(node, exp.Ordered) and isinstance(node.parent, exp.Schema | exp.IndexParameters | exp.Tuple):
        # SQLite indexes take no NULLS FIRST/LAST: ask for SQLite's own order so none is written.
        node.set("nulls_first", not node.args.get("desc"))
    return node


def pg_type_for_legacy(decl_type: str) -> str:
    base = re.sub(r"\(.*", "", decl_type).strip().upper()
    return PG_TYPES_BY_NAME.get(base) or PG_TYPES_BY_AFFINITY[sqlite_affinity(decl_type)]


def _declared(name: str, decl_type: str, dialect: str) -> exp.ColumnDef:
    """A column that rides along from the legacy table, under its own name."""
    if dialect == SQLITE:
        kind = exp.DataType(this=exp.DataType.Type.USERDEFINED, kind=decl_type) if decl_type else None
    else:
        kind = exp.DataType.build(pg_type_for_legacy(decl_type), dialect="postgres")
    return exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=kind)


def create_table_sql(
    table: Table, dialect: str, extra_columns: list[tuple[str, str]] = (), *, constraints: bool = True
) -> str:
    """CREATE TABLE for a dialect. On PostgreSQL `constraints=False` leaves keys and checks for after the load."""
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
    schema.set("expressions", columns + [_declared(n, t, dialect) for n, t in extra_columns] + rest)
    if dialect == SQLITE:
        node = node.transform(_to_sqlite)
    return node.sql(_SQLGLOT[dialect], identify=True, comments=False)


def create_index_sql(index: Index, dialect: str) -> str:
    node = index.node.copy()
    if dialect == SQLITE:
        node = node.transform(_to_sqlite)
    return node.sql(_SQLGLOT[dialect], identify=True, comments=False)


def add_constraint_sql(table: Table, constraint: Constraint) -> str:
    """PostgreSQL: keys and checks are added after the bulk load."""
    if constraint.kind == "primary_key":
        body = f"PRIMARY KEY ({quote_ident(constraint.columns[0])})"
    else:
        body = constraint.node.expressions[0].sql("postgres", identify=True)
    return (
        f"ALTER TABLE {table_sql(table.qualified, POSTGRES)} "
        f"ADD CONSTRAINT {quote_ident(constraint.name)} {body}"
    )


def expression_sql(node: exp.Expression, dialect: str) -> str:
    node = node.copy()
    if dialect == SQLITE:
        node = node.transform(_to_sqlite)
    return node.sql(_SQLGLOT[dialect], identify=True, comments=False)
