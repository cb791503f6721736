"""verify and status against a read-only hot standby of the migrated primary: nothing written there, and the same
answers as on the primary. The streamed comparison (stream_compare_move, what a standby gets) is checked against
the server-side one on a primary first, after application traffic, value edge cases and a snapshot that disagrees
with what apply loaded; then on a real streaming standby of a primary of the test's own (pg_createcluster and
pg_basebackup), never the shared server."""

import dataclasses
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from dpro_migrate import verbs
from dpro_migrate.cli import app
from dpro_migrate.dirty import add_dirty_data
from dpro_migrate.errors import ChecksFailed
from dpro_migrate.example import generate_legacy_db
from dpro_migrate.features.archive import archive_rows
from dpro_migrate.dialects import POSTGRES
from dpro_migrate.targets import parse_target
from dpro_migrate.verify.postgres import verify_postgres

pytestmark = pytest.mark.postgres


def q(url, sql, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


ARCHIVED_BEFORE = datetime(2024, 6, 1, tzinfo=timezone.utc)  # about half of the messages: the live + archive union
TRAFFIC = [  # after archiving
    "UPDATE iam.users SET email = 'changed@example.org' WHERE id = 3",
    "UPDATE iam.user_sessions SET device_info = device_info, expires_at = expires_at",  # new row versions, same values
    "INSERT INTO iam.users (username, email, password_hash) VALUES ('newcomer', 'new@example.org', 'x')",
    "DELETE FROM communication.messages WHERE id = (SELECT min(id) FROM communication.messages)",
    "UPDATE communication.messages SET content = content || ' (edited)' WHERE id = (SELECT max(id) FROM communication.messages)",
    "UPDATE communication.messages SET created_at = created_at + interval '0.5 seconds' "
    "WHERE id = (SELECT min(id) FROM communication.messages WHERE id > 100)",
    "DELETE FROM communication.messages_archive WHERE id = (SELECT min(id) FROM communication.messages_archive)",
    "UPDATE communication.messages_archive SET content = 'edited in the archive' "
    "WHERE id = (SELECT max(id) FROM communication.messages_archive)",
    "INSERT INTO communication.messages (conversation_id, sender_type, content) SELECT min(id), 'user', 'after' "
    "FROM communication.conversations",
    "UPDATE ai_agents.agents SET temperature = 0.1::float8 + 0.2::float8 WHERE id = 1",  # 0.30000000000000004
    "UPDATE workflow.board_nodes SET position_x = 'NaN' WHERE id = 1",
    "INSERT INTO iam.authentication_logs (user_id, action) VALUES (1, 'user_login')",
    "INSERT INTO system.audit_logs (user_id, action) VALUES (1, 'export')",
    "DELETE FROM system.audit_logs WHERE id = (SELECT max(id) FROM system.audit_logs WHERE id < 1000)",
]


def snapshot_of(url) -> Path:
    return Path(q(url, "SELECT state::jsonb ->> 'snapshot' FROM system.migration_ledger WHERE action = 'apply'")[0][0])


def disagree_with_the_snapshot(url) -> None:
    """Rewrite the snapshot (what verify compares with) where apply's own rows are: two values apply would then
    have written wrongly (user 2's name; agent 3's `false` where the snapshot says 0, which Python's == takes
    for equal and jsonb does not), and a JSON value jsonb holds as it is (agent 2: keys reordered, other
    spaces, 0.90 for 0.9). A key given twice apply refuses (jsonb would keep the last silently): see
    test_a_snapshot_value_apply_would_refuse_fails_both_comparisons."""
    configuration = {i: json.loads(text) for i, text in
                     q(url, "SELECT id, configuration::text FROM ai_agents.agents WHERE id IN (2, 3)")}
    assert len(configuration) == 2 and all(isinstance(c["memory"], bool) and isinstance(c["top_p"], float) for c in configuration.values())
    memory_as_a_number = {**configuration[3], "memory": int(configuration[3]["memory"])}
    spelled = {k: json.dumps(v) + ("0" if k == "top_p" else "") for k, v in configuration[2].items()}  # 0.9 -> 0.90
    reordered = "{ " + " ,".join(f"{json.dumps(k)} :{v}" for k, v in reversed(spelled.items())) + " }"
    conn = sqlite3.connect(snapshot_of(url))
    with conn:
        conn.execute("UPDATE users SET full_name = 'not what apply loaded' WHERE id = 2")
        conn.execute("UPDATE agents SET configuration = ? WHERE id = 2", (reordered,))
        conn.execute("UPDATE agents SET configuration = ? WHERE id = 3", (json.dumps(memory_as_a_number),))
    conn.close()


def as_data(report) -> dict:
    # what each comparison found; not how long it took
    return {"ok": report.ok, "counts": [{k: v for k, v in dataclasses.asdict(c).items() if k != "seconds"}
                                        for c in report.counts],
            "checks": [dataclasses.asdict(c) for c in report.checks]}


@pytest.fixture(scope="module")
def dirty_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("standby") / "legacy.db"
    generate_legacy_db(path, messages=600, extras=True, seed=3)
    add_dirty_data(path)
    return path


@pytest.fixture
def migrated(dirty_source, tmp_path, pg_url):
    """Dirty rows quarantined, the ride-along columns, archive tables."""
    db = tmp_path / "dpro_agent.db"
    shutil.copyfile(dirty_source, db)
    target = parse_target(pg_url)
    plan, _ = verbs.apply(db, target, backup_dir=tmp_path / "bk", on_reject="quarantine", features=("archive-tables",))
    return db, target, plan


def test_streamed_comparison_reports_what_the_server_comparison_reports(migrated):
    db, target, _ = migrated
    url = target.conninfo
    assert archive_rows(url, POSTGRES, "messages", ARCHIVED_BEFORE).moved > 0
    for sql in TRAFFIC:
        q(url, sql)
    in_server, streamed = verify_postgres(target, streamed=False), verify_postgres(target, streamed=True)
    assert in_server.ok and as_data(streamed) == as_data(in_server)
    messages = next(c for c in in_server.counts if c.legacy == "messages")
    assert (messages.changed_after_cutover, messages.deleted_after_cutover, messages.added_after_cutover) == (3, 2, 1)
    counts = {c.legacy: c for c in in_server.counts}
    assert counts["board_nodes"].changed_after_cutover == 1  # NaN
    assert counts["user_sessions"].matched == counts["user_sessions"].source_rows

    disagree_with_the_snapshot(url)
    in_server, streamed = verify_postgres(target, streamed=False), verify_postgres(target, streamed=True)
    assert as_data(streamed) == as_data(in_server)
    counts = {c.legacy: c for c in in_server.counts}
    samples = {c.name: c.items for c in in_server.checks}
    assert (counts["users"].missing_or_different, counts["users"].changed_after_cutover) == (1, 1)  # user 3's email
    assert samples["rows users -> iam.users"] == [{"legacy_id": 2}]
    agents = counts["agents"]  # agent 1: its temperature changed since
    assert (agents.matched, agents.missing_or_different, agents.changed_after_cutover) == (agents.source_rows - 2, 1, 1)
    assert samples["rows agents -> ai_agents.agents"] == [{"legacy_id": 3}]
    assert not in_server.ok
    strict = verify_postgres(target, streamed=True, strict=True)
    assert as_data(strict) == as_data(verify_postgres(target, streamed=False, strict=True))


def test_a_snapshot_value_apply_would_refuse_fails_both_comparisons(migrated):
    """A JSON object with a key twice: jsonb would keep the last silently, so apply refuses it; found in the
    snapshot afterwards, it is a source that no longer converts as apply converted it, on both comparisons."""
    db, target, _ = migrated
    url = target.conninfo
    configuration = q(url, "SELECT configuration::text FROM ai_agents.agents WHERE id = 4")[0][0]
    conn = sqlite3.connect(snapshot_of(url))
    with conn:
        conn.execute("UPDATE agents SET configuration = ? WHERE id = 4", ('{"top_p": 5, ' + configuration[1:],))
    conn.close()
    for streamed in (False, True):
        with pytest.raises(ChecksFailed, match="rows of agents in the source no longer convert"):
            verify_postgres(target, streamed=streamed)


def test_values_are_compared_as_the_load_converts_them(migrated):
    """The same values, once as the snapshot holds them (as the COPY encoder sends them) and once written by
    the application in PostgreSQL: equal to both comparisons, so every row is present as migrated."""
    db, target, _ = migrated
    url = target.conninfo
    as_loaded = {  # id: (column, value in the snapshot, what the server stores from it)
        12: ("sender_type", "user" + " " * 8, "user" + " " * 6),  # spaces beyond VARCHAR(10) are cut
        13: ("metadata", 1.5, "1.50"),  # a real in a JSON column (NUMERIC affinity keeps it a real): as printed
        14: ("content", "said \"hi\", twice", 'said "hi", twice'),  # quoted in COPY's CSV
        15: ("metadata", 5, "5"),  # an integer in a JSON column
        16: ("sentiment", 0.1 + 0.2, "0.30000000000000004"),
        17: ("created_at", "2024-03-01 12:00:00", "2024-03-01 12:00:00+00"),
    }
    conn = sqlite3.connect(snapshot_of(url))
    with conn:
        for id_, (column, value, _) in as_loaded.items():
            conn.execute(f"UPDATE messages SET {column} = ? WHERE id = ?", (value, id_))
    conn.close()
    for id_, (column, _, stored) in as_loaded.items():
        q(url, f"UPDATE communication.messages SET {column} = %s WHERE id = %s", (stored, id_))
    in_server, streamed = verify_postgres(target, streamed=False), verify_postgres(target, streamed=True)
    assert as_data(streamed) == as_data(in_server)
    messages = next(c for c in in_server.counts if c.legacy == "messages")
    assert messages.matched == messages.source_rows > 6


@pytest.mark.parametrize("change", [
    "UPDATE messages SET metadata = '{\"open\": ' WHERE id = {id}",  # JSON that does not parse
    "UPDATE messages SET content = x'00ff' WHERE id = {id}",  # a blob in a text column: the encoder refuses it
    "UPDATE messages SET sender_type = 'much too long' WHERE id = {id}",  # longer than its VARCHAR(10)
    "UPDATE messages SET created_at = '2024-02-30 10:00:00' WHERE id = {id}",
])
@pytest.mark.parametrize("deleted", [False, True], ids=["kept", "deleted since"])
def test_a_snapshot_value_the_load_would_refuse_is_refused_by_both(migrated, change, deleted):
    db, target, _ = migrated
    url = target.conninfo
    if deleted:
        q(url, "DELETE FROM communication.messages WHERE id = 12")
    conn = sqlite3.connect(snapshot_of(url))
    with conn:
        conn.execute(change.replace("{id}", "12"))
    conn.close()
    with pytest.raises(ChecksFailed, match="rows of messages in the source no longer convert") as in_server:
        verify_postgres(target, streamed=False)
    with pytest.raises(ChecksFailed) as streamed:
        verify_postgres(target, streamed=True)
    assert str(streamed.value).split(": ")[0] == str(in_server.value).split(": ")[0]


# --- a real hot standby ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr.strip()}"
    return done.stdout


TRUST = """local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


@dataclasses.dataclass
class Cluster:
    version: str
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def config(self) -> Path:
        return Path("/etc/postgresql") / self.version / self.name

    def field(self, index: int) -> str:  # pg_lsclusters: version cluster port status owner datadir logfile
        line = next(line for line in run("pg_lsclusters", "-h").splitlines() if line.split()[:2] == [self.version, self.name])
        return line.split()[index]

    def create(self, *settings: str) -> None:
        run("pg_createcluster", self.version, self.name, "--port", str(self.port))
        (self.config / "pg_hba.conf").write_text(TRUST)
        (self.config / "conf.d" / "dpro_test.conf").write_text(
            "listen_addresses = '127.0.0.1'\nfsync = off\n" + "".join(s + "\n" for s in settings))

    def start(self) -> None:
        run("pg_ctlcluster", self.version, self.name, "start")

    def drop(self) -> None:
        subprocess.run(["pg_dropcluster", "--stop", self.version, self.name], capture_output=True, timeout=180)


@pytest.fixture
def primary_and_standby():
    """A primary and a streaming hot standby of it (pg_basebackup -R), both of the test's own; dropped after."""
    if shutil.which("pg_createcluster") is None or os.geteuid() != 0:
        reason = "needs pg_createcluster (postgresql-common) and root to make a primary and a standby cluster"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the standby test: " + reason)
        pytest.skip(reason)
    version = sorted(os.listdir("/usr/lib/postgresql"), key=int)[-1]
    tag = uuid.uuid4().hex[:8]
    primary = Cluster(version, f"dpro_primary_{tag}", free_port())
    standby = Cluster(version, f"dpro_standby_{tag}", free_port())
    try:
        primary.create()
        primary.start()
        standby.create("log_statement = 'all'")  # the standby's own log of every statement verify sends
        data = Path(standby.field(5))
        for path in data.iterdir():  # emptied, kept: pg_basebackup fills it (its parent is root's)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        run("runuser", "-u", "postgres", "--", "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port),
            "-U", "postgres", "-D", str(data), "-R", "-X", "stream", "--checkpoint=fast")
        standby.start()
        yield primary, standby
    finally:
        standby.drop()
        primary.drop()


def wait_for_replay(primary: Cluster, standby: Cluster, database: str, timeout: float = 60) -> None:
    lsn = q(primary.url, "SELECT pg_current_wal_lsn()")[0][0]
    deadline = time.monotonic() + timeout
    while not q(standby_url(standby, database), "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0]:
        assert time.monotonic() < deadline, f"the standby did not replay up to {lsn} in {timeout}s"
        time.sleep(0.2)


def standby_url(cluster: Cluster, database: str) -> str:
    return cluster.url.rsplit("/", 1)[0] + "/" + database


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout


WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|COPY|CREATE|DROP|ALTER|TRUNCATE|GRANT|REVOKE|VACUUM|ANALYZE|"
                    r"REINDEX|CLUSTER|LOCK|COMMENT|SELECT\s.*\bINTO\b)", re.I | re.S)


def _untimed(value):
    """A JSON answer without its measured times: two runs never take the same seconds."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in ("seconds", "rows_per_second")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


@pytest.mark.slow
def test_verify_and_status_on_a_hot_standby_answer_as_on_the_primary(primary_and_standby, tmp_path):
    primary, standby = primary_and_standby
    q(primary.url, "CREATE DATABASE dpro")
    on_primary, on_standby = standby_url(primary, "dpro"), standby_url(standby, "dpro")
    db = tmp_path / "dpro_agent.db"
    generate_legacy_db(db, messages=400, extras=True, seed=5)
    verbs.apply(db, parse_target(on_primary), backup_dir=tmp_path / "bk", features=("archive-tables",))
    archive_rows(on_primary, POSTGRES, "messages", ARCHIVED_BEFORE)
    for sql in TRAFFIC:
        q(on_primary, sql)
    wait_for_replay(primary, standby, "dpro")
    assert q(on_standby, "SELECT pg_is_in_recovery()")[0][0]
    log = Path(standby.field(6))
    logged_before = log.stat().st_size

    def same_answers(expected_exit: int) -> None:
        for verb in ("verify", "status"):
            code, out = cli(verb, str(db), "--target", on_primary, "--json")
            code_standby, out_standby = cli(verb, str(db), "--target", on_standby, "--json")
            # the history file beside the backups is local: each run adds its own line, naming its target
            # and timings (seconds, rows/s) are each run's own
            mine = lambda text: _untimed({k: v for k, v in json.loads(text).items()  # noqa: E731
                                          if k not in ("history_file", "history_error")})
            assert (code_standby, mine(out_standby.replace(str(standby.port), str(primary.port)))) == (code, mine(out))
            assert code == (expected_exit if verb == "verify" else 0), out
        assert json.loads(out)["state"] == "migrated"

    same_answers(0)
    disagree_with_the_snapshot(on_primary)  # two rows apply "wrote wrongly": verify exits 1 on both
    same_answers(1)

    statements = re.findall(r"LOG:\s+(?:statement|execute [^:]*): (.*?)(?=\n\S|\Z)",
                            log.read_bytes()[logged_before:].decode(errors="replace"), re.S)
    assert any("DECLARE" in s and "communication" in s for s in statements)  # the log does hold verify's reads
    assert [s for s in statements if WRITES.match(s)] == []
