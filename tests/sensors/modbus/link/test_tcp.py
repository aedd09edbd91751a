"""sensors.modbus.link's TCP link against a real socket peer that misbehaves: a request the peer answers by
closing the connection ends as a "connection" failure, not as a wait for the timeout, and the link reads again."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

import pytest

from sensors.modbus.link import ModbusLink, ModbusReadError

pytestmark = pytest.mark.integration


async def test_peer_closing_during_a_request_is_a_connection_failure_and_the_task_is_not_left_cancelled() -> None:
    requests = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await reader.read(12)  # one Modbus TCP request (MBAP header + read PDU)
        requests += 1
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # a timeout far longer than the test's deadline: only the disconnect can end the request in time
    link = ModbusLink("127.0.0.1", port, timeout_s=60.0, backoff_initial_s=0.0, backoff_max_s=0.0)
    try:
        for _ in range(3):  # each read meets a fresh connection that is cut again
            with pytest.raises(ModbusReadError) as caught:
                await asyncio.wait_for(link.read("holding", 0, 2, unit_id=1), timeout=30)
            assert caught.value.reason == "connection", caught.value
            assert "closed by the peer during the request" in str(caught.value)
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        assert requests == 3
        await asyncio.sleep(0)  # still runnable: no cancellation left pending on this task
    finally:
        await link.close()
        server.close()
        await server.wait_closed()


class _Answer:
    """A pymodbus-like response of `count` registers."""

    def __init__(self, count: int) -> None:
        self.registers = list(range(count))
        self.function_code = 3

    def isError(self) -> bool:  # pymodbus spells it so
        return False


class _SlowClient:
    """A connected pymodbus-like client whose reads take `delays` in turn; a delay of None never ends (a client
    that neither answers nor times out by itself)."""

    def __init__(self, delays: list[float | None]) -> None:
        self.connected = True
        self.delays = delays
        self.closed = 0

    async def connect(self) -> bool:
        return True

    def close(self) -> None:
        self.closed += 1

    async def read_holding_registers(self, address: int, *, count: int, device_id: int) -> _Answer:
        delay = self.delays.pop(0)
        await (asyncio.Event().wait() if delay is None else asyncio.sleep(delay))
        return _Answer(count)


class _FakeLink(ModbusLink):
    def __init__(self, client: _SlowClient, timeout_s: float) -> None:
        super().__init__("127.0.0.1", 1, timeout_s=timeout_s)
        self.fake = client

    def _new_client(self, lost: object) -> _SlowClient:
        return self.fake


async def test_a_request_the_client_never_ends_is_a_timeout_at_the_guard_and_the_link_reads_again() -> None:
    client = _SlowClient([None, 0.0])
    link = _FakeLink(client, timeout_s=0.05)  # the guard ends a request at twice the timeout
    with pytest.raises(ModbusReadError) as caught:
        await asyncio.wait_for(link.read("holding", 0, 2, unit_id=1), timeout=30)
    assert caught.value.reason == "timeout", caught.value
    assert client.closed == 1  # TCP: the connection is dropped, so a late answer never meets the next request
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert await link.read("holding", 0, 2, unit_id=1) == [0, 1]
    await asyncio.sleep(0)  # still runnable: no cancellation left pending on this task


async def test_the_guard_of_an_earlier_request_does_not_end_a_later_one() -> None:
    # each request takes 0.3 s of the guard's 0.5 s: the timer set for the first fires during the second, and
    # must wait for the second's own deadline instead of cancelling it
    client = _SlowClient([0.3, 0.3, 0.3])
    link = _FakeLink(client, timeout_s=0.25)
    for _ in range(3):
        assert await link.read("holding", 0, 3, unit_id=1) == [0, 1, 2]
    assert client.closed == 0


async def test_a_cancel_from_outside_during_a_request_is_not_taken_for_the_guard() -> None:
    client = _SlowClient([None])
    link = _FakeLink(client, timeout_s=0.05)
    task = asyncio.create_task(link.read("holding", 0, 2, unit_id=1))
    await asyncio.sleep(0.02)
    task.cancel()  # the poller being stopped, well before the guard's deadline
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.closed == 1  # the answer may still arrive: the connection is dropped


async def _mbap_peer(answer: Callable[[bytes], bytes | None]) -> tuple[asyncio.Server, int]:
    """A TCP peer that reads 12-byte Modbus TCP read requests and writes `answer(request)` (None: stays silent)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readexactly(12):
                reply = answer(request)
                if reply is not None:
                    writer.write(reply)
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _registers_reply(request: bytes, *, unit: int | None = None, values: list[int] | None = None) -> bytes:
    """The answer to a read-holding-registers request: `values` (default 0, 1, …), from `unit` (default the
    request's)."""
    tid, unit_id, count = request[0:2], request[6], struct.unpack(">H", request[10:12])[0]
    words = values if values is not None else list(range(count))
    pdu = bytes([3, 2 * len(words)]) + struct.pack(f">{len(words)}H", *words)
    return tid + b"\x00\x00" + struct.pack(">HB", len(pdu) + 1, unit if unit is not None else unit_id) + pdu


async def test_reads_go_through_the_direct_exchange_and_decode_like_pymodbus_read_methods() -> None:
    server, port = await _mbap_peer(lambda request: _registers_reply(request, values=[7, 65535, 0]))
    link = ModbusLink("127.0.0.1", port, timeout_s=5.0)
    try:
        for _ in range(3):
            assert await link.read("holding", 10, 3, unit_id=4) == [7, 65535, 0]
        assert link.direct  # the installed pymodbus has the transaction manager `exchange` drives
        client = link._client  # the same request through pymodbus' own method answers the same
        assert (await client.read_holding_registers(10, count=3, device_id=4)).registers == [7, 65535, 0]
    finally:
        await link.close()
        server.close()
        await server.wait_closed()


async def test_a_direct_request_nobody_answers_is_a_timeout_and_the_next_one_reconnects() -> None:
    answered = [False, True]
    server, port = await _mbap_peer(lambda request: _registers_reply(request) if answered.pop(0) else None)
    link = ModbusLink("127.0.0.1", port, timeout_s=0.2)
    try:
        with pytest.raises(ModbusReadError) as caught:
            await asyncio.wait_for(link.read("holding", 0, 2, unit_id=1), timeout=30)
        assert caught.value.reason == "timeout" and "no response within 0.2 s" in str(caught.value)
        assert not link.connected  # TCP: dropped, so a late answer never meets the next request
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        assert await link.read("holding", 0, 2, unit_id=1) == [0, 1]
    finally:
        await link.close()
        server.close()
        await server.wait_closed()


async def test_an_answer_from_another_unit_is_never_taken_for_the_request() -> None:
    server, port = await _mbap_peer(lambda request: _registers_reply(request, unit=request[6] + 1))
    link = ModbusLink("127.0.0.1", port, timeout_s=0.2)
    try:
        with pytest.raises(ModbusReadError) as caught:
            await asyncio.wait_for(link.read("holding", 0, 2, unit_id=1), timeout=30)
        assert caught.value.reason == "timeout", caught.value  # pymodbus skips the frame: no answer came
    finally:
        await link.close()
        server.close()
        await server.wait_closed()
