"""Process 0's side of a daemon with several intake processes (`ingest.processes`). Shell (aqnet), I/O.

`IntakeProcesses` starts processes 1 … N − 1 (`python -m aqnet.daemon.worker`, each in its own session so a
terminal's Ctrl-C reaches only process 0, which stops them), each as a supervised task of process 0: one that
exits is started again with the restart policy's backoff (`aqnet_task_up{task="intake-<i>"}`), and given up
like any supervised task. On a clean stop each one gets SIGTERM and is waited for while it flushes; it also stops
by itself when its stdin closes (process 0 is gone). Through each process's pipe (`aqnet.daemon.ipc`):

- **site conditions**: what one process observes (`ConditionsBook.on_observe`) is collected for
  `CONDITIONS_FLUSH_S` and passed on — a worker's to process 0, which records them and relays them to the other
  workers; process 0's own to every worker;
- **metrics, status and health**: before `/metrics`, `/status` or `/healthz` is answered, `refresh()` asks every
  worker for its metric families and its status document (`scrape_timeout_s`); `/metrics` then shows every family
  of every process once, each sample labelled `process` (`aqnet.metrics.merge_processes`), `/status` a
  `processes` section, and `/healthz` fails with what a worker's own liveness check reports (a stalled
  pipeline). A worker that does not answer in time is shown as `down` and its families are left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client.metrics_core import Metric

from aqnet.config import Settings
from aqnet.daemon.ipc import Channel
from aqnet.daemon.processes import CONDITIONS_FLUSH_S, Role
from ingest.normalise import ConditionsBook

__all__ = ["ConditionsExchange", "IntakeProcess", "IntakeProcesses", "refreshing"]

log = logging.getLogger(__name__)

Observation = tuple[str, str, datetime, float]  #: (variable, sensor id, time, value)
#: a pipe holding more than this unread is not sent conditions (they are sent again, newer, soon)
_MAX_BUFFERED = 4 << 20
#: how long a stopping worker may take to flush before it is killed (s)
STOP_TIMEOUT_S = 120.0


class ConditionsExchange:
    """The site conditions this process observed since the last `take()`, newest per (variable, sensor)."""

    def __init__(self, book: Callable[[], ConditionsBook]) -> None:
        self._book = book
        self._pending: dict[tuple[str, str], tuple[datetime, float]] = {}

    def observed(self, variable: str, sensor_id: str, time: datetime, value: float) -> None:
        """`ConditionsBook.on_observe`: keep it for the next `take()`."""
        last = self._pending.get((variable, sensor_id))
        if last is None or time >= last[0]:
            self._pending[(variable, sensor_id)] = (time, value)

    def take(self) -> list[Observation]:
        """Everything kept since the last call."""
        pending, self._pending = self._pending, {}
        return [(var, sid, t, v) for (var, sid), (t, v) in pending.items()]

    def apply(self, observations: Iterable[Observation]) -> None:
        """Record observations from another process in the book in force."""
        book = self._book()
        for variable, sensor_id, time, value in observations:
            book.record(variable, sensor_id, time, value)

    async def run(self, send: Callable[[list[Observation]], Awaitable[None]]) -> None:
        """Send what was observed every `CONDITIONS_FLUSH_S`, until cancelled."""
        while True:
            await asyncio.sleep(CONDITIONS_FLUSH_S)
            taken = self.take()
            if taken:
                await send(taken)


class IntakeProcess:
    """Process `role.index` of the daemon, seen from process 0: `run()` starts it and returns only by raising
    when it exits (so the task supervisor starts it again); cancelling `run()` stops it cleanly."""

    def __init__(self, role: Role, settings: Settings, *, log_level: int,
                 relay: Callable[[int, list[Observation]], None]) -> None:
        self.role = role
        self._settings = settings
        self._log_level = log_level
        self._relay = relay
        self._channel: Channel | None = None
        self._answers: dict[int, asyncio.Future[tuple[list[Metric], dict[str, Any]]]] = {}
        self._numbers = itertools.count(1)
        self.pid: int | None = None

    async def run(self) -> None:
        """Start the process and serve its pipe until it exits (RuntimeError) or this is cancelled (SIGTERM,
        then wait for it to flush)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aqnet.daemon.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        assert proc.stdout is not None
        assert proc.stdin is not None
        self.pid = proc.pid
        self._channel = channel = Channel(proc.stdout, proc.stdin)
        try:
            await channel.send("start", self._settings, self.role, self._log_level)
            log.info("intake process %d started (pid %d)", self.role.index, proc.pid)
            while (message := await channel.receive()) is not None:
                self._handle(message)
            status = await proc.wait()
            raise RuntimeError(f"intake process {self.role.index} (pid {proc.pid}) exited with status {status}")
        finally:
            self._channel = None
            for answer in self._answers.values():
                answer.cancel()
            if proc.returncode is None:
                await asyncio.shield(_stop(proc, self.role.index))

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "observe":
            self._relay(self.role.index, message[1])
        elif kind == "scraped":
            answer = self._answers.pop(message[1], None)
            if answer is not None and not answer.done():
                answer.set_result((message[2], message[3]))
        else:
            log.warning("intake process %d sent an unknown message %r", self.role.index, kind)

    def send_conditions(self, observations: list[Observation]) -> None:
        """Pass site conditions on, unless the pipe is backed up (they are sent again, newer, soon)."""
        channel = self._channel
        if channel is None or channel.buffered() > _MAX_BUFFERED:
            return
        channel.send_nowait("observe", observations)

    async def scrape(self, timeout_s: float) -> tuple[list[Metric], dict[str, Any]] | None:
        """The process's metric families and status document, or None when it is down or slow."""
        channel = self._channel
        if channel is None:
            return None
        number = next(self._numbers)
        answer = self._answers[number] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout_s):
                await channel.send("scrape", number)
                return await answer
        except (TimeoutError, ConnectionError):
            return None
        finally:
            self._answers.pop(number, None)


async def _stop(proc: asyncio.subprocess.Process, index: int) -> None:
    """SIGTERM, then wait for the flush; SIGKILL after `STOP_TIMEOUT_S`."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            status = await proc.wait()
    except TimeoutError:
        log.error("intake process %d did not stop within %.0f s: killed", index, STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        status = await proc.wait()
    log.info("intake process %d stopped (status %s)", index, status)


class IntakeProcesses:
    """Processes 1 … N − 1, their conditions exchange with process 0, and their metrics and status."""

    def __init__(self, settings: Settings, count: int, exchange: ConditionsExchange, *, log_level: int,
                 scrape_timeout_s: float = 5.0) -> None:
        self.exchange = exchange
        self.processes = [IntakeProcess(Role(i, count), settings, log_level=log_level, relay=self._relay)
                          for i in range(1, count)]
        self._timeout_s = scrape_timeout_s
        self.families: dict[str, list[Metric]] = {}  #: the last scrape's metric families, by process name
        self.statuses: dict[str, dict[str, Any] | str] = {}  #: the last scrape's status documents ("down")

    def _relay(self, source: int, observations: list[Observation]) -> None:
        self.exchange.apply(observations)
        for p in self.processes:
            if p.role.index != source:
                p.send_conditions(observations)

    async def send_own(self, observations: list[Observation]) -> None:
        """Process 0's own observations, to every worker."""
        for p in self.processes:
            p.send_conditions(observations)

    async def refresh(self) -> None:
        """Ask every process for its metrics and status (in parallel)."""
        answers = await asyncio.gather(*(p.scrape(self._timeout_s) for p in self.processes))
        families: dict[str, list[Metric]] = {}
        statuses: dict[str, dict[str, Any] | str] = {}
        for p, answer in zip(self.processes, answers, strict=True):
            if answer is None:
                statuses[p.role.name] = "down"
            else:
                families[p.role.name], statuses[p.role.name] = answer
        self.families, self.statuses = families, statuses

    def down(self) -> dict[str, str]:
        """process name → what its own liveness check reported failing at the last refresh (a process that is not
        running shows as a down task of process 0 instead)."""
        out = {}
        for name, st in self.statuses.items():
            health = st.get("health") if isinstance(st, dict) else None
            if isinstance(health, dict) and health.get("status") == "fail":
                out[name] = "; ".join(f"{what}: {why}" for what, why in (health.get("reasons") or {}).items())
        return out

    def other_families(self) -> Mapping[str, list[Metric]]:
        """The workers' families of the last refresh (`aqnet.metrics.ProcessesCollector`)."""
        return self.families


def refreshing(app: Callable[..., Awaitable[None]], refresh: Callable[[], Awaitable[None]],
               paths: tuple[str, ...] = ("/metrics", "/status", "/healthz")) -> Callable[..., Awaitable[None]]:
    """An ASGI app that runs `refresh()` before `app` answers a request for one of `paths`."""
    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("path", "").rstrip("/") in paths:
            await refresh()
        await app(scope, receive, send)
    return wrapped
