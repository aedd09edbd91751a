"""Size-or-age batching (ingest stage). Pure: no timers inside; the caller passes `now` to every call.

Contract: items come out in the order they went in, each exactly once. An item counts `size` (1 unless `add` is told
otherwise: the pipeline adds groups of submissions, each counting its messages). A batch is released by `add` when it
reaches `max_size`, by `due(now)` once its oldest item has waited `max_age_s` seconds, or by `drain()`
(shutdown flush). `deadline()` tells the shell when to call `due` next, so it can sleep exactly that long.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Generic, TypeVar

__all__ = ["Batcher"]

T = TypeVar("T")


class Batcher(Generic[T]):
    """Batches of at most `max_size` items, each released `max_age_s` after its first item at the latest."""

    def __init__(self, max_size: int, max_age_s: float) -> None:
        if max_size < 1:
            raise ValueError(f"Batcher: max_size must be >= 1, got {max_size}")
        if not (math.isfinite(max_age_s) and max_age_s >= 0):
            raise ValueError(f"Batcher: max_age_s must be a finite number >= 0, got {max_age_s}")
        self.max_size = max_size
        self.max_age_s = max_age_s
        self._items: list[T] = []
        self._size = 0  #: the pending items' sizes, summed
        self._oldest: datetime | None = None  #: when the first pending item was added

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        """The pending items' sizes, summed."""
        return self._size

    def add(self, item: T, now: datetime, size: int = 1) -> list[T] | None:
        """Append `item`, counting `size`; return the full batch when it reaches `max_size`, else None."""
        if size < 1:
            raise ValueError(f"Batcher: an item's size must be >= 1, got {size}")
        if self._oldest is None:
            self._oldest = now
        self._items.append(item)
        self._size += size
        if self._size >= self.max_size:
            return self.drain()
        return None

    def deadline(self) -> datetime | None:
        """When the pending batch becomes due, or None when nothing is pending."""
        if self._oldest is None:
            return None
        return self._oldest + timedelta(seconds=self.max_age_s)

    def due(self, now: datetime) -> list[T] | None:
        """The pending batch if its oldest item has waited `max_age_s` or more by `now`, else None."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return None
        return self.drain()

    def drain(self) -> list[T]:
        """Release everything pending (possibly an empty list)."""
        batch, self._items, self._oldest, self._size = self._items, [], None, 0
        return batch
