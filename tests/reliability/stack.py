"""The private stack of the fault tests: its own PostgreSQL cluster, Redis and gunicorn.

On demand it also runs streaming replicas of that cluster (`add_replica`) and a
PgBouncer in transaction mode in front of the primary; `FAULTS_THROUGH_PGBOUNCER=1`
sends every app process of the fault tests through that PgBouncer.

Each part runs in its own process group, so a fault is one signal to the group (SIGKILL
of PostgreSQL takes the postmaster and every backend at once, as a crash would) and
teardown leaves nothing behind. PostgreSQL refuses to run as root, so when the tests run
as root the cluster is owned by and run as `postgres`, as scripts/stack.sh does.
"""

import contextlib
import csv
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import redis
from psycopg import sql as pgsql

from analytics.platform_metrics import QUEUE_KEY
from analytics.services.tenants import KEY_PREFIX_MARK, hash_secret
from tests.helpers import free_port, gunicorn_command, port_open

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("STACK_PG_BIN") or "/usr/lib/postgresql/15/bin")
DB_NAME = "analytics_faults"
# Short timeouts keep the fault tests fast; the behaviour under test is the same at any value.
CONNECT_TIMEOUT_S = 2
REDIS_TIMEOUT_S = 1
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DECOMPRESSED_BYTES = 8 * 1024 * 1024
WEB_WORKERS = 2
# TEST_REDIS_DB=2 puts the broker on database 2 and the cache (rate limits, the platform
# metrics queue) on database 3 of the private Redis.
TEST_REDIS_DB = 2
# Variables of the shared stack that must never leak into the private one.
_SHARED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "TEST_REDIS_DB",
    "DATABASE_REPLICA_URLS",
    "DATABASE_PGBOUNCER",
)
THROUGH_PGBOUNCER = os.environ.get("FAULTS_THROUGH_PGBOUNCER") == "1"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def _as_postgres() -> dict[str, Any]:
    """Return Popen arguments that drop root to `postgres` (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return {}
    import pwd

    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class Service:
    """One server process in its own process group, with its log in a file."""

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.argv, self.log, self.env = name, list(argv), log, env
        self.cwd: Path = ROOT
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.popen_extra: dict[str, Any] = {}

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self.popen_extra,
            )
        self.frozen = False

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tree(self) -> list[int]:
        """Return the pid of the service and of all its descendants."""
        if self.process is None or self.process.poll() is not None:
            return []
        pids, index = [self.process.pid], 0
        while index < len(pids):
            pids.extend(children(pids[index]))
            index += 1
        return pids

    def signal_all(self, signum: int) -> None:
        """Send `signum` to the service and all its descendants, then to its process group.

        PostgreSQL's children call setsid(), so its process group holds the postmaster
        alone; walking the tree reaches every backend.
        """
        for pid in self.tree():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)

    def freeze(self) -> None:
        """SIGSTOP the service and its children: sockets stay open, nothing answers."""
        self.signal_all(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.signal_all(signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """SIGKILL the service and every descendant at once, as a crash would.

        Everything is stopped first, so no process sees another die and reacts (a
        PostgreSQL backend would otherwise tell its client the postmaster exited).
        """
        self.signal_all(signal.SIGSTOP)
        pids = self.tree()  # again: a fork may have raced the first walk
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.signal_all(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self.frozen = False

    def stop(self, stop_signal: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Ask the group leader to stop; kill the group when it does not in `timeout` seconds."""
        if self.process is None:
            return
        if self.frozen:
            self.thaw()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self.kill()  # anything left in the group (orphaned children) goes too

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""


@dataclass(frozen=True)
class Tenant:
    """A project of the private database and the secret of its write key."""

    project_id: int
    secret: str


def _postgres_service(name: str, data: Path, port: int, log: Path) -> Service:
    """Return (unstarted) a PostgreSQL server on `data`, run as `postgres` when we are root."""
    service = Service(
        name,
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={data.parent / 'run'}",
            "-c",
            "shared_preload_libraries=timescaledb",
            "-c",
            "timescaledb.telemetry_level=off",
            "-c",
            "fsync=on",
            "-c",
            "max_connections=60",
            "-c",
            "shared_buffers=64MB",
            "-c",
            "jit=off",
        ],
        log,
    )
    service.popen_extra = _as_postgres()
    service.cwd = Path("/")  # `postgres` may not be allowed into the checkout
    return service


@dataclass
class Replica:
    """A streaming replica of the private cluster (pg_basebackup -R), on its own port."""

    name: str
    port: int
    server: Service

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on the replica and return its rows."""
        with psycopg.connect(self.database_url, connect_timeout=5, autocommit=True) as conn:
            cursor = conn.execute(query.encode(), params or None)
            return cursor.fetchall() if cursor.description else []

    def pause_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume()")

    def replay_lsn(self) -> str:
        ((lsn,),) = self.sql("SELECT pg_last_wal_replay_lsn()::text")
        return str(lsn)


class PrivateStack:
    """PostgreSQL (TimescaleDB, pgvector), Redis and gunicorn of the fault tests' own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pg_port, self.redis_port, self.web_port = free_port(), free_port(), free_port()
        self.pgbouncer_port = free_port()
        self.pg_dir = root / "pg"
        self.pg_data = self.pg_dir / "data"
        self.postgres = _postgres_service(
            "postgres", self.pg_data, self.pg_port, root / "postgres.log"
        )
        self.replicas: list[Replica] = []
        self.pgbouncer = Service(
            "pgbouncer", [PGBOUNCER, str(root / "pgbouncer.ini")], root / "pgbouncer.log"
        )
        self.pgbouncer.popen_extra = _as_postgres()
        self.pgbouncer.cwd = Path("/")
        self.redis = Service(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(root),
            ],
            root / "redis.log",
        )
        self.web = self.gunicorn(self.web_port, self.app_env(), "web")

    # --- configuration -----------------------------------------------------------------

    @property
    def database_url(self) -> str:
        """The URL the app's processes use: PgBouncer's with FAULTS_THROUGH_PGBOUNCER=1."""
        return self.pgbouncer_url if THROUGH_PGBOUNCER else self.direct_url

    @property
    def direct_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{DB_NAME}"

    @property
    def pgbouncer_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pgbouncer_port}/{DB_NAME}"

    def app_env(self, **overrides: str) -> dict[str, str]:
        """Return the environment of the app's processes: the private database and Redis only."""
        env = {name: value for name, value in os.environ.items() if name not in _SHARED}
        env.update(
            DJANGO_SETTINGS_MODULE="analytics.settings.test",
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/1",
            TEST_REDIS_DB=str(TEST_REDIS_DB),
            DATABASE_PGBOUNCER="1" if THROUGH_PGBOUNCER else "0",
            DATABASE_CONNECT_TIMEOUT=str(CONNECT_TIMEOUT_S),
            REDIS_TIMEOUT=str(REDIS_TIMEOUT_S),
            INGEST_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
            INGEST_MAX_DECOMPRESSED_BYTES=str(MAX_DECOMPRESSED_BYTES),
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        return env

    def gunicorn(self, port: int, env: dict[str, str], name: str) -> Service:
        """Return (unstarted) a gunicorn serving the app on `port`, as `make run` does."""
        return Service(
            name,
            gunicorn_command(port=port, workers=WEB_WORKERS),
            self.root / f"{name}.log",
            env=env,
        )

    # --- life cycle --------------------------------------------------------------------

    def build(self) -> None:
        """Create the cluster and database, migrate it, and start Redis and gunicorn."""
        os.chmod(self.root, 0o711)  # `postgres` must traverse it to reach its own folder
        (self.pg_dir / "run").mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.pg_dir, "postgres", "postgres")
            shutil.chown(self.pg_dir / "run", "postgres", "postgres")
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.pg_data),
                "-U",
                "postgres",
                "--auth=trust",  # loopback only, for the life of one test session
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
            cwd="/",
            **_as_postgres(),
        )
        self.start_postgres()
        self.sql(f"CREATE DATABASE {DB_NAME}", database="postgres")
        if THROUGH_PGBOUNCER:
            self.start_pgbouncer()
        # Migrations connect directly, as in production: they are one process, rare, and
        # some DDL (CREATE INDEX CONCURRENTLY) cannot run inside a pooled transaction.
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env=self.app_env(DATABASE_URL=self.direct_url, DATABASE_PGBOUNCER="0"),
            capture_output=True,
            text=True,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")
        self.start_redis()
        self.start_web()

    def destroy(self) -> None:
        """Stop every process (even frozen ones) and remove the folder."""
        for service, stop_signal in (
            (self.web, signal.SIGINT),  # gunicorn's quick shutdown
            (self.redis, signal.SIGTERM),
            (self.pgbouncer, signal.SIGINT),  # PgBouncer's immediate shutdown
            *((replica.server, signal.SIGINT) for replica in self.replicas),
            (self.postgres, signal.SIGINT),  # PostgreSQL's fast shutdown
        ):
            try:
                service.stop(stop_signal, timeout=10)
            except Exception as exc:  # teardown goes on with the next service
                print(f"could not stop {service.name}: {exc}", file=sys.stderr)
        shutil.rmtree(self.root, ignore_errors=True)

    def ensure_running(self) -> None:
        """Thaw what is frozen and start what is stopped."""
        for service in (self.postgres, self.redis, self.web):
            if service.frozen:
                service.thaw()
        for replica in self.replicas:
            if replica.server.frozen:
                replica.server.thaw()
        if self.pgbouncer.frozen:
            self.pgbouncer.thaw()
        if not self.postgres.running():
            self.start_postgres()
        for replica in self.replicas:
            if not replica.server.running():
                self.start_replica(replica)
        if THROUGH_PGBOUNCER and not self.pgbouncer.running():
            self.start_pgbouncer()
        if not self.redis.running():
            self.start_redis()
        if not self.web.running():
            self.start_web()

    def start_postgres(self, deadline_s: float = 60) -> None:
        """Start PostgreSQL (recovering from a crash if it was killed) and wait for it."""
        self.postgres.start()
        _wait_for_postgres(self.postgres, self._url("postgres"), deadline_s)

    # --- replicas and PgBouncer ------------------------------------------------------------

    def add_replica(self) -> Replica:
        """Clone the cluster with pg_basebackup -R and start it streaming; return it."""
        name = f"replica{len(self.replicas) + 1}"
        folder = self.root / name
        (folder / "run").mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(folder / "run", "postgres", "postgres")
        port = free_port()
        subprocess.run(
            [
                str(PG_BIN / "pg_basebackup"),
                "-D",
                str(folder / "data"),
                "-R",  # standby.signal and primary_conninfo: it streams from the primary
                "-X",
                "stream",
                "-c",
                "fast",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-U",
                "postgres",
            ],
            check=True,
            capture_output=True,
            cwd="/",
            **_as_postgres(),
        )
        replica = Replica(
            name, port, _postgres_service(name, folder / "data", port, self.root / f"{name}.log")
        )
        self.replicas.append(replica)
        self.start_replica(replica)
        return replica

    def start_replica(self, replica: Replica) -> None:
        replica.server.start()
        _wait_for_postgres(
            replica.server, f"postgres://postgres@127.0.0.1:{replica.port}/postgres", 60
        )

    def remove_replica(self, replica: Replica) -> None:
        """Stop the replica and delete its data."""
        replica.server.stop(signal.SIGINT, timeout=10)
        self.replicas.remove(replica)
        shutil.rmtree(self.root / replica.name, ignore_errors=True)

    def wait_replicas_caught_up(self, timeout: float = 30) -> None:
        """Wait until every running replica has replayed the primary's current WAL position."""
        ((target,),) = self.sql("SELECT pg_current_wal_insert_lsn()::text")
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            while not replica.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])[0][0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{replica.name} did not catch up with {target}")
                time.sleep(0.05)

    def start_pgbouncer(self) -> None:
        """Start PgBouncer in transaction mode in front of the primary, and wait for it."""
        ini = self.root / "pgbouncer.ini"
        users = self.root / "pgbouncer-users.txt"
        users.write_text('"postgres" ""\n')
        ini.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host=127.0.0.1 port={self.pg_port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.pgbouncer_port}",
                    "unix_socket_dir =",
                    "auth_type = trust",  # loopback only, for the life of one test session
                    f"auth_file = {users}",
                    "admin_users = postgres",
                    "pool_mode = transaction",
                    "max_client_conn = 200",
                    "default_pool_size = 20",
                    # No startup options reach the server through the pool: the app
                    # sends none with DATABASE_PGBOUNCER=1 (jit=off is the server's).
                    "ignore_startup_parameters = extra_float_digits",
                    "server_login_retry = 1",
                    # A primary that is down must fail a request quickly (503), as a
                    # direct connection does after DATABASE_CONNECT_TIMEOUT.
                    f"query_wait_timeout = {CONNECT_TIMEOUT_S + 1}",
                    "",
                ]
            )
        )
        for path in (ini, users):
            os.chmod(path, 0o644)
        self.pgbouncer.start()
        self._wait_port(self.pgbouncer, self.pgbouncer_port)

    def pgbouncer_show(self, what: str) -> list[dict[str, str]]:
        """Return PgBouncer's SHOW `what` (SERVERS, CLIENTS, POOLS) as one dict per row."""
        # psql speaks the simple query protocol that PgBouncer's admin console requires.
        out = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pgbouncer_port),
                "-U",
                "postgres",
                "-d",
                "pgbouncer",
                "--csv",
                "-c",
                f"SHOW {what}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return list(csv.DictReader(out.splitlines()))

    def start_redis(self) -> None:
        self.redis.start()
        self._wait_port(self.redis, self.redis_port)

    def start_web(self) -> None:
        self.web.start()
        wait_for_http(self.web, self.web_port)

    def _wait_port(self, service: Service, port: int, deadline_s: float = 15) -> None:
        deadline = time.monotonic() + deadline_s
        while not port_open(port):
            if not service.running() or time.monotonic() > deadline:
                raise RuntimeError(f"{service.name} did not start:\n{service.log_tail()}")
            time.sleep(0.05)

    # --- gunicorn workers ------------------------------------------------------------------

    def web_workers(self) -> list[int]:
        """Return the pids of gunicorn's workers (the children of its master)."""
        return children(self.web.pid)

    def serving_web_workers(self) -> list[int]:
        """Return the gunicorn workers holding an accepted client connection: mid-request.

        Sync workers close each connection after answering, so a worker that holds one is
        reading a request or working on it; killing it breaks a request in flight.
        """
        inodes = _established_inodes(self.web_port)
        serving = []
        for pid in self.web_workers():
            with contextlib.suppress(OSError):
                links = {
                    os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
                }
                if any(f"socket:[{inode}]" in links for inode in inodes):
                    serving.append(pid)
        return serving

    def worker_connected_from(self, local_port: int) -> int:
        """Return the worker whose PostgreSQL connection uses `local_port` on its side.

        Through PgBouncer, `local_port` is that of PgBouncer's server connection (what
        pg_stat_activity shows), or already the port of a client of PgBouncer.
        """
        remote = self.pg_port
        if THROUGH_PGBOUNCER:
            local_port, remote = self._pgbouncer_client_port(local_port), self.pgbouncer_port
        inode = _socket_inode(local_port, remote)
        for pid in self.web_workers():
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                            return pid
        raise LookupError(f"no gunicorn worker holds the connection from port {local_port}")

    # --- database --------------------------------------------------------------------------

    def _url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/{database}"

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url(DB_NAME), connect_timeout=5, autocommit=True)

    def sql(
        self, query: str | pgsql.Composed, params: Sequence[Any] = (), *, database: str = DB_NAME
    ) -> list[tuple[Any, ...]]:
        """Run one statement on the private cluster (autocommit) and return its rows."""
        statement = query.encode() if isinstance(query, str) else query  # values are bound
        with psycopg.connect(self._url(database), connect_timeout=5, autocommit=True) as conn:
            cursor = conn.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []

    def new_tenant(self) -> Tenant:
        """Create a project with a read/write API key, straight in the private database."""
        slug = f"faults-{secrets.token_hex(4)}"
        ((project_id,),) = self.sql(
            "INSERT INTO analytics_project (name, slug, created_at) VALUES (%s, %s, now())"
            " RETURNING id",
            [slug, slug],
        )
        prefix = secrets.token_hex(4)
        secret = f"{KEY_PREFIX_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
        self.sql(
            "INSERT INTO analytics_apikey (project_id, name, prefix, secret_hash, scopes,"
            " created_at) VALUES (%s, 'faults', %s, %s, %s, now())",
            [project_id, prefix, hash_secret(secret), ["read", "write"]],
        )
        return Tenant(project_id=int(project_id), secret=secret)

    def blocked_backends(self, query_like: str) -> list[int]:
        """Return the client ports of backends waiting for a lock in a query LIKE `query_like`."""
        rows = self.sql(
            "SELECT client_port FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE %s",
            [query_like],
        )
        return [int(port) for (port,) in rows]

    def _pgbouncer_client_port(self, port: int) -> int:
        """Return the client of PgBouncer linked to its server connection from `port`."""
        servers = {row["ptr"]: row for row in self.pgbouncer_show("SERVERS")}
        clients = self.pgbouncer_show("CLIENTS")
        for server in servers.values():
            if server["local_port"] == str(port) and server["link"]:
                for client in clients:
                    if client["ptr"] == server["link"]:
                        return int(client["port"])
        return port  # not a server connection's port: a client's already

    def last_committer(self) -> int:
        """Return the client port of the backend that committed last (and has been idle since)."""
        if THROUGH_PGBOUNCER:
            # A committed transaction releases its server connection: the client that
            # asked last is the one that committed.
            clients = [c for c in self.pgbouncer_show("CLIENTS") if c["database"] == DB_NAME]
            latest = max(clients, key=lambda client: client["request_time"])
            return int(latest["port"])
        ((port,),) = self.sql(
            "SELECT client_port FROM pg_stat_activity"
            " WHERE datname = %s AND state = 'idle' AND query = 'COMMIT'"
            " AND pid <> pg_backend_pid() ORDER BY state_change DESC LIMIT 1",
            [DB_NAME],
        )
        return int(port)

    def queued_platform_metric(self, tenant: Tenant, metric: str) -> float:
        """Return the sum of `metric` samples queued for `tenant` (no beat flushes them here)."""
        client = redis.Redis(port=self.redis_port, db=TEST_REDIS_DB + 1, socket_timeout=5)
        with client:
            samples = [orjson.loads(raw) for raw in client.lrange(QUEUE_KEY, 0, -1)]
        return float(
            sum(sample[2] for sample in samples if sample[:2] == [tenant.project_id, metric])
        )

    def event_id_counts(self, tenant: Tenant) -> dict[str, int]:
        """Return how many stored points carry each event id of `tenant`."""
        rows = self.sql(
            "SELECT p.event_id, count(*) FROM points p"
            " JOIN analytics_series s ON s.id = p.series_id"
            " WHERE s.project_id = %s GROUP BY p.event_id",
            [tenant.project_id],
        )
        return {str(event_id): int(count) for event_id, count in rows}


def _wait_for_postgres(service: Service, url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=1):
                return
        except psycopg.OperationalError:
            if not service.running() or time.monotonic() > deadline:
                raise RuntimeError(
                    f"private {service.name} did not start:\n{service.log_tail()}"
                ) from None
            time.sleep(0.1)


def wait_for_http(service: Service, port: int, deadline_s: float = 60) -> None:
    """Wait until `service` answers HTTP on `port` (any status: the app is loaded)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if not service.running() or time.monotonic() > deadline:
                raise RuntimeError(f"{service.name} did not start:\n{service.log_tail()}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def serving(stack: PrivateStack, env: dict[str, str], name: str) -> Iterator[int]:
    """Run a second gunicorn with `env` for the duration; yield its port."""
    port = free_port()
    service = stack.gunicorn(port, env, name)
    service.start()
    try:
        wait_for_http(service, port)
        yield port
    finally:
        service.stop(signal.SIGINT)


def children(parent: int) -> list[int]:
    """Return the pids whose parent is `parent` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields follow the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent:
            found.append(int(entry))
    return sorted(found)


def _socket_inode(local_port: int, remote_port: int) -> str:
    """Return the inode of the loopback TCP socket from `local_port` to `remote_port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (
                    int(local.rsplit(":", 1)[1], 16) == local_port
                    and int(remote.rsplit(":", 1)[1], 16) == remote_port
                ):
                    return fields[9]
    raise LookupError(f"no TCP socket from port {local_port} to port {remote_port}")


def _established_inodes(local_port: int) -> set[str]:
    """Return the inodes of the established TCP sockets whose local side is `local_port`."""
    established = "01"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == local_port and fields[3] == established:
                    inodes.add(fields[9])
    return inodes


def peak_rss_kib(pid: int) -> int:
    """Return the peak resident set size (VmHWM) of `pid` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise LookupError(f"no VmHWM for pid {pid}")


def reset_peak_rss(pid: int) -> bool:
    """Reset the peak RSS of `pid` to its current RSS; return whether the kernel allowed it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
