"""The local stack's TimescaleDB: a PostgreSQL 15 cluster with the timescaledb extension, run as a child process
(as `postgres` when aqnet runs as root), with its database, login and optional TLS. I/O.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import psycopg
from psycopg import sql

from aqnet.localstack.service import LocalService, LocalStackError, place_reachable, run_as, tail_log, utf8_locale

__all__ = ["GRAFANA_LOGIN", "PG_BIN", "PostgresTls", "TimescaleCluster"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
#: the read-only login role Grafana uses (aqnet.localstack.up.grafana_login creates it); pg_hba checks its password
GRAFANA_LOGIN = "aqnet_grafana"


# ---------------------------------------------------------------------------------------- TimescaleDB


@dataclass(frozen=True, slots=True)
class PostgresTls:
    """TLS for the cluster (`ssl = on`): its certificate and key (copied into the data directory, so the `postgres`
    user can read them wherever they were made), and the login roles that must come over TLS with a password
    (SCRAM), as a production server asks of the daemon's role; every other role keeps trust auth."""

    cert_file: Path  #: the server's certificate (its SAN names 127.0.0.1 for sslmode=verify-full)
    key_file: Path  #: its private key
    password_roles: tuple[str, ...] = ()  #: hostssl + scram-sha-256 for these roles; plain TCP refused for them


class TimescaleCluster(LocalService):
    """A PostgreSQL 15 + TimescaleDB cluster in `data_dir`, on 127.0.0.1:`port` only (trust auth, except Grafana's
    read-only login, which needs its password, and the `tls.password_roles`, which need TLS and their password)."""

    _stop_signal = signal.SIGINT  # fast shutdown: disconnect clients, checkpoint

    def __init__(self, data_dir: Path, port: int, *, database: str = "aqnet", user: str = "aqnet",
                 persistent: bool = True, start_timeout_s: float = 60.0, tls: PostgresTls | None = None) -> None:
        super().__init__(data_dir, port, service="postgres", persistent=persistent, start_timeout_s=start_timeout_s)
        self.data_dir = self.directory
        self.database = database
        self.user = user
        self.tls = tls

    @property
    def url(self) -> str:
        """`postgresql://aqnet@127.0.0.1:<port>/aqnet`."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """The URL of another database in this cluster."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def recreate_database(self, database: str) -> str:
        """Drop `database` (ending its sessions) and create it afresh with the timescaledb extension; its URL.

        For runs that must never mix with the cluster's main database (`aqnet up --speed`'s simulated time).
        """
        if database == self.database:
            raise LocalStackError(f"recreate_database: refusing to drop the main database {database!r}")
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        with psycopg.connect(self.url_for(database), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return self.url_for(database)

    def start(self) -> Self:
        """initdb if new, write config, start postgres, wait, create the database and the extension."""
        if self._child.running:
            return self
        real = self._prepare_dir()
        fresh = not (real / "PG_VERSION").exists()
        if fresh:
            run_as([str(PG_BIN / "initdb"), "-D", str(real), "-U", self.user, "--auth=trust", "--encoding=UTF8",
                  f"--locale={utf8_locale()}", "--no-instructions"], self._service_user, real.parent,
                 f"initdb {real}")
            with open(real / "postgresql.conf", "a") as f:
                f.write("\ninclude_if_exists = 'aqnet.conf'\n")
        self._write_config(real)
        self._child.spawn([str(PG_BIN / "postgres"), "-D", str(real)], self._service_user, real)
        try:
            self._wait_ready()
            self._bootstrap_database(existing=not fresh)
        except BaseException:
            self._child.stop(signal.SIGQUIT, timeout_s=10)
            raise
        return self

    def _prepare_dir(self) -> Path:
        if self._service_user is not None:
            real, temporary = place_reachable(self.data_dir, self._service_user, persistent=self.persistent)
            self._temporary_root = self._temporary_root or temporary
        else:
            real = self.data_dir
            real.mkdir(parents=True, exist_ok=True)
        real.chmod(0o700)  # postgres refuses a data directory readable by others
        self.real_dir = real
        return real

    def _write_config(self, real: Path) -> None:
        conf = real / "aqnet.conf"
        owned = [conf, real / "pg_hba.conf", real / "postgresql.conf"]
        ssl_conf, ssl_hba = "", ""
        if self.tls is not None:
            for name, src in (("server.crt", self.tls.cert_file), ("server.key", self.tls.key_file)):
                shutil.copyfile(src, real / name)
                (real / name).chmod(0o600)  # postgres refuses a key readable by others
                owned.append(real / name)
            ssl_conf = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            ssl_hba = "".join(f"hostssl all {role} 127.0.0.1/32 scram-sha-256\nhost all {role} 127.0.0.1/32 reject\n"
                              for role in self.tls.password_roles)
        conf.write_text(
            "# written by aqnet/localstack/ on every start; edits are overwritten\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            "unix_socket_directories = ''  # no socket: avoids the 107-byte socket path limit and /var/run\n"
            "shared_preload_libraries = 'timescaledb'\n"
            "timescaledb.telemetry_level = off\n"
            "max_connections = 200\n"
            "shared_buffers = 128MB\n"
            "work_mem = 16MB\n"
            "maintenance_work_mem = 64MB\n"
            "max_worker_processes = 24\n"
            "timescaledb.max_background_workers = 16\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "log_statement = 'ddl'\n"
            "log_line_prefix = '%m [%p] %q%u@%d '\n"
            "log_timezone = 'UTC'\n"
            "timezone = 'UTC'\n"
            f"{ssl_conf}")
        (real / "pg_hba.conf").write_text(
            "# written by aqnet/localstack/ on every start; edits are overwritten\n"
            "# aqnet local cluster: TCP on 127.0.0.1 only, no Unix socket. Grafana's read-only login (`aqnet up`\n"
            "# prints its password) is checked with SCRAM; every other role is trusted (never expose this cluster)\n"
            f"host all {GRAFANA_LOGIN} 127.0.0.1/32 scram-sha-256\n"
            f"{ssl_hba}"
            "host all all 127.0.0.1/32 trust\n")
        if self._service_user is not None:
            for p in owned:
                os.chown(p, self._service_user.uid, self._service_user.gid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._child.check_alive(f"postgres (port {self.port}, data {self.real_dir})")
            try:
                with psycopg.connect(self.url_for("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                last = exc
            time.sleep(0.1)
        raise LocalStackError(
            f"postgres (port {self.port}, data {self.real_dir}) did not accept connections within "
            f"{self.start_timeout_s:.0f} s ({last}); log {self.log_path}:\n{tail_log(self.log_path)}")

    def _bootstrap_database(self, *, existing: bool) -> None:
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        if existing:
            # timescaledb requires ALTER EXTENSION ... UPDATE as the first command of a fresh session
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("ALTER EXTENSION timescaledb UPDATE")
