"""Stage 2 — from RawReading to a durable batch: units, reference-condition correction, QC flags, batching and
the pipeline that hands batches to a `Sink` and acknowledges after durability.

Index: `ingest.reading` (Reading, QC), `ingest.units`, `ingest.normalise`, `ingest.qc`, `ingest.batcher`,
`ingest.pipeline` (Pipeline, Sink). Imports only `sensors`.
"""
