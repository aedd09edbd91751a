"""The `exports` settings section: where and when the daily open-data exports are written. Pure (pydantic model).

Stage: alerts (open data). Composed by `aqnet.config.Settings` under `exports`. The licence, publisher and contact
the exports carry are the `open_data` section's, shared with the public API: `publication(open_data)` gives the
`alerts.opendata.metadata.Publication` the export job serves with the data.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Protocol

from pydantic import Field, field_validator

from alerts.opendata.datapackage import Network
from alerts.opendata.metadata import Publication
from sensors.settings import Section

__all__ = ["ExportsSettings", "PublicationSource"]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class PublicationSource(Protocol):
    """Who publishes the data and under which licence (`aqnet.config.OpenDataSettings`, the `open_data` section,
    shared with the public API)."""

    licence_id: str
    licence_url: str
    publisher: str
    contact_email: str


class ExportsSettings(Section):
    """Daily open-data exports (alerts.opendata; docs/operators/open-data-exports.md)."""

    directory: str | None = Field(default=None, description=(
        "Directory the daily exports and the DCAT catalogue are written to (each file atomically); unset: no "
        "scheduled export (`aqnet export day --dir` still works)."))
    base_url: str | None = Field(default=None, description=(
        "Public URL the directory is served at, ending in `/` (the catalogue's download URLs); unset: `file://` "
        "URLs of the directory."))
    daily_at: str = Field(default="02:00", description=(
        "Local time (network time zone, HH:MM) the export job runs each day: it exports the day before and "
        "re-exports, with a new version and a change note, any of the `recheck_days` before it whose content a "
        "validation decision or late data changed. Leave the averaging job time to finish the day "
        "(`scheduler.settle_s`)."))
    recheck_days: Annotated[int, Field(ge=0, le=366)] = Field(default=30, description=(
        "Days before yesterday checked for changes at each run (validation decisions, late data)."))
    network_slug: str = Field(default="aqnet", pattern=r"^[a-z0-9][a-z0-9._-]*$", description=(
        "Lower-case name of the network in package names and dataset identifiers (e.g. rmcab)."))
    title: str = Field(default="aqnet air-quality network", min_length=1, description=(
        "The catalogue's title: the network's name as the public reads it."))
    @field_validator("daily_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"expected HH:MM (00:00 to 23:59), got {v!r}")
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith(("https://", "http://")) or not v.endswith("/")):
            raise ValueError(f"expected an http(s) URL ending in '/', got {v!r}")
        return v

    @property
    def run_at(self) -> time:
        """`daily_at` as a time of day."""
        hh, mm = self.daily_at.split(":")
        return time(int(hh), int(mm))

    def publication(self, source: PublicationSource) -> Publication:
        """The licence, publisher and contact (the `open_data` section: `source`) with this section's title;
        ValueError naming what is missing or malformed."""
        missing = [f"open_data.{n}" for n in ("licence_id", "licence_url", "publisher", "contact_email")
                   if not getattr(source, n)]
        if missing:
            raise ValueError(f"{', '.join(missing)} not set: the exports must say their licence, publisher and "
                             "contact")
        return Publication(source.licence_id, source.licence_url, source.publisher, source.contact_email,
                           title=self.title)

    def network(self, timezone: str) -> Network:
        """The network as the exports describe it."""
        return Network(self.network_slug, timezone)
