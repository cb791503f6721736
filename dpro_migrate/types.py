"""Column type classes: everything dpro-migrate knows about a type, in one table.

A type class is what a column's values are on both sides (bigint, double, boolean, timestamptz, jsonb, text,
bytea): how ddl/ spells it, what SQLite declares for it (chosen for the affinity of the legacy column, so values
keep their storage class both ways), its PostgreSQL type, the conversion the plan declares, and the SQL that
carries a value across: the COPY encoder, the preflight predicate, the write-back of rollback, and the
SQLAlchemy type the Alembic hand-off compares. Encoder, predicate and write-back of a class sit side by side
so that they cannot drift apart.

A leaf module (sqlglot, SQLAlchemy, errors, sqlnames only): every other module may import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Mapping

import sqlalchemy as sa
from sqlglot import exp

from dpro_migrate.errors import BadInput
from dpro_migrate.sqlnames import quote_ident

_T = exp.DataType.Type
# SQLAlchemy's dialect names (the same strings as dialects.SQLITE and dialects.POSTGRES, which sit a layer above).
_SA_SQLITE = "sqlite"
_SA_POSTGRES = "postgresql"

# The one timestamp form that round-trips: PostgreSQL reads others too, but as something else.
TIMESTAMP_GLOB = "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]'"

# A field no column accepts: the extra delimiter makes the line one column too long, which COPY always
# rejects ("extra data after last expected column"), whatever the column's type or the database's encoding.
REFUSED_FIELD = "'refused,by dpro-migrate'"


@dataclass(frozen=True, eq=False)
class TypeClass:
    """One type class. Every SQL function takes the bare column name and quotes it itself.

    copy_field: a SQLite expression giving one value as a CSV field for COPY: NULL for NULL (printed as the
    unquoted empty field COPY reads as NULL), text always quoted (so '' stays an empty string), numbers bare.
    It passes exactly the storage classes that convert without change and turns anything else into
    REFUSED_FIELD, so the server refuses the load rather than convert silently (a boolean 2 or 'yes', a
    timestamp in another form, a text ' 12' read as a number, a blob read as text). What passes and still
    breaks a rule (a length, invalid JSON, 2024-02-30) the server refuses by itself.

    preflight_ok: a SQLite predicate, true when the value converts without change (the second argument is the
    length of a VARCHAR(n), else None). copy_field refuses a subset of what this refuses, so a refused load is
    always explained by preflight.

    write_back: a PostgreSQL expression giving the value in its legacy SQLite representation (rollback).
    """

    name: str
    ddl_types: Mapping[exp.DataType.Type, str]  # the ddl/ (sqlglot) types of the class -> SQLite declared type
    sqlite_affinity: str  # of those declared types
    pg_type: str
    legacy_names: tuple[str, ...]  # legacy declared types (without "(n)") given this class by name, not affinity
    pg_pattern: str | None  # PostgreSQL type names of the class (regex, upper case); None: every other name
    conversion: str  # shown in the plan
    copy_field: Callable[[str], str]
    preflight_ok: Callable[[str, int | None], str]
    write_back: Callable[[str], str]
    sa_type: Callable[[exp.DataType], sa.types.TypeEngine]  # a ddl/ type of the class -> what apply declared
    # A class whose SQL depends on the type's parameters (numeric(p,s)): the PostgreSQL type -> the class bound to
    # them, and the legacy declared type -> the PostgreSQL type with them.
    bind: Callable[[str], "TypeClass"] | None = None
    pg_type_of_legacy: Callable[[str], str] | None = None


# --- COPY encoders (SQLite SQL) -----------------------------------------------------------------


def _copy_bigint(column: str) -> str:
    x = quote_ident(column)
    return f"CASE typeof({x}) WHEN 'integer' THEN {x} WHEN 'null' THEN NULL ELSE {REFUSED_FIELD} END"


def _copy_double(column: str) -> str:
    x = quote_ident(column)
    return (f"CASE typeof({x}) WHEN 'real' THEN printf('%!.20e', {x}) WHEN 'integer' THEN {x} "
            f"WHEN 'null' THEN NULL ELSE {REFUSED_FIELD} END")


def _copy_boolean(column: str) -> str:
    x = quote_ident(column)
    return (f"CASE WHEN typeof({x}) = 'integer' AND {x} IN (0, 1) THEN iif({x}, 't', 'f') "
            f"WHEN {x} IS NULL THEN NULL ELSE {REFUSED_FIELD} END")


def _copy_timestamptz(column: str) -> str:
    """The canonical form only: PostgreSQL would read other forms, differently. Hour 24 and second 60 it reads
    as the next day or minute: refused here (an impossible date or year 0 the server refuses by itself)."""
    x = quote_ident(column)
    return (f"CASE WHEN typeof({x}) = 'text' AND {x} GLOB {TIMESTAMP_GLOB} AND {_clock_ok(x)} THEN {x} "
            f"WHEN {x} IS NULL THEN NULL ELSE {REFUSED_FIELD} END")


def _clock_ok(x: str) -> str:
    """Of a canonical timestamp: hour, minute and second in range (string comparisons: cheap, per row)."""
    return f"substr({x}, 12, 2) < '24' AND substr({x}, 15, 2) < '60' AND substr({x}, 18, 2) < '60'"


def _copy_jsonb(column: str) -> str:
    """JSON travels as text (PostgreSQL refuses what is not JSON), but an object with a key twice jsonb would
    keep once, silently: refused here."""
    x = quote_ident(column)
    return f"CASE WHEN {_json_keys_unique(x)} THEN {_copy_text(column)} ELSE {REFUSED_FIELD} END"


def _json_keys_unique(x: str) -> str:
    """No object in the JSON value holds a key twice (json_tree unescapes keys as jsonb compares them;
    array elements are keyed by their index). True for a value that is not JSON."""
    return (f"(typeof({x}) <> 'text' OR NOT json_valid({x}) OR NOT EXISTS (SELECT 1 FROM json_tree({x}) "
            f"WHERE type IS NOT NULL GROUP BY parent, key HAVING count(*) > 1))")


def _copy_bytea(column: str) -> str:
    x = quote_ident(column)
    return f"CASE typeof({x}) WHEN 'blob' THEN '\\x' || hex({x}) WHEN 'null' THEN NULL ELSE {REFUSED_FIELD} END"


def _real_as_text(x: str) -> str:
    """A REAL in a text column, as the COPY line spells it (every digit that tells it apart)."""
    return f"printf('%!.20e', {x})"


def _copy_text(column: str) -> str:
    """Text with a NUL is refused: PostgreSQL cannot store it, and printf() would cut it short."""
    x = quote_ident(column)
    return (f"CASE WHEN typeof({x}) = 'text' AND instr({x}, char(0)) = 0 THEN '\"' || replace({x}, '\"', '\"\"') || '\"' "
            f"WHEN {x} IS NULL THEN NULL WHEN typeof({x}) = 'integer' THEN {x} "
            f"WHEN typeof({x}) = 'real' THEN {_real_as_text(x)} ELSE {REFUSED_FIELD} END")


# --- preflight predicates (SQLite SQL) ----------------------------------------------------------

# A function the preflight registers on its SQLite connection (see sqlite_functions): SQLite has no test of
# whether a text's bytes are valid in the file's encoding, and PostgreSQL refuses a load holding one that is not.
VALID_TEXT = "dpro_valid_text"
_CODECS = {"UTF-8": "utf-8", "UTF-16le": "utf-16-le", "UTF-16be": "utf-16-be"}


def _valid_text(codec: str) -> Callable[[bytes | None], int]:
    def valid(raw: bytes | None) -> int:
        if raw is None or (codec == "utf-8" and raw.isascii()):
            return 1
        try:
            raw.decode(codec)  # strict: a stray byte, an overlong form or a lone surrogate fails
        except UnicodeDecodeError:
            return 0
        return 1
    return valid


# jsonb reads a \uXXXX escape as its character: a surrogate escape not in a high-low pair it refuses. SQLite's
# json_valid() accepts one, so the preflight asks this function (given the text's bytes, like VALID_TEXT).
PAIRED_ESCAPES = "dpro_paired_escapes"
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)  # each escape in order: \\ is one, never a start


def _paired_escapes(codec: str) -> Callable[[bytes | None], int]:
    def paired(raw: bytes | None) -> int:
        if raw is None:
            return 1
        high_ends = None  # where a high surrogate escape ended: a low one must start there
        for m in _ESCAPE.finditer(raw.decode(codec, "replace")):
            code = int(m.group(1), 16) if m.group(1) else None
            if high_ends is not None:
                if m.start() != high_ends or code is None or not 0xDC00 <= code <= 0xDFFF:
                    return 0
                high_ends = None
            elif code is not None and 0xD800 <= code <= 0xDBFF:
                high_ends = m.end()
            elif code is not None and 0xDC00 <= code <= 0xDFFF:
                return 0
        return int(high_ends is None)
    return paired


def sqlite_functions(encoding: str) -> dict[str, tuple[int, Callable]]:
    """name -> (number of arguments, function): what preflight predicates call, for a file of `encoding`
    (PRAGMA encoding)."""
    codec = _CODECS[encoding]
    return {VALID_TEXT: (1, _valid_text(codec)), PAIRED_ESCAPES: (1, _paired_escapes(codec))}



def _ok_bigint(column: str, length: int | None = None) -> str:
    c = quote_ident(column)
    return f"typeof({c}) IN ('integer', 'null')"


def _ok_double(column: str, length: int | None = None) -> str:
    c = quote_ident(column)
    return f"typeof({c}) IN ('integer', 'real', 'null')"


def _ok_boolean(column: str, length: int | None = None) -> str:
    c = quote_ident(column)
    return f"({c} IS NULL OR (typeof({c}) = 'integer' AND {c} IN (0, 1)))"


def _ok_timestamptz(column: str, length: int | None = None) -> str:
    """Only the canonical form round-trips. A modifier makes datetime() compute the date, so 2024-02-30,
    24:00:00 and a leap second come back as another time (or NULL); PostgreSQL has no year 0."""
    c = quote_ident(column)
    return (f"({c} IS NULL OR (typeof({c}) = 'text' AND datetime({c}, '+0 seconds') IS {c} "
            f"AND substr({c}, 1, 4) <> '0000'))")


def _ok_bytea(column: str, length: int | None = None) -> str:
    c = quote_ident(column)
    return f"typeof({c}) IN ('blob', 'null')"


def _text_value(c: str) -> str:
    """instr() on the text, not on CAST(.. AS BLOB): a blob cast is in the file's encoding, and every UTF-16
    character below U+0100 holds a zero byte. SQLite stores any bytes as text: only valid ones pass."""
    return (f"typeof({c}) IN ('text', 'integer', 'real') AND instr({c}, char(0)) = 0 "
            f"AND (typeof({c}) <> 'text' OR {VALID_TEXT}(CAST({c} AS BLOB)))")


def _ok_jsonb(column: str, length: int | None = None) -> str:
    """PostgreSQL's jsonb refuses the \\u0000 escape as well."""
    c = quote_ident(column)
    return (f"({c} IS NULL OR ({_text_value(c)} AND json_valid({c}) AND instr({c}, '\\u0000') = 0 "
            f"AND {_json_keys_unique(c)} AND (instr(lower({c}), '\\ud') = 0 OR {PAIRED_ESCAPES}(CAST({c} AS BLOB)))))")


def _ok_text(column: str, length: int | None = None) -> str:
    c = quote_ident(column)
    # the length PostgreSQL sees: a REAL arrives spelled out (1.14e-80 as 26 characters)
    spelled = f"CASE typeof({c}) WHEN 'real' THEN {_real_as_text(c)} ELSE {c} END"
    return f"({c} IS NULL OR ({_text_value(c)}{f' AND length({spelled}) <= {length}' if length else ''}))"


# --- write-back (PostgreSQL SQL) ----------------------------------------------------------------


def _back_unchanged(column: str) -> str:
    return quote_ident(column)


def _back_boolean(column: str) -> str:
    return f"{quote_ident(column)}::int"


def _back_timestamptz(column: str) -> str:
    """'YYYY-MM-DD HH:MM:SS' UTC, with the fraction of a second when there is one; what that form cannot
    hold ('infinity', a date BC) as PostgreSQL's own text, never NULL or another date."""
    c = quote_ident(column)
    utc = f"{c} AT TIME ZONE 'UTC'"
    return (f"CASE WHEN NOT isfinite({c}) OR {utc} < '0001-01-01' THEN {c}::text "
            f"WHEN {c} = date_trunc('second', {c}) THEN to_char({utc}, 'YYYY-MM-DD HH24:MI:SS') "
            f"ELSE rtrim(to_char({utc}, 'YYYY-MM-DD HH24:MI:SS.US'), '0') END")


def _back_jsonb(column: str) -> str:
    return f"{quote_ident(column)}::text"


# --- SQLAlchemy types: on each dialect they compile to what apply declared (what Alembic compares) --------


def _sa_bigint(node: exp.DataType) -> sa.types.TypeEngine:
    if node.this == _T.INT:
        return sa.Integer()
    # BIGINT on PostgreSQL; INTEGER on SQLite (64-bit there anyway; a rowid alias needs exactly INTEGER).
    return sa.BigInteger().with_variant(sa.INTEGER(), _SA_SQLITE)


def _sa_double(node: exp.DataType) -> sa.types.TypeEngine:
    # DOUBLE PRECISION on PostgreSQL; SQLite's declared type is REAL (sa.Double would render DOUBLE).
    return sa.Double().with_variant(sa.REAL(), _SA_SQLITE)


def _sa_boolean(node: exp.DataType) -> sa.types.TypeEngine:
    return sa.Boolean()


def _sa_timestamptz(node: exp.DataType) -> sa.types.TypeEngine:
    return sa.TIMESTAMP() if node.this == _T.TIMESTAMP else sa.TIMESTAMP(timezone=True)


def _sa_jsonb(node: exp.DataType) -> sa.types.TypeEngine:
    if node.this == _T.JSON:
        return sa.JSON()
    from sqlalchemy.dialects import postgresql  # here: the CLI starts without the PostgreSQL dialect

    return sa.JSON().with_variant(postgresql.JSONB(), _SA_POSTGRES)


def _sa_text(node: exp.DataType) -> sa.types.TypeEngine:
    if node.this == _T.VARCHAR:
        return sa.String(*[int(p.name) for p in node.expressions])
    return sa.Text()


def _sa_bytea(node: exp.DataType) -> sa.types.TypeEngine:
    return sa.LargeBinary()


# --- numeric(p,s): SQL bound to the type's precision and scale ----------------------------------

_NUMERIC = re.compile(r"(?:NUMERIC|DECIMAL)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?", re.I)
_FINITE = "1.7976931348623157e308"


def _numeric_parameters(type_text: str) -> tuple[int | None, int]:
    """(precision or None, scale) of NUMERIC(p,s) / DECIMAL(p) / NUMERIC; a form PostgreSQL would not take
    (a negative scale, a precision of 0) counts as unconstrained."""
    m = _NUMERIC.fullmatch(type_text.strip())
    if not m or not m.group(1) or not 1 <= int(m.group(1)) <= 1000 or int(m.group(2) or 0) > int(m.group(1)):
        return None, 0
    return int(m.group(1)), int(m.group(2) or 0)


def _numeric_real(x: str, scale: int | None) -> str:
    """A real as the decimal PostgreSQL stores: at the column's scale (printf's at most 16 significant digits),
    or the shortest of 15, 16, 17 significant digits that reads back as the same real (unconstrained). NULL
    when that decimal is not the real (1.005 at scale 2, infinity): the value is refused."""
    if scale is not None:
        d = f"printf('%.{scale}f', {x})"
        return f"CASE WHEN CAST({d} AS REAL) = {x} THEN {d} END"
    digits = [f"printf('%!.{n}g', {x})" for n in (15, 16, 17)]
    return (f"CASE WHEN {x} NOT BETWEEN -{_FINITE} AND {_FINITE} THEN NULL "
            + " ".join(f"WHEN CAST({d} AS REAL) = {x} THEN {d}" for d in digits) + " END")


def _numeric_fits(x: str, precision: int | None, scale: int) -> str:
    """Fewer integer digits than precision - scale allow (PostgreSQL refuses a larger value, "numeric field
    overflow"); a real literal, which SQLite compares with an integer exactly."""
    return "1" if precision is None else f"{x} > -1e{precision - scale} AND {x} < 1e{precision - scale}"


def _copy_numeric(precision: int | None, scale: int) -> Callable[[str], str]:
    def field(column: str) -> str:
        x = quote_ident(column)
        real = _numeric_real(x, scale if precision is not None else None)
        return (f"CASE typeof({x}) WHEN 'integer' THEN {x} WHEN 'real' THEN coalesce({real}, {REFUSED_FIELD}) "
                f"WHEN 'null' THEN NULL ELSE {REFUSED_FIELD} END")
    return field


def _ok_numeric(precision: int | None, scale: int) -> Callable[[str, int | None], str]:
    def ok(column: str, length: int | None = None) -> str:
        c = quote_ident(column)
        real = _numeric_real(c, scale if precision is not None else None)
        fits = _numeric_fits(c, precision, scale)
        return (f"({c} IS NULL OR (typeof({c}) = 'integer' AND {fits}) "
                f"OR (typeof({c}) = 'real' AND {real} IS NOT NULL AND {fits}))")
    return ok


def _back_numeric(column: str) -> str:
    """As text: the legacy column's NUMERIC affinity makes '20.00' the integer 20 and '19.99' the real again."""
    return f"{quote_ident(column)}::text"


def _sa_numeric(node: exp.DataType) -> sa.types.TypeEngine:
    return sa.Numeric(*[int(p.name) for p in node.expressions])


_NUMERIC_BOUND: dict[tuple[int | None, int], "TypeClass"] = {}


def _bind_numeric(pg_type: str) -> "TypeClass":
    precision, scale = _numeric_parameters(pg_type)
    if precision is None:
        return NUMERIC
    if (precision, scale) not in _NUMERIC_BOUND:
        _NUMERIC_BOUND[precision, scale] = replace(NUMERIC, copy_field=_copy_numeric(precision, scale),
                                                   preflight_ok=_ok_numeric(precision, scale))
    return _NUMERIC_BOUND[precision, scale]


def _pg_numeric_of_legacy(decl_type: str) -> str:
    precision, scale = _numeric_parameters(decl_type)
    return "NUMERIC" if precision is None else f"NUMERIC({precision},{scale})"


# --- the table ----------------------------------------------------------------------------------

BIGINT = TypeClass(
    name="bigint", ddl_types={_T.BIGINT: "INTEGER", _T.INT: "INTEGER"}, sqlite_affinity="INTEGER",
    pg_type="BIGINT", legacy_names=(), pg_pattern=r"BIGINT|INT|INTEGER|SMALLINT",
    conversion="integer, unchanged",
    copy_field=_copy_bigint, preflight_ok=_ok_bigint, write_back=_back_unchanged, sa_type=_sa_bigint)
DOUBLE = TypeClass(
    name="double", ddl_types={_T.DOUBLE: "REAL"}, sqlite_affinity="REAL",
    pg_type="DOUBLE PRECISION", legacy_names=(), pg_pattern=r"DOUBLE.*|REAL|FLOAT",
    conversion="real, every bit kept (printed with 21 significant digits)",
    copy_field=_copy_double, preflight_ok=_ok_double, write_back=_back_unchanged, sa_type=_sa_double)
BOOLEAN = TypeClass(
    name="boolean", ddl_types={_T.BOOLEAN: "BOOLEAN"}, sqlite_affinity="NUMERIC",
    pg_type="BOOLEAN", legacy_names=("BOOLEAN",), pg_pattern=r"BOOLEAN",
    conversion="1/0 -> true/false",
    copy_field=_copy_boolean, preflight_ok=_ok_boolean, write_back=_back_boolean, sa_type=_sa_boolean)
TIMESTAMPTZ = TypeClass(
    name="timestamptz", ddl_types={_T.TIMESTAMPTZ: "TIMESTAMP", _T.TIMESTAMP: "TIMESTAMP"}, sqlite_affinity="NUMERIC",
    pg_type="TIMESTAMPTZ", legacy_names=("TIMESTAMP", "DATETIME"), pg_pattern=r"TIMESTAMP.*",
    conversion="text 'YYYY-MM-DD HH:MM:SS' read as UTC -> timestamptz",
    copy_field=_copy_timestamptz, preflight_ok=_ok_timestamptz, write_back=_back_timestamptz, sa_type=_sa_timestamptz)
JSONB = TypeClass(
    name="jsonb", ddl_types={_T.JSONB: "JSON", _T.JSON: "JSON"}, sqlite_affinity="NUMERIC",
    pg_type="JSONB", legacy_names=("JSON",), pg_pattern=r"JSONB|JSON",
    conversion="JSON text -> jsonb (keys reordered, whitespace normalised by PostgreSQL)",
    copy_field=_copy_jsonb, preflight_ok=_ok_jsonb, write_back=_back_jsonb, sa_type=_sa_jsonb)
TEXT = TypeClass(
    name="text", ddl_types={_T.TEXT: "TEXT", _T.VARCHAR: "VARCHAR"}, sqlite_affinity="TEXT",
    pg_type="TEXT", legacy_names=(), pg_pattern=None,
    conversion="text, unchanged",
    copy_field=_copy_text, preflight_ok=_ok_text, write_back=_back_unchanged, sa_type=_sa_text)
BYTEA = TypeClass(
    name="bytea", ddl_types={_T.VARBINARY: "BLOB"}, sqlite_affinity="BLOB",
    pg_type="BYTEA", legacy_names=(), pg_pattern=r"BYTEA",
    conversion="blob -> bytea",
    copy_field=_copy_bytea, preflight_ok=_ok_bytea, write_back=_back_unchanged, sa_type=_sa_bytea)

NUMERIC = TypeClass(
    name="numeric", ddl_types={_T.DECIMAL: "NUMERIC"}, sqlite_affinity="NUMERIC",
    pg_type="NUMERIC", legacy_names=("DECIMAL", "NUMERIC"), pg_pattern=r"(NUMERIC|DECIMAL)\s*(\(.*\))?",
    conversion="integer or real -> numeric: the decimal that reads back as the same real, at the column's scale "
               "(a value that does not fit the precision and scale is refused)",
    copy_field=_copy_numeric(None, 0), preflight_ok=_ok_numeric(None, 0), write_back=_back_numeric,
    sa_type=_sa_numeric, bind=_bind_numeric, pg_type_of_legacy=_pg_numeric_of_legacy)

TYPE_CLASSES: dict[str, TypeClass] = {c.name: c for c in (BIGINT, DOUBLE, BOOLEAN, TIMESTAMPTZ, JSONB, TEXT, BYTEA,
                                                           NUMERIC)}

# A legacy declared type that no class names, by its SQLite affinity. NUMERIC (DECIMAL, DATE, ...) becomes text:
# text takes integers, reals and text alike, so no value is refused for its storage class.
_LEGACY_BY_AFFINITY = {"INTEGER": BIGINT, "TEXT": TEXT, "REAL": DOUBLE, "BLOB": BYTEA, "NUMERIC": TEXT}


# --- lookups ------------------------------------------------------------------------------------


def type_class_of_pg(pg_type: str) -> TypeClass:
    """The class of a PostgreSQL type name (ddl/ types as PostgreSQL spells them, pg_type_for_legacy's)."""
    t = pg_type.upper()
    cls = next((c for c in TYPE_CLASSES.values() if c.pg_pattern and re.fullmatch(c.pg_pattern, t, re.S)), TEXT)
    return cls.bind(t) if cls.bind else cls


def type_class_of_ddl(node: exp.DataType) -> TypeClass:
    """The class of a ddl/ type (a parsed sqlglot DataType)."""
    cls = next((c for c in TYPE_CLASSES.values() if node.this in c.ddl_types), None)
    if cls is None:
        raise BadInput(f"ddl/ uses a type dpro-migrate has no type class for: {node.sql('postgres')}")
    return cls


def sqlite_declared_type(node: exp.DataType) -> str:
    """The SQLite declared type apply gives a ddl/ type, its parameters kept (VARCHAR(50))."""
    name = type_class_of_ddl(node).ddl_types[node.this]
    params = ", ".join(p.sql() for p in node.expressions)
    return f"{name}({params})" if params else name


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


def type_class_of_legacy(decl_type: str) -> TypeClass:
    """The class of a legacy column that rides along, from its SQLite declared type: by name, else by affinity."""
    base = re.sub(r"\(.*", "", decl_type).strip().upper()
    named = next((c for c in TYPE_CLASSES.values() if base in c.legacy_names), None)
    return named or _LEGACY_BY_AFFINITY[sqlite_affinity(decl_type)]


def pg_type_for_legacy(decl_type: str) -> str:
    cls = type_class_of_legacy(decl_type)
    return cls.pg_type_of_legacy(decl_type) if cls.pg_type_of_legacy else cls.pg_type


def varchar_length(pg_type: str) -> int | None:
    m = re.match(r"VARCHAR\((\d+)\)", pg_type.upper())
    return int(m.group(1)) if m else None
