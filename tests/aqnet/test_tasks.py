"""aqnet.tasks: the restart policy (pure, exhaustively) and the supervisor shell with fake coroutines: a task that
dies is logged with its cause and restarted with backoff, or escalated once when it cannot be restarted or died
too often; a task ending during shutdown is not a death."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aqnet.tasks import TaskDown, TaskSupervisor
from sensors.restart import GiveUp, Restart, RestartPolicy, next_restart
from tests.fixtures.waiting import until

FAST = RestartPolicy(min_s=0.001, max_s=0.004, jitter=0.0, max_restarts=3, window_s=60.0)


# ------------------------------------------------------------------------------------------------ the policy

def test_delay_doubles_from_min_up_to_max_without_jitter() -> None:
    p = RestartPolicy(min_s=1.0, max_s=30.0, jitter=0.0)
    assert [p.delay_s(n, 0.0) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert p.delay_s(10_000, 0.0) == 30.0  # no overflow for a very long crash loop


@given(attempt=st.integers(1, 200), u=st.floats(0, 1, exclude_max=True), jitter=st.floats(0, 1),
       min_s=st.floats(0.001, 10), extra=st.floats(0, 100))
def test_jittered_delay_stays_between_its_floor_and_the_exponential_ceiling(attempt: int, u: float, jitter: float,
                                                                             min_s: float, extra: float) -> None:
    p = RestartPolicy(min_s=min_s, max_s=min_s + extra, jitter=jitter)
    ceiling = min(p.max_s, p.min_s * 2.0 ** (attempt - 1))
    d = p.delay_s(attempt, u)
    assert ceiling * (1 - jitter) - 1e-9 <= d <= ceiling + 1e-9
    assert d > 0


def test_jitter_spreads_the_delay_downwards_only() -> None:
    p = RestartPolicy(min_s=10.0, max_s=10.0, jitter=0.5)
    assert p.delay_s(1, 0.0) == 10.0 and p.delay_s(1, 0.5) == 7.5 and p.delay_s(1, 0.999) == pytest.approx(5.005)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_s": 0}, "0 < min_s <= max_s"),
    ({"min_s": 5, "max_s": 1}, "min_s=5"),
    ({"jitter": 1.5}, "jitter: expected 0..1, got 1.5"),
    ({"max_restarts": -1}, "max_restarts"),
    ({"window_s": 0}, "window_s"),
])
def test_an_invalid_policy_is_refused_naming_the_field(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RestartPolicy(**kwargs)


@pytest.mark.parametrize(("attempt", "u"), [(0, 0.5), (1, 1.0), (1, -0.1)])
def test_delay_refuses_arguments_out_of_range(attempt: int, u: float) -> None:
    with pytest.raises(ValueError, match="delay_s"):
        RestartPolicy().delay_s(attempt, u)


def test_restarts_within_the_window_back_off_then_give_up() -> None:
    p = RestartPolicy(min_s=1.0, max_s=60.0, jitter=0.0, max_restarts=3, window_s=100.0)
    history: tuple[float, ...] = ()
    decisions = []
    for now in (0.0, 10.0, 20.0, 30.0):
        history, d = next_restart(p, history, now, 0.0)
        decisions.append(d)
    assert decisions[:3] == [Restart(1.0, 1), Restart(2.0, 2), Restart(4.0, 3)]
    assert isinstance(decisions[3], GiveUp) and "failed 4 times within 100 s (at most 3 restarts)" in \
        decisions[3].reason


def test_failures_older_than_the_window_are_forgotten_and_the_delay_starts_over() -> None:
    p = RestartPolicy(min_s=1.0, max_s=60.0, jitter=0.0, max_restarts=2, window_s=100.0)
    history, d = next_restart(p, (), 0.0, 0.0)
    history, d = next_restart(p, history, 50.0, 0.0)
    assert d == Restart(2.0, 2)
    history, d = next_restart(p, history, 120.0, 0.0)  # the one at 0 is gone, the one at 50 is not
    assert d == Restart(2.0, 2) and history == (50.0, 120.0)
    history, d = next_restart(p, history, 400.0, 0.0)  # a long good run: back to the first delay
    assert d == Restart(1.0, 1) and history == (400.0,)


@given(st.lists(st.floats(0, 1000), max_size=30).map(sorted), st.integers(0, 6))
def test_give_up_exactly_when_more_than_max_restarts_fall_in_the_window(times: list[float], limit: int) -> None:
    p = RestartPolicy(min_s=1.0, max_s=8.0, max_restarts=limit, window_s=50.0)
    history: tuple[float, ...] = ()
    for i, now in enumerate(times):
        history, d = next_restart(p, history, now, 0.3)
        in_window = sum(1 for t in times[:i + 1] if now - t < 50.0)
        assert all(now - t < 50.0 for t in history)
        assert isinstance(d, GiveUp) == (len(history) > limit)
        if isinstance(d, GiveUp):
            break
        assert d.attempt == len(history) == in_window


def test_never_giving_up_with_max_restarts_none() -> None:
    p = RestartPolicy(min_s=1.0, max_s=4.0, jitter=0.0, max_restarts=None, window_s=1e9)
    history: tuple[float, ...] = ()
    for now in range(1000):
        history, d = next_restart(p, history, float(now), 0.0)
        assert isinstance(d, Restart)
    assert d.delay_s == 4.0


# ------------------------------------------------------------------------------------------------ the shell

class Recorder:
    def __init__(self) -> None:
        self.states: list[tuple[str, bool]] = []
        self.restarts: list[str] = []
        self.fatal: list[tuple[str, str]] = []

    def supervisor(self, policy: RestartPolicy = FAST) -> TaskSupervisor:
        return TaskSupervisor(policy, on_state=lambda n, up: self.states.append((n, up)),
                              on_restart=self.restarts.append,
                              on_fatal=lambda n, r: self.fatal.append((n, r)), rng=random.Random(1))


async def test_a_task_that_raises_is_logged_with_its_traceback_and_restarted(caplog) -> None:
    rec = Recorder()
    sv = rec.supervisor()
    runs = itertools.count(1)
    second_run = asyncio.Event()

    async def work() -> None:
        n = next(runs)
        if n == 1:
            raise RuntimeError("pool timeout in reject")
        second_run.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.INFO, logger="aqnet.tasks"):
        sv.start("mqtt", work)
        await asyncio.wait_for(second_run.wait(), 10)
    assert rec.states == [("mqtt", True), ("mqtt", False), ("mqtt", True)]
    assert rec.restarts == ["mqtt"] and sv.restarts("mqtt") == 1 and rec.fatal == []
    died = next(r for r in caplog.records if "died" in r.getMessage())
    assert "task mqtt died: RuntimeError: pool timeout in reject" in died.getMessage()
    assert died.exc_info is not None and "pool timeout in reject" in caplog.text
    assert sv.down() == {}
    sv.cancel()
    await asyncio.gather(*sv.tasks, return_exceptions=True)


async def test_a_task_is_down_while_it_waits_for_its_restart() -> None:
    rec = Recorder()
    sv = rec.supervisor(RestartPolicy(min_s=30.0, max_s=30.0, jitter=0.0))

    async def work() -> None:
        raise TaskDown("watched thing gone")

    sv.start("registry", work)
    await until(sv.down, "the task down", every_s=0.001)
    assert sv.down() == {"registry": "TaskDown: watched thing gone"}
    sv.cancel()
    await asyncio.gather(*sv.tasks, return_exceptions=True)


async def test_a_task_that_returns_by_itself_has_died() -> None:
    rec = Recorder()
    sv = rec.supervisor()
    runs = itertools.count(1)

    async def work() -> None:
        if next(runs) > 1:
            await asyncio.Event().wait()

    sv.start("spool-replay", work)
    await until(lambda: rec.restarts, "a restart", every_s=0.001)
    assert rec.restarts == ["spool-replay"]
    sv.cancel()
    await asyncio.gather(*sv.tasks, return_exceptions=True)


async def test_a_task_that_cannot_be_restarted_is_escalated_once() -> None:
    rec = Recorder()
    sv = rec.supervisor()

    async def work() -> None:
        raise ValueError("batcher state lost")

    task = sv.start("pipeline", work, restart=False)
    await asyncio.wait_for(task, 10)
    assert rec.restarts == [] and len(rec.fatal) == 1
    name, reason = rec.fatal[0]
    assert name == "pipeline" and "ValueError: batcher state lost" in reason and "not restartable" in reason
    assert sv.fatal == rec.fatal[0] and "pipeline" in sv.down()


async def test_a_task_that_dies_too_often_is_given_up_and_escalated() -> None:
    rec = Recorder()
    sv = rec.supervisor()  # at most 3 restarts within 60 s

    async def work() -> None:
        raise OSError("address in use")

    task = sv.start("http", work)
    await asyncio.wait_for(task, 10)
    assert rec.restarts == ["http"] * 3
    assert len(rec.fatal) == 1 and "failed 4 times within 60 s" in rec.fatal[0][1]
    assert "OSError: address in use" in sv.down()["http"]


async def test_system_exit_from_a_task_is_a_death_not_the_end_of_the_process() -> None:
    rec = Recorder()
    sv = rec.supervisor()
    runs = itertools.count(1)

    async def work() -> None:  # uvicorn's failed start ends in sys.exit(1)
        if next(runs) == 1:
            raise SystemExit(1)
        await asyncio.Event().wait()

    sv.start("http", work)
    await until(lambda: rec.restarts, "a restart", every_s=0.001)
    sv.cancel()
    await asyncio.gather(*sv.tasks, return_exceptions=True)


async def test_during_shutdown_a_task_that_returns_or_raises_has_not_died() -> None:
    rec = Recorder()
    sv = rec.supervisor()
    release = asyncio.Event()

    async def server() -> None:
        await release.wait()

    async def flushing() -> None:
        await release.wait()
        raise RuntimeError("error while flushing")

    a = sv.start("http", server)
    b = sv.start("pipeline", flushing, restart=False)
    await asyncio.sleep(0)
    sv.stopping()
    release.set()
    await asyncio.wait_for(asyncio.gather(a, b), 10)
    assert rec.restarts == [] and rec.fatal == [] and sv.down() == {}


async def test_cancel_ends_every_task_but_the_ones_excepted() -> None:
    rec = Recorder()
    sv = rec.supervisor()
    forever = asyncio.Event()
    for name in ("mqtt", "http", "pipeline"):
        sv.start(name, forever.wait)
    await asyncio.sleep(0)
    cancelled = sv.cancel(except_=("http",))
    await asyncio.gather(*cancelled, return_exceptions=True)
    assert sorted(t.get_name() for t in cancelled) == ["mqtt", "pipeline"]
    assert not sv.task("http").done() and rec.restarts == [] and rec.fatal == []
    forever.set()
    await asyncio.wait_for(sv.task("http"), 10)


async def test_two_tasks_of_one_name_are_refused() -> None:
    sv = TaskSupervisor(FAST)
    sv.start("mqtt", asyncio.Event().wait)
    with pytest.raises(ValueError, match="'mqtt' is already supervised"):
        sv.start("mqtt", asyncio.Event().wait)
    sv.cancel()
    await asyncio.gather(*sv.tasks, return_exceptions=True)
