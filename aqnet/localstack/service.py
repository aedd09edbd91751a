"""What every service of the local stack shares: a child process in its own process group, stopped cleanly (and
at interpreter exit), a directory its service user can reach, and the base class of the cluster and the broker.
I/O (processes, directories).

One implementation serves `aqnet up` (data under `./var`, kept between runs, ports remembered in
`./var/ports.json` by `aqnet.localstack.ports.PortBook`) and the test fixtures (temporary directories, free ports).

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
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["PERSISTENT_ROOT", "Child", "LocalService", "LocalStackError", "ServiceUser", "place_reachable",
           "reachable", "run_as", "service_user", "tail_log", "utf8_locale"]

PERSISTENT_ROOT = Path("/var/lib/aqnet")


class LocalStackError(RuntimeError):
    """A local service failed to start or stop; the message names the service, its port and its log."""


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


def service_user(name: str) -> ServiceUser | None:
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


def tail_log(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class Child:
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
                                  f"{tail_log(self.log_path)}")


def run_as(argv: list[str], user: ServiceUser | None, cwd: Path, what: str) -> None:
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False,
                         **kwargs)  # type: ignore[call-overload]
    if res.returncode != 0:
        raise LocalStackError(
            f"{what} failed (exit {res.returncode}): {' '.join(argv)}\n{res.stdout}{res.stderr}")


def utf8_locale() -> str:
    """C.UTF-8 when the system has it (correct case rules for µ, °), else C."""
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return "C"
    names = {n.strip().lower().replace("-", "") for n in out.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else "C"


# ------------------------------------------------------------------------------------------ services


class LocalService:
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
        self._child = Child(f"{service} {self.directory}", self.log_path)
        self._service_user = service_user(service)

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
