"""The SQL that makes SQLite produce system.quarantine's COPY lines (text format) for PostgreSQL, in pieces.

One line per refused row and rule: its table, id, rule and the whole row as JSON text. A text or blob value is
read CHUNK characters or bytes at a time, one result row per piece, so that neither SQLite nor Python holds a
line whole (a 50 MB blob is 100 MB of hex). The pieces of a line come out in order: CROSS JOIN fixes the loops
(each refused row, then its columns, then their pieces), and both inner tables are generated in that order.
"""

from __future__ import annotations

import json

from dpro_migrate.plan.copy_lines import escaped_sql
from dpro_migrate.sqlnames import quote_ident, quote_literal
from dpro_migrate.types import VALID_TEXT

CHUNK = 1 << 20  # characters of text, bytes of a blob: 2 MB of hex at most per piece

_FINITE = "1.7976931348623157e308"


def _kind(c: str) -> str:
    """b: a blob, as "blob:" and its hex; x: text not valid in the file's encoding, as "invalid text:" and the hex
    of its bytes; t: text read in pieces (substr stops at a NUL, so text holding one goes whole, as v); v: any
    other value, whole."""
    return (f"CASE WHEN typeof({c}) = 'blob' THEN 'b' WHEN typeof({c}) <> 'text' THEN 'v' "
            f"WHEN NOT {VALID_TEXT}(CAST({c} AS BLOB)) THEN 'x' WHEN instr({c}, char(0)) THEN 'v' ELSE 't' END")


def _pieces(c: str) -> str:
    """How many pieces the value is read in: by its length in bytes (at least its length in characters)."""
    return f"CASE WHEN typeof({c}) IN ('blob', 'text') THEN max(1, (length(CAST({c} AS BLOB)) + {CHUNK - 1}) / {CHUNK}) ELSE 1 END"


def _whole(c: str) -> str:
    """A value as JSON, whole: reals with every bit (printed with 21 significant digits), infinities as text."""
    return (f"CASE typeof({c}) WHEN 'null' THEN 'null' WHEN 'integer' THEN CAST({c} AS TEXT) WHEN 'real' THEN "
            f"CASE WHEN abs({c}) <= {_FINITE} THEN printf('%!.20e', {c}) ELSE json_quote(printf('%!.20e', {c})) END "
            f"ELSE json_quote({c}) END")


def _piece(i: int, name: str) -> str:
    """Piece g.n of column i of the row: its key first, its value's opening and closing quotes around the
    first and last pieces."""
    c, kind, last = f"l.{quote_ident(name)}", f"q.kind_{i}", f"q.pieces_{i} - 1"
    key = quote_literal(("," if i else "") + json.dumps(name) + ":")
    part = f"substr({c}, g.n * {CHUNK} + 1, {CHUNK})"
    raw_part = f"substr(CAST({c} AS BLOB), g.n * {CHUNK} + 1, {CHUNK})"
    body = (f"CASE {kind} WHEN 'b' THEN hex({part}) WHEN 'x' THEN hex({raw_part}) "
            f"WHEN 't' THEN substr(json_quote({part}), 2, length(json_quote({part})) - 2) ELSE {_whole(c)} END")
    opening = f"CASE {kind} WHEN 'b' THEN '\"blob:' WHEN 'x' THEN '\"invalid text:' WHEN 't' THEN '\"' ELSE '' END"
    return (f"CASE WHEN g.n = 0 THEN {key} || {opening} ELSE '' END || {body} || "
            f"CASE WHEN {kind} <> 'v' AND g.n = {last} THEN '\"' ELSE '' END")


def quarantine_lines_sql(table: str, columns: list[str], refused: str) -> str:
    """SELECT of the COPY pieces of `table`'s rows recorded in `refused` (source_table, source_pk, rule)."""
    t = quote_ident(table)
    per_row = ", ".join(f"{_kind(f'l.{quote_ident(c)}')} AS kind_{i}, {_pieces(f'l.{quote_ident(c)}')} AS pieces_{i}"
                        for i, c in enumerate(columns))
    most = f"max(max({', '.join(f'pieces_{i}' for i in range(len(columns)))}, 1))"
    one = f"max({', '.join(f'q.pieces_{i}' for i in range(len(columns)))}, 1) = 1"
    cols = ", ".join(f"({i})" for i in range(-1, len(columns) + 1))
    pieces = " ".join(f"WHEN {i} THEN {escaped_sql(_piece(i, c))}" for i, c in enumerate(columns))
    counts = " ".join(f"WHEN {i} THEN q.pieces_{i}" for i in range(len(columns)))
    start = (f"{escaped_sql('q.source_table')} || char(9) || q.source_pk || char(9) || {escaped_sql('q.rule')} "
             "|| char(9) || '{'")
    # a row without a value longer than a piece (most) comes out as one piece: its whole line
    whole = " || ".join([start, *(escaped_sql(_piece(i, c)) for i, c in enumerate(columns)), "'}' || char(10)"])
    return (f"WITH RECURSIVE q AS MATERIALIZED (SELECT r.source_table, r.source_pk, r.rule, {per_row} "
            f"FROM {refused} AS r JOIN {t} AS l ON l.\"id\" = r.source_pk "
            f"WHERE r.source_table = {quote_literal(table)} ORDER BY r.source_pk, r.rule), "
            f"c(col) AS (VALUES {cols}), "
            f"g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n + 1 < (SELECT {most} FROM q)) "
            f"SELECT CASE WHEN {one} THEN {whole} ELSE CASE c.col WHEN -1 THEN {start} {pieces} "
            f"ELSE '}}' || char(10) END END "
            f"FROM q CROSS JOIN {t} AS l CROSS JOIN c CROSS JOIN g "
            f"WHERE l.\"id\" = q.source_pk AND CASE WHEN {one} THEN c.col = -1 AND g.n = 0 "
            f"ELSE g.n < CASE c.col {counts} ELSE 1 END END")
