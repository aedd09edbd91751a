"""Receipts of receive-time messages: a redelivered message keeps the time it was first stored with. Pure + I/O.

See `sensors.delivery` for why and for the identities. In the writer's transaction, before the batch is staged:

1. `load` reads the stored receipts (`delivery_receipts`: identity → time) of the batch's identities;
2. `settle` (pure) walks the batch in order: a reading whose identity has a receipt — stored, or from an earlier
   reading of the same batch — at most `reuse_s` from the reading's own time takes the receipt's time
   (it is that message again, and the measurement key then makes it a duplicate); any other reading keeps its time
   and its time becomes the identity's receipt;
3. `save` upserts the receipts the batch settled on.

The receipts commit or roll back with the readings, so a receipt exists exactly when its readings are stored (or
were refused as conflicts). Receipts are kept `retention.delivery_receipts_days` (storage.retention), which must
cover the broker's session expiry: a redelivery after that finds no receipt and is stored as new.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncCursor

from ingest.reading import Reading

__all__ = ["load", "save", "settle"]


def settle(batch: Sequence[Reading], stored: Mapping[str, datetime]) -> tuple[list[Reading], dict[str, datetime]]:
    """The batch with each redelivered reading at its first delivery's time, and the receipts to keep
    (identity → time) for every identity in the batch. Readings without a delivery pass unchanged."""
    receipts: dict[str, datetime] = {}
    out: list[Reading] = []
    for reading in batch:
        delivery = reading.delivery
        if delivery is None:
            out.append(reading)
            continue
        known = receipts.get(delivery.key, stored.get(delivery.key))
        kept = reading
        if known is not None and known != reading.time and \
                abs((reading.time - known).total_seconds()) <= delivery.reuse_s:
            kept = dataclasses.replace(reading, time=known)
        receipts[delivery.key] = kept.time
        out.append(kept)
    return out, receipts


async def load(cur: AsyncCursor[Any], batch: Sequence[Reading]) -> dict[str, datetime]:
    """Stored receipts of the identities in `batch` that may be reused (a first MQTT delivery never is)."""
    keys = sorted({r.delivery.key for r in batch if r.delivery is not None and r.delivery.reuse_s > 0})
    if not keys:
        return {}
    await cur.execute("SELECT key, time FROM delivery_receipts WHERE key = ANY(%s)", (keys,))
    return dict(await cur.fetchall())


async def save(cur: AsyncCursor[Any], receipts: Mapping[str, datetime]) -> None:
    """Upsert receipts (identity → time); `recorded_at` is the transaction's time, for retention."""
    if not receipts:
        return
    keys = list(receipts)
    await cur.execute(
        "INSERT INTO delivery_receipts (key, time) SELECT * FROM unnest(%s::text[], %s::timestamptz[]) "
        "ON CONFLICT (key) DO UPDATE SET time = EXCLUDED.time, recorded_at = now()",
        (keys, [receipts[k] for k in keys]))
