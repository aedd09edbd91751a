"""Stage 2 — from RawReading to a durable batch: units, reference-condition correction, calibration, QC flags,
batching and the pipeline that hands batches to a `Sink` and acknowledges after durability. Pure, except the
pipeline (I/O glue). Imports only `sensors`.

Index: `ingest.reading` (Reading, QC), `ingest.units`, `ingest.normalise` (ConditionsBook), `ingest.calibration`,
`ingest.maintenance`, `ingest.plausibility`, `ingest.qc`, `ingest.batcher`, `ingest.letter` (dead letters),
`ingest.pipeline` (Pipeline, Sink).
"""

from __future__ import annotations

from ingest.batcher import Batcher
from ingest.calibration import Calibration, CalibrationBook, CalibrationError
from ingest.letter import Letter
from ingest.maintenance import MaintenanceBook, MaintenanceWindow
from ingest.normalise import ConditionsBook
from ingest.pipeline import Pipeline, PipelineObserver, Sink
from ingest.plausibility import TimeWindow
from ingest.reading import EXCLUDED, QC, Reading

__all__ = ["EXCLUDED", "QC", "Batcher", "Calibration", "CalibrationBook", "CalibrationError", "ConditionsBook",
           "Letter", "MaintenanceBook", "MaintenanceWindow", "Pipeline", "PipelineObserver", "Reading", "Sink",
           "TimeWindow"]
