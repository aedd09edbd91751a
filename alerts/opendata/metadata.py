"""What the open-data files say about themselves: who publishes them under which licence, and the record of one
exported day (its version, files and change note). Pure value types, validated on construction.

`Publication` carries the licence (an SPDX id and the licence's URL), the publisher's name and a contact e-mail;
the daemon builds it from the settings (`exports.*` today; the `open_data.*` section of the public API when both
are merged). `DayExport` is one published version of a day's export, as `open_data_exports` records it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = ["CSV", "JSON", "DayExport", "ExportedFile", "Publication"]

CSV = "text/csv"
JSON = "application/json"

_SPDX = re.compile(r"^[A-Za-z0-9.+-]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Publication:
    """Licence, publisher and contact served with the data (DCAT dct:license, dct:publisher, dcat:contactPoint;
    Data Package licenses, contributors)."""

    licence_id: str  #: SPDX identifier, e.g. CC-BY-4.0
    licence_url: str  #: the licence's text
    publisher: str  #: the publishing institution's name
    contact_email: str
    title: str = "aqnet air-quality network"  #: the catalogue's title (the network's name)
    licence_title: str = ""  #: the licence's name as people read it; default: the SPDX id

    def __post_init__(self) -> None:
        if not _SPDX.match(self.licence_id):
            raise ValueError(f"licence_id: expected an SPDX identifier such as CC-BY-4.0, got {self.licence_id!r}")
        if not self.licence_url.startswith(("https://", "http://")):
            raise ValueError(f"licence_url: expected an http(s) URL, got {self.licence_url!r}")
        if not self.publisher.strip():
            raise ValueError("publisher: expected the publishing institution's name, got an empty string")
        if not _EMAIL.match(self.contact_email):
            raise ValueError(f"contact_email: expected an e-mail address, got {self.contact_email!r}")
        if not self.title.strip():
            raise ValueError("title: expected the catalogue's title, got an empty string")


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file of a day's export."""

    name: str  #: file name inside the version's directory, e.g. hourly.csv
    resource: str  #: the Data Package resource name, e.g. hourly, hourly-json
    table: str  #: the table it holds (alerts.opendata.tables), or "datapackage"
    media_type: str  #: text/csv, application/json
    bytes: int
    hash: str  #: sha256:<hex>
    rows: int | None = None  #: data rows of a table file (None: not a table, or not counted)

    def __post_init__(self) -> None:
        if "/" in self.name or self.name.startswith("."):
            raise ValueError(f"file name: expected a plain name, got {self.name!r}")
        if self.bytes < 0:
            raise ValueError(f"file {self.name}: bytes expected >= 0, got {self.bytes}")
        if not _HASH.match(self.hash):
            raise ValueError(f"file {self.name}: hash expected sha256:<64 hex>, got {self.hash!r}")

    @property
    def format(self) -> str:
        """csv or json."""
        return "csv" if self.media_type == CSV else "json"


@dataclass(frozen=True, slots=True)
class DayExport:
    """One published version of a day's export: the local day [period_start, period_end)."""

    day: date
    version: int
    period_start: datetime
    period_end: datetime
    exported_at: datetime  #: when this version was written (dct:modified)
    first_exported_at: datetime  #: when version 1 was written (dct:issued)
    digest: str  #: sha256 over the data files (alerts.opendata.versions.content_digest)
    change_note: str
    directory: str  #: the version's directory relative to the export root, e.g. 2026/2026-03-02/v2
    files: tuple[ExportedFile, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"day {self.day}: version expected >= 1, got {self.version}")
        for t in (self.period_start, self.period_end, self.exported_at, self.first_exported_at):
            if t.tzinfo is None:
                raise ValueError(f"day {self.day}: times must be aware, got {t!r}")
        if not self.period_start < self.period_end:
            raise ValueError(f"day {self.day}: period_start {self.period_start} is not before {self.period_end}")
        if not _HASH.match(self.digest):
            raise ValueError(f"day {self.day}: digest expected sha256:<64 hex>, got {self.digest!r}")
        if self.directory.startswith("/") or ".." in self.directory.split("/"):
            raise ValueError(f"day {self.day}: directory must be relative, got {self.directory!r}")

    @property
    def semver(self) -> str:
        """The version as the Data Package's `version` (semantic versioning: N.0.0)."""
        return f"{self.version}.0.0"
