"""What every public open-data route needs (`PublicContext`: the pool, the settings, the network's zone, the
clock) and how it answers a page of records (JSON or CSV with the cache headers). Shell (FastAPI), no I/O of its
own.

A further router (the annual compliance report) finds it as `request.app.state.public` and answers with
`PublicContext.page`, so its answers carry the same metadata, formats and cache headers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel
from starlette.responses import Response

from aqnet.config import OpenDataSettings, PublicSettings
from aqnet.public.formats import CSV_MEDIA_TYPE, answer, csv_text, next_link, wants_csv
from aqnet.public.models import CONVENTION, Licence, Meta, Owner

__all__ = ["API_NAME", "PREFIX", "PublicContext"]

PREFIX = "/v1"
API_NAME = "aqnet open data"


@dataclass(frozen=True)
class PublicContext:
    """What every public route needs: the pool, the settings, the network's zone, the clock."""

    pool: AsyncConnectionPool[Any]
    public: PublicSettings
    open_data: OpenDataSettings
    zone: ZoneInfo
    clock: Callable[[], datetime]

    @property
    def licence(self) -> Licence:
        """The data's licence and whom to credit (`open_data`)."""
        return Licence(id=self.open_data.licence_id, url=self.open_data.licence_url, attribution=self.publisher)

    @property
    def publisher(self) -> Owner:
        """The publisher (`open_data.publisher`)."""
        return Owner(name=self.open_data.publisher, url=self.open_data.publisher_url or None)

    def meta(self, request: Request, *, page: int, limit: int, found: int) -> Meta:
        """The metadata of one page of answers."""
        return Meta(name=API_NAME, website=str(request.base_url), license=self.licence, publisher=self.publisher,
                    contact=self.open_data.contact_email, time_convention=CONVENTION, page=page, limit=limit,
                    found=found, next=next_link(request, page=page, limit=limit, found=found))

    def page(self, request: Request, results: Sequence[BaseModel], *, page: int, limit: int, found: int,
             max_age_s: int, fmt: str | None) -> Response:
        """One page as JSON (`{"meta", "results"}`) or CSV (one flattened row per result; the metadata in headers),
        with the cache headers (aqnet.public.formats)."""
        records = [r.model_dump(mode="json", by_alias=True) for r in results]
        if wants_csv(fmt, request.headers.get("accept")):
            return answer(request, csv_text(records).encode(), CSV_MEDIA_TYPE, max_age_s=max_age_s,
                          licence_url=self.open_data.licence_url)
        meta = self.meta(request, page=page, limit=limit, found=found).model_dump(mode="json", by_alias=True)
        body = json.dumps({"meta": meta, "results": records}, ensure_ascii=False, separators=(",", ":"))
        return answer(request, body.encode(), "application/json", max_age_s=max_age_s,
                      licence_url=self.open_data.licence_url)
