"""How the public open-data API answers: JSON or CSV, cache headers, conditional requests, paging links. Shell
(Starlette responses), pure: no I/O.

Contracts:
- `wants_csv(format, accept)`: `?format=csv|json` decides; without it, an `Accept` naming `text/csv` (and not
  JSON first) asks for CSV; JSON otherwise.
- `flatten(record)`: one CSV row of a nested JSON record: keys joined by "." (`period.datetimeTo.utc`), lists
  joined by ";", booleans `true`/`false`, None empty, numbers as Python writes them (decimal point, no
  thousands separator), times RFC 3339 with their offset.
- `csv_text(records)`: RFC 4180 CSV (comma, `"` quoting where needed, CRLF), a header row of every key in first-seen
  order; UTF-8 without BOM.
- `answer(request, body, media_type, max_age_s, licence_url)`: 200 with `Cache-Control: public, max-age=N`, a
  strong `ETag` (SHA-256 of the body) and `Vary: Accept`; 304 without a body when `If-None-Match` names it.
  Every answer links the licence (`Link: <url>; rel="license"`) and allows any origin (CORS).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["CSV_MEDIA_TYPE", "answer", "csv_text", "flatten", "next_link", "wants_csv"]

CSV_MEDIA_TYPE = "text/csv; charset=utf-8; header=present"


def wants_csv(fmt: str | None, accept: str | None) -> bool:
    """Whether to answer CSV (the module docstring)."""
    if fmt is not None:
        return fmt == "csv"
    if not accept:
        return False
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "text/csv" not in kinds:
        return False
    json_at = next((i for i, k in enumerate(kinds) if k in ("application/json", "application/*")), len(kinds))
    return kinds.index("text/csv") < json_at


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """One CSV row of a nested record (the module docstring)."""
    row: dict[str, str] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            row.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            row[name] = ";".join(_cell(v) for v in value)
        else:
            row[name] = _cell(value)
    return row


def csv_text(records: Iterable[Mapping[str, Any]]) -> str:
    """RFC 4180 CSV of the records, flattened (the module docstring)."""
    rows = [flatten(r) for r in records]
    header: dict[str, None] = {}
    for row in rows:
        header.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header), lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def next_link(request: Request, *, page: int, limit: int, found: int) -> str | None:
    """The URL of the next page, or None on the last one."""
    if page * limit >= found:
        return None
    return str(request.url.include_query_params(page=page + 1, limit=limit))


def answer(request: Request, body: bytes, media_type: str, *, max_age_s: int, licence_url: str) -> Response:
    """200 with the cache headers, or 304 when the client holds this very body (the module docstring)."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"Cache-Control": f"public, max-age={max_age_s}", "ETag": etag, "Vary": "Accept",
               "Link": f'<{licence_url}>; rel="license"', "Access-Control-Allow-Origin": "*"}
    held = request.headers.get("if-none-match")
    if held is not None and (held.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in held.split(",")]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
