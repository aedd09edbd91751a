"""The storage stage's settings sections: `database`, `storage`, `dead_letters`, `registry`, `retention`. Pure.

Stage: storage. Composed by `aqnet.config.Settings` under the same keys."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sensors.settings import Section

__all__ = ["DatabaseSettings", "DeadLetterSettings", "RegistrySettings", "RetentionSettings", "StorageSettings"]


class DatabaseSettings(Section):
    url: str = Field(description="libpq URL of the TimescaleDB database.")
    pool_min_size: Annotated[int, Field(ge=1)] = Field(default=1, description="Connection pool minimum.")
    pool_max_size: Annotated[int, Field(ge=1)] = Field(default=4, description="Connection pool maximum.")
    pool_timeout_s: Annotated[float, Field(gt=0)] = Field(default=30.0, description=(
        "How long a request waits for a pooled connection before it fails (intake never waits on it: while the "
        "database is unreachable, batches go to the spool)."))
    migrate_on_start: bool = Field(default=True, description="Apply pending migrations when the daemon starts.")


class StorageSettings(Section):
    spool_dir: str = Field(default="var/spool", description=(
        "Store-and-forward spool: batches are written here (fsync'ed) while TimescaleDB is unreachable and "
        "replayed in order when it returns."))
    spool_max_bytes: Annotated[int, Field(gt=0)] = Field(default=1 << 30, description=(
        "Bound on the spool's files; when full — or when the filesystem is (ENOSPC) — MQTT messages are no longer "
        "acknowledged (the broker keeps them) until the spool stores batches again, by itself; the spool also "
        "keeps a 16 KiB `reserve` file so it can move its resume point on a full disk."))
    spool_near_full_fraction: Annotated[float, Field(gt=0, le=1)] = Field(default=0.8, description=(
        "From this share of the bound on, a warning is logged and `aqnet_storage_spool_near_full` is 1."))
    replay_retry_s: Annotated[float, Field(gt=0)] = Field(default=2.0, description=(
        "Pause between replay attempts while the database stays unreachable."))
    unreachable_after_s: Annotated[float, Field(gt=0)] = Field(default=10.0, description=(
        "A database write without an answer for this long counts as unreachable: the batch is spooled."))


class DeadLetterSettings(Section):
    max_rows: Annotated[int, Field(ge=1)] = Field(default=100_000, description=(
        "Bound of `dead_letters`: the scheduler deletes the oldest beyond it."))
    max_bytes: Annotated[int, Field(ge=1)] = Field(default=512 * 1024 * 1024, description=(
        "Bound of `dead_letters` in bytes (payloads, readings, errors): the oldest beyond it are deleted; each "
        "letter keeps at most 64 KiB of its payload, with the whole payload's size and SHA-256."))
    max_age_days: Annotated[float, Field(gt=0)] = Field(default=90.0, description=(
        "Letters received longer ago are deleted."))
    prune_every_s: Annotated[float, Field(gt=0)] = Field(default=60.0, description=(
        "How often the scheduler prunes `dead_letters`."))


class RegistrySettings(Section):
    """How the running daemon follows the sensor registry (storage.live_network)."""

    refresh_s: Annotated[float, Field(gt=0)] = Field(default=2.0, description=(
        "How often the daemon checks the registry's version; a change (device added, retired or swapped, sensor "
        "moved, calibration, maintenance window) is running within about this long, without a restart."))
    maintenance_lookback_s: Annotated[float, Field(ge=0)] = Field(default=7 * 24 * 3600.0, description=(
        "Maintenance windows that ended longer ago than this are not loaded (readings timed in them are no longer "
        "flagged on arrival)."))


class RetentionSettings(Section):
    """TimescaleDB housekeeping (storage.retention): whole chunks older than these are dropped. 0: keep forever."""

    measurements_days: Annotated[int, Field(ge=0)] = Field(default=0, description=(
        "Raw readings older than this are dropped, whole chunks at a time (`drop_chunks`); 0 keeps them."))
    averages_days: Annotated[int, Field(ge=0)] = Field(default=0, description="The same for averages.")
    indices_days: Annotated[int, Field(ge=0)] = Field(default=0, description="The same for indices.")
    compress_after_days: Annotated[int, Field(ge=0)] = Field(default=7, description=(
        "With the Timescale-licensed edition only: chunks older than this are compressed."))
    every_s: Annotated[float, Field(gt=0)] = Field(default=3600.0, description="How often the housekeeping job runs.")
