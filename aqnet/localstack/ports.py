"""The local stack's ports: a free one for a test, or one remembered per service in `var/ports.json` so a Grafana
or Prometheus pointed at `aqnet up` keeps working between runs. I/O (sockets, one JSON file).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from aqnet.localstack.service import LocalStackError

__all__ = ["PortBook", "free_port"]


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
