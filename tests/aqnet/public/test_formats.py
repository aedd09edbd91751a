"""Pure pieces of the public open-data API: JSON or CSV, flattening, the CSV's dialect, cache answers, the
request rate per client, the provenance shaping (year bounds, expected periods, QC flag names), and the settings
of the public listener and the open-data section."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from aqnet.config import ConfigError, settings_from_dict
from aqnet.http.limits import RequestLimiter
from aqnet.public.formats import answer, csv_text, flatten, wants_csv
from aqnet.public.shape import expected_periods, year_bounds
from ingest.reading import QC
from storage.public_read import flag_names

BOGOTA = ZoneInfo("America/Bogota")
BASE = {"database": {"url": "postgresql://aqnet@127.0.0.1/aqnet"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"}}


@pytest.mark.parametrize(("fmt", "accept", "csv_wanted"), [
    (None, None, False), ("csv", None, True), ("json", "text/csv", False), (None, "text/csv", True),
    (None, "application/json, text/csv", False), (None, "text/csv;q=0.9, application/json;q=0.5", True),
    (None, "*/*", False), (None, "text/html", False),
])
def test_csv_is_chosen_by_format_then_accept(fmt: str | None, accept: str | None, csv_wanted: bool) -> None:
    assert wants_csv(fmt, accept) is csv_wanted


def test_flatten_names_nested_keys_by_path() -> None:
    record = {"value": 12.5, "unit": "µg/m³", "period": {"datetimeTo": {"utc": "2026-03-02T05:00:00Z"}},
              "flagInfo": {"hasFlags": True, "flags": ["SPIKE", "CALIBRATED"]}, "validity": None, "n": 3}
    assert flatten(record) == {"value": "12.5", "unit": "µg/m³", "period.datetimeTo.utc": "2026-03-02T05:00:00Z",
                               "flagInfo.hasFlags": "true", "flagInfo.flags": "SPIKE;CALIBRATED", "validity": "",
                               "n": "3"}


cells = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                  st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))


@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c.d", "note"]), cells, min_size=1), min_size=1))
def test_csv_round_trips_through_the_csv_module(records: list[dict[str, object]]) -> None:
    text = csv_text(records)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == len(records)
    for row, record in zip(rows, records, strict=True):
        flat = flatten(record)
        assert {k: v for k, v in row.items() if k in flat} == flat
        assert all(v == "" for k, v in row.items() if k not in flat)
    for record, row in zip(records, rows, strict=True):
        for key, value in record.items():
            if isinstance(value, float):
                assert float(row[key]) == value  # a decimal point, no thousands separator, exact


def _request(headers: dict[str, str]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/v1/x", "query_string": b"", "server": ("h", 80),
                    "scheme": "http", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


def test_answer_carries_cache_headers_and_revalidates() -> None:
    first = answer(_request({}), b'{"a":1}', "application/json", max_age_s=60, licence_url="https://l.example/")
    assert first.status_code == 200 and first.headers["cache-control"] == "public, max-age=60"
    assert first.headers["link"] == '<https://l.example/>; rel="license"'
    etag = first.headers["etag"]
    held = answer(_request({"If-None-Match": f'W/"x", {etag}'}), b'{"a":1}', "application/json", max_age_s=60,
                  licence_url="https://l.example/")
    assert held.status_code == 304 and held.body == b""
    changed = answer(_request({"If-None-Match": etag}), b'{"a":2}', "application/json", max_age_s=60,
                     licence_url="https://l.example/")
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_request_limiter_counts_every_request_per_client_in_a_sliding_window() -> None:
    limiter = RequestLimiter(3, 60.0)
    assert [limiter.admit("a", t) for t in (0.0, 1.0, 2.0)] == [0, 0, 0]
    assert limiter.admit("a", 3.0) == 57  # the first of the three leaves the window at 60 s
    assert limiter.admit("b", 3.0) == 0  # another client, its own count
    assert limiter.admit("a", 59.5) == 1
    assert limiter.admit("a", 60.0) == 0  # a refused request is not counted: the window moved on
    assert limiter.admit("a", 60.5) == 1


def test_request_limiter_memory_is_bounded() -> None:
    limiter = RequestLimiter(1, 60.0, max_clients=2)
    for i, client in enumerate(("a", "b", "c")):
        assert limiter.admit(client, float(i)) == 0
    assert len(limiter) == 2
    assert limiter.admit("a", 3.0) == 0  # forgotten (the stalest), so admitted again


def test_year_bounds_and_expected_periods_in_the_network_zone() -> None:
    start, end = year_bounds(2026, BOGOTA)
    assert start.isoformat() == "2026-01-01T00:00:00-05:00" and end.isoformat() == "2027-01-01T00:00:00-05:00"
    assert expected_periods("day", start, end) == 365 and expected_periods("1h", start, end) == 8760
    assert expected_periods("8h", start, datetime(2026, 1, 2, tzinfo=BOGOTA)) == 24
    assert expected_periods("day", start, start) == 0
    assert expected_periods("day", datetime(2028, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC)) == 366


def test_flag_names_spell_out_every_bit_lowest_first() -> None:
    assert flag_names(None) == [] and flag_names(0) == []
    assert flag_names(int(QC.CALIBRATED | QC.SPIKE)) == ["SPIKE", "CALIBRATED"]
    assert flag_names(sum(int(q) for q in QC)) == [q.name for q in QC]


def test_public_and_open_data_settings_default_and_refuse_with_the_key() -> None:
    s = settings_from_dict(BASE)
    assert (s.http.public.port, s.public.show_names, s.open_data.licence_id) == (9111, False, "CC-BY-4.0")
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**BASE, "open_data": {"contact_email": "nobody"}, "public": {"requests_per_minute": 0}},
                           "aqnet.yaml")
    assert "aqnet.yaml: open_data.contact_email" in str(err.value)
    assert "aqnet.yaml: public.requests_per_minute" in str(err.value)
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**BASE, "http": {"public": {"port": 9109}}}, "aqnet.yaml")
    assert "both listen on 127.0.0.1:9109" in str(err.value)


async def test_a_further_router_answers_through_the_public_context_and_gate() -> None:
    """The seam the annual compliance report plugs into: one more router, same metadata, formats and refusals."""
    import httpx
    from fastapi import APIRouter

    from aqnet.public import PublicContext, create_public_app
    from aqnet.public.models import Model

    class Row(Model):
        station_id: str
        annual_mean: float

    router = APIRouter(prefix="/v1")

    @router.get("/compliance/annual")
    async def annual(request: Request) -> object:
        """A further resource."""
        ctx: PublicContext = request.app.state.public
        return ctx.page(request, [Row(station_id="KEN", annual_mean=21.5)], page=1, limit=100, found=1,
                        max_age_s=ctx.public.history_max_age_s, fmt=request.query_params.get("format"))

    app = create_public_app(None, routers=[router])  # type: ignore[arg-type]  # this route reads no database
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://public") as http:
        body = (await http.get("/v1/compliance/annual")).json()
        assert body["results"] == [{"stationId": "KEN", "annualMean": 21.5}]
        assert body["meta"]["license"]["id"] == "CC-BY-4.0"
        text = (await http.get("/v1/compliance/annual", params={"format": "csv"})).text
        assert list(csv.DictReader(io.StringIO(text))) == [{"stationId": "KEN", "annualMean": "21.5"}]
        assert (await http.delete("/v1/compliance/annual")).status_code == 405
    assert "/v1/compliance/annual" in app.openapi()["paths"]
