"""One Modbus TCP endpoint and the requests sent to it. I/O; the driver side's only pymodbus import.

A `ModbusLink` owns one `pymodbus.client.AsyncModbusTcpClient` for (host, port) and serialises every request
with an asyncio.Lock: a station's gateway answers one request at a time, whichever device (unit id) is asked.
The policy is ours, not pymodbus': its automatic reconnect and retries are switched off, each request has
`timeout_s`, a failed connect is retried only after an exponential backoff (`backoff_initial_s` doubling up to
`backoff_max_s`), and a timed-out or broken connection is closed so the next read starts on a fresh one (a
late answer can then never be taken for the next request's). Failures are raised as `ModbusReadError` with a
machine-readable `reason`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

__all__ = ["ModbusLink", "ModbusReadError"]

_log = logging.getLogger(__name__)

#: table → client method (HA's PB_CALL table: one row per table, no branches)
_READ = {
    "coil": "read_coils",
    "discrete_input": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}
#: Modbus exception codes (Modbus Application Protocol V1.1b3, section 7)
_EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                    4: "server device failure", 5: "acknowledge", 6: "server device busy",
                    8: "memory parity error", 10: "gateway path unavailable",
                    11: "gateway target device failed to respond"}


class _Disconnected(Exception):
    """The connection dropped while a request was waiting for its answer."""


class ModbusReadError(Exception):
    """A read that returned no data. `reason`: timeout | connection | exception_response | protocol.

    All are transient from the poller's point of view (a gap is recorded and the next cycle retries).
    """

    def __init__(self, reason: str, detail: str, *, host: str, port: int, unit_id: int, table: str,
                 address: int, count: int, exception_code: int | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.table = table
        self.address = address
        self.count = count
        self.exception_code = exception_code
        super().__init__(
            f"modbus {host}:{port} unit {unit_id}: {table} {address}×{count}: {reason}: {detail}")


class ModbusLink:
    """The single owner of one TCP endpoint's connection.

    Args:
        host, port: the endpoint.
        timeout_s: connect timeout and per-request response timeout.
        backoff_initial_s, backoff_max_s: wait after the first failed connect, doubled per failure up to
            the max.
        request_gap_s: pause after each request before the next (slow serial gateways).
        monotonic: clock for the backoff (injected for tests).
    """

    def __init__(self, host: str, port: int, *, timeout_s: float = 2.0, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 60.0, request_gap_s: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if timeout_s <= 0 or backoff_initial_s < 0 or backoff_max_s < backoff_initial_s or request_gap_s < 0:
            raise ValueError(f"ModbusLink {host}:{port}: expected timeout_s > 0 and "
                             f"0 <= backoff_initial_s <= backoff_max_s, request_gap_s >= 0")
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_gap_s = request_gap_s
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None
        self._failures = 0  # consecutive failed connects
        self._next_connect_at = 0.0
        self._lost = asyncio.Event()  # set when the current connection drops

    @property
    def endpoint(self) -> str:
        """host:port, as log lines write it."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """True while a TCP connection is open."""
        return self._client is not None and self._client.connected

    async def read(self, table: str, address: int, count: int, unit_id: int) -> list[int] | list[bool]:
        """Read `count` registers (or bits) of `table` from 0-based `address` of device `unit_id`."""
        if table not in _READ:
            raise ValueError(f"table: expected {'|'.join(_READ)}, got {table!r}")

        def error(reason: str, detail: str, code: int | None = None) -> ModbusReadError:
            return ModbusReadError(reason, detail, host=self.host, port=self.port, unit_id=unit_id,
                                   table=table, address=address, count=count, exception_code=code)

        async with self._lock:
            client = await self._ensure_connected(error)
            method = getattr(client, _READ[table])
            try:
                response = await self._race_disconnect(method(address, count=count, device_id=unit_id))
            except asyncio.CancelledError:
                self._drop()  # the answer may still arrive: never let it meet the next request
                raise
            except _Disconnected:
                self._drop()
                raise error("connection", "connection closed by the peer during the request") from None
            except TimeoutError:
                self._drop()
                raise error("timeout", f"no response within {self.timeout_s} s") from None
            except ModbusIOException as exc:
                self._drop()
                if "no response" in str(exc).lower():
                    raise error("timeout", f"no response within {self.timeout_s} s") from None
                raise error("protocol", str(exc)) from None
            except ConnectionException as exc:
                self._drop()
                raise error("connection", f"connection lost: {exc}") from None
            except ModbusException as exc:
                self._drop()
                raise error("protocol", str(exc)) from None
            finally:
                if self.request_gap_s:
                    await asyncio.sleep(self.request_gap_s)
            if response.isError():
                code = getattr(response, "exception_code", None)
                name = _EXCEPTION_NAMES.get(code or 0, "unknown exception")
                raise error("exception_response", f"exception code {code} ({name})", code)
            values = response.bits if table in ("coil", "discrete_input") else response.registers
            if len(values) < count:
                raise error("protocol", f"expected {count} value(s), got {len(values)}")
            return list(values[:count])

    async def _race_disconnect(self, request: Awaitable[Any]) -> Any:
        # pymodbus keeps waiting for an answer after the peer closed the connection: stop at the disconnect
        lost = self._lost
        task = asyncio.ensure_future(request)
        watch = asyncio.ensure_future(lost.wait())
        try:
            # guard only: pymodbus times the request out at timeout_s itself
            done, _ = await asyncio.wait({task, watch}, timeout=self.timeout_s * 2,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            watch.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ModbusException):
            await task
        if watch in done:
            raise _Disconnected
        raise TimeoutError

    async def _ensure_connected(self, error: Callable[..., ModbusReadError]) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        now = self._monotonic()
        if now < self._next_connect_at:
            wait_s = self._next_connect_at - now
            raise error("connection", f"not connected; next connect attempt in {wait_s:.1f} s")
        self._drop()
        # reconnect_delay=0 and retries=0: reconnect and retry policy are this class's, not pymodbus'
        lost = asyncio.Event()
        client = AsyncModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s, retries=0,
                                      reconnect_delay=0, name=f"aqnet {self.endpoint}",
                                      trace_connect=lambda up: None if up else lost.set())
        self._lost = lost
        if await client.connect() and client.connected:
            if self._failures:
                _log.info("modbus %s: connected after %d failed attempt(s)", self.endpoint, self._failures)
            self._failures = 0
            self._next_connect_at = 0.0
            self._client = client
            return client
        client.close()
        delay = min(self.backoff_initial_s * 2 ** self._failures, self.backoff_max_s)
        self._failures += 1
        self._next_connect_at = self._monotonic() + delay
        raise error("connection", f"cannot connect within {self.timeout_s} s (refused or unreachable); "
                                  f"next attempt in {delay:.1f} s")

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        """Close the connection (a later read reconnects)."""
        async with self._lock:
            self._drop()
