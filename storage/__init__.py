"""Stage 3 — TimescaleDB: versioned migrations, the measurement row format, the COPY writer (a `Sink`), the
registry upsert and dead letters.

Index: `storage.migrate`, `storage.rows`, `storage.writer` (TimescaleWriter), `storage.registry`,
`storage.deadletter`. Imports `ingest` and `sensors`.
"""
