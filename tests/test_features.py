"""The seeds' options: ddl/new/ tables, row-level security and monthly partitions, on real databases.

Some tests add the features' operations to a plan by hand (the way `--with` assembles them), save it and
apply the plan file, as `dpro-migrate apply plan.json` would.
"""

import sqlite3
import uuid
from datetime import date

import pytest
from sqlglot import exp

from dpro_migrate import verbs
from dpro_migrate.features import partitions
from dpro_migrate.features.new_tables import new_table_operations
from dpro_migrate.features.rls import rls_operations
from dpro_migrate.model.schema import load_new, new_indexes, new_tables
from dpro_migrate.plan import build_postgresql
from dpro_migrate.compare import logical_differences
from dpro_migrate.errors import BadInput, ChecksFailed
from dpro_migrate.plan.document import save_plan
from dpro_migrate.model.schema import load_schema
from dpro_migrate.dialects import POSTGRES, SQLITE, create_index_sql, create_table_sql, physical_name
from dpro_migrate.targets import parse_target

ALLOWED_TYPES = {"BIGINT", "TEXT", "BOOLEAN", "TIMESTAMPTZ", "JSONB", "DOUBLE PRECISION"}


def sqlite_tables(path):
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


# --- ddl/new/ ---------------------------------------------------------------------------------------


def test_new_tables_follow_the_ddl_conventions():
    base = load_schema()
    new = load_new()
    names = set(new.tables)
    assert {"iam.licensing_info", "iam.api_keys", "iam.user_secrets", "communication.notifications",
            "communication.email_templates", "system.feature_flags", "system.analytics_events", "system.error_logs",
            "system.backup_history", "system.file_uploads", "workflow.integrations", "ai_agents.knowledge_base",
            "ai_agents.performance_logs", "ai_agents.agent_capabilities", "ai_agents.agent_training_history",
            "marketplace.items", "marketplace.purchase_transactions", "marketplace.item_reviews",
            "marketplace.subscription_plans", "marketplace.payment_methods"} <= names
    # Not re-created: they exist under ddl/ (user_preferences, system_settings = configurations).
    assert not names & set(base.tables)
    assert not {"iam.user_preferences", "system.system_settings", "system.migration_history",
                "system.audit_trails"} & names
    for table in new.tables.values():
        ident = table.columns[0]
        assert (ident.name, ident.type, ident.identity, ident.nullable) == ("id", "BIGINT", True, False), table.qualified
        for col in table.columns:
            assert col.type in ALLOWED_TYPES or col.type.startswith("VARCHAR("), (table.qualified, col.name, col.type)
        # every constraint but the primary key is named at table level
        for item in table.node.this.expressions:
            if isinstance(item, exp.ColumnDef):
                kinds = {type(c.args["kind"]) for c in item.args.get("constraints") or []}
                assert kinds <= {exp.GeneratedAsIdentityColumnConstraint, exp.PrimaryKeyColumnConstraint,
                                 exp.NotNullColumnConstraint, exp.DefaultColumnConstraint}, (table.qualified, item.name)
        for con in table.constraints:
            if con.kind == "foreign_key":
                assert con.references in base.tables or con.references in new.tables, con.name
                assert con.node.find(exp.Reference).args.get("options"), f"{con.name} has no ON DELETE rule"
    assert {i.table for i in new.indexes} <= names
    assert any(i.partial for i in new.indexes) and any(i.unique for i in new.indexes)
    every = ([c.name for t in [*base.tables.values(), *new.tables.values()] for c in t.constraints]
             + [i.name for i in [*base.indexes, *new.indexes]])
    assert len(every) == len(set(every)), "constraint and index names are unique across ddl/ and ddl/new/"


def test_new_ddl_source_mentions_seed_types_only_in_comments():
    from dpro_migrate.model.schema import ddl_dir

    for path in (ddl_dir() / "new").glob("*.sql"):
        code = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
        for word in ("TEXT[]", "INET", "UUID", "DECIMAL", "SERIAL", "INTEGER", "TIMESTAMP "):
            assert word not in code.upper(), (path.name, word)


def test_new_tables_render_for_both_dialects():
    conn = sqlite3.connect(":memory:")
    for table in load_schema().tables.values():
        conn.execute(create_table_sql(table, SQLITE))
    for step in new_table_operations(SQLITE):
        for stmt in step.sql:
            conn.execute(stmt)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("INSERT INTO iam_users (id, username, email, password_hash) VALUES (1, 'alice', 'a@b.cd', 'x')")
    conn.execute("INSERT INTO marketplace_payment_methods (user_id, method_type, is_default) VALUES (1, 'card', 1)")
    with pytest.raises(sqlite3.IntegrityError):  # the partial UNIQUE index: one default method per user
        conn.execute("INSERT INTO marketplace_payment_methods (user_id, method_type, is_default) VALUES (1, 'card', 1)")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO system_feature_flags (key, rollout_percentage) VALUES ('x', 101)")
    conn.execute("DELETE FROM iam_users WHERE id = 1")  # ON DELETE CASCADE
    assert conn.execute("SELECT count(*) FROM marketplace_payment_methods").fetchone()[0] == 0
    kinds = [s.kind for s in new_table_operations(POSTGRES)]
    assert kinds == sorted(kinds, key=["create_table", "add_constraint", "create_index"].index)
    pg = new_table_operations(POSTGRES)
    assert all(s.reverse for s in pg) and all(s.reverse for s in new_table_operations(SQLITE))
    con_kinds = [s.constraint for s in pg if s.kind == "add_constraint"]
    assert con_kinds == sorted(con_kinds, key=list(build_postgresql.CONSTRAINT_ORDER).index)
    assert create_index_sql(new_indexes()[0], SQLITE)


def test_load_new_refuses_a_name_ddl_already_uses(tmp_path):
    (tmp_path / "iam.sql").write_text(
        "CREATE TABLE iam.extra_thing (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, user_id BIGINT,\n"
        "  CONSTRAINT fk_user_preferences_user FOREIGN KEY (user_id) REFERENCES iam.users (id) ON DELETE CASCADE);\n")
    with pytest.raises(BadInput, match="fk_user_preferences_user"):
        load_new(str(tmp_path))
    (tmp_path / "iam.sql").write_text("CREATE TABLE iam.users (id BIGINT);\n")
    load_new.cache_clear()
    with pytest.raises(BadInput, match="iam.users"):
        load_new(str(tmp_path))
    load_new.cache_clear()


def test_sqlite_cycle_with_the_new_tables(legacy_db, tmp_path):
    db = legacy_db(extras=True)
    original = tmp_path / "original.db"
    original.write_bytes(db.read_bytes())
    plan = verbs.make_plan(db)
    plan.operations += new_table_operations(SQLITE)
    plan_path = save_plan(plan, tmp_path / "plan.json")
    _, result = verbs.apply(plan_path, backup_dir=tmp_path / "bk")
    assert not result.already_migrated
    new_physical = {physical_name(t.qualified, SQLITE) for t in new_tables()}
    assert new_physical <= sqlite_tables(db)
    conn = sqlite3.connect(db)
    assert all(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] == 0 for t in new_physical)
    conn.close()
    report = verbs.verify(db)
    assert report.ok, report.failures

    # A row in a new table has no legacy home: rollback refuses and changes nothing.
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO communication_notifications (user_id, notification_type, title) "
                 "SELECT id, 'welcome', 'hi' FROM iam_users LIMIT 1")
    conn.commit()
    conn.close()
    with pytest.raises(ChecksFailed, match="communication_notifications"):
        verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert new_physical <= sqlite_tables(db)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM communication_notifications")
    conn.commit()
    conn.close()

    verbs.rollback(db, backup_dir=tmp_path / "bk")
    assert not new_physical & sqlite_tables(db)
    assert logical_differences(original, db) == []


# --- PostgreSQL -----------------------------------------------------------------------------------


def q(url, sql, params=None):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def pg_tables(url):
    return {f"{s}.{t}" for s, t in q(url, "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s)",
                                      (["iam", "ai_agents", "communication", "workflow", "tasks", "system",
                                        "marketplace"],))}


@pytest.mark.postgres
def test_postgres_cycle_with_new_tables_and_row_level_security(legacy_db, tmp_path, pg_url):
    import psycopg

    db = legacy_db(extras=True)
    target = parse_target(pg_url)
    plan = verbs.make_plan(db, target)
    plan.operations += new_table_operations(POSTGRES) + rls_operations(load_schema(), new_tables())
    plan_path = save_plan(plan, tmp_path / "plan.json")
    verbs.apply(plan_path, target, backup_dir=tmp_path)

    new = {t.qualified for t in new_tables()}
    assert new <= pg_tables(pg_url)
    for t in new:
        assert q(pg_url, f"SELECT count(*) FROM {t}")[0][0] == 0
    fks = dict(q(pg_url, "SELECT conname, confdeltype FROM pg_constraint WHERE conname = ANY(%s)",
                 (["fk_purchase_transactions_item", "fk_items_seller", "fk_api_keys_user"],)))
    assert fks == {"fk_purchase_transactions_item": "r", "fk_items_seller": "n", "fk_api_keys_user": "c"}
    secured = {r[0] for r in q(pg_url, "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                                       "ON n.oid = c.relnamespace WHERE c.relrowsecurity")}
    assert {"iam.users", "iam.user_sessions", "communication.conversations", "communication.messages",
            "tasks.tasks", "iam.api_keys", "communication.notifications"} <= secured
    assert not q(pg_url, "SELECT 1 FROM pg_class WHERE relforcerowsecurity")

    report = verbs.verify(db, target)  # as the owner: every row, RLS or not
    assert report.ok, report.failures

    # Row-level security seen by a role that neither owns the tables nor bypasses RLS.
    app = f"dpro_app_{uuid.uuid4().hex[:10]}"
    owner = f"dpro_owner_{uuid.uuid4().hex[:10]}"
    src = sqlite3.connect(db)
    user1_convs = src.execute("SELECT count(*) FROM conversations WHERE user_id = 1").fetchone()[0]
    user1_msgs = src.execute("SELECT count(*) FROM messages WHERE user_id = 1 OR conversation_id IN "
                             "(SELECT id FROM conversations WHERE user_id = 1)").fetchone()[0]
    agent_replies = src.execute("SELECT count(*) FROM messages WHERE user_id IS NULL AND conversation_id IN "
                                "(SELECT id FROM conversations WHERE user_id = 1)").fetchone()[0]
    user1_tasks = src.execute("SELECT count(*) FROM tasks WHERE user_id = 1 OR assigned_to = 1").fetchone()[0]
    all_convs = src.execute("SELECT count(*) FROM conversations").fetchone()[0]
    src.close()
    assert user1_convs and agent_replies and all_convs > user1_convs
    q(pg_url, f'CREATE ROLE "{app}" NOLOGIN')
    q(pg_url, f'CREATE ROLE "{owner}" NOLOGIN')
    try:
        for schema in ("iam", "communication", "tasks"):
            q(pg_url, f'GRANT USAGE ON SCHEMA {schema} TO "{app}", "{owner}"')
            q(pg_url, f'GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {schema} TO "{app}"')
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'SET ROLE "{app}"')
            assert conn.execute("SELECT count(*) FROM communication.conversations").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM iam.users").fetchone()[0] == 0
            conn.execute("SET dpro.user_id = '1'")
            assert conn.execute("SELECT count(*) FROM communication.conversations").fetchone()[0] == user1_convs
            assert conn.execute("SELECT count(DISTINCT user_id) FROM communication.conversations").fetchone()[0] == 1
            assert conn.execute("SELECT count(*) FROM communication.messages").fetchone()[0] == user1_msgs
            assert conn.execute("SELECT count(*) FROM communication.messages WHERE user_id IS NULL").fetchone()[0] \
                == agent_replies
            assert conn.execute("SELECT array_agg(id) FROM iam.users").fetchone()[0] == [1]
            assert conn.execute("SELECT count(*) FROM tasks.tasks").fetchone()[0] == user1_tasks
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                conn.execute("INSERT INTO communication.conversations (user_id, title) VALUES (2, 'not mine')")
            conn.execute("SET dpro.user_id = ''")
            assert conn.execute("SELECT count(*) FROM communication.conversations").fetchone()[0] == 0
        # A table owner that is not a superuser still sees every row: no FORCE ROW LEVEL SECURITY.
        q(pg_url, f'ALTER TABLE communication.conversations OWNER TO "{owner}"')
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'SET ROLE "{owner}"')
            assert conn.execute("SELECT count(*) FROM communication.conversations").fetchone()[0] == all_convs
        q(pg_url, "ALTER TABLE communication.conversations OWNER TO CURRENT_USER")
    finally:
        for role in (app, owner):
            q(pg_url, f'REASSIGN OWNED BY "{role}" TO CURRENT_USER')
            q(pg_url, f'DROP OWNED BY "{role}"')
            q(pg_url, f'DROP ROLE "{role}"')

    verbs.rollback(db, target, backup_dir=tmp_path)
    assert not pg_tables(pg_url)
    assert not q(pg_url, "SELECT 1 FROM pg_policy")
    assert not q(pg_url, "SELECT 1 FROM pg_namespace WHERE nspname IN ('iam', 'communication', 'marketplace')")


# --- partitions -----------------------------------------------------------------------------------


def test_months_between():
    assert partitions.months_between(date(2024, 11, 30), date(2025, 2, 1)) == [
        date(2024, 11, 1), date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1)]
    assert partitions.partition_name("communication.messages", date(2025, 1, 1)) == "messages_y2025m01"
    assert partitions.partition_name("system.audit_logs", None) == "audit_logs_default"


def test_partition_plan_refuses_rows_without_created_at(legacy_db):
    db = legacy_db()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE messages SET created_at = NULL WHERE id = (SELECT min(id) FROM messages)")
    conn.commit()
    conn.close()
    plan = verbs.make_plan(db, parse_target("postgresql://u@localhost/x"))
    with pytest.raises(BadInput, match="1 rows of messages .* no created_at"):
        partitions.partition_plan(plan.operations, db)
    steps = partitions.partition_plan(plan.operations, db, tables=["system.audit_logs"])
    ahead = partitions.partition_plan(plan.operations, db, tables=["system.audit_logs"], months_ahead=3)
    months = [s.month for s in steps if s.kind == "create_partition"]
    assert [s.month for s in ahead if s.kind == "create_partition"][:-4] == months[:-1]
    assert len([s for s in ahead if s.kind == "create_partition"]) == len(months) + 3
    assert months[-1] is None  # DEFAULT last
    with pytest.raises(BadInput, match="more than 2 partitions"):
        partitions.partition_plan(plan.operations, db, tables=["system.audit_logs"], max_months=2)


@pytest.mark.postgres
def test_postgres_cycle_with_monthly_partitions(legacy_db, tmp_path, pg_url):
    import psycopg

    db = legacy_db(extras=True)
    target = parse_target(pg_url)
    plan = verbs.make_plan(db, target)
    plain = [s.name for s in plan.operations]
    plan.operations = partitions.partition_plan(plan.operations, db)
    assert [s for s in plan.operations if s.kind == "create_partition"]
    assert {n for n in plain} <= {s.name for s in plan.operations}  # replaced in place, nothing dropped
    src = sqlite3.connect(db)
    lo, hi = src.execute("SELECT min(created_at), max(created_at) FROM messages").fetchone()
    src.close()
    months = partitions.months_between(date.fromisoformat(lo[:10]), date.fromisoformat(hi[:10]))
    plan_path = save_plan(plan, tmp_path / "plan.json")
    verbs.apply(plan_path, target, backup_dir=tmp_path)

    parts = {r[0] for r in q(pg_url, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                     "WHERE i.inhparent = 'communication.messages'::regclass")}
    assert len(parts) == len(months) + 1 and "messages_default" in parts
    assert q(pg_url, "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'system.audit_logs'::regclass") \
        == [("r",)]
    assert q(pg_url, "SELECT count(*) FROM communication.messages_default")[0][0] == 0
    assert q(pg_url, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'messages_pkey'")[0][0] \
        == "PRIMARY KEY (id, created_at)"
    report = verbs.verify(db, target)
    assert report.ok, report.failures
    with psycopg.connect(pg_url) as conn:  # not autocommit: rolled back below, leaves no post-cutover row
        conv = conn.execute("SELECT id FROM communication.conversations LIMIT 1").fetchone()[0]
        where = conn.execute("INSERT INTO communication.messages (conversation_id, sender_type, content, created_at) "
                             "VALUES (%s, 'user', 'far future', '2999-01-01') RETURNING tableoid::regclass::text",
                             (conv,)).fetchone()[0]
        assert where == "communication.messages_default"
        where = conn.execute("INSERT INTO communication.messages (conversation_id, sender_type, content, created_at) "
                             "VALUES (%s, 'user', 'in range', %s) RETURNING tableoid::regclass::text",
                             (conv, lo)).fetchone()[0]
        assert where == f"communication.{partitions.partition_name('communication.messages', months[0])}"
        conn.rollback()
    verbs.rollback(db, target, backup_dir=tmp_path)
    assert not pg_tables(pg_url)
