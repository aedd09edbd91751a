"""One process's part in a daemon that runs several (`ingest.processes`). Shell (aqnet), pure.

With `ingest.processes: N` > 1 the daemon is N operating-system processes: process 0 (the one `aqnet run`
started) does everything it does alone — the scheduler and the alert dispatcher, the HTTP listeners (device intake
over HTTP included), migrations and the registry's seed, `/metrics` — and supervises processes 1 … N − 1
(`aqnet.daemon.workers`), which only take in data. Every process has its own ingest pipeline, database pool, spool
and registry follower, and:

- **MQTT**: every subscription filter becomes a shared one, `$share/<mqtt.share_group>/<filter>` (a filter that is
  already `$share/…` is kept), so the broker hands each message to one of the processes. Each process has its own
  persistent session: process 0 keeps `mqtt.client_id`, process i uses `<client_id>-<i>`. A worker that dies is
  started again with the same client id, so the messages the broker queued in its session come back to it.
- **Modbus**: each station is polled by exactly one process (`sensors.modbus.shares`: by link group, so one
  physical link keeps one owner).
- **Spool**: process 0 uses `storage.spool_dir`, process i its subdirectory `process-<i>`; the byte bound is
  split evenly, so the files of all processes together stay within `storage.spool_max_bytes`.
- **Site conditions** (T, P, RH observed by one process) are shared with the others through process 0
  (`aqnet.daemon.workers`), so a reading is corrected with the nearest station's conditions whichever process
  takes it (within the ~`CONDITIONS_FLUSH_S` the exchange takes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sensors.modbus.shares import share_of
from sensors.modbus.supervisor import PollTarget

__all__ = ["CONDITIONS_FLUSH_S", "Role"]

#: how often a process passes on the site conditions it observed (s)
CONDITIONS_FLUSH_S = 0.5


@dataclass(frozen=True, slots=True)
class Role:
    """Process `index` of `count` (0 of 1: the daemon alone)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"process index {self.index} is not in 0..{self.count - 1}")

    @property
    def primary(self) -> bool:
        """Process 0: the scheduler, the dispatcher, HTTP, migrations, and the other processes' supervisor."""
        return self.index == 0

    @property
    def name(self) -> str:
        """`main`, or `intake-<i>` (task names, log lines, the `process` label of `/metrics`)."""
        return "main" if self.primary else f"intake-{self.index}"

    def topics(self, topics: list[str], group: str) -> list[str]:
        """The subscription filters of this process: shared ones when there are several processes."""
        if self.count == 1:
            return list(topics)
        return [t if t.startswith("$share/") else f"$share/{group}/{t}" for t in topics]

    def client_id(self, client_id: str) -> str:
        """This process's MQTT client id (its own persistent session)."""
        return client_id if self.primary else f"{client_id}-{self.index}"

    def spool_dir(self, spool_dir: str) -> Path:
        """This process's spool directory."""
        return Path(spool_dir) if self.primary else Path(spool_dir) / f"process-{self.index}"

    def spool_max_bytes(self, max_bytes: int) -> int:
        """This process's share of the spool's byte bound."""
        return max(1, max_bytes // self.count)

    def stations(self, targets: Mapping[str, PollTarget]) -> dict[str, PollTarget]:
        """The stations this process polls."""
        return share_of(targets, self.index, self.count)
