"""The spool on a real full filesystem (issue 15), with a publisher-side ledger of broker-acknowledged readings as
the oracle.

The daemon (`python -m aqnet run`) runs in a private mount namespace whose `storage.spool_dir` is a size-limited
tmpfs (`unshare -m --propagation private`, then `mount -t tmpfs -o size=…`); the test reaches that filesystem
with `nsenter -t <daemon pid> -m`. Under a steady MQTT load:
1. TimescaleDB is stopped: batches go to the spool.
2. A filler file takes all but FILL_ROOM of the tmpfs; the spool fills the rest and appends fail with ENOSPC.
   The daemon stops acknowledging: `aqnet_storage_spool_full` and `aqnet_storage_spool_disk_full` are 1, one
   log line says so (not one per retry), and the broker keeps the messages (more of them than the daemon may hold
   unacknowledged: MQTT Receive Maximum).
3. Once the disk has stayed full long enough to show it (the pipeline retried refused writes, and the broker holds
   more than the Receive Maximum: polled, at most DISK_FULL_S), either the filler is removed (the daemon stores
   batches again by itself, no restart) and then the database returns; or only the database returns, the filler
   stays: the spool, which filled the disk itself, still moves its resume point (its `reserve` file gives the
   room), deletes replayed segments and takes batches again, with the disk as small as it was.
At the end `measurements` equals the ledger exactly: nothing lost, nothing doubled.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aqnet.localstack import MosquittoBroker, TimescaleCluster
from tests.e2e.test_db_outage import Phases, ThreadSafeLedgerPublisher, _assert_database_equals_ledger, _count
from tests.e2e.test_mqtt_durability import DaemonRunner, _wait

pytestmark = pytest.mark.integration

TMPFS_KIB = 8192  #: the spool's filesystem: room for the backlog once the filler is gone
FILL_ROOM = 256 << 10  #: what the filler leaves free: the spool fills it itself
#: the longest the disk stays full: it stays full until the retries and the broker's backlog show, then ends
DISK_FULL_S = float(os.environ.get("AQNET_DISK_FULL_S", "60"))
RATE_PER_S = 100  #: messages per second (two readings each)
RECEIVE_MAXIMUM = 1000  #: the daemon's MQTT Receive Maximum (default): the most it may hold unacknowledged


def _namespaces_permitted() -> str | None:
    """None when this process may create a mount namespace and mount a tmpfs in it, else why not."""
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"unshare/mount not permitted here: {probe.stderr.strip()}"


class TmpfsSpoolDaemon(DaemonRunner):
    """The daemon with its spool directory on a private, size-limited tmpfs (gone with the process)."""

    client_prefix = "aqnet-diskfull"
    stop_timeout_s = 60.0

    def __init__(self, tmp_path: Path, database_url: str, broker: MosquittoBroker) -> None:
        super().__init__(tmp_path, database_url, broker, batch_max_age_s=0.5, batch_max=200,
                         storage={"spool_max_bytes": 512 << 20, "unreachable_after_s": 3.0, "replay_retry_s": 0.5})
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        # unshare execs (no fork): the daemon keeps this pid, which nsenter then uses to reach its tmpfs
        script = 'mount -t tmpfs -o size="$1"k tmpfs "$2" && exec "$3" -m aqnet run --config "$4"'
        with self.log_path.open("ab") as log:
            log.write(f"----- start at {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", str(TMPFS_KIB),
                 str(self.spool_dir), sys.executable, str(self.config_path)], stdout=log, stderr=log)

    def in_namespace(self, *command: str) -> str:
        """Run a command in the daemon's mount namespace (where the tmpfs is); its stdout."""
        assert self.proc is not None
        done = subprocess.run(["nsenter", "-t", str(self.proc.pid), "-m", *command], capture_output=True,
                              text=True, check=True, timeout=30)
        return done.stdout

    def free_bytes(self) -> int:
        available, block = self.in_namespace("stat", "-f", "-c", "%a %S", str(self.spool_dir)).split()
        return int(available) * int(block)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def daemon(tmp_path: Path, cluster: TimescaleCluster,
           mosquitto_factory: Callable[..., MosquittoBroker]) -> Iterator[TmpfsSpoolDaemon]:
    why = _namespaces_permitted()
    if why is not None:
        pytest.skip(why)
    runner = TmpfsSpoolDaemon(tmp_path, cluster.url, mosquitto_factory())
    yield runner
    if runner.proc is not None and runner.proc.poll() is None:
        runner.proc.kill()
        runner.proc.wait()


@pytest.mark.parametrize("space_returns", [True, False], ids=["space-freed-then-database", "database-only"])
def test_full_spool_filesystem_stops_acks_then_resumes_by_itself_losing_and_doubling_nothing(
        daemon: TmpfsSpoolDaemon, cluster: TimescaleCluster, space_returns: bool) -> None:
    seed = int(os.environ.get("AQNET_TEST_SEED", random.randrange(1 << 16)))
    print(f"seed {seed} (AQNET_TEST_SEED={seed} reruns these readings)", flush=True)
    publisher = ThreadSafeLedgerPublisher(daemon.broker.port, rate_per_s=RATE_PER_S)
    publisher._rng = random.Random(seed)
    phase = Phases()
    filler = str(daemon.spool_dir / "filler")
    try:
        daemon.start()
        daemon.wait_connected()
        assert daemon.free_bytes() > (TMPFS_KIB << 10) // 2, "the spool is not on the small tmpfs"
        publisher.start()
        _wait(lambda: _count(cluster.url) > 0, 60, "the first commit", daemon.alive)
        phase("daemon running under load, spool on a private tmpfs")

        # 1: the database goes away; batches go to the spool
        cluster.stop()
        _wait(lambda: (daemon.metric("aqnet_storage_spool_bytes") or 0) > 0, 60, "spooling", daemon.alive)
        phase("database stopped, spooling")

        # 2: the filesystem fills up: a filler takes all but FILL_ROOM, the spool the rest
        daemon.in_namespace("fallocate", "-l", str(max(0, daemon.free_bytes() - FILL_ROOM)), filler)
        _wait(lambda: daemon.metric("aqnet_storage_spool_disk_full") == 1.0, 120, "the spool to fill its disk",
              daemon.alive)
        full_at = time.monotonic()
        m = daemon.metrics()
        assert m["aqnet_storage_spool_full"] == 1.0
        phase(f"spool filesystem full: {daemon.free_bytes()} bytes free, {m['aqnet_storage_spool_bytes']:.0f} "
              f"bytes in the spool")
        readings_at_full = m["aqnet_storage_spool_readings"]
        failures_at_full = m.get("aqnet_storage_write_failures_total", 0.0)
        published_at_full = publisher.published

        def shown_full() -> bool:  # the evidence asserted below has piled up: the disk stayed full long enough
            m = daemon.metrics()
            grew = m["aqnet_storage_spool_readings"] - readings_at_full
            return (m.get("aqnet_storage_write_failures_total", 0.0) - failures_at_full >= 3
                    and publisher.published - published_at_full - grew / 2 > RECEIVE_MAXIMUM + 2 * RATE_PER_S)
        _wait(shown_full, DISK_FULL_S, "retried writes and a broker backlog beyond the Receive Maximum", daemon.alive,
              every_s=0.5)
        m = daemon.metrics()
        held = publisher.published - published_at_full
        phase(f"disk full for {time.monotonic() - full_at:.0f} s: {held} messages published meanwhile, spool "
              f"{readings_at_full:.0f} → {m['aqnet_storage_spool_readings']:.0f} readings, "
              f"{m['aqnet_storage_write_failures_total'] - failures_at_full:.0f} refused writes retried")
        assert m["aqnet_storage_spool_disk_full"] == 1.0 and m["aqnet_storage_spool_full"] == 1.0
        assert m["aqnet_storage_write_failures_total"] - failures_at_full >= 3, "the pipeline stopped retrying"
        # nothing acknowledged beyond what the spool stores: what the daemon holds unacknowledged is bounded by the
        # Receive Maximum, so the broker holds the rest of what was published meanwhile
        grew = m["aqnet_storage_spool_readings"] - readings_at_full
        assert held - grew / 2 > RECEIVE_MAXIMUM, "the broker should hold more than the daemon may"
        log = daemon.log_text()
        stops = len(re.findall(r"intake stops acknowledging", log))
        assert stops >= 1 and "No space left on device" in log
        assert stops <= len(re.findall(r"stores batches again", log)) + 1, "one log line per episode"
        assert stops < m["aqnet_storage_write_failures_total"] - failures_at_full, "a log line per retry"

        if space_returns:  # 3: the daemon stores batches again by itself, then the database returns
            daemon.in_namespace("rm", "-f", filler)
            _wait(lambda: daemon.metric("aqnet_storage_spool_disk_full") == 0.0, 120,
                  "the spool to store batches again", daemon.alive)
            _wait(lambda: (daemon.metric("aqnet_storage_spool_readings") or 0) > readings_at_full + 2 * RECEIVE_MAXIMUM,
                  120, "the broker's backlog to reach the spool", daemon.alive)
            assert "stores batches again" in daemon.log_text()
            phase(f"filler removed: spooling again ({daemon.metric('aqnet_storage_spool_readings'):.0f} readings)")
        cluster.start()
        if not space_returns:  # the replay frees what the spool took; the disk stays as small as it was
            _wait(lambda: daemon.metric("aqnet_storage_spool_disk_full") == 0.0, 120,
                  "the spool to store batches again", daemon.alive)
            assert "stores batches again" in daemon.log_text()
            phase(f"database back, filler kept: the spool takes batches again ({daemon.free_bytes()} bytes free)")
        _wait(lambda: daemon.metric("aqnet_storage_spool_bytes") == 0.0, 180, "the spool to drain", daemon.alive)
        phase("database back, spool drained")
        time.sleep(2)
        publisher.stop()
        ledger = publisher.ledger()
        assert len(ledger) == 2 * publisher.published, "the broker acknowledged every message"
        _wait(lambda: _count(cluster.url) >= len(ledger), 180,
              f"{len(ledger)} readings in the database (have {_count(cluster.url)})", daemon.alive)
        time.sleep(2)  # anything beyond the ledger (a duplicate, a stray) would have landed by now
        _assert_database_equals_ledger(cluster.url, ledger)
        if not space_returns:
            assert daemon.in_namespace("ls", str(daemon.spool_dir)).split().count("filler") == 1
        phase(f"database equals the ledger: {len(ledger)} readings ({publisher.published} messages), seed {seed}")
        daemon.terminate()
    finally:
        publisher.close()
