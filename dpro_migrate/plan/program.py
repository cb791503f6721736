"""The framing a backend puts around a plan's operations (transaction, checks, ledger), as statements that
both run and print: `plan --sql` shows exactly what apply runs, bound values written in as literals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpro_migrate.sqlnames import quote_literal


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple[Any, ...] = ()
    comment: str = ""  # printed above it
    # What the executor does another way, printed so that a replay does the same: the backup (the online
    # backup API), the transaction's own BEGIN, COMMIT and PRAGMAs (opened and closed around the program).
    script_only: bool = False

    def render(self, placeholder: str) -> str:
        """The statement with its parameters written in as SQL literals, as a script runs it."""
        text = _bind(self.sql, placeholder, self.params).rstrip()
        lines = [f"-- {line}" for line in self.comment.splitlines()]
        return "\n".join(lines + [text if text.endswith(";") or text.startswith(".") else text + ";"])


def _bind(sql: str, placeholder: str, params: tuple[Any, ...]) -> str:
    """Each placeholder outside quotes, left to right, replaced by the next value as a literal."""
    out, values, i, quote = [], iter(params), 0, None
    while i < len(sql):
        ch = sql[i]
        if quote:
            quote = None if ch == quote else quote  # a doubled quote closes and reopens: same result
        elif ch in "'\"":
            quote = ch
        elif sql.startswith(placeholder, i):
            out.append(_literal(next(values)))
            i += len(placeholder)
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return quote_literal(str(value))
