"""Stage 3, the store-and-forward spool: batches of Readings (and their dead letters) kept on local disk while
TimescaleDB is unreachable, replayed in order. I/O, except the record format.

Index: `storage.spool.spool` (`Spool`: append, peek, commit, limits, full-disk survival), `.codec` (the record
framing and batch codec, pure: no I/O), `.files` (the file primitives: appends, the cursor file, the reserve),
`.recover` (rebuilding the pending records at open).
"""

from __future__ import annotations

from storage.spool.codec import BatchCodec
from storage.spool.files import RESERVE_BYTES
from storage.spool.spool import Spool, SpooledBatch, SpoolError, SpoolFullError, SpoolStats

__all__ = ["RESERVE_BYTES", "BatchCodec", "Spool", "SpoolError", "SpoolFullError", "SpoolStats", "SpooledBatch"]
