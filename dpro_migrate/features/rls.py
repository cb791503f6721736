"""Row-level security on PostgreSQL (seed 000): policies on every relation of iam, communication and tasks
that holds a user's rows, with no side door.

A door is any relation an application role can be granted: the domain tables, the monthly partitions of a
partitioned one (a partition is a table of its own: reading it directly skips the parent's policies, so it
gets the same ones, see partitions.py), the archive tables, and system.quarantine (every refused row as JSON,
password hashes included: row-level security with no policy, so only its owner and BYPASSRLS roles read it).
The compatibility views in `public` are `security_invoker` (dialects/postgresql.py): they read the tables
with the caller's rights, so the same policies apply through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from dpro_migrate.dialects import POSTGRES, table_sql
from dpro_migrate.model.schema import Table, TargetSchema, load_schema, new_tables
from dpro_migrate.plan.operations import (CreateArchive, CreatePartition, CreateQuarantine, EnableRowLevelSecurity,
                                          Operation)
from dpro_migrate.sqlnames import quote_ident, quote_literal

# --- row-level security (PostgreSQL) ------------------------------------------------------------

RLS_DOMAINS = ("iam", "communication", "tasks")
RLS_SETTING = "dpro.user_id"  # the application sets it per transaction: SELECT set_config('dpro.user_id', '42', true)
RLS_POLICY = "user_isolation"
ASSIGNEE_READ = "assignee_read"
ASSIGNEE_UPDATE = "assignee_update"
CONVERSATIONS = "communication.conversations"
ASSIGNEE_COLUMNS = ("assigned_to",)


@dataclass(frozen=True)
class Policy:
    """One CREATE POLICY: `using` filters the rows read, updated and deleted; `check` the rows written."""

    name: str
    command: str  # ALL, SELECT, UPDATE
    using: str
    check: str | None = None

    def create_sql(self, relation: str) -> str:
        check = f" WITH CHECK ({self.check})" if self.check else ""
        return f"CREATE POLICY {quote_ident(self.name)} ON {relation} FOR {self.command} USING ({self.using}){check}"

    def drop_sql(self, relation: str) -> str:
        return f"DROP POLICY IF EXISTS {quote_ident(self.name)} ON {relation}"


def current_user_sql() -> str:
    """The application's user id; NULL (no row matches) when the setting is absent or empty."""
    return f"nullif(current_setting({quote_literal(RLS_SETTING)}, true), '')::bigint"


def _conversation_fk(table: Table) -> str | None:
    """The column of a foreign key to communication.conversations, if the table has one."""
    for con in table.constraints:
        if con.kind == "foreign_key" and con.references == CONVERSATIONS and len(con.columns) == 1:
            return con.columns[0]
    return None


def _assignee_columns(table: Table) -> list[str]:
    return [col for col in ASSIGNEE_COLUMNS
            if any(c.kind == "foreign_key" and c.references == "iam.users" and c.columns == [col]
                   for c in table.constraints)]


def table_policies(table: Table) -> list[Policy]:
    """The policies of a table of the RLS schemas; none when it holds no user's rows.

    user_isolation (FOR ALL): USING says which rows the user sees, updates and deletes; WITH CHECK which rows
    they may write: only their own, and a row that points into a conversation only into one of theirs (a
    message cannot be slipped into another user's conversation, nor written in another user's name). An
    assignee (tasks.assigned_to) sees the task and may update it while it stays assigned to them, but neither
    creates tasks in another user's name nor deletes them."""
    me = current_user_sql()
    uid = quote_ident("user_id")
    if table.qualified == "iam.users":
        own = f"{quote_ident('id')} = {me}"
        return [Policy(RLS_POLICY, "ALL", own, own)]
    if table.column("user_id") is None:
        return []
    own = f"{uid} = {me}"
    using, check = own, own
    conv = _conversation_fk(table) if table.qualified != CONVERSATIONS else None
    if conv:
        c = quote_ident(conv)
        mine = f"{c} IN (SELECT {quote_ident('id')} FROM {table_sql(CONVERSATIONS, POSTGRES)} WHERE {uid} = {me})"
        if table.column("user_id").nullable:
            # An agent's reply has no user_id (it is the agent's): the user sees every row of the
            # conversations they own, not only the rows they wrote, and may write one there.
            using = f"{own} OR {mine}"
            check = f"({mine} AND ({uid} IS NULL OR {own})) OR ({c} IS NULL AND {own})"
        else:
            check = f"{own} AND ({c} IS NULL OR {mine})"
    policies = [Policy(RLS_POLICY, "ALL", using, check)]
    for col in _assignee_columns(table):
        assigned = f"{quote_ident(col)} = {me}"
        policies += [Policy(ASSIGNEE_READ, "SELECT", assigned),
                     Policy(ASSIGNEE_UPDATE, "UPDATE", assigned, assigned)]
    return policies


def rls_operation(relation: str, policies: Sequence[Policy], *, force: bool = False) -> EnableRowLevelSecurity:
    """ENABLE (and with `force`, FORCE) ROW LEVEL SECURITY on one relation, with its policies. No policy:
    nobody but the owner and BYPASSRLS roles reads a row."""
    t = table_sql(relation, POSTGRES)
    sql = [f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY"]
    reverse = [p.drop_sql(t) for p in policies]
    if force:
        sql.append(f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY")
        reverse.append(f"ALTER TABLE IF EXISTS {t} NO FORCE ROW LEVEL SECURITY")
    sql += [p.create_sql(t) for p in policies]
    reverse.append(f"ALTER TABLE IF EXISTS {t} DISABLE ROW LEVEL SECURITY")
    return EnableRowLevelSecurity(relation, sql, reverse, table=relation,
                                  policy=", ".join(dict.fromkeys(p.name for p in policies)),
                                  setting=RLS_SETTING, force=force)


def policies_of(qualified: str) -> list[Policy]:
    """The policies of a ddl/ or ddl/new/ table by name (a partition or an archive gets its table's)."""
    table = load_schema().tables.get(qualified) or next((t for t in new_tables() if t.qualified == qualified), None)
    return table_policies(table) if table is not None and table.domain in RLS_DOMAINS else []


def rls_operation_like(op: EnableRowLevelSecurity, relation: str) -> EnableRowLevelSecurity:
    """The row-level security of `op`'s table on another relation that holds its rows (a partition)."""
    return rls_operation(relation, policies_of(op.table), force=op.force)


def rls_operations(schema: TargetSchema | None = None, extra_tables: Iterable[Table] = (),
                   ops: Sequence[Operation] = (), *, force: bool = False) -> list[Operation]:
    """Row-level security on every table of iam, communication and tasks with a user_id column (iam.users
    on id): ddl/ tables, `extra_tables` (pass new_tables() when the new tables are in the plan, after their
    create_table operations), and the relations `ops` (the plan so far) creates that hold their rows: the
    archives, the partitions, and system.quarantine (no policy: owner only).

    Without `force` the table owner (the role that ran apply, which verify, rollback and write-back use) and
    roles with BYPASSRLS or superuser see every row: the application must connect as a role that neither
    owns the tables nor has BYPASSRLS. With `force` the owner is held to the policies too (superusers and
    BYPASSRLS roles never are); dpro-migrate's sessions set row_security = off, so verify, rollback and
    archive run as such an owner refuse instead of seeing a filtered table: run them as a BYPASSRLS role."""
    schema = schema or load_schema()
    out: list[Operation] = []
    secured: dict[str, list[Policy]] = {}
    for table in [*schema.tables.values(), *extra_tables]:
        if table.domain not in RLS_DOMAINS:
            continue
        policies = table_policies(table)
        if policies:
            secured[table.qualified] = policies
            out.append(rls_operation(table.qualified, policies, force=force))
    for op in ops:
        if isinstance(op, CreateArchive) and op.archive_of in secured:
            out.append(rls_operation(op.table, secured[op.archive_of], force=force))
        elif isinstance(op, CreatePartition) and op.parent in secured:
            out.append(rls_operation(op.name, secured[op.parent], force=force))
        elif isinstance(op, CreateQuarantine):
            out.append(rls_operation(op.name, [], force=force))
    return out
