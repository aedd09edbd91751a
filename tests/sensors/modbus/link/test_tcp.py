"""sensors.modbus.link's TCP link against a real socket peer that misbehaves: a request the peer answers by
closing the connection ends as a "connection" failure, not as a wait for the timeout, and the link reads again."""

from __future__ import annotations

import asyncio

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
