import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from dpro_migrate.sqlnames import quote_ident, quote_literal

identifiers = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(table=identifiers, column=identifiers, value=identifiers)
def test_any_identifier_and_literal_reach_sqlite_unchanged(table, column, value):
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {quote_ident(table)} ({quote_ident(column)} TEXT)")
    conn.execute(f"INSERT INTO {quote_ident(table)} VALUES ({quote_literal(value)})")
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == [table]
    assert [r[1] for r in conn.execute(f"PRAGMA table_info({quote_ident(table)})")] == [column]
    assert conn.execute(f"SELECT {quote_ident(column)} FROM {quote_ident(table)}").fetchone()[0] == value
