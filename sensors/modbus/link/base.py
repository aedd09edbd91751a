"""The request path every Modbus link shares (`ModbusLinkBase`) and its `ModbusReadError`. I/O (pymodbus).

One link object owns one physical link, whichever devices (unit ids) sit behind it, and serialises every
request with an asyncio.Lock: a gateway or an RS-485 bus carries one request and its answer at a time.
The policy is ours, not pymodbus': its automatic reconnect and retries are switched off, each request has
`timeout_s`, a failed connect is retried only after an exponential backoff (`backoff_initial_s` doubling up to
`backoff_max_s`), and after every request the link keeps quiet for `request_gap_s` before the next frame.

A timeout costs that request its timeout and nothing more. On TCP the connection is closed, so a late answer can
never be taken for the next request's (the next read reconnects); an RTU link (`sensors.modbus.link.rtu`) keeps
its port open and discards the late bytes instead. Failures are raised as `ModbusReadError` with a
machine-readable `reason`. Part of `sensors.modbus.link`, whose index lists the links.

A request runs in the reading task itself, with no timer of its own: a dropped connection (`ConnectionLost`)
and the deadline (`Deadline`, one lazily moved timer per link) cancel the waiting task, and the cancellation is
taken back as a connection failure or a timeout. With the pymodbus clients aqnet creates, the request goes
through `sensors.modbus.link.exchange` (no wait_for of pymodbus' per request) and the deadline is `timeout_s`;
with any other client, through its public read method, which times out by itself, and the deadline is twice
that, a guard only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from sensors.modbus.link.exchange import direct_exchange, exchange
from sensors.modbus.link.watch import ConnectionLost, Deadline, Disconnected

__all__ = ["ModbusLinkBase", "ModbusReadError"]

_log = logging.getLogger("sensors.modbus.link")  # every link logs under one name, as before the package

#: table → (client method, function code) (HA's PB_CALL table: one row per table, no branches)
_READ = {
    "coil": ("read_coils", 1),
    "discrete_input": ("read_discrete_inputs", 2),
    "holding": ("read_holding_registers", 3),
    "input": ("read_input_registers", 4),
}
#: Modbus exception codes (Modbus Application Protocol V1.1b3, section 7)
_EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                    4: "server device failure", 5: "acknowledge", 6: "server device busy",
                    8: "memory parity error", 10: "gateway path unavailable",
                    11: "gateway target device failed to respond"}
#: function codes 1 and 2 read bits (coils, discrete inputs); 3 and 4 read registers
_LAST_BIT_FUNCTION = 2


class ModbusReadError(Exception):
    """A read that returned no data. `reason`: timeout | connection | exception_response | protocol.

    All are transient from the poller's point of view (a gap is recorded and the next cycle retries).
    `host`/`port` name a TCP endpoint; on a serial link `host` is the port's path and `port` 0. `endpoint`
    is how log lines write the link (host:port, or the path).
    """

    def __init__(self, reason: str, detail: str, *, host: str, port: int, unit_id: int, table: str,
                 address: int, count: int, exception_code: int | None = None,
                 endpoint: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.host = host
        self.port = port
        self.endpoint = endpoint or f"{host}:{port}"
        self.unit_id = unit_id
        self.table = table
        self.address = address
        self.count = count
        self.exception_code = exception_code
        super().__init__(
            f"modbus {self.endpoint} unit {unit_id}: {table} {address}×{count}: {reason}: {detail}")


class ModbusLinkBase:
    """The single owner of one physical link: lock, pacing, timeouts, backoff and reconnect.

    Args:
        timeout_s: connect timeout and per-request response timeout.
        backoff_initial_s, backoff_max_s: wait after the first failed connect, doubled per failure up to
            the max.
        request_gap_s: pause after each request before the next frame.
        monotonic: clock for the backoff (injected for tests).
    """

    #: the Device.protocol this link carries
    protocol: ClassVar[str] = ""
    host: str
    port: int

    def __init__(self, *, timeout_s: float = 2.0, backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 request_gap_s: float = 0.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if timeout_s <= 0 or backoff_initial_s < 0 or backoff_max_s < backoff_initial_s or request_gap_s < 0:
            raise ValueError(f"{type(self).__name__} {self.endpoint}: expected timeout_s > 0 and "
                             f"0 <= backoff_initial_s <= backoff_max_s, request_gap_s >= 0")
        self.timeout_s = timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_gap_s = request_gap_s
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._client: Any = None
        self._failures = 0  # consecutive failed connects
        self._next_connect_at = 0.0
        self._lost = ConnectionLost()  # set when the current connection drops
        self._guard = Deadline(timeout_s * 2)  # guard only: pymodbus' read methods time out at timeout_s
        self._direct_guard = Deadline(timeout_s)  # the deadline of a request sent by `exchange`
        self._direct = False  # the current client's requests go through `exchange`
        self._stale = False  # bytes of an unanswered request may still arrive: discard them before the next
        self.drain_s = 0.0  # RTU links: how long to let a late answer arrive after a timeout before discarding

    @property
    def endpoint(self) -> str:
        """host:port (or the serial port's path), as log lines write it."""
        return f"{self.host}:{self.port}"

    @property
    def direct(self) -> bool:
        """True while requests go through `sensors.modbus.link.exchange` (the connected pymodbus client has the
        transaction manager it drives), False when they go through pymodbus' public read methods."""
        return self._client is not None and self._direct

    @property
    def connected(self) -> bool:
        """True while the connection (or the serial port) is open."""
        return self._client is not None and bool(self._client.connected)

    def _new_client(self, lost: ConnectionLost) -> Any:
        """A fresh pymodbus client for this link; `lost` is set when its connection drops."""
        raise NotImplementedError

    def _on_timeout(self) -> None:
        """After a request timed out (TCP: drop the connection, so a late answer cannot meet the next)."""
        self._drop()

    def _error(self, reason: str, detail: str, table: str, address: int, count: int, unit_id: int,
               code: int | None = None) -> ModbusReadError:
        return ModbusReadError(reason, detail, host=self.host, port=self.port, unit_id=unit_id, table=table,
                               address=address, count=count, exception_code=code, endpoint=self.endpoint)

    async def read(self, table: str, address: int, count: int, unit_id: int) -> list[int] | list[bool]:
        """Read `count` registers (or bits) of `table` from 0-based `address` of device `unit_id`."""
        call = _READ.get(table)
        if call is None:
            raise ValueError(f"table: expected {'|'.join(_READ)}, got {table!r}")
        lock = self._lock
        await lock.acquire()
        try:
            client = self._client
            if client is None or not client.connected:
                client = await self._ensure_connected(table, address, count, unit_id)
            method_name, function_code = call
            # pymodbus keeps waiting for an answer after the peer closed the connection: stop at the
            # disconnect. The request runs in the reading task itself (no extra task, no asyncio.wait, no
            # timer of its own): a disconnect cancels that task through `ConnectionLost`, the guard's deadline
            # through `Deadline`, and the cancellation is taken back here as Disconnected or a timeout.
            lost, direct = self._lost, self._direct
            guard = self._direct_guard if direct else self._guard
            try:
                lost.check()
                task = asyncio.current_task()
                assert task is not None
                lost.watch(task)
                guard.start(task)
                try:
                    if direct:  # no wait_for of pymodbus': the guard is the request's timeout
                        response = await exchange(client, table, address, count, unit_id)
                    else:
                        response = await getattr(client, method_name)(address, count=count, device_id=unit_id)
                except asyncio.CancelledError:
                    if lost.cut_off():
                        raise Disconnected from None
                    if guard.cut_off():
                        raise TimeoutError from None
                    raise
                finally:
                    lost.unwatch()
                    guard.stop()
            except asyncio.CancelledError:
                self._drop()  # the answer may still arrive: never let it meet the next request
                raise
            except Disconnected:
                self._drop()
                raise self._error("connection", "connection closed by the peer during the request", table,
                                  address, count, unit_id) from None
            except TimeoutError:
                self._on_timeout()
                raise self._error("timeout", f"no response within {self.timeout_s} s", table, address, count,
                                  unit_id) from None
            except ModbusIOException as exc:
                if "no response" in str(exc).lower():
                    self._on_timeout()
                    raise self._error("timeout", f"no response within {self.timeout_s} s", table, address,
                                      count, unit_id) from None
                self._drop()
                raise self._error("protocol", str(exc), table, address, count, unit_id) from None
            except ConnectionException as exc:
                self._drop()
                raise self._error("connection", f"connection lost: {exc}", table, address, count,
                                  unit_id) from None
            except ModbusException as exc:
                self._drop()
                raise self._error("protocol", str(exc), table, address, count, unit_id) from None
            finally:
                stale = self._stale
                pause = max(self.request_gap_s, self.drain_s) if stale else self.request_gap_s
                if pause:
                    await asyncio.sleep(pause)
                if self._stale:
                    self._discard_input()
            if response.isError():
                code = getattr(response, "exception_code", None)
                name = _EXCEPTION_NAMES.get(code or 0, "unknown exception")
                raise self._error("exception_response", f"exception code {code} ({name})", table, address,
                                  count, unit_id, code)
            # an RTU frame carries no transaction id: an answer to another request must not pass for this one
            if response.function_code != function_code:
                self._drop()  # reopening flushes whatever else is queued on the line
                raise self._error("protocol", f"answer has function code {response.function_code}, "
                                              f"expected {function_code}", table, address, count, unit_id)
            values = response.bits if function_code <= _LAST_BIT_FUNCTION else response.registers
            if len(values) < count or (function_code > _LAST_BIT_FUNCTION and len(values) != count):
                self._drop()  # bits come padded to a byte
                raise self._error("protocol", f"expected {count} value(s), got {len(values)}", table, address,
                                  count, unit_id)
            return list(values[:count])
        finally:
            lock.release()

    async def _ensure_connected(self, table: str, address: int, count: int, unit_id: int) -> Any:
        if self._client is not None and self._client.connected:
            return self._client
        now = self._monotonic()
        if now < self._next_connect_at:
            wait_s = self._next_connect_at - now
            raise self._error("connection", f"not connected; next connect attempt in {wait_s:.1f} s", table,
                              address, count, unit_id)
        self._drop()
        lost = ConnectionLost()
        client = self._new_client(lost)
        self._lost = lost
        if await client.connect() and client.connected:
            if self._failures:
                _log.info("modbus %s: connected after %d failed attempt(s)", self.endpoint, self._failures)
            self._failures = 0
            self._next_connect_at = 0.0
            self._client = client
            self._direct = direct_exchange(client)
            return client
        client.close()
        delay = min(self.backoff_initial_s * 2 ** self._failures, self.backoff_max_s)
        self._failures += 1
        self._next_connect_at = self._monotonic() + delay
        raise self._error("connection", f"cannot connect within {self.timeout_s} s ({self._unreachable}); "
                                        f"next attempt in {delay:.1f} s", table, address, count, unit_id)

    _unreachable: ClassVar[str] = "refused or unreachable"

    def _discard_input(self) -> None:
        # pymodbus internals (3.16): the protocol's receive buffer, and pyserial's driver queue when serial
        self._stale = False
        if self._client is None:
            return
        ctx = self._client.ctx
        ctx.recv_buffer = b""
        port = getattr(ctx.transport, "sync_serial", None)
        if port is not None:
            with contextlib.suppress(Exception):  # a port closing under us: the next read reopens it
                port.reset_input_buffer()

    def _drop(self) -> None:
        self._stale = False
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        """Close the connection or port (a later read reopens it)."""
        async with self._lock:
            self._drop()
