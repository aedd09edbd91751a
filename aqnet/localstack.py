"""The local stack: a TimescaleDB cluster and a Mosquitto broker run as child processes. I/O.

One implementation serves `aqnet up` (data under `./var`, kept between runs, ports remembered in
`./var/ports.json` by `PortBook`) and the test fixtures (temporary directories, free ports).

Contract:
- Every child is started in its own process group (a Ctrl-C on the terminal reaches only the parent, which
  stops the children in reverse order), `stop()` waits for it to exit (then kills it), and an `atexit` hook
  stops any child still running when the interpreter exits.
- PostgreSQL refuses to run as root and Mosquitto drops to its own user when started as root. When euid is 0
  the cluster runs as the `postgres` system user and the broker as `mosquitto`; a requested directory that
  user cannot reach (under `/root` or pytest's 0700 `/tmp/pytest-of-root`) is placed where it can
  (`/var/lib/aqnet/<name>-<hash>` when persistent, a 0755 `mkdtemp` under /tmp when ephemeral) and the
  requested path becomes a symlink to it, so "the data is under ./var" still holds.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import psycopg
from psycopg import sql

from aqnet import credentials

__all__ = [
    "LocalStackError",
    "MosquittoBroker",
    "MosquittoTls",
    "PortBook",
    "PostgresTls",
    "ServiceUser",
    "TimescaleCluster",
    "free_port",
    "place_reachable",
    "reachable",
]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MOSQUITTO = Path("/usr/sbin/mosquitto")
PERSISTENT_ROOT = Path("/var/lib/aqnet")
#: the read-only login role Grafana uses (aqnet.up.grafana_login creates it); pg_hba checks its password
GRAFANA_LOGIN = "aqnet_grafana"


class LocalStackError(RuntimeError):
    """A local service failed to start or stop; the message names the service, its port and its log."""


# --------------------------------------------------------------------------------------------- ports


#: "LOW-HIGH": free_port() hands out ports of this block only, in turn. The test suite gives each pytest-xdist
#: worker a block of its own outside the kernel's ephemeral range (tests/conftest.py), so neither another worker
#: nor an outgoing connection can take a port between free_port() and the server binding it.
PORT_RANGE_ENV = "AQNET_PORT_RANGE"
_next_port: dict[str, int] = {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago: the next one of $AQNET_PORT_RANGE, else bind to 0."""
    block = os.environ.get(PORT_RANGE_ENV)
    if not block:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    low, _, high = block.partition("-")
    first, size = int(low), int(high) - int(low) + 1
    start = _next_port.get(block, first + int.from_bytes(os.urandom(2), "big") % size)
    for i in range(size):
        port = first + (start - first + i) % size
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a port still in TIME_WAIT is skipped too
            except OSError:
                continue
        _next_port[block] = first + (port - first + 1) % size
        return port
    raise LocalStackError(f"no free port in {PORT_RANGE_ENV}={block}")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR, as postgres and mosquitto set it: a port in TIME_WAIT from the last run is still ours.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class PortBook:
    """Ports chosen per service name, kept in a JSON file and reused on the next run while they are free."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _load(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise LocalStackError(f"{self.path}: expected a JSON object of name → port, got {exc}") from exc
        if not isinstance(data, dict):
            raise LocalStackError(
                f"{self.path}: expected a JSON object of name → port, got {type(data).__name__}")
        return {str(k): int(v) for k, v in data.items()}

    def port(self, name: str) -> int:
        """The saved port for `name` if it is free now, else a new free port (saved for next time)."""
        book = self._load()
        saved = book.get(name)
        if saved is not None and _port_is_free(saved):
            return saved
        taken = {p for n, p in book.items() if n != name}
        port = free_port()
        while port in taken:
            port = free_port()
        book[name] = port
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(book, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)
        return port


# ------------------------------------------------------------------------------- users and directories


@dataclass(frozen=True, slots=True)
class ServiceUser:
    """The unprivileged account a service runs as when aqnet runs as root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> ServiceUser:
        """The system user `name` (e.g. "postgres"); an error says which package creates it."""
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise LocalStackError(
                f"system user {name!r} does not exist: run deploy/install-system.sh") from None
        return cls(name, pw.pw_uid, pw.pw_gid, tuple(os.getgrouplist(name, pw.pw_gid)))


def _service_user(name: str) -> ServiceUser | None:
    """The user to run a service as: `name` when we are root, else None (run as ourselves)."""
    return ServiceUser.lookup(name) if os.geteuid() == 0 else None


def reachable(path: Path, uid: int, gids: tuple[int, ...] | list[int]) -> bool:
    """True when every existing directory on the way to `path` (itself included) is traversable by uid."""
    if uid == 0:
        return True
    real = Path(os.path.realpath(path))
    for d in [*reversed(real.parents), real]:
        try:
            st = d.stat()
        except FileNotFoundError:
            return True  # the rest will be created by us, with mode 0755 or owned by the user
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid in gids:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _sanitised(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "data"


def place_reachable(requested: Path, user: ServiceUser, *, persistent: bool) -> tuple[Path, Path | None]:
    """A directory for `requested` that `user` can reach, owned by it; returns (real dir, temporary root).

    When the requested path is unreachable, the real directory is `/var/lib/aqnet/<name>-<hash>` (persistent)
    or `<mkdtemp>/<name>` (ephemeral; the mkdtemp root is returned so the caller can delete it) and
    `requested` becomes a symlink to it. An existing symlink from an earlier run is followed.
    """
    requested = Path(os.path.abspath(requested))
    temporary: Path | None = None
    if requested.is_symlink():
        real = Path(os.path.realpath(requested))
        if not reachable(real, user.uid, user.groups):
            raise LocalStackError(f"{requested} → {real}: not reachable by user {user.name}")
    elif reachable(requested, user.uid, user.groups):
        real = requested
    else:
        if requested.exists() and any(requested.iterdir()):
            raise LocalStackError(
                f"{requested}: exists with data but user {user.name} cannot reach it (a parent is not "
                f"traversable); move it or start aqnet from a directory {user.name} can reach")
        if persistent:
            digest = hashlib.sha256(str(requested).encode()).hexdigest()[:10]
            PERSISTENT_ROOT.mkdir(parents=True, exist_ok=True)
            PERSISTENT_ROOT.chmod(0o755)
            real = PERSISTENT_ROOT / f"{_sanitised(requested.name)}-{digest}"
        else:
            temporary = Path(tempfile.mkdtemp(prefix="aqnet-", dir="/tmp"))
            temporary.chmod(0o755)
            real = temporary / _sanitised(requested.name)
        if requested.exists():
            requested.rmdir()
        requested.parent.mkdir(parents=True, exist_ok=True)
        real.mkdir(parents=True, exist_ok=True)
        requested.symlink_to(real, target_is_directory=True)
    real.mkdir(parents=True, exist_ok=True)
    os.chown(real, user.uid, user.gid)
    return real, temporary


# ------------------------------------------------------------------------------------------ children


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class _Child:
    """One child process in its own process group, with its log file, stopped on exit if still running."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self, argv: list[str], user: ServiceUser | None, cwd: Path) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # opened by us (possibly root), so the service user never needs to reach the log's directory
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        kwargs: dict[str, object] = {}
        if user is not None:
            kwargs = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        if user is not None:
            env["HOME"] = pwd.getpwuid(user.uid).pw_dir
        self.proc = subprocess.Popen(  # type: ignore[call-overload]
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
            process_group=0, **kwargs)
        atexit.register(self.stop)

    def stop(self, first_signal: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        """Signal the child, wait up to timeout_s, then SIGKILL its process group; always reaps it."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(first_signal)
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL the child's process group and reap it (a crash, for tests)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.stop(timeout_s=10)

    def check_alive(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            code = self.proc.returncode
            self.stop()
            raise LocalStackError(f"{what} exited with code {code} while starting; log {self.log_path}:\n"
                                  f"{_tail(self.log_path)}")


def _run(argv: list[str], user: ServiceUser | None, cwd: Path, what: str) -> None:
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False,
                         **kwargs)  # type: ignore[call-overload]
    if res.returncode != 0:
        raise LocalStackError(
            f"{what} failed (exit {res.returncode}): {' '.join(argv)}\n{res.stdout}{res.stderr}")


def _utf8_locale() -> str:
    """C.UTF-8 when the system has it (correct case rules for µ, °), else C."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "C"
    names = {n.strip().lower().replace("-", "") for n in out.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else "C"


# ------------------------------------------------------------------------------------------ services


class _LocalService:
    """What the cluster and the broker share: a directory placed where its service user can reach it, one child
    process, and stop / kill / discard / context-manager handling."""

    _stop_signal = signal.SIGTERM

    def __init__(self, directory: Path, port: int, *, service: str, persistent: bool,
                 start_timeout_s: float) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.port = port
        self.persistent = persistent
        self.start_timeout_s = start_timeout_s
        self.log_path = self.directory.parent / f"{self.directory.name}.log"
        self.real_dir: Path | None = None
        self._temporary_root: Path | None = None
        self._child = _Child(f"{service} {self.directory}", self.log_path)
        self._service_user = _service_user(service)

    @property
    def pid(self) -> int | None:
        return self._child.pid

    @property
    def running(self) -> bool:
        return self._child.running

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, timeout_s: float = 30.0) -> None:
        """Signal the service to shut down cleanly, wait, then kill."""
        self._child.stop(self._stop_signal, timeout_s)

    def kill(self) -> None:
        """Kill the service at once (a crash)."""
        self._child.kill()

    def discard(self) -> None:
        """Stop and delete the service's directory: the requested path and any relocated directory."""
        self.stop()
        if self.directory.is_symlink():
            self.directory.unlink()
        if self._temporary_root is not None:
            shutil.rmtree(self._temporary_root, ignore_errors=True)
            self._temporary_root = None
        elif self.real_dir is not None:
            shutil.rmtree(self.real_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------- TimescaleDB


@dataclass(frozen=True, slots=True)
class PostgresTls:
    """TLS for the cluster (`ssl = on`): its certificate and key (copied into the data directory, so the `postgres`
    user can read them wherever they were made), and the login roles that must come over TLS with a password
    (SCRAM), as a production server asks of the daemon's role; every other role keeps trust auth."""

    cert_file: Path  #: the server's certificate (its SAN names 127.0.0.1 for sslmode=verify-full)
    key_file: Path  #: its private key
    password_roles: tuple[str, ...] = ()  #: hostssl + scram-sha-256 for these roles; plain TCP refused for them


class TimescaleCluster(_LocalService):
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
            _run([str(PG_BIN / "initdb"), "-D", str(real), "-U", self.user, "--auth=trust", "--encoding=UTF8",
                  f"--locale={_utf8_locale()}", "--no-instructions"], self._service_user, real.parent,
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
            "# written by aqnet/localstack.py on every start; edits are overwritten\n"
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
            "# written by aqnet/localstack.py on every start; edits are overwritten\n"
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
            f"{self.start_timeout_s:.0f} s ({last}); log {self.log_path}:\n{_tail(self.log_path)}")

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



# ------------------------------------------------------------------------------------------ Mosquitto


@dataclass(frozen=True, slots=True)
class MosquittoTls:
    """A second, TLS listener for the broker: its port and PEM files (copied into the broker's directory, so
    the `mosquitto` user can read them wherever they were made)."""

    port: int
    ca_file: Path  #: the CA that signed client certificates (and the server's, for clients to trust)
    cert_file: Path  #: the broker's certificate
    key_file: Path  #: the broker's private key
    require_certificate: bool = False  #: clients must present a certificate signed by `ca_file`


class MosquittoBroker(_LocalService):
    """A Mosquitto 2 broker configured in `conf_dir`, listening on 127.0.0.1:`port` only (and `tls.port`).

    `secure=True` refuses anonymous clients and applies the password and pattern ACL files of
    `aqnet.credentials` (in `conf_dir`, kept between runs): microsensors get their credentials from `aqnet sensors
    credentials`, and each of `service_users` (the daemon's, and the simulators' if given) a password generated at
    the first start and kept in `conf_dir/<user>.secret` (0600, never readable by the broker); `url_for(user)` is
    the URL to connect with. A pid file lets `aqnet sensors credentials` reload the running broker (SIGHUP).
    """

    def __init__(self, conf_dir: Path, port: int, *, max_inflight: int = 1000, max_queued: int = 200_000,
                 persistent: bool = True, start_timeout_s: float = 15.0, tls: MosquittoTls | None = None,
                 log_debug: bool = False, secure: bool = False,
                 service_users: tuple[str, ...] = (credentials.DAEMON_USER,)) -> None:
        super().__init__(conf_dir, port, service="mosquitto", persistent=persistent,
                         start_timeout_s=start_timeout_s)
        self.conf_dir = self.directory
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.tls = tls
        self.log_debug = log_debug  #: log every packet (tests read redeliveries, "d1", from the log)
        self.secure = secure
        unknown = set(service_users) - credentials.RESERVED_USERS
        if unknown:
            raise ValueError(f"mosquitto {conf_dir}: service_users: expected some of "
                             f"{sorted(credentials.RESERVED_USERS)}, got {sorted(unknown)}")
        self.service_users = tuple(service_users)
        self._secrets: dict[str, str] = {}

    @property
    def files(self) -> credentials.BrokerFiles:
        """Its password, ACL and pid files (in the real directory once started)."""
        return credentials.BrokerFiles.in_dir(self.real_dir or self.conf_dir)

    def url_for(self, user: str) -> str:
        """`mqtt://<user>:<password>@127.0.0.1:<port>` for a service user of a secure broker (after start)."""
        if user not in self._secrets:
            raise ValueError(f"mosquitto (port {self.port}): no credentials for {user!r} (secure={self.secure}, "
                             f"service users {list(self.service_users)}; start the broker first)")
        return f"mqtt://{user}:{self._secrets[user]}@127.0.0.1:{self.port}"

    def reload(self) -> None:
        """SIGHUP the broker: it re-reads its password and ACL files (no restart, sessions kept)."""
        pid = self.pid
        if pid is None or not self.running:
            raise LocalStackError(f"mosquitto (port {self.port}) is not running: nothing to reload")
        os.kill(pid, signal.SIGHUP)

    def _service_credentials(self, real: Path) -> list[Path]:
        """Make the password file's service users exactly `service_users`, each with its kept secret."""
        files = credentials.BrokerFiles.in_dir(real)
        known = credentials.parse_password_file(files.password_file.read_text(encoding="utf-8"),
                                                where=str(files.password_file)) \
            if files.password_file.exists() else {}
        for user in credentials.RESERVED_USERS - set(self.service_users):
            credentials.remove_user(files, user)
        self._secrets = {}
        for user in self.service_users:
            secret_file = real / f"{user}.secret"
            secret = secret_file.read_text(encoding="utf-8").strip() if secret_file.exists() else ""
            if not secret or user not in known:
                secret = credentials.new_password()
                credentials.set_password(files, user, secret)
                fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(secret + "\n")
            self._secrets[user] = secret
        credentials.write_acl(files)
        return [files.password_file, files.acl_file]

    @property
    def tls_url(self) -> str:
        """`mqtts://127.0.0.1:<tls port>` (ValueError when the broker has no TLS listener)."""
        if self.tls is None:
            raise ValueError(f"mosquitto (port {self.port}) has no TLS listener")
        return f"mqtts://127.0.0.1:{self.tls.port}"

    @property
    def url(self) -> str:
        """`mqtt://127.0.0.1:<port>`."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> Self:
        """Write mosquitto.conf, start the broker, wait until the port accepts TCP connections."""
        if self._child.running:
            return self
        if self._service_user is not None:
            real, temporary = place_reachable(self.conf_dir, self._service_user, persistent=self.persistent)
            self._temporary_root = self._temporary_root or temporary
        else:
            real = self.conf_dir
            real.mkdir(parents=True, exist_ok=True)
        self.real_dir = real
        conf = real / "mosquitto.conf"
        conf.write_text(self._config(real))
        files = [conf]
        if self.secure:
            files += self._service_credentials(real)
        if self.tls is not None:
            for name, src in (("ca.pem", self.tls.ca_file), ("cert.pem", self.tls.cert_file),
                              ("key.pem", self.tls.key_file)):
                shutil.copyfile(src, real / f"tls-{name}")
                (real / f"tls-{name}").chmod(0o600)
                files.append(real / f"tls-{name}")
        if self._service_user is not None:
            for path in files:
                os.chown(path, self._service_user.uid, self._service_user.gid)
        self._child.spawn([str(MOSQUITTO), "-c", str(conf)], None, real)  # it drops to `user` by itself
        try:
            self._wait_ready()
        except BaseException:
            self._child.kill()
            raise
        return self

    def _config(self, real: Path) -> str:
        user = f"user {self._service_user.name}\n" if self._service_user is not None else ""
        tls = ""
        if self.tls is not None:
            tls = (f"listener {self.tls.port} 127.0.0.1\n"
                   f"cafile {real}/tls-ca.pem\n"
                   f"certfile {real}/tls-cert.pem\n"
                   f"keyfile {real}/tls-key.pem\n"
                   f"require_certificate {'true' if self.tls.require_certificate else 'false'}\n")
        access = "allow_anonymous true\n"
        if self.secure:
            files = credentials.BrokerFiles.in_dir(real)
            access = ("# secure: clients log in (aqnet sensors credentials); the pattern ACL confines each sensor\n"
                      "allow_anonymous false\n"
                      f"password_file {files.password_file}\n"
                      f"acl_file {files.acl_file}\n"
                      f"pid_file {files.pid_file}\n")
        return (
            "# written by aqnet/localstack.py on every start; edits are overwritten\n"
            f"{user}"
            f"listener {self.port} 127.0.0.1\n"
            f"{access}"
            "persistence true\n"
            f"persistence_location {real}/\n"
            "autosave_interval 30\n"
            "# aqnet acknowledges a QoS 1 message only after the batch holding it is written to\n"
            "# TimescaleDB, so many messages are legitimately in flight per client, and the broker must\n"
            "# keep (not drop) what arrives while the database is slow or down: a high in-flight window\n"
            "# and a deep queue.\n"
            f"max_inflight_messages {self.max_inflight}\n"
            f"max_queued_messages {self.max_queued}\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            f"{'log_type debug' + chr(10) if self.log_debug else ''}"
            "log_timestamp true\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
            f"{tls}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            self._child.check_alive(f"mosquitto (port {self.port}, conf {self.real_dir})")
            try:
                for port in (self.port, *([self.tls.port] if self.tls is not None else [])):
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        pass
                return
            except OSError:
                time.sleep(0.05)
        raise LocalStackError(f"mosquitto (port {self.port}) did not accept TCP connections within "
                              f"{self.start_timeout_s:.0f} s; log {self.log_path}:\n{_tail(self.log_path)}")


