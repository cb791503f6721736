"""Row-level security on PostgreSQL (seed 000): a policy per table of iam, communication and tasks."""

from __future__ import annotations

from typing import Iterable

from dpro_migrate.dialects import POSTGRES, table_sql
from dpro_migrate.model.schema import Table, TargetSchema, load_schema
from dpro_migrate.plan.operations import EnableRowLevelSecurity, Operation
from dpro_migrate.sqlnames import quote_ident, quote_literal

# --- row-level security (PostgreSQL) ------------------------------------------------------------

RLS_DOMAINS = ("iam", "communication", "tasks")
RLS_SETTING = "dpro.user_id"  # the application sets it per session or transaction: SET dpro.user_id = '42'
RLS_POLICY = "user_isolation"
CONVERSATIONS = "communication.conversations"
ASSIGNEE_COLUMNS = ("assigned_to",)


def current_user_sql() -> str:
    """The application's user id; NULL (no row matches) when the setting is absent or empty."""
    return f"nullif(current_setting({quote_literal(RLS_SETTING)}, true), '')::bigint"


def _conversation_fk(table: Table) -> str | None:
    """The column of a foreign key to communication.conversations, if the table has one."""
    for con in table.constraints:
        if con.kind == "foreign_key" and con.references == CONVERSATIONS and len(con.columns) == 1:
            return con.columns[0]
    return None


def rls_policy_sql(table: Table) -> str | None:
    """The USING expression of the table's user_isolation policy, or None when the table gets none."""
    me = current_user_sql()
    if table.qualified == "iam.users":
        return f"{quote_ident('id')} = {me}"
    if table.column("user_id") is None:
        return None
    own = f"{quote_ident('user_id')} = {me}"
    for col in ASSIGNEE_COLUMNS:
        if any(c.kind == "foreign_key" and c.references == "iam.users" and c.columns == [col] for c in table.constraints):
            # A task assigned to the user is theirs to see too, not only the tasks they created.
            own = f"{own} OR {quote_ident(col)} = {me}"
    conv = _conversation_fk(table) if table.qualified != CONVERSATIONS else None
    if conv and table.column("user_id").nullable:
        # An agent's reply has no user_id (it is the agent's): the user sees every row of the
        # conversations they own, not only the rows they wrote.
        return (f"{own} OR {quote_ident(conv)} IN (SELECT {quote_ident('id')} FROM {table_sql(CONVERSATIONS, POSTGRES)} "
                f"WHERE {quote_ident('user_id')} = {me})")
    return own


def rls_operations(schema: TargetSchema | None = None, extra_tables: Iterable[Table] = ()) -> list[Operation]:
    """ENABLE ROW LEVEL SECURITY and a policy `user_isolation` on every table of iam, communication and
    tasks with a user_id column (iam.users on id), ddl/ tables and `extra_tables` (pass new_tables()
    when the new tables are in the plan, after their create_table operations).

    No FORCE: the table owner (the role that ran apply, which verify, rollback and write-back use) and
    roles with BYPASSRLS or superuser keep seeing every row. The application must therefore connect as
    a role that neither owns the tables nor has BYPASSRLS; with FORCE, the owner would see nothing
    without dpro.user_id, and verify would fail. The policy is FOR ALL: USING filters what is read,
    updated and deleted, and (no WITH CHECK given) also what may be inserted or updated into."""
    schema = schema or load_schema()
    ops: list[Operation] = []
    for table in [*schema.tables.values(), *extra_tables]:
        if table.domain not in RLS_DOMAINS:
            continue
        using = rls_policy_sql(table)
        if using is None:
            continue
        t = table_sql(table.qualified, POSTGRES)
        ops.append(EnableRowLevelSecurity(
            table.qualified,
            [f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
             f"CREATE POLICY {quote_ident(RLS_POLICY)} ON {t} USING ({using})"],
            [f"DROP POLICY IF EXISTS {quote_ident(RLS_POLICY)} ON {t}",
             f"ALTER TABLE IF EXISTS {t} DISABLE ROW LEVEL SECURITY"],
            table=table.qualified, policy=RLS_POLICY, setting=RLS_SETTING, force=False))
    return ops
