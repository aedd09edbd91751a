"""The pipeline's write window: batches written side by side, acknowledged in order. I/O glue (asyncio tasks).

`WriteWindow(size)` runs each batch's `write` in a task of its own, and:

- at most `size` batches are between the start of their write and the end of their acknowledgement: `start` waits
  for a free slot, and the pipeline takes no more input meanwhile (`free`): the backpressure reaches its queue,
  then the drivers, as with one batch at a time;
- a batch's `ack` runs once its own write returned (durable) **and** every batch started before it was
  acknowledged: acknowledgements go out in the order the batches were started, which is the order the pipeline
  accepted their messages. MQTT requires it: a receiver "MUST send PUBACK packets in the order in which the
  corresponding PUBLISH packets were received" (MQTT 3.1.1 §4.6, MQTT 5.0 §4.6, message ordering);
- a batch that shares a key with an earlier batch whose write is still running waits for that write before its own
  starts: the first accepted of two writes of one key is the first stored (first write wins in acceptance order),
  and a redelivered message finds the receipt its first delivery committed (storage.writer, storage.deliveries).
  Keys are computed only when an earlier write is still running (`keys_of`, at most once per batch);
- a batch whose write or acknowledgement was cancelled (`cancel()`, the pipeline being stopped) is never
  acknowledged, and neither is any batch started after it: a later acknowledgement would overtake it.

With `size` 1 each batch is written and acknowledged before the next starts. `write` retries by itself (the
pipeline's backoff); an exception escaping `write` or `ack` is a bug: it is kept and re-raised by `raise_failure`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

__all__ = ["WriteWindow"]


@dataclass(eq=False, slots=True)
class _Batch:
    keys_of: Callable[[], AbstractSet[object]]
    written: asyncio.Event = field(default_factory=asyncio.Event)  #: its write returned or was cancelled
    finished: asyncio.Event = field(default_factory=asyncio.Event)  #: acknowledged, or never will be
    acked: bool = False
    _keys: AbstractSet[object] | None = None

    def keys(self) -> AbstractSet[object]:
        if self._keys is None:
            self._keys = self.keys_of()
        return self._keys


class WriteWindow:
    """Up to `size` batches written at once and acknowledged in start order (see the module docstring)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"WriteWindow: size must be >= 1, got {size}")
        self._free = asyncio.Semaphore(size)
        self._writing: list[_Batch] = []  #: batches whose write has not returned, in start order
        self._last: _Batch | None = None  #: the batch started last (the next one acknowledges after it)
        self._tasks: dict[asyncio.Task[None], _Batch] = {}
        self._failure: BaseException | None = None
        #: set while no batch is in flight (the writer would idle): the pipeline's write-when-idle waits on it
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def in_flight(self) -> int:
        """Batches started and not yet finished (acknowledged or abandoned)."""
        return len(self._tasks)

    async def free(self) -> None:
        """Wait until a batch could start without waiting (the caller stops taking input while none can)."""
        async with self._free:
            pass

    async def start(self, write: Callable[[], Awaitable[object]], ack: Callable[[], None],
                    keys_of: Callable[[], AbstractSet[object]]) -> None:
        """Wait for a free slot, then start writing a batch; returns before the write ends."""
        await self._free.acquire()
        batch = _Batch(keys_of)
        earlier, previous = list(self._writing), self._last
        self._writing.append(batch)
        self._last = batch
        task = asyncio.create_task(self._run(batch, earlier, previous, write, ack))
        self._tasks[task] = batch
        self.idle.clear()
        task.add_done_callback(self._done)

    async def drain(self) -> None:
        """Wait until every started batch is finished (acknowledged, or abandoned after `cancel`)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def cancel(self) -> None:
        """Cancel every started batch: those not yet acknowledged never will be, nor any started later."""
        for task in self._tasks:
            task.cancel()

    def raise_failure(self) -> None:
        """Re-raise the first exception that escaped a batch's write or acknowledgement, if any."""
        if self._failure is not None:
            raise self._failure

    async def _run(self, batch: _Batch, earlier: list[_Batch], previous: _Batch | None,
                   write: Callable[[], Awaitable[object]], ack: Callable[[], None]) -> None:
        running = [b for b in earlier if not b.written.is_set()]
        if running:
            keys = batch.keys()
            for other in running:
                if not other.written.is_set() and not keys.isdisjoint(other.keys()):
                    await other.written.wait()
        try:
            await write()
        finally:
            self._written(batch)
        if previous is not None:
            await previous.finished.wait()
            if not previous.acked:
                return  # an earlier batch was abandoned: acknowledging this one would overtake it
        ack()
        batch.acked = True

    def _written(self, batch: _Batch) -> None:
        if not batch.written.is_set():
            batch.written.set()
            self._writing.remove(batch)

    def _done(self, task: asyncio.Task[None]) -> None:
        # here, not in a `finally` of `_run`: a task cancelled before its first step never runs its body
        batch = self._tasks.pop(task)
        self._written(batch)
        batch.finished.set()
        self._free.release()
        if not self._tasks:
            self.idle.set()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
