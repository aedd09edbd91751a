"""MQTT credentials for microsensors and aqnet's own clients: Mosquitto's password file, its ACL file and the
broker's reload. Stage 1 (the broker the MQTT sensors publish to); I/O.

Contract:
- A microsensor logs in with its sensor id as username and a random password (`new_password`, 192 bits from
  `secrets`). Only the password's hash is kept: `mosquitto_passwd` hashes it (PBKDF2-SHA512, Mosquitto's own
  format) and the hash is merged into the password file; the password itself is returned once, to be printed
  once. It is handed to `mosquitto_passwd -U` in a 0600 file inside a private temporary directory, never on a
  command line, where every local user could read it in the process list (`-b` would put it there).
- The ACL file is a function of who is in the password file, of the roles file and of the sensor-formats file
  beside it (`sensors.mqtt.broker.acl.render_acl`, which holds the pure rules and whose docstring states them).
  A **service user** is one of aqnet's own clients; its name starts with `aqnet` (`SERVICE_PREFIX`, so a sensor id
  can never be, or later become, a service login) and its role is a line of the roles file (`ServiceRole`,
  written by `aqnet broker daemon-user`): a `daemon` reads every sensor's topics (`topic read aqnet/+/readings`,
  …) and publishes (and reads back) under its alert state prefix only (`topic readwrite <prefix>/#`), and
  nothing else. The local
  stack's built-in users keep their built-in grants when the roles file does not name them: `aqnet` (DAEMON_USER)
  reads and writes every topic, `aqnet-simulators` publishes every microsensor's topic. A user whose name starts
  with `aqnet` but has no role gets no `user` section at all. Every other user is a sensor, allowed by the pattern
  only to publish its own topic of its own payload format (`aqnet/<id>/readings`, `airrohr/<id>/data` or
  `purpleair/<id>/data`, recorded by `issue_credentials(..., formats=)`) and to read nothing.
- Two password files: `passwd` (every user: the sensors' listener) and `passwd-services` (aqnet's service users
  only: the services' listener of deploy/mosquitto/aqnet.conf, where client ids are free). On the sensors'
  listener the broker replaces every client id by the username (`use_username_as_clientid`), so a sensor login
  can neither take the daemon's session (its client id starts with `aqnet`, a sensor id never does) nor another
  sensor's; a sensor login is refused on the services' listener.
- The files are written atomically (temporary file + rename) and owned by the broker's user when aqnet runs as
  root (Mosquitto re-reads them after dropping privileges, on SIGHUP).
- `reload_broker` sends SIGHUP to the broker only after checking that the pid is a running mosquitto (a stale
  pid file must never make aqnet signal, and so kill, an unrelated process). Mosquitto re-reads both files on
  SIGHUP and disconnects clients whose credentials no longer hold, without a restart.
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sensors.mqtt.broker.acl import (
    CredentialsError,
    ServiceRole,
    allowed_topics,
    check_sensor_username,
    check_username,
    is_service_name,
    parse_roles,
    parse_sensor_formats,
    render_acl,
    render_roles,
    render_sensor_formats,
)

__all__ = [
    "BrokerFiles",
    "Issued",
    "broker_pid",
    "issue_credentials",
    "new_password",
    "parse_password_file",
    "read_roles",
    "read_sensor_formats",
    "reload_after_change",
    "reload_broker",
    "remove_service_user",
    "remove_user",
    "render_password_file",
    "set_password",
    "set_service_user",
    "write_acl",
    "write_roles",
]

MOSQUITTO_PASSWD = Path("/usr/bin/mosquitto_passwd")


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """Where a broker keeps its password file, ACL file, aqnet's roles file and its pid file (all in its
    configuration directory; the roles file is aqnet's, Mosquitto never reads it)."""

    directory: Path
    password_file: Path
    acl_file: Path
    pid_file: Path

    @classmethod
    def in_dir(cls, directory: Path) -> BrokerFiles:
        """The files of a broker configured in `directory` (MosquittoBroker's conf_dir)."""
        d = Path(directory)
        return cls(d, d / "passwd", d / "acl", d / "mosquitto.pid")

    @property
    def roles_file(self) -> Path:
        """`<directory>/roles`: which service user has which role (`render_roles`)."""
        return self.directory / "roles"

    @property
    def services_password_file(self) -> Path:
        """`<directory>/passwd-services`: the service users' hashes only (the services' listener reads it)."""
        return self.directory / "passwd-services"

    @property
    def sensor_formats_file(self) -> Path:
        """`<directory>/sensor-formats`: the payload formats each sensor may publish (`render_sensor_formats`)."""
        return self.directory / "sensor-formats"


@dataclass(frozen=True, slots=True)
class Issued:
    """Credentials just issued: the password exists only here (the broker keeps its hash)."""

    username: str
    password: str
    topics: tuple[str, ...]  #: the topics this user may publish to

    def __repr__(self) -> str:  # never the password in a log line or a traceback
        return f"Issued(username={self.username!r}, topics={self.topics!r})"


# ----------------------------------------------------------------------------------------------- pure


def new_password() -> str:
    """A random password: 32 URL-safe characters (192 bits), safe in an mqtt://user:password@ URL."""
    return secrets.token_urlsafe(24)


def parse_password_file(text: str, *, where: str = "password file") -> dict[str, str]:
    """username → hash of a Mosquitto password file (`user:hash` lines; blank lines and `#` comments skipped)."""
    entries: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise CredentialsError(f"{where}: line {n}: expected username:hash, got {line[:40]!r}")
        entries[user] = hashed
    return entries


def render_password_file(entries: Mapping[str, str]) -> str:
    """A Mosquitto password file from username → hash, sorted by username."""
    return "".join(f"{user}:{entries[user]}\n" for user in sorted(entries))


# ----------------------------------------------------------------------------------------------- files


def _owner(directory: Path) -> tuple[int, int] | None:
    """(uid, gid) the broker's files must belong to: the directory's owner when we are root, else None."""
    if os.geteuid() != 0:
        return None
    st = Path(os.path.realpath(directory)).stat()
    return st.st_uid, st.st_gid


def _write_atomically(path: Path, text: str) -> None:
    real_dir = Path(os.path.realpath(path.parent))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=real_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        owner = _owner(real_dir)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, real_dir / path.name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_entries(files: BrokerFiles) -> dict[str, str]:
    try:
        text = files.password_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse_password_file(text, where=str(files.password_file))


def _hash(username: str, password: str, mosquitto_passwd: Path) -> str:
    """Mosquitto's hash of `password`, made by `mosquitto_passwd -U` on a private 0600 file."""
    with tempfile.TemporaryDirectory(prefix="aqnet-passwd-") as tmp:
        plain = Path(tmp) / "passwd"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{username}:{password}\n")
        try:
            res = subprocess.run([str(mosquitto_passwd), "-U", str(plain)], capture_output=True, text=True,
                                 check=False, timeout=30)
        except FileNotFoundError:
            raise CredentialsError(f"{mosquitto_passwd} not found: install the mosquitto package "
                                   "(deploy/install-system.sh)") from None
        if res.returncode != 0:
            raise CredentialsError(f"{mosquitto_passwd} -U failed (exit {res.returncode}): "
                                   f"{(res.stderr or res.stdout).strip()}")
        entries = parse_password_file(plain.read_text(encoding="utf-8"), where="mosquitto_passwd output")
    hashed = entries.get(username)
    if hashed is None or hashed == password:
        raise CredentialsError(f"{mosquitto_passwd} -U did not hash the password of {username}")
    return hashed


def _write_entries(files: BrokerFiles, entries: Mapping[str, str]) -> None:
    """Replace both password files: every user's hash, and the service users' hashes only."""
    _write_atomically(files.password_file, render_password_file(entries))
    services = {u: h for u, h in entries.items() if is_service_name(u)}
    _write_atomically(files.services_password_file, render_password_file(services))


def read_sensor_formats(files: BrokerFiles) -> dict[str, tuple[str, ...]]:
    """The sensor-formats file's records ({} when there is none)."""
    try:
        text = files.sensor_formats_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse_sensor_formats(text, where=str(files.sensor_formats_file))


def read_roles(files: BrokerFiles) -> dict[str, ServiceRole]:
    """The roles file's service users ({} when there is no roles file)."""
    try:
        text = files.roles_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse_roles(text, where=str(files.roles_file))


def write_roles(files: BrokerFiles, roles: Mapping[str, ServiceRole]) -> None:
    """Replace the roles file (then `write_acl` to apply it)."""
    files.directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(files.roles_file, render_roles(roles))


def write_acl(files: BrokerFiles) -> None:
    """Regenerate the ACL file from the password file's users and the roles file."""
    _write_atomically(files.acl_file, render_acl(_read_entries(files), read_roles(files), read_sensor_formats(files)))


def set_password(files: BrokerFiles, username: str, password: str, *,
                 mosquitto_passwd: Path = MOSQUITTO_PASSWD) -> None:
    """Add or replace `username`'s hash in the password file, then regenerate the ACL file."""
    check_username(username)
    hashed = _hash(username, password, mosquitto_passwd)
    files.directory.mkdir(parents=True, exist_ok=True)
    entries = _read_entries(files)
    entries[username] = hashed
    _write_entries(files, entries)
    write_acl(files)


def remove_user(files: BrokerFiles, username: str) -> bool:
    """Remove `username` from the password file (regenerating the ACL file); False if it was not there."""
    entries = _read_entries(files)
    recorded = read_sensor_formats(files)
    if recorded.pop(username, None) is not None:
        _write_atomically(files.sensor_formats_file, render_sensor_formats(recorded))
    if entries.pop(username, None) is None:
        return False
    _write_entries(files, entries)
    write_acl(files)
    return True


def issue_credentials(files: BrokerFiles, sensor_id: str, *, formats: Iterable[str] | None = None,
                      password: str | None = None, mosquitto_passwd: Path = MOSQUITTO_PASSWD) -> Issued:
    """New credentials for microsensor `sensor_id` (username = sensor id), replacing any it had; it may publish
    to the topics of its payload `formats` only (recorded in the sensor-formats file; None: every format, for
    callers that do not know them: prefer giving them)."""
    check_sensor_username(sensor_id, read_roles(files))
    topics = allowed_topics(sensor_id, formats)
    recorded = read_sensor_formats(files)
    if formats is None:
        recorded.pop(sensor_id, None)
    else:
        recorded[sensor_id] = tuple(dict.fromkeys(formats))
    files.directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(files.sensor_formats_file, render_sensor_formats(recorded))
    secret = password or new_password()
    set_password(files, sensor_id, secret, mosquitto_passwd=mosquitto_passwd)
    return Issued(sensor_id, secret, topics)


def set_service_user(files: BrokerFiles, role: ServiceRole, password: str, *,
                     mosquitto_passwd: Path = MOSQUITTO_PASSWD) -> tuple[str, ...]:
    """Add or replace service user `role.username` (password hash and roles line), regenerate the ACL file;
    returns its ACL grants."""
    roles = read_roles(files)
    roles[role.username] = role
    hashed = _hash(role.username, password, mosquitto_passwd)
    files.directory.mkdir(parents=True, exist_ok=True)
    entries = _read_entries(files)
    entries[role.username] = hashed
    write_roles(files, roles)
    _write_entries(files, entries)
    write_acl(files)
    return role.grants()


def remove_service_user(files: BrokerFiles, username: str) -> bool:
    """Remove service user `username` (password and role); False if it had neither."""
    roles = read_roles(files)
    had_role = roles.pop(username, None) is not None
    if had_role:
        write_roles(files, roles)
    removed = remove_user(files, username)
    write_acl(files)
    return removed or had_role


# ----------------------------------------------------------------------------------------------- reload


def broker_pid(pid_file: Path) -> int | None:
    """The pid in a Mosquitto pid file, or None when there is no such file."""
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    if not text.isdigit():
        raise CredentialsError(f"{pid_file}: expected a process id, got {text[:20]!r}")
    return int(text)


def _is_mosquitto(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and bool(argv) and os.path.basename(argv[0]) == b"mosquitto"


def reload_broker(pid: int) -> None:
    """SIGHUP the Mosquitto process `pid` (it re-reads its password and ACL files); CredentialsError if `pid`
    is not a running mosquitto (stale pid file) or may not be signalled."""
    if not _is_mosquitto(pid):
        raise CredentialsError(f"process {pid} is not a running mosquitto (stale pid file?): the broker was not "
                               "reloaded; the new credentials take effect when it next starts")
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        user = pwd.getpwuid(os.geteuid()).pw_name
        raise CredentialsError(f"mosquitto (pid {pid}) may not be signalled by {user}: run as the user that "
                               "started `aqnet up`, or as root") from None
    except ProcessLookupError:
        raise CredentialsError(f"mosquitto (pid {pid}) exited before it could be reloaded") from None


def reload_after_change(files: BrokerFiles, pid_file: Path | None, no_reload: bool) -> tuple[int | None, str | None]:
    """Have the running broker re-read `files` (SIGHUP) after a change: (pid reloaded, a warning for the operator
    when the change does not apply yet — no broker found, or a broker running without authentication)."""
    conf = files.directory / "mosquitto.conf"
    warning = None
    if conf.exists() and "password_file" not in conf.read_text(encoding="utf-8"):
        warning = (f"the broker in {files.directory} runs without authentication: these credentials apply once it "
                   "runs with `aqnet up --secure`")
    if no_reload:
        return None, warning
    pid = broker_pid(pid_file or files.pid_file)
    if pid is None:
        return None, warning or (f"no running broker found ({pid_file or files.pid_file} not found): the "
                                 "credentials are written and apply when the broker starts or re-reads its files "
                                 "(a broker started by systemd: `systemctl reload mosquitto`; or pass --pid-file)")
    reload_broker(pid)
    return pid, warning
