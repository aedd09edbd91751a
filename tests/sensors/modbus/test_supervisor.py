"""sensors.modbus.supervisor without servers: which pollers a registry change stops and starts, and the supervisor's
handling of stations that cannot be polled."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from sensors.modbus.supervisor import PollerSupervisor, PollTarget, plan_pollers, poll_targets
from sensors.network import bundled_network
from sensors.restart import RestartPolicy
from sensors.sensor import Device
from tests.fixtures.waiting import until

NETWORK = bundled_network()
KEN = next(s for s in NETWORK if s.id == "KEN")
MS01 = next(s for s in NETWORK if s.id == "MS01")


def test_poll_targets_take_stations_with_their_modbus_devices_only() -> None:
    mixed = replace(KEN, devices=(*KEN.devices, Device("KEN-board", "KEN", "mqtt", "aqnet-json", ("pm25",),
                                                       topic="aqnet/KEN/readings")))
    targets = poll_targets([mixed, MS01], lambda sid: 10.0)
    assert list(targets) == ["KEN"]
    assert targets["KEN"].sensor.devices == KEN.devices and targets["KEN"].interval_s == 10.0


def test_plan_starts_new_stops_removed_and_restarts_changed_stations() -> None:
    running = poll_targets(NETWORK, lambda sid: 10.0)
    wanted = dict(running)
    del wanted["USQ"]  # retired
    moved = replace(KEN, devices=tuple(replace(d, port=1502) for d in KEN.devices))
    wanted["KEN"] = PollTarget(moved, 10.0)  # gateway moved
    wanted["CDAR"] = PollTarget(wanted["CDAR"].sensor, 30.0)  # new interval
    new = replace(KEN, id="NEW", devices=tuple(replace(d, id=f"NEW-{d.id}", sensor_id="NEW") for d in KEN.devices))
    wanted["NEW"] = PollTarget(new, 10.0)
    plan = plan_pollers(running, wanted)
    assert plan.stop == ("CDAR", "KEN", "USQ")
    assert plan.start == ("CDAR", "KEN", "NEW")
    assert plan.restart == ("CDAR", "KEN")


def test_plan_leaves_unchanged_renamed_and_moved_stations_alone() -> None:
    running = poll_targets(NETWORK, lambda sid: 10.0)
    # a new name or new coordinates are no reason to drop a station's connection and polling phase
    relabelled = [replace(s, name=f"{s.name} (new)", lat=s.lat + 0.01) for s in NETWORK]
    plan = plan_pollers(running, poll_targets(relabelled, lambda sid: 10.0))
    assert plan.stop == () and plan.start == ()


class FakePoller:
    def __init__(self, target: PollTarget, log: list[str]) -> None:
        self.target = target
        self.log = log
        self._stop = asyncio.Event()

    async def run(self) -> None:
        self.log.append(f"run {self.target.sensor.id}")
        await self._stop.wait()

    async def stop(self) -> None:
        self.log.append(f"stop {self.target.sensor.id}")
        self._stop.set()


async def test_supervisor_runs_exactly_the_wanted_pollers() -> None:
    log: list[str] = []
    supervisor = PollerSupervisor(lambda t: FakePoller(t, log))
    first = poll_targets([s for s in NETWORK if s.id in ("KEN", "USQ")], lambda sid: 10.0)
    await supervisor.apply(first)
    await asyncio.sleep(0)
    assert sorted(log) == ["run KEN", "run USQ"] and set(supervisor.running) == {"KEN", "USQ"}
    log.clear()
    second = {"KEN": PollTarget(first["KEN"].sensor, 5.0)}
    plan = await supervisor.apply(second)
    await asyncio.sleep(0)
    assert plan.restart == ("KEN",) and plan.stop == ("KEN", "USQ")
    assert sorted(log) == ["run KEN", "stop KEN", "stop USQ"]
    assert supervisor.running == second and all(not t.done() for t in supervisor.tasks)
    await supervisor.close()
    assert supervisor.running == {} and supervisor.tasks == []


async def test_a_station_that_cannot_be_polled_is_skipped_and_retried_only_when_it_changes(caplog) -> None:
    made: list[str] = []

    def make(target: PollTarget) -> FakePoller:
        made.append(target.sensor.id)
        if target.interval_s == 1.0:
            raise ValueError(f"sensor {target.sensor.id}: cannot poll: profile 'nope' not loaded")
        return FakePoller(target, [])

    supervisor = PollerSupervisor(make)
    bad = poll_targets([KEN, MS01], lambda sid: 1.0)
    await supervisor.apply(bad)
    assert supervisor.running == {} and "sensor KEN: not polled" in caplog.text
    await supervisor.apply(bad)  # the same entry again: not retried, not logged again
    assert made == ["KEN"]
    fixed = poll_targets([KEN], lambda sid: 10.0)
    await supervisor.apply(fixed)
    assert made == ["KEN", "KEN"] and supervisor.running == fixed
    await supervisor.close()


class CrashingPoller(FakePoller):
    """Dies on its first `crashes` runs (counted across the pollers of one station), then polls."""

    def __init__(self, target: PollTarget, log: list[str], runs: list[int], crashes: int) -> None:
        super().__init__(target, log)
        self._runs = runs
        self._crashes = crashes

    async def run(self) -> None:
        self._runs.append(1)
        if len(self._runs) <= self._crashes:
            raise ConnectionResetError("gateway reset the connection mid-frame")
        await super().run()


async def test_a_poller_that_dies_is_logged_and_restarted_with_a_fresh_poller(caplog) -> None:
    log: list[str] = []
    runs: list[int] = []
    states: list[tuple[str, bool]] = []
    restarts: list[str] = []
    made: list[CrashingPoller] = []

    def make(target: PollTarget) -> CrashingPoller:
        made.append(CrashingPoller(target, log, runs, crashes=2))
        return made[-1]

    supervisor = PollerSupervisor(make, policy=RestartPolicy(min_s=0.001, max_s=0.002, max_restarts=None),
                                  on_state=lambda n, up: states.append((n, up)), on_restart=restarts.append)
    await supervisor.apply(poll_targets([KEN], lambda sid: 10.0))
    await until(lambda: log == ["run KEN"], "the third poller running", every_s=0.002)
    assert len(made) == 3 and restarts == ["poll-KEN", "poll-KEN"]
    assert states == [("poll-KEN", True), ("poll-KEN", False), ("poll-KEN", True), ("poll-KEN", False),
                      ("poll-KEN", True)]
    assert "sensor KEN: poller died: ConnectionResetError: gateway reset the connection mid-frame" in caplog.text
    assert supervisor.down() == {}
    await supervisor.close()
    assert log == ["run KEN", "stop KEN"] and supervisor.tasks == []


async def test_a_poller_waiting_for_its_restart_is_stopped_at_once_when_retired() -> None:
    removed: list[str] = []
    supervisor = PollerSupervisor(lambda t: CrashingPoller(t, [], [], crashes=99),
                                  policy=RestartPolicy(min_s=3600.0, max_s=3600.0, max_restarts=None),
                                  on_removed=removed.append)
    await supervisor.apply(poll_targets([KEN], lambda sid: 10.0))
    await until(supervisor.down, "the poller down", every_s=0.002)
    assert "ConnectionResetError" in supervisor.down()["poll-KEN"]
    await asyncio.wait_for(supervisor.apply({}), 10)  # never waits an hour for the restart
    assert supervisor.running == {} and supervisor.down() == {} and removed == ["poll-KEN"]
