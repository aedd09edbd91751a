"""When a day's export gets a new version, and what its change note says. Pure: no I/O, no clock.

Contract: a day's content is identified by `content_digest` (sha256 over each data file's name and sha256, in name
order; the descriptor and its timestamps are left out, so re-writing the same data gives the same digest).
`plan_version(previous, digest)` says whether to publish and which version number: version 1 when the day was never
exported, the previous version + 1 when the digest differs, nothing when it is the same (a re-run is idempotent).
`change_note(...)` says why in words: the validation decisions taken since the last export that cover the day, the
readings that arrived since (late data), and how many rows each table gained or lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alerts.opendata.metadata import DayExport, ExportedFile

__all__ = ["Changes", "change_note", "content_digest", "plan_version"]


def content_digest(files: Sequence[ExportedFile]) -> str:
    """sha256 over the data files' names and hashes (name order): the identity of a day's content."""
    if not files:
        raise ValueError("content_digest: no file to digest")
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        h.update(f"{f.name}\0{f.hash}\n".encode())
    return f"sha256:{h.hexdigest()}"


def plan_version(previous: DayExport | None, digest: str) -> int | None:
    """The version to publish for content `digest`: 1 first, previous + 1 when changed, None when unchanged."""
    if previous is None:
        return 1
    if previous.digest == digest:
        return None
    return previous.version + 1


@dataclass(frozen=True, slots=True)
class Changes:
    """What happened to a day since its last export (storage.exports_store.changes_since)."""

    decisions: tuple[int, ...] = ()  #: validation_decisions ids taken since, covering the day
    late_readings: int = 0  #: readings of the day received since the last export
    rows_before: Mapping[str, int] = field(default_factory=dict)  #: table → rows in the previous version
    rows_after: Mapping[str, int] = field(default_factory=dict)  #: table → rows in this version

    def __post_init__(self) -> None:
        if self.late_readings < 0:
            raise ValueError(f"late_readings: expected >= 0, got {self.late_readings}")


def change_note(version: int, changes: Changes) -> str:
    """The change note of `version`: "first export", or what changed since the previous version."""
    if version == 1:
        return "first export"
    parts: list[str] = []
    if changes.decisions:
        ids = ", ".join(f"#{i}" for i in sorted(changes.decisions))
        word = "decision" if len(changes.decisions) == 1 else "decisions"
        parts.append(f"validation {word} {ids}")
    if changes.late_readings:
        parts.append(f"{changes.late_readings} late reading{'s' if changes.late_readings != 1 else ''}")
    why = " and ".join(parts) if parts else "recomputed averages"
    deltas = []
    for table in sorted(set(changes.rows_before) | set(changes.rows_after)):
        before, after = changes.rows_before.get(table, 0), changes.rows_after.get(table, 0)
        if before != after:
            deltas.append(f"{table} {before} → {after} rows")
    tail = f" ({'; '.join(deltas)})" if deltas else " (values, flags or validity changed; row counts unchanged)"
    return f"version {version}: content changed after {why}{tail}"
