"""The local stack's Mosquitto broker: run as a child process (as `mosquitto` when aqnet runs as root), open or
secure (password and ACL files of `sensors.mqtt.broker`, service logins), with optional TLS. I/O.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from aqnet.localstack.service import LocalService, LocalStackError, place_reachable, tail_log
from sensors.mqtt.broker import acl, credentials

__all__ = ["MOSQUITTO", "MosquittoBroker", "MosquittoTls"]

MOSQUITTO = Path("/usr/sbin/mosquitto")


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


class MosquittoBroker(LocalService):
    """A Mosquitto 2 broker configured in `conf_dir`, listening on 127.0.0.1:`port` only (and `tls.port`).

    `secure=True` refuses anonymous clients and applies the password and pattern ACL files of
    `sensors.mqtt.broker` (in `conf_dir`, kept between runs): microsensors get their credentials from `aqnet sensors
    credentials`, and each of `service_users` (the daemon's, and the simulators' if given) a password generated at
    the first start and kept in `conf_dir/<user>.secret` (0600, never readable by the broker); `url_for(user)` is
    the URL to connect with. A pid file lets `aqnet sensors credentials` reload the running broker (SIGHUP).
    """

    def __init__(self, conf_dir: Path, port: int, *, max_inflight: int = 1000, max_queued: int = 200_000,
                 persistent: bool = True, start_timeout_s: float = 15.0, tls: MosquittoTls | None = None,
                 log_debug: bool = False, secure: bool = False,
                 service_users: tuple[str, ...] = (acl.DAEMON_USER,)) -> None:
        super().__init__(conf_dir, port, service="mosquitto", persistent=persistent,
                         start_timeout_s=start_timeout_s)
        self.conf_dir = self.directory
        self.max_inflight = max_inflight
        self.max_queued = max_queued
        self.tls = tls
        self.log_debug = log_debug  #: log every packet (tests read redeliveries, "d1", from the log)
        self.secure = secure
        unknown = set(service_users) - acl.RESERVED_USERS
        if unknown:
            raise ValueError(f"mosquitto {conf_dir}: service_users: expected some of "
                             f"{sorted(acl.RESERVED_USERS)}, got {sorted(unknown)}")
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
        for user in acl.RESERVED_USERS - set(self.service_users):
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
            "# written by aqnet/localstack/ on every start; edits are overwritten\n"
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
            except OSError:
                time.sleep(0.05)
            else:
                return
        raise LocalStackError(f"mosquitto (port {self.port}) did not accept TCP connections within "
                              f"{self.start_timeout_s:.0f} s; log {self.log_path}:\n{tail_log(self.log_path)}")
