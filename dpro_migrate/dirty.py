"""Dirty data as real legacy files hold it, added to a generated example database.

Every case a DBA meets in the field, each in a row of its own so the findings can be checked one by one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dpro_migrate.sqlnames import quote_ident

HOSTILE_TABLE = 'odd "table"; DROP TABLE users; --'
HOSTILE_COLUMN = 'due "soon" at'

# (description, SQL). Ids from 9_000_000 up, so they never meet generated rows.
CASES: list[tuple[str, str]] = [
    ("email without @", "INSERT INTO users (id, username, email, password_hash) VALUES (9000001, 'no_at_sign', 'broken.example.com', 'x')"),
    ("username used twice", "INSERT INTO users (id, username, email, password_hash) SELECT 9000002, username, 'twin@example.com', 'x' FROM users WHERE id = 1"),
    ("username too short", "INSERT INTO users (id, username, email, password_hash) VALUES (9000003, 'ab', 'ab@example.com', 'x')"),
    ("negative id", "INSERT INTO users (id, username, email, password_hash) VALUES (-5, 'negative_id', 'neg@example.com', 'x')"),
    ("temperature 3.5", "INSERT INTO agents (id, user_id, name, temperature) VALUES (9000001, 1, 'too hot', 3.5)"),
    ("temperature 'warm'", "INSERT INTO agents (id, user_id, name, temperature) VALUES (9000002, 1, 'warm', 'warm')"),
    ("task priority 'URGENT'", "INSERT INTO tasks (id, user_id, title, priority) VALUES (9000001, 1, 'shouting', 'URGENT')"),
    ("orphan message (its conversation was deleted)", "INSERT INTO messages (id, conversation_id, sender_type, content) VALUES (9000001, 987654321, 'user', 'orphan')"),
    ("session token used twice", "INSERT INTO user_sessions (id, user_id, session_token, expires_at) SELECT 9000001, 1, session_token, expires_at FROM user_sessions WHERE id = (SELECT min(id) FROM user_sessions)"),
    ("'12abc' in an integer column", "INSERT INTO messages (id, conversation_id, sender_type, content, tokens_used) VALUES (9000002, 1, 'user', 'tokens', '12abc')"),
    ("date written 2024/01/05", "INSERT INTO messages (id, conversation_id, sender_type, content, created_at) VALUES (9000003, 1, 'user', 'slashes', '2024/01/05')"),
    ("date as a unix epoch number", "INSERT INTO messages (id, conversation_id, sender_type, content, created_at) VALUES (9000004, 1, 'user', 'epoch', 1704412800)"),
    ("JSON that does not parse", "INSERT INTO messages (id, conversation_id, sender_type, content, metadata) VALUES (9000005, 1, 'user', 'json', '{\"open\": ')"),
    ("NUL byte in text", "INSERT INTO messages (id, conversation_id, sender_type, content) VALUES (9000006, 1, 'user', 'nul' || char(0) || 'byte')"),
    ("blob in a text column", "INSERT INTO messages (id, conversation_id, sender_type, content) VALUES (9000007, 1, 'user', x'00ff10c3')"),
    ("64-bit integer bounds", "INSERT INTO messages (id, conversation_id, sender_type, content, tokens_used, response_time_ms) VALUES (9000008, 1, 'user', 'bounds', 9223372036854775807, -9223372036854775808)"),
    ("emoji and right-to-left marks", "INSERT INTO messages (id, conversation_id, sender_type, content) VALUES (9000009, 1, 'user', 'שלום ‏🙂‎ done')"),
    ("boolean written 'yes'", "INSERT INTO boards (id, user_id, name, is_public) VALUES (9000001, 1, 'yes board', 'yes')"),
    ("text longer than its VARCHAR", "INSERT INTO tasks (id, user_id, title) VALUES (9000002, 1, printf('%.300c', 'x'))"),
]


def add_dirty_data(path: str | Path) -> list[str]:
    """Add every dirty case to a generated legacy database (shape 18); returns the cases' descriptions."""
    conn = sqlite3.connect(path)
    try:
        with conn:
            for _, stmt in CASES:
                conn.execute(stmt)
            conn.execute(f"ALTER TABLE tasks ADD COLUMN {quote_ident(HOSTILE_COLUMN)} TEXT")
            conn.execute(f"UPDATE tasks SET {quote_ident(HOSTILE_COLUMN)} = 'tomorrow''s \"quote\"' WHERE id = 1")
            conn.execute(f"CREATE TABLE {quote_ident(HOSTILE_TABLE)} (\"select\" TEXT, \"from\" INTEGER, \"a b\" BLOB)")
            conn.execute(f"INSERT INTO {quote_ident(HOSTILE_TABLE)} VALUES ('drop', 1, x'00'), (NULL, NULL, NULL)")
    finally:
        conn.close()
    return [d for d, _ in CASES] + ["hand-added column with quotes and spaces", "table named like SQL injection"]
