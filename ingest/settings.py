"""The ingest stage's settings section: `ingest`. Pure (ingest).

Batching, queueing, device-time checks and the calibrations' refresh; composed by `aqnet.config.Settings` under the
same key."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sensors.settings import Section

__all__ = ["IngestSettings"]


class IngestSettings(Section):
    batch_max: Annotated[int, Field(ge=1)] = Field(default=200, description=(
        "Submissions (messages or station reads) per database batch."))
    batch_max_age_s: Annotated[float, Field(gt=0)] = Field(default=1.0, description=(
        "A batch is written when its oldest submission is this old (at the latest: see `write_when_idle`)."))
    queue_max: Annotated[int, Field(ge=1)] = Field(default=10_000, description=(
        "Submissions waiting before drivers are slowed down."))
    writes_in_flight: Annotated[int, Field(ge=1, le=32)] = Field(default=2, description=(
        "Batches written to the database at once, each on a connection of its own (the writer's pool, beside "
        "`database.pool_max_size`); acknowledgements still go out after durability and in the order messages "
        "arrived; 1 writes one batch at a time."))
    write_when_idle: bool = Field(default=True, description=(
        "Write the pending batch as soon as no batch is being written and no submission waits, instead of waiting "
        "for `batch_max` or `batch_max_age_s`: at low rates each message is stored at once, under load batches "
        "grow while the previous one is written (group commit). false: batches wait for size or age (fewer, "
        "larger transactions: less wear on an SD card)."))
    batch_min_age_s: Annotated[float, Field(ge=0)] = Field(default=0.05, description=(
        "With `write_when_idle`, a pending batch is written once its oldest submission is at least this old: a "
        "few more messages per transaction (fewer commits, less CPU) for as many milliseconds of latency; 0 writes "
        "at once."))
    clock_skew_tolerance_s: Annotated[float, Field(ge=0)] = Field(default=300.0, description=(
        "A device time further than this ahead of its receipt is flagged `CLOCK_SKEW` (excluded)."))
    device_time_past_days: Annotated[float, Field(gt=0)] = Field(default=30.0, description=(
        "A device time further back than this is refused: dead letter `device_time` (raise it to backfill older "
        "history)."))
    device_time_future_s: Annotated[float, Field(ge=0)] = Field(default=86_400.0, description=(
        "A device time further ahead than this is refused: dead letter `device_time` (within it: `CLOCK_SKEW`)."))
    processes: Annotated[int, Field(ge=1, le=64)] = Field(default=1, description=(
        "Intake processes: 1 runs the whole daemon in one process (small installations); N > 1 adds N − 1 intake "
        "processes that share the MQTT messages (shared subscriptions, `mqtt.share_group`) and the Modbus "
        "stations (by link), each with its own pipeline, database pool and spool — to use N cores. See "
        "docs/operators/processes.md."))
    calibration_refresh_s: Annotated[float, Field(gt=0)] = Field(default=300.0, description=(
        "How often the daemon reloads the `calibrations` table."))
