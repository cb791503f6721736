"""Quoting of identifiers and literals. Every name that reaches SQL text goes through here."""


def quote_ident(name: str) -> str:
    """Quote an identifier for SQLite and PostgreSQL alike (standard SQL double quotes)."""
    if "\x00" in name:
        raise ValueError("identifier holds a NUL byte")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """For names used as values (table names in sqlite_sequence, rules); data always goes as parameters."""
    if "\x00" in value:
        raise ValueError("literal holds a NUL byte")
    return "'" + value.replace("'", "''") + "'"


def column_list(names) -> str:
    return ", ".join(quote_ident(n) for n in names)
