"""ingest/inflight.py: batches written side by side, acknowledged in the order they started, batches sharing a key
never written at once, a cancelled batch never acknowledged (nor anything after it). Fake writes, no I/O."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.inflight import WriteWindow


class Writes:
    """Writes that finish when the test says so; records what was running, written and acknowledged, in order."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.running: set[int] = set()
        self.started: list[int] = []
        self.written: list[int] = []
        self.acked: list[int] = []
        self.most_at_once = 0
        self.overlaps: list[tuple[int, int]] = []  #: (running, starting) pairs that share a key
        self.keys: dict[int, set[object]] = {}

    def write(self, i: int):
        async def run() -> None:
            self.overlaps += [(j, i) for j in self.running if self.keys[j] & self.keys[i]]
            self.running.add(i)
            self.started.append(i)
            self.most_at_once = max(self.most_at_once, len(self.running))
            await self.gates.setdefault(i, asyncio.Event()).wait()
            self.running.discard(i)
            self.written.append(i)
        return run

    def ack(self, i: int):
        def run() -> None:
            assert i in self.written, f"batch {i} acknowledged before it was written"
            self.acked.append(i)
        return run

    async def start(self, window: WriteWindow, i: int, keys: set[object] | None = None) -> None:
        self.keys[i] = keys if keys is not None else {i}
        await window.start(self.write(i), self.ack(i), lambda: self.keys[i])

    def release(self, i: int) -> None:
        self.gates.setdefault(i, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_writes_finishing_out_of_order_are_acknowledged_in_order() -> None:
    window, w = WriteWindow(3), Writes()
    for i in range(3):
        await w.start(window, i)
    await settle()
    assert sorted(w.running) == [0, 1, 2]  # all three written at once
    w.release(2)
    w.release(1)
    await settle()
    assert w.written == [2, 1] and w.acked == []  # durable, but batch 0 is not: nothing acknowledged yet
    w.release(0)
    await window.drain()
    assert w.acked == [0, 1, 2]


async def test_at_most_size_batches_are_in_flight() -> None:
    window, w = WriteWindow(2), Writes()
    await w.start(window, 0)
    await w.start(window, 1)
    third = asyncio.create_task(w.start(window, 2))
    await settle()
    assert not third.done() and window.in_flight == 2
    w.release(1)
    await settle()
    assert not third.done()  # batch 1 is written but not acknowledged (batch 0 is not): its slot stays taken
    w.release(0)
    await third
    w.release(2)
    await window.drain()
    assert w.acked == [0, 1, 2] and w.most_at_once == 2


async def test_free_waits_for_a_slot() -> None:
    window, w = WriteWindow(1), Writes()
    await w.start(window, 0)
    free = asyncio.create_task(window.free())
    await settle()
    assert not free.done()
    w.release(0)
    await free
    await window.drain()


async def test_a_batch_sharing_a_key_waits_for_the_earlier_write() -> None:
    window, w = WriteWindow(3), Writes()
    await w.start(window, 0, {"a", "b"})
    await w.start(window, 1, {"c"})
    await w.start(window, 2, {"b", "d"})  # shares "b" with batch 0
    await settle()
    assert sorted(w.running) == [0, 1]
    w.release(1)
    await settle()
    assert 2 not in w.started
    w.release(0)
    await settle()
    assert w.started == [0, 1, 2]
    w.release(2)
    await window.drain()
    assert w.overlaps == [] and w.acked == [0, 1, 2]


async def test_cancel_abandons_the_batches_in_flight_and_every_later_one() -> None:
    window, w = WriteWindow(3), Writes()
    for i in range(2):
        await w.start(window, i)
    w.release(0)
    await settle()
    assert w.acked == [0]
    window.cancel()
    await window.drain()
    await w.start(window, 2)  # e.g. the pipeline's flush after the cancel: written, never acknowledged
    w.release(2)
    await window.drain()
    assert w.written == [0, 2] and w.acked == [0]


async def test_a_batch_cancelled_before_it_ran_frees_its_slot() -> None:
    window, w = WriteWindow(1), Writes()
    await w.start(window, 0)
    window.cancel()  # before the task took its first step
    await window.drain()
    assert window.in_flight == 0 and w.started == []
    await w.start(window, 1)
    w.release(1)
    await window.drain()
    assert w.acked == []  # batch 0 was never acknowledged: batch 1 may not overtake it


async def test_an_exception_escaping_an_ack_is_raised_and_stops_later_acks() -> None:
    window = WriteWindow(2)

    async def write() -> None:
        return None

    def broken() -> None:
        raise RuntimeError("ack failed")

    acked: list[int] = []
    await window.start(write, broken, set)
    await window.start(write, lambda: acked.append(1), set)
    await window.drain()
    with pytest.raises(RuntimeError, match="ack failed"):
        window.raise_failure()
    assert acked == []


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size must be >= 1"):
        WriteWindow(0)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=st.integers(1, 4), n=st.integers(1, 8))
def test_any_completion_order_acknowledges_in_start_order(data: st.DataObject, size: int, n: int) -> None:
    # random keys over a small alphabet (so batches share some), writes released in a random order
    keys = [data.draw(st.sets(st.sampled_from("abcdefgh"), max_size=3)) for _ in range(n)]
    order = data.draw(st.permutations(range(n)))

    async def scenario() -> Writes:
        window, w = WriteWindow(size), Writes()
        starts = asyncio.create_task(_start_all(window, w, keys))
        pending = list(order)
        while pending or not starts.done() or window.in_flight:
            await settle()
            runnable = [i for i in pending if i in w.running]
            if runnable:  # release the first of the chosen order that is running
                w.release(runnable[0])
                pending.remove(runnable[0])
            elif pending and not w.running and starts.done() and not window.in_flight:
                raise AssertionError(f"stuck: {pending} never started")
        await starts
        return w

    w = asyncio.run(scenario())
    assert w.acked == list(range(n))
    assert w.overlaps == []
    assert w.most_at_once <= size


async def _start_all(window: WriteWindow, w: Writes, keys: list[set[str]]) -> None:
    for i, k in enumerate(keys):
        await w.start(window, i, set(k))
