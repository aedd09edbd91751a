"""The daily open-data export: write a day's tables (CSV and JSON), its `datapackage.json` and the DCAT catalogue
into the export directory, each version in a directory of its own published by one atomic rename, and record it.
I/O glue (psycopg 3 sync, files) over the pure `tables`, `datapackage`, `dcat` and `versions`.

Layout under the export root: `catalogue.jsonld` (DCAT, rewritten atomically: temporary file, fsync, rename) and
`<yyyy>/<yyyy-mm-dd>/v<N>/` per version with `sensors`, `variables`, `measurements`, `hourly`, `daily` as `.csv`
and `.json`, and `datapackage.json`. A version's directory is filled under a temporary name and renamed into place,
so a reader never sees half a version; then the version is recorded in `open_data_exports`. A day's tables are
read in one read-only, repeatable-read transaction, so they agree with each other.

Contract of `export_day(conn, target, day, now)`: nothing is written when the day was exported and nothing touched
it since (no validation decision covering it with an id above the one recorded with the last version, no reading
of it received and no average of it recomputed after the last export's `now`) unless `force`; otherwise the day
is rendered and published as a new version only when its content digest differs from the last version's
(`alerts.opendata.versions`), with a change note saying why. `run_daily`
exports yesterday (the network's local day before `now`) and re-checks the `recheck_days` before it that were
exported; `write_catalogue` lists the latest version of every exported day.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import Connection

from alerts.averaging.averages import local_day_bounds
from alerts.opendata.datapackage import Network, VersionNote, datapackage, resource_name
from alerts.opendata.dcat import BoundingBox, catalogue
from alerts.opendata.metadata import CSV, JSON, DayExport, ExportedFile, Publication
from alerts.opendata.tables import (
    DAILY,
    HOURLY,
    MEASUREMENTS,
    SENSORS,
    VARIABLES_TABLE,
    Table,
    cells_of,
    flag_names,
    header,
    typed_values,
)
from alerts.opendata.versions import Changes, change_note, content_digest, plan_version
from sensors.variables import VARIABLES
from storage import exports_store as store

__all__ = ["CATALOGUE", "ExportResult", "ExportTarget", "export_day", "run_daily", "write_catalogue"]

log = logging.getLogger(__name__)

CATALOGUE = "catalogue.jsonld"


@dataclass(frozen=True, slots=True)
class ExportTarget:
    """Where and as whom the exports are written."""

    root: Path
    publication: Publication
    network: Network
    base_url: str | None = None  #: public URL of `root`, ending in '/'; None: file:// URLs

    @property
    def tz(self) -> ZoneInfo:
        """The network's time zone."""
        return ZoneInfo(self.network.timezone)

    @property
    def url(self) -> str:
        """The URL the catalogue's links start with."""
        return self.base_url or self.root.resolve().as_uri() + "/"


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What one day's export did: published `version` (None: unchanged, nothing written) and why."""

    day: date
    version: int | None
    directory: Path | None
    note: str


def _day_export(row: Mapping[str, Any]) -> DayExport:
    files = tuple(ExportedFile(f["name"], f["resource"], f["table"], f["media_type"], int(f["bytes"]), f["hash"],
                               f.get("rows")) for f in row["files"])
    return DayExport(row["day"], int(row["version"]), row["period_start"], row["period_end"], row["exported_at"],
                     row["first_exported_at"], row["digest"], row["change_note"], row["directory"], files)


def _file_record(f: ExportedFile) -> dict[str, Any]:
    return {"name": f.name, "resource": f.resource, "table": f.table, "media_type": f.media_type, "bytes": f.bytes,
            "hash": f.hash, "rows": f.rows}


def _hash(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        size = fh.tell()
    return size, f"sha256:{h.hexdigest()}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_table(directory: Path, table: Table, rows: Iterable[Mapping[str, Any]], tz: ZoneInfo
                 ) -> tuple[list[ExportedFile], int]:
    """Write `rows` as `<table>.csv` and `<table>.json` (one pass); return the two files and the row count."""
    csv_path, json_path = directory / f"{table.name}.csv", directory / f"{table.name}.json"
    n = 0
    with csv_path.open("w", encoding="utf-8", newline="") as c, json_path.open("w", encoding="utf-8") as j:
        writer = csv.writer(c, lineterminator="\r\n")
        writer.writerow(header(table))
        j.write("[")
        names = table.field_names
        for row in rows:
            values = typed_values(table, row, tz)  # checked and converted once for both files
            writer.writerow(cells_of(values))
            j.write(("\n" if n == 0 else ",\n") + json.dumps(dict(zip(names, values, strict=True)),
                                                              ensure_ascii=False, allow_nan=False))
            n += 1
        j.write("\n]\n")
    out = []
    for path, fmt, media in ((csv_path, "csv", CSV), (json_path, "json", JSON)):
        _fsync(path)
        size, digest = _hash(path)
        out.append(ExportedFile(path.name, resource_name(table, fmt), table.name, media, size, digest, n))
    return out, n


def _measurement_rows(conn: Connection[Any], start: datetime, end: datetime) -> Iterable[dict[str, Any]]:
    for row in store.stream_measurements(conn, start, end):
        row["qc_flag_names"] = flag_names(int(row["qc_flags"]))
        yield row


def _render(conn: Connection[Any], directory: Path, start: datetime, end: datetime, tz: ZoneInfo
            ) -> tuple[list[ExportedFile], dict[str, int]]:
    variables = [{"code": v.code, "name": v.name, "unit": v.unit, "kind": str(v.kind)} for v in VARIABLES.values()]
    sources: list[tuple[Table, Iterable[Mapping[str, Any]]]] = [
        (SENSORS, store.public_sensors(conn)),
        (VARIABLES_TABLE, variables),
        (MEASUREMENTS, _measurement_rows(conn, start, end)),
        (HOURLY, store.averages_rows(conn, "1h", start, end)),
        (DAILY, store.averages_rows(conn, "day", start, end)),
    ]
    files: list[ExportedFile] = []
    counts: dict[str, int] = {}
    for table, rows in sources:
        written, counts[table.name] = _write_table(directory, table, rows, tz)
        files += written
    return files, counts


def _atomic_json(path: Path, doc: Any) -> None:
    """Write `doc` to `path` atomically: a temporary file beside it, fsync'ed, renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False, indent=1, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _publish_dir(tmp: Path, final: Path) -> None:
    """Rename the filled temporary directory into place (a leftover of a crashed run is replaced)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def export_day(conn: Connection[Any], target: ExportTarget, day: date, now: datetime, *,
               force: bool = False) -> ExportResult:
    """Export the local `day` as a new version when it was never exported or its content changed (module
    docstring); `force`: render and compare even when nothing seems to have touched it."""
    tz = target.tz
    start, end = local_day_bounds(day, tz)
    if now < end:
        raise ValueError(f"day {day}: not over yet at {now.astimezone(tz).isoformat()} (the export covers whole "
                         "local days)")
    rows = store.latest_exports(conn, day)
    previous = _day_export(rows[0]) if rows else None
    changes = Changes()
    if previous is not None:
        decisions, late, recomputed = store.changes_since(conn, start, end, previous.exported_at,
                                                          int(rows[0]["decisions_through"]))
        on_disk = (target.root / previous.directory / "datapackage.json").is_file()
        if not (decisions or late or recomputed or force) and on_disk:
            return ExportResult(day, None, target.root / previous.directory, "unchanged: nothing touched the day")
        changes = Changes(tuple(decisions), late)
    parent = target.root / str(day.year) / day.isoformat()
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".v-", suffix=".tmp", dir=parent))
    try:
        with conn.transaction():  # one snapshot: the tables and the watermark agree with each other
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            watermark = store.last_decision_id(conn)
            files, counts = _render(conn, tmp, start, end, tz)
        digest = content_digest(files)
        version = plan_version(previous, digest)
        if version is None:
            assert previous is not None
            if not (target.root / previous.directory / "datapackage.json").is_file():
                # the recorded version's files are gone: write them again under the same version
                _publish_dir(tmp, target.root / previous.directory)
                return ExportResult(day, None, target.root / previous.directory, "unchanged: files rewritten")
            shutil.rmtree(tmp, ignore_errors=True)
            return ExportResult(day, None, target.root / previous.directory, "unchanged: same content")
        before = _row_counts(target.root, previous) if previous is not None else {}
        note = change_note(version, Changes(changes.decisions, changes.late_readings, before, counts))
        directory = f"{day.year}/{day.isoformat()}/v{version}"
        export = DayExport(day, version, start, end, now, previous.first_exported_at if previous else now, digest,
                           note, directory, tuple(files))
        history = [VersionNote(int(h["version"]), h["exported_at"].astimezone(tz).isoformat(), h["change_note"])
                   for h in store.export_history(conn, day)]
        history.append(VersionNote(version, now.astimezone(tz).isoformat(), note))
        _atomic_json(tmp / "datapackage.json", {**datapackage(export, target.publication, target.network, history),
                                                "rowCounts": counts})
        size, dp_hash = _hash(tmp / "datapackage.json")
        dp = ExportedFile("datapackage.json", "datapackage", "datapackage", JSON, size, dp_hash)
        final = target.root / directory
        _publish_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store.record_export(conn, day=day, version=version, exported_at=now, digest=digest, change_note=note,
                        directory=directory, files=[_file_record(f) for f in (*files, dp)], period_start=start,
                        period_end=end, decisions_through=watermark)
    log.info("open data: %s exported as version %d (%s)", day, version, note)
    return ExportResult(day, version, final, note)


def _row_counts(root: Path, previous: DayExport) -> dict[str, int]:
    """The previous version's row counts, from its datapackage.json (empty when it is gone)."""
    try:
        doc = json.loads((root / previous.directory / "datapackage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    rows = doc.get("rowCounts", {})
    return {str(k): int(v) for k, v in rows.items()} if isinstance(rows, dict) else {}


def write_catalogue(conn: Connection[Any], target: ExportTarget, now: datetime) -> Path:
    """Rewrite `catalogue.jsonld` (atomically) from the latest version of every exported day."""
    exports = [_day_export(r) for r in store.latest_exports(conn)]
    points = [(float(s["latitude"]), float(s["longitude"])) for s in store.public_sensors(conn)]
    bbox = BoundingBox.around(points) if points else BoundingBox(-180, -90, 180, 90)
    target.root.mkdir(parents=True, exist_ok=True)
    path = target.root / CATALOGUE
    _atomic_json(path, catalogue(exports, target.publication, target.network, bbox, target.url, now))
    return path


def run_daily(conn: Connection[Any], target: ExportTarget, now: datetime, recheck_days: int) -> list[ExportResult]:
    """Export yesterday (local), re-check the `recheck_days` days before it that were exported, rewrite the
    catalogue when anything was published."""
    yesterday = now.astimezone(target.tz).date() - timedelta(days=1)
    exported = {r["day"] for r in store.latest_exports(conn)}
    days = [yesterday - timedelta(days=i) for i in range(recheck_days, 0, -1)]
    results = [export_day(conn, target, d, now) for d in days if d in exported]
    results.append(export_day(conn, target, yesterday, now))
    if any(r.version is not None for r in results) or not (target.root / CATALOGUE).is_file():
        write_catalogue(conn, target, now)
    return results
