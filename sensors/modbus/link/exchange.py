"""One read request and its answer on a pymodbus client, without pymodbus' per-request `asyncio.wait_for`. I/O.

pymodbus' `read_*` methods end in `TransactionManager.execute`, which takes its own lock and waits for the answer
with `asyncio.wait_for` (in Python 3.11: two more futures, a timer, a done-callback and an extra event-loop pass
per request). A link already serialises its requests and bounds each with its own deadline
(`sensors.modbus.link.base`), so `exchange` does what `execute` does for one read without retries, minus the
lock and the wait: number the request, clear the receive buffer, send the frame, wait on the response future
pymodbus resolves, then check the answer's device and transaction ids as `execute` does. The caller's deadline
times it out (a TimeoutError, as `execute`'s "no response" error would be taken).

This leans on pymodbus 3.16's transaction manager (`client.ctx`): `direct_exchange(client)` says whether the
client has it, and a link falls back to the public `read_*` methods when it has not. Part of `sensors.modbus.link`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest

__all__ = ["direct_exchange", "exchange"]

#: table → the pymodbus request PDU its `read_*` method builds
_REQUEST: dict[str, type[ModbusPDU]] = {
    "coil": ReadCoilsRequest,
    "discrete_input": ReadDiscreteInputsRequest,
    "holding": ReadHoldingRegistersRequest,
    "input": ReadInputRegistersRequest,
}
#: what `exchange` uses of pymodbus' TransactionManager
_NEEDS = ("getNextTID", "pdu_send", "response_future", "recv_buffer", "transport", "count_until_disconnect",
          "max_until_disconnect")


def direct_exchange(client: Any) -> bool:
    """True when `client` is an asyncio pymodbus client whose transaction manager `exchange` can drive."""
    ctx = getattr(client, "ctx", None)
    return ctx is not None and not getattr(ctx, "is_sync", True) and all(hasattr(ctx, name) for name in _NEEDS)


async def exchange(client: Any, table: str, address: int, count: int, unit_id: int) -> Any:
    """Send a read of `count` registers (or bits) of `table` from `address` to `unit_id`; its answer PDU.

    Raises ConnectionException when the client is not connected, ModbusIOException for an answer from another
    device or transaction (as pymodbus' `execute`); never times out by itself.
    """
    ctx = client.ctx
    if not ctx.transport:
        raise ConnectionException(f"Not connected[{client!s}]")
    request = _REQUEST[table](address=address, count=count, dev_id=unit_id)
    request.transaction_id = ctx.getNextTID()
    ctx.recv_buffer = b""
    answer = ctx.response_future = asyncio.get_running_loop().create_future()
    ctx.pdu_send(request)
    response = await answer
    ctx.count_until_disconnect = ctx.max_until_disconnect
    if request.dev_id and response.dev_id != request.dev_id:
        raise _refused(f"ERROR: request uses device id={request.dev_id} but received {response.dev_id}.", request)
    if response.transaction_id and response.transaction_id != request.transaction_id:
        raise _refused(f"ERROR: request uses transaction id={request.transaction_id} but received "
                       f"{response.transaction_id}.", request)
    return response


def _refused(message: str, request: ModbusPDU) -> ModbusIOException:
    return ModbusIOException(message, function_code=request.function_code, transaction_id=request.transaction_id,
                             dev_id=request.dev_id)
