"""Test-suite wiring: fixture plugins, the automatic `integration` marker, and the leaked-process guard.

A test that uses a fixture listed in a plugin's `INTEGRATION_FIXTURES` is marked `integration`, so
`pytest -m "not integration"` runs the fast, pure tests only. Every test fails if a child process of the test
run that it started is still running after its fixtures were torn down.
"""

from __future__ import annotations

import importlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

#: fixture modules; each may list the fixtures that make a test `integration` in INTEGRATION_FIXTURES
FIXTURE_PLUGINS = ["tests.fixtures.timescale", "tests.fixtures.mosquitto", "tests.fixtures.receivers",
                   "tests.fixtures.alertmanager", "tests.fixtures.pki"]
pytest_plugins = [*FIXTURE_PLUGINS, "pytester"]


#: free_port() hands each pytest-xdist worker (gw0, gw1, …; a run without xdist counts as gw0) ports from a
#: block of its own, below the kernel's ephemeral range (32768-60999): no two workers, and no outgoing connection,
#: can take the port a fixture was just given (aqnet.localstack.PORT_RANGE_ENV). Child processes inherit it.
PORT_BLOCKS_START, PORT_BLOCK_SIZE, PORT_BLOCKS = 20000, 1000, 12


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) % PORT_BLOCKS if worker[2:].isdigit() else 0
    low = PORT_BLOCKS_START + index * PORT_BLOCK_SIZE
    os.environ["AQNET_PORT_RANGE"] = f"{low}-{low + PORT_BLOCK_SIZE - 1}"


def _integration_fixtures() -> set[str]:
    names: set[str] = set()
    for plugin in FIXTURE_PLUGINS:
        names.update(getattr(importlib.import_module(plugin), "INTEGRATION_FIXTURES", ()))
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    fixtures = _integration_fixtures()
    for item in items:
        if fixtures & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _running_children() -> dict[int, str]:
    """Live (non-zombie) direct children of this process: pid → command name."""
    me = os.getpid()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        head, _, tail = stat.rpartition(")")
        fields = tail.split()
        if len(fields) > 1 and fields[0] != "Z" and int(fields[1]) == me:
            found[int(entry.name)] = head.partition("(")[2]
    return found


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    """Fail the test if a child process it started (directly or via a fixture) outlives it."""
    before = set(_running_children())
    yield
    leaked = {pid: name for pid, name in _running_children().items() if pid not in before}
    for pid in leaked:
        try:
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert not leaked, f"processes left running by this test (killed now): {leaked}"
