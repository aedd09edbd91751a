"""Stage 3 — TimescaleDB: versioned migrations, the measurement row format, the COPY writer (a `Sink`), the
store-and-forward spool, the sensor registry, dead letters and their replay, reprocessing, retention and API
tokens. I/O, except the row format (`storage.rows`), the spool's codec and the registry's models. Imports `ingest`
and `sensors`.

Index: `storage.migrate`, `storage.rows`, `storage.writer` (TimescaleWriter), `storage.forwarding`
(ForwardingSink), `storage.spool` and `storage.registry` (packages with their own indexes), `storage.deadletter`,
`storage.replay` (dead letters replayed), `storage.reprocess`, `storage.retention`, `storage.tokens`,
`storage.device_credentials`, `storage.deliveries`.
"""

from __future__ import annotations

from storage.deadletter import DeadLetter
from storage.forwarding import ForwardingSink, Spooled
from storage.migrate import MigrationError
from storage.registry import RegistryError
from storage.replay import Replayer
from storage.reprocess import ReprocessError
from storage.retention import Policy
from storage.rows import MEASUREMENT_COLUMNS, reading_row, row_reading
from storage.spool import Spool, SpoolFullError
from storage.tokens import ApiToken, TokenError
from storage.writer import TimescaleWriter, WriteResult

__all__ = ["MEASUREMENT_COLUMNS", "ApiToken", "DeadLetter", "ForwardingSink", "MigrationError", "Policy",
           "RegistryError", "Replayer", "ReprocessError", "Spool", "SpoolFullError", "Spooled", "TimescaleWriter",
           "TokenError", "WriteResult", "reading_row", "row_reading"]
