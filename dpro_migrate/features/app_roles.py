"""The seeds' application role on PostgreSQL (seed 000: `application_user`, `--with app-roles`), with the
least privilege an application needs: it reads and writes the domain tables, nothing else.

What it gets: USAGE on the seven schemas; SELECT, INSERT, UPDATE, DELETE on the domain tables (a partitioned
table's partitions are reached through it: no grant of their own); SELECT on the compatibility views. What it
does not get: the archives (dpro-migrate's `archive` moves rows, as the owner), system.quarantine, the ledger,
Alembic's version table, sequences (an identity column needs no grant on its sequence), CREATE anywhere,
LOGIN, BYPASSRLS. The application logs in as its own role made a member of this one
(`GRANT application_user TO dpro_app`): that login role must neither own the tables nor bypass row-level
security, or the policies do not apply to it.
"""

from __future__ import annotations

from typing import Sequence

from dpro_migrate import DOMAINS
from dpro_migrate.dialects import POSTGRES, get_dialect, table_sql
from dpro_migrate.plan.operations import CreateCompatView, CreateRole, CreateTable, GrantPrivileges, Operation
from dpro_migrate.sqlnames import quote_ident, quote_literal

APPLICATION_ROLE = "application_user"
# Marks a role apply created, so that rollback never drops one a DBA made (roles belong to the whole server).
ROLE_COMMENT = "dpro-migrate: created by apply --with app-roles; rollback drops it when nothing else uses it"
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def create_role_operation(role: str = APPLICATION_ROLE) -> CreateRole:
    """Created when absent, with no attribute beyond the defaults' least (NOLOGIN: a group role). An existing
    role with SUPERUSER or BYPASSRLS is refused: every policy would be void for the application."""
    r, lit = quote_ident(role), quote_literal(role)
    create = (
        "DO $dpro$ BEGIN "
        f"IF EXISTS (SELECT FROM pg_roles WHERE rolname = {lit} AND (rolsuper OR rolbypassrls)) THEN "
        f"RAISE EXCEPTION 'role % exists with SUPERUSER or BYPASSRLS: row-level security would not apply to it', {lit} "
        "USING ERRCODE = 'insufficient_privilege'; END IF; "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit}) THEN "
        f"CREATE ROLE {r} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS; "
        f"COMMENT ON ROLE {r} IS {quote_literal(ROLE_COMMENT)}; END IF; END $dpro$")
    # Dropped only when apply made it (its comment) and nothing in any database of the server depends on it
    # (pg_shdepend: privileges and ownership anywhere) and no role is a member of it.
    drop = (
        "DO $dpro$ BEGIN "
        f"IF EXISTS (SELECT FROM pg_roles r WHERE r.rolname = {lit} "
        f"AND shobj_description(r.oid, 'pg_authid') = {quote_literal(ROLE_COMMENT)} "
        "AND NOT EXISTS (SELECT FROM pg_shdepend d WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = r.oid) "
        "AND NOT EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = r.oid OR m.member = r.oid)) THEN "
        f"DROP ROLE {r}; END IF; END $dpro$")
    return CreateRole(role, [create], [drop])


def grant_operation(ops: Sequence[Operation], role: str = APPLICATION_ROLE) -> GrantPrivileges:
    r = quote_ident(role)
    tables = [table_sql(op.table, POSTGRES) for op in ops if isinstance(op, CreateTable)]
    views = [get_dialect(POSTGRES).compat_view_sql(op.name) for op in ops if isinstance(op, CreateCompatView)]
    sql = [f"GRANT USAGE ON SCHEMA {', '.join(quote_ident(d) for d in DOMAINS)} TO {r}"]
    if tables:
        sql.append(f"GRANT {TABLE_PRIVILEGES} ON TABLE {', '.join(tables)} TO {r}")
    if views:
        sql.append(f"GRANT SELECT ON TABLE {', '.join(views)} TO {r}")
    return GrantPrivileges(role, sql, [], role=role)


def app_role_operations(ops: list[Operation], role: str = APPLICATION_ROLE) -> list[Operation]:
    """The role first (its reverse then runs last, once the objects and their grants are gone), the grants
    last (on everything the plan creates)."""
    return [create_role_operation(role), *ops, grant_operation(ops, role)]
