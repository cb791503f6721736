"""--with partition-by-month keeps up after the cutover: partitions for every month of the data, the current month
and the months ahead; `dpro-migrate partitions` makes the next months and moves rows out of DEFAULT; verify says
when DEFAULT holds rows."""

from __future__ import annotations

import sqlite3
from datetime import date

import psycopg
import pytest

from dpro_migrate import verbs
from dpro_migrate.features.partitions import keep_partitions, months_through, partition_name
from dpro_migrate.targets import parse_target

pytestmark = pytest.mark.postgres


def _where(conn, table: str) -> dict[str, int]:
    return dict(conn.execute(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1").fetchall())


def _insert(conn, when: str, content: str) -> None:
    conv, agent = conn.execute("SELECT id, agent_id FROM communication.conversations WHERE agent_id IS NOT NULL "
                               "ORDER BY id LIMIT 1").fetchone()
    conn.execute("INSERT INTO communication.messages (conversation_id, agent_id, sender_type, content, created_at) "
                 "VALUES (%s, %s, 'agent', %s, %s)", (conv, agent, content, when))


def _month(d: date, ahead: int) -> date:
    return months_through(d, ahead)[-1]


def test_partitions_keep_up_across_month_boundaries(legacy_db, tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("DPRO_MIGRATE_PARTITION_MONTHS_AHEAD", "2")
    db, target = legacy_db(), parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path, features=("partition-by-month",))
    today = date.today()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        parts = {r[0] for r in conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                            "WHERE i.inhparent = 'communication.messages'::regclass")}
        # the current month and two ahead exist from apply on
        assert {partition_name("communication.messages", m) for m in months_through(today, 2)} <= parts
        # a row of the month after the last one made lands in DEFAULT; one 7 months ahead too
        beyond, far = _month(today, 3), _month(today, 7)
        _insert(conn, f"{beyond.isoformat()} 12:00:00+00", "next month's")
        _insert(conn, f"{far.isoformat()} 00:00:00+00", "first instant of a far month")
        _insert(conn, f"{_month(today, 1).isoformat()} 00:00:00+00", "in a month apply made")
        assert _where(conn, "communication.messages_default") == {"communication.messages_default": 2}
    report = verbs.verify(db, target)
    default = next(c for c in report.checks if c.name == "rows in DEFAULT partitions")
    assert default.ok and "communication.messages_default 2 rows" in default.detail

    # a month later, maintenance with 3 ahead: the next months exist, DEFAULT is empty, rows are in their month
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE ai_agents.agents SET updated_at = '2000-01-01'")  # the moves must not touch them
        with conn.transaction():
            result = keep_partitions(conn, ahead=3, today=_month(today, 1))
    assert set(result.tables) == {"communication.messages", "system.audit_logs"}
    made = {partition_name("communication.messages", m) for m in (beyond, _month(today, 4), far)}
    assert {c.split(".")[1] for c in result.created} >= made
    assert result.moved == {f"communication.{partition_name('communication.messages', beyond)}": 1,
                            f"communication.{partition_name('communication.messages', far)}": 1}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM communication.messages_default").fetchone()[0] == 0
        for month, content in ((beyond, "next month's"), (far, "first instant of a far month")):
            where = conn.execute("SELECT tableoid::regclass::text FROM communication.messages WHERE content = %s",
                                 (content,)).fetchone()[0]
            assert where == f"communication.{partition_name('communication.messages', month)}"
        # the move fired no application trigger (agents' activity untouched), and a new row of such a month
        # goes straight to its partition
        assert conn.execute("SELECT count(*) FROM ai_agents.agents WHERE updated_at <> '2000-01-01'").fetchone()[0] == 0
        _insert(conn, f"{_month(today, 4).isoformat()} 08:00:00+00", "after maintenance")
        where = conn.execute("SELECT tableoid::regclass::text FROM communication.messages WHERE content = "
                             "'after maintenance'").fetchone()[0]
        assert where == f"communication.{partition_name('communication.messages', _month(today, 4))}"
    # the verb: nothing more to do, says so; a second run changes nothing
    again = verbs.partitions(db, target, ahead=3, backup_dir=tmp_path)
    assert not again.moved and all(m not in {c.split(".")[1] for c in again.created} for m in made)
    report = verbs.verify(db, target)
    assert next(c for c in report.checks if c.name == "rows in DEFAULT partitions").detail == "none"
    # rollback finds the moved rows through the parent, wherever they sit, and writes them back
    verbs.rollback(db, target, backup_dir=tmp_path, write_back=True)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'communication'").fetchone()[0] == 0
    src = sqlite3.connect(db)
    assert src.execute("SELECT count(*) FROM messages WHERE content IN ('next month''s', 'first instant of a far "
                       "month', 'in a month apply made', 'after maintenance')").fetchone()[0] == 4
    src.close()


def test_partitions_refuses_a_target_without_partitioned_tables(legacy_db, tmp_path, pg_url):
    from dpro_migrate.errors import BadInput

    db, target = legacy_db(), parse_target(pg_url)
    verbs.apply(db, target, backup_dir=tmp_path)
    with pytest.raises(BadInput, match="no table partitioned by month"):
        verbs.partitions(db, target, backup_dir=tmp_path)

