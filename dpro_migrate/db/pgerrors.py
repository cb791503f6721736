"""What a PostgreSQL error in dpro-migrate's own transaction means, said truly: which class of failure it is,
whether anything was committed, and what to do."""

from __future__ import annotations

import psycopg

from dpro_migrate import DOMAINS
from dpro_migrate.config import PG_LOCK_TIMEOUT_ENV
from dpro_migrate.db.connections import pg_lock_timeout_ms
from dpro_migrate.errors import (BadInput, Blocked, ChecksFailed, ConnectionLost, DproMigrateError, OutcomeUnknown,
                                 PermissionDenied)

# SQLSTATEs of a connection that is gone: class 08 (connection exception) and the server shutting down.
_GONE = ("57P01", "57P02", "57P03")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connection_gone(exc: psycopg.Error, conn: psycopg.Connection | None) -> bool:
    state = exc.sqlstate or ""
    return (state.startswith("08") or state in _GONE or (conn is not None and conn.broken)
            or (isinstance(exc, psycopg.OperationalError) and not state))


def refused_rows(exc: psycopg.Error) -> bool:
    """Class 22 (data exception) or 23 (integrity constraint violation): a row the target will not hold."""
    return isinstance(exc, (psycopg.DataError, psycopg.IntegrityError))


def blocking_sessions(conn: psycopg.Connection) -> list[str]:
    """Other sessions holding locks on relations of the seven schemas or `public`: who is in the way, for the
    message (the wait itself is over by now, so pg_blocking_pids() no longer answers)."""
    try:
        rows = conn.execute(
            "SELECT a.pid, a.usename, a.application_name, a.state, "
            "to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "
            "string_agg(DISTINCT n.nspname || '.' || c.relname, ', ') "
            "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.granted AND l.pid <> pg_backend_pid() AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) AND n.nspname = ANY(%s) "
            "GROUP BY 1, 2, 3, 4, 5 ORDER BY 5 NULLS LAST, 1 LIMIT 5", ([*DOMAINS, "public"],)).fetchall()
    except psycopg.Error:
        return []
    return [f"pid {pid} (role {user}, application {app or '-'!r}, {state or 'unknown state'}"
            f"{f', transaction open since {since} UTC' if since else ''}, holding {tables})"
            for pid, user, app, state, since, tables in rows]


def classify(exc: psycopg.Error, conn: psycopg.Connection | None, *, display: str, work: str, step: str = "",
             committing: bool = False, changes: bool = True) -> DproMigrateError:
    """The error to tell the user, for a failure of dpro-migrate's one transaction `work` ("the load"). `step`:
    what was running (an operation's description). `committing`: COMMIT had been sent when it failed.
    `changes`: False for work that only reads (verify): then there is no commit to speak of."""
    where = f" at {step}" if step else ""
    reason = first_line(exc)
    status = f"`dpro-migrate status --target {display}`"
    if not changes and connection_gone(exc, conn):
        return ConnectionLost(f"the connection to {display} was lost during {work}{where} ({reason}): {work} "
                              "changes nothing; run it again once the server is reachable")
    if committing and connection_gone(exc, conn):
        return OutcomeUnknown(f"the connection to {display} failed while PostgreSQL committed {work} ({reason}): "
                              f"whether it was committed is not known; run {status} to see which state the database "
                              "is in, then the same command again (it finishes or does nothing)")
    nothing = "nothing was committed" if committing else "nothing was changed" if changes else f"{work} changes nothing"
    if connection_gone(exc, conn):
        return ConnectionLost(f"the connection to {display} was lost during {work}{where} ({reason}): COMMIT was "
                              f"never sent, so PostgreSQL committed nothing; run the same command again once the "
                              f"server is reachable ({status} shows the state)")
    state = exc.sqlstate or ""
    if state == "55P03":  # lock_not_available: our lock_timeout
        holders = blocking_sessions(conn) if conn is not None and not conn.broken else []
        who = ("held by " + "; ".join(holders)) if holders else "held by another session"
        return Blocked(f"{display}: {work} waited {pg_lock_timeout_ms()} ms for a lock{where} ({reason}), {who}; "
                       f"{nothing}: let that session finish or end it (SELECT pg_terminate_backend(pid)), then run "
                       f"the same command again ({PG_LOCK_TIMEOUT_ENV} sets the wait)", details={"blocking": holders})
    if state == "57014":  # query_canceled: a statement timeout or pg_cancel_backend()
        return Blocked(f"{display}: PostgreSQL cancelled {work}{where} ({reason}); {nothing}: dpro-migrate sets no "
                       "statement_timeout of its own, so a DBA or a tool cancelled it; run the same command again")
    if state == "40P01":  # deadlock_detected
        return Blocked(f"{display}: {work} deadlocked with another session{where} ({reason}); {nothing}: run the "
                       "same command again")
    if state == "42501" and "row-level security" in reason:  # row_security = off meets a policy that applies
        return PermissionDenied(f"{display}: row-level security would hide rows from the role dpro-migrate connects as "
                                f"during {work}{where} ({reason}); {nothing}: run it as a superuser or a BYPASSRLS "
                                "role (with --with force-row-level-security the tables' owner is held to the "
                                "policies too)")
    if state == "42501":  # insufficient_privilege
        return PermissionDenied(f"{display}: the role dpro-migrate connects as lacks a privilege {work} needs{where} "
                                f"({reason}); {nothing}: connect as the database's owner (or grant it), then run "
                                "the same command again")
    if state == "25006":  # read_only_sql_transaction: a standby, or default_transaction_read_only = on
        return BadInput(f"{display}: the database takes no writes{where} ({reason}); {nothing}: point --target at "
                        "the primary, or turn off default_transaction_read_only for it, then run the same command again")
    if refused_rows(exc):
        return ChecksFailed(f"PostgreSQL refused rows{where} ({reason}); {nothing}")
    return ChecksFailed(f"PostgreSQL refused {work}{where}, {nothing}: {reason}")
