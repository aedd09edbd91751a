"""What ends a link's request early: its connection dropping (`ConnectionLost`) or its deadline (`Deadline`).

Both cancel the task waiting for the answer, and both take that cancellation back (`cut_off`) so the link can
turn it into a connection failure (`Disconnected`) or a timeout; a cancellation from anywhere else stays a
cancellation. No timer is armed per request. Pure asyncio, no pymodbus: part of `sensors.modbus.link`, used by
`sensors.modbus.link.base`.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["ConnectionLost", "Deadline", "Disconnected"]

#: how early a deadline may fire (the event loop runs a timer up to its clock resolution early)
_EARLY_S = 1e-3


class Disconnected(Exception):
    """The connection dropped while a request was waiting for its answer."""


class ConnectionLost:
    """Set by a pymodbus client's connection callback when its connection drops; while a request is waiting
    on that connection (`watch`), setting it cancels the waiting task, which `cut_off` then recognises and
    takes back."""

    __slots__ = ("_cancelled", "_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Task[Any] | None = None
        self._cancelled = False

    def is_set(self) -> bool:
        """True once the connection has dropped."""
        return self._set

    def set(self) -> None:
        """The connection dropped: cancel the request waiting on it, if any."""
        self._set = True
        waiter = self._waiter
        # from the event loop's callback only: a client closing itself inside the request ends that request anyway
        if waiter is not None and not self._cancelled and waiter is not asyncio.current_task():
            self._cancelled = True
            waiter.cancel()

    def check(self) -> None:
        """Raise `Disconnected` when the connection has already dropped."""
        if self._set:
            raise Disconnected

    def watch(self, task: asyncio.Task[Any] | None) -> None:
        """`task` now waits for an answer on this connection (None: nobody does)."""
        self._waiter, self._cancelled = task, False

    def unwatch(self) -> None:
        """The request has ended; a cancellation that did not reach it is taken back."""
        self._waiter = None
        if self._cancelled:  # the request ended some other way before the cancellation reached it
            self.cut_off()

    def cut_off(self) -> bool:
        """True (once) when the current task's cancellation came from `set`: the cancellation is withdrawn."""
        if not self._cancelled:
            return False
        self._cancelled = False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True


class Deadline:
    """The deadline of the one request a link has in flight (or a last-resort guard over a client that times out
    by itself).

    Where `asyncio.timeout` arms and cancels a timer per request, the guard keeps at most one timer per link
    and moves it lazily: when it fires before the current request's deadline it is set again for that
    deadline, so back-to-back requests cost one timer per `span_s`, not one each. At the deadline the waiting
    task is cancelled, and `cut_off` turns that cancellation back into a timeout.
    """

    __slots__ = ("_base", "_deadline", "_fired", "_handle", "_loop", "_span_s", "_task")

    def __init__(self, span_s: float) -> None:
        self._span_s = span_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._deadline = 0.0
        self._fired = False
        self._base = 0  # the task's cancellation requests when the request began

    def start(self, task: asyncio.Task[Any]) -> None:
        """`task` begins a request: it is cancelled if the request is still running `span_s` from now."""
        loop = task.get_loop()
        if self._loop is not loop:  # a link reused on another event loop: the old loop's timer is gone
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            self._loop = loop
        self._task, self._fired, self._base = task, False, task.cancelling()
        self._deadline = loop.time() + self._span_s
        if self._handle is None:
            self._handle = loop.call_at(self._deadline, self._check)

    def stop(self) -> None:
        """The request has ended; a cancellation that did not reach it is taken back."""
        self._task = None
        if self._fired:
            self.cut_off()

    def cut_off(self) -> bool:
        """True (once) when the current task's cancellation came from the deadline alone: it is withdrawn."""
        if not self._fired:
            return False
        self._fired = False
        task = asyncio.current_task()
        return task is None or task.uncancel() <= self._base

    def _check(self) -> None:
        self._handle = None
        task, loop = self._task, self._loop
        if task is None or loop is None:
            return
        if self._deadline - loop.time() > _EARLY_S:  # an earlier request's deadline: wait for this one's
            self._handle = loop.call_at(self._deadline, self._check)
            return
        self._fired = True
        task.cancel()
