"""`--replace-existing` replaces the seven domain schemas and nothing else, and what it replaced comes back.

What a `DROP SCHEMA ... CASCADE` of the seven would take with it outside them (a view in `public` over
`iam.users`, a foreign key from `public.orders`, a trigger calling one of their functions, a column of one of
their types, a publication listing one of their tables, an extension installed in one of them) is found the
way the server sees it: in a transaction that is always rolled back, the schemas are dropped and the objects
outside them that have a dependency recorded (pg_depend) are compared before and after. Apply refuses before
it changes anything when there are any, naming each one; and its own drop, in its transaction, is checked the
same way, so that an object created in between is never dropped silently either."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql as pgsql

from dpro_migrate import DOMAINS
from dpro_migrate.db.connections import claim_session, connect, locked_transaction
from dpro_migrate.db.pgerrors import classify
from dpro_migrate.errors import BadInput, Blocked, ChecksFailed
from dpro_migrate.safety.pg_dump import (TABLES_OF_SCHEMAS_SQL, DumpContents, PgBackup, check_dump, pg_dump, restore_schemas,
                                         table_fingerprint)
from dpro_migrate.targets import Target
from dpro_migrate.verify.postgres import has_ledger

# Every object that can be dropped through a dependency has one recorded: the dependents of pg_depend, with the
# schema each lives in (pg_identify_object names none for a trigger, rule, policy or column default: its table's;
# nor for an operator family's member: the family's). Objects made by initdb (oid < 16384) never go.
_CENSUS_SQL = """
SELECT DISTINCT d.classid::regclass::text, d.objid, d.objsubid, i.type, i.identity,
       coalesce(i.schema, (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE c.oid = coalesce(t.tgrelid, r.ev_class, p.polrelid, a.adrelid)),
                (SELECT n.nspname FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace
                 WHERE f.oid = coalesce(o.amopfamily, m.amprocfamily)))
FROM pg_depend d
CROSS JOIN LATERAL pg_identify_object(d.classid, d.objid, d.objsubid) i
LEFT JOIN pg_trigger t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid
LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
LEFT JOIN pg_policy p ON d.classid = 'pg_policy'::regclass AND p.oid = d.objid
LEFT JOIN pg_attrdef a ON d.classid = 'pg_attrdef'::regclass AND a.oid = d.objid
LEFT JOIN pg_amop o ON d.classid = 'pg_amop'::regclass AND o.oid = d.objid
LEFT JOIN pg_amproc m ON d.classid = 'pg_amproc'::regclass AND m.oid = d.objid
WHERE d.objid >= 16384 AND d.classid <> 'pg_default_acl'::regclass
  AND NOT (d.classid = 'pg_trigger'::regclass AND t.tgisinternal)"""

# The dependencies of the lost objects: what owns each one (a view's rule, a table's row type, an index, a
# constraint's trigger, a default are dropped with their owner and said through it), and what each depends on
# (a column is said as its table).
_EDGES_SQL = """
SELECT d.classid::regclass::text, d.objid, d.objsubid, d.refclassid::regclass::text, d.refobjid, d.refobjsubid,
       d.deptype, i.type, i.identity, i.schema
FROM pg_depend d CROSS JOIN LATERAL pg_identify_object(d.refclassid, d.refobjid, 0) i
WHERE d.classid::regclass::text || ':' || d.objid = ANY(%s) AND d.deptype <> 'e'"""

Key = tuple[str, int, int]


@dataclass(frozen=True)
class Outside:
    """An object outside the seven schemas that replacing them would drop, and what it depends on inside."""

    kind: str
    identity: str
    depends_on: tuple[str, ...]

    def line(self, verb: str = "apply") -> str:
        on = ", ".join(self.depends_on) or "what would be dropped"
        return (f"{self.kind} {self.identity} depends on {on}: drop it (or make it stop depending on them) before "
                f"{verb}, and create it again once {verb} has built the new schemas")


def _census(cur) -> dict[Key, tuple[str, str, str | None]]:
    return {(c, o, s): (kind, identity, schema) for c, o, s, kind, identity, schema in cur.execute(_CENSUS_SQL)}


def _drop_sql(schemas: list[str]) -> pgsql.Composed:
    return pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.SQL(", ").join(pgsql.Identifier(s) for s in schemas))


def _inside(schema: str | None, schemas: list[str]) -> bool:
    return schema in schemas or (schema or "").startswith("pg_toast")


def drop_replaced(cur, schemas: list[str]) -> dict[Key, tuple[str, str, str | None]]:
    """DROP SCHEMA ... CASCADE of `schemas`, then what it dropped outside them (empty: nothing)."""
    before = _census(cur)
    cur.execute(_drop_sql(schemas))
    after = _census(cur)
    return {k: v for k, v in before.items() if k not in after and not _inside(v[2], schemas)}


def outside_dependents(conn: psycopg.Connection, schemas: list[str]) -> list[Outside]:
    """What dropping `schemas` would drop outside them, one entry per object, found in a transaction that is
    always rolled back."""
    if not schemas:
        return []
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("SAVEPOINT dpro_replace_check")
        lost = drop_replaced(cur, schemas)
        cur.execute("ROLLBACK TO SAVEPOINT dpro_replace_check")
        if not lost:
            return []
        return _described(cur, lost, schemas)


def _described(cur, lost: dict[Key, tuple[str, str, str | None]], schemas: list[str]) -> list[Outside]:
    """The lost objects a DBA acts on (not the parts that go with them), each with what it depends on that
    would be dropped: in the seven schemas, or another object of the list."""
    edges = cur.execute(_EDGES_SQL, ([f"{c}:{o}" for c, o, _ in lost],)).fetchall()
    owner: dict[Key, Key] = {}
    refs: dict[Key, list[tuple[Key, str]]] = {}
    for c, o, s, rc, ro, rs, deptype, kind, identity, schema in edges:
        key, ref = (c, o, s), (rc, ro, rs)
        if key not in lost:
            continue
        if deptype in ("i", "a") and ref in lost:
            owner[key] = ref
        elif deptype in ("i", "a") and (rc, ro, 0) in lost:
            owner[key] = (rc, ro, 0)
        if ref in lost or (rc, ro, 0) in lost or schema in schemas or (kind == "schema" and identity in schemas):
            refs.setdefault(key, []).append(((rc, ro, 0) if (rc, ro, 0) in lost else ref, f"{kind} {identity}"))

    def top(key: Key) -> Key:
        seen = set()
        while key in owner and key not in seen:
            seen.add(key)
            key = owner[key]
        if key[2] and (key[0], key[1], 0) in lost:  # a column of a table that goes too
            return top((key[0], key[1], 0))
        return key

    grouped: dict[Key, set[str]] = {}
    for key in lost:
        head = top(key)
        grouped.setdefault(head, set()).update(text for ref, text in refs.get(key, [])
                                               if not (ref in lost and top(ref) == head))
    return sorted((Outside(lost[k][0], lost[k][1], tuple(sorted(d))) for k, d in grouped.items()),
                  key=lambda o: (o.kind, o.identity))


def refuse_outside(found: list[Outside], display: str, verb: str = "apply") -> None:
    """`verb`: what replaces the schemas (apply --replace-existing, restore)."""
    if found:
        what = "--replace-existing" if verb == "apply" else verb
        raise BadInput(f"{display}: {what} would also drop {len(found)} object(s) outside the seven schemas that "
                       "depend on them; nothing was changed:\n" + "\n".join(f"  {o.line(verb)}" for o in found),
                       details={"outside_dependents": [o.line(verb) for o in found]})


def replace_schemas(cur, schemas: list[str], display: str, verb: str = "apply", dumped: PgBackup | None = None) -> None:
    """In apply's transaction: drop `schemas`, and refuse (the transaction rolls back) when anything outside
    them went too (an object created since the check before the dump), or when a table of them changed since
    `dumped` was taken (a row written in between would be in no backup)."""
    if not schemas:
        return
    if dumped is not None:
        _refuse_changed_since_dump(cur, schemas, dumped, display, verb)
    cur.execute("SAVEPOINT dpro_replace")
    lost = drop_replaced(cur, schemas)
    if lost:
        cur.execute("ROLLBACK TO SAVEPOINT dpro_replace")
        refuse_outside(_described(cur, lost, schemas), display, verb)
    cur.execute("RELEASE SAVEPOINT dpro_replace")


def _refuse_changed_since_dump(cur, schemas: list[str], dumped: PgBackup, display: str, verb: str) -> None:
    tables = cur.execute(TABLES_OF_SCHEMAS_SQL, (schemas,)).fetchall()
    if tables:
        cur.execute(pgsql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(pgsql.SQL(", ").join(
            pgsql.Identifier(s, t) for s, t, _ in tables)))  # the drop takes it anyway; now nobody writes
    changed = sorted({f"{s}.{t}" for s, t, _ in tables if table_fingerprint(cur, s, t)[1] != dumped.fingerprints.get(f"{s}.{t}")}
                     | (set(dumped.fingerprints) - {f"{s}.{t}" for s, t, _ in tables}))
    if changed:
        raise Blocked(f"{display}: {', '.join(changed)} changed after the pg_dump of the schemas {verb} replaces "
                      f"({dumped.path}): something is still writing to them; stop it and run {verb} again; nothing "
                      "was changed")


def back_up_for_replace(conn: psycopg.Connection, target: Target, backup_dir: Path, schemas: list[str],
                        verb: str = "apply") -> PgBackup:
    """Refuse while anything outside the schemas depends on them, then dump the whole database, counting the
    rows of the schemas it replaces in the dump's snapshot."""
    refuse_outside(outside_dependents(conn, schemas), target.display, verb)
    return pg_dump(target, backup_dir, conn, schemas)


# --- bringing replaced schemas back ---------------------------------------------------------------------


def restore_command(dump: Path | str, display: str) -> str:
    return f"dpro-migrate restore {dump} --target {display} --yes"


def restore_replaced(cur, dump: Path, schemas: list[str], expected: dict[str, int] | None = None) -> dict[str, int]:
    """In the caller's transaction: `schemas` as the dump holds them. Checked before the caller commits: each
    table holds the rows its COPY carried, and those are the rows counted when the dump was taken (`expected`,
    from its manifest: "schema.table" -> rows). Returns rows per table."""
    carried = restore_schemas(cur, dump, schemas)
    wrong = []
    for (schema, table), rows in carried.items():
        now = cur.execute(pgsql.SQL("SELECT count(*) FROM {}.{}").format(pgsql.Identifier(schema),
                                                                         pgsql.Identifier(table))).fetchone()[0]
        if now != rows:
            wrong.append(f"{schema}.{table} ({rows:,} in the dump, {now:,} after the restore)")
    counted = {f"{schema}.{table}": rows for (schema, table), rows in carried.items()}
    for name, rows in (expected or {}).items():
        if name.split(".")[0] in schemas and counted.get(name) != rows:
            wrong.append(f"{name} ({rows:,} counted when the dump was taken, {counted.get(name, 0):,} in it)")
    if wrong:
        raise ChecksFailed(f"{dump}: the restored tables do not hold what the dump should: {', '.join(wrong)}; "
                           "nothing was changed")
    return counted


def check_replaced_dump(dump: str | None, schemas: list[str], display: str) -> DumpContents | None:
    """Before rollback changes anything: the dump of the schemas apply replaced is there and sound."""
    if not schemas:
        return None
    if not dump or not Path(dump).exists():
        raise BadInput(f"apply replaced schemas {', '.join(schemas)} of {display} and backed them up in {dump}, which "
                       "is gone: rollback would leave them dropped; nothing was changed. Put the dump back at that path "
                       "and run rollback again")
    try:
        return check_dump(Path(dump), schemas)
    except BadInput as exc:
        raise BadInput(f"{exc} (the backup of schemas {', '.join(schemas)}, which apply replaced; rollback restores "
                       "them from it)") from None


@dataclass
class PgRestoreResult:
    backup: Path
    target: str
    schemas: list[str]
    previous: PgBackup | None  # the target as it was just before the restore
    tables: dict[str, int]  # rows per restored table, equal in the dump and the target
    integrity: str
    bytes: int
    seconds: float


def restore_postgres(dump: Path, target: Target, *, backup_dir: Path) -> PgRestoreResult:
    """Bring the seven domain schemas back from a pg_dump backup (those of them it holds), in one transaction:
    whatever of the seven the target holds now is backed up first (pg_dump) and replaced, never anything
    outside them. Refused, changing nothing, when the target is migrated (rollback restores what apply
    replaced), when the dump is not sound, or when objects outside the seven depend on them."""
    started = time.monotonic()
    dump = Path(dump)
    contents = check_dump(dump)
    schemas = contents.schemas
    if not schemas:
        raise BadInput(f"{dump}: holds none of the seven domain schemas: nothing to restore (it is a pg_dump of the "
                       "whole database; pg_restore restores the rest by hand); nothing was changed")
    conn = connect(target)
    try:
        claim_session(conn, target)
        if has_ledger(conn):
            raise BadInput(f"{target.display}: is migrated (it holds dpro-migrate's ledger); restoring would replace "
                           "the migrated schemas: run rollback, which restores what apply replaced; nothing was changed")
        present = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY 1",
                                              (list(DOMAINS),))]
        previous = back_up_for_replace(conn, target, backup_dir, present, "restore") if present else None
        with locked_transaction(conn, target), conn.cursor() as cur:
            replace_schemas(cur, present, target.display, "restore", previous)
            tables = restore_replaced(cur, dump, schemas, (contents.manifest or {}).get("tables"))
        return PgRestoreResult(dump, target.display, schemas, previous, tables, "ok", dump.stat().st_size,
                               time.monotonic() - started)
    except psycopg.Error as exc:
        raise classify(exc, conn, display=target.display, work="the restore") from None
    finally:
        conn.close()
