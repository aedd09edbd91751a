"""The public page's pure parts and its routes without a browser: every category name, colour and action level is
indices.json's (nothing of the page's own), text on a category's colour meets WCAG AA contrast, the page speaks
the configured language (the daemon's default: alerts.language), its Content-Security-Policy admits only this
origin (plus the tile server's images when one is configured), and only its packaged files are served."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from aqnet.config import ConfigError, PublicSettings, settings_from_dict
from aqnet.localstack import MosquittoBroker, free_port
from aqnet.public import create_public_app
from aqnet.public.page import page_html
from aqnet.public.scales import contrast_ratio, page_words, scales, text_colour
from sensors.domain.bundled import load
from tests.aqnet.console.browser import wait_for
from tests.fixtures.listeners import alert_keys_in, http_listeners

AA_TEXT = 4.5  #: WCAG 2.2 SC 1.4.3 Contrast (Minimum), level AA: 4.5:1 for normal text

colours = st.builds(lambda r, g, b: f"#{r:02X}{g:02X}{b:02X}", *(st.integers(0, 255) for _ in range(3)))


def test_contrast_ratio_end_points() -> None:
    # WCAG 2.2 "contrast ratio": (L1 + 0.05) / (L2 + 0.05); black on white is 21:1, a colour on itself 1:1
    assert contrast_ratio("#000000", "#FFFFFF") == pytest.approx(21.0)
    assert contrast_ratio("#FFFF00", "#FFFF00") == pytest.approx(1.0)
    assert contrast_ratio("#767676", "#FFFFFF") == pytest.approx(4.54, abs=0.01)  # the darkest AA grey on white
    with pytest.raises(ValueError, match="expected #RRGGBB, got 'red'"):
        contrast_ratio("red", "#FFFFFF")


@given(colours)
def test_text_on_any_colour_is_the_more_contrasting_and_meets_aa(background: str) -> None:
    text = text_colour(background)
    other = "#FFFFFF" if text == "#000000" else "#000000"
    assert contrast_ratio(background, text) >= contrast_ratio(background, other)
    assert contrast_ratio(background, text) >= AA_TEXT


@pytest.mark.parametrize("language", ["es", "en"])
def test_categories_are_indices_json_in_the_language(language: str) -> None:
    data, got = load("indices"), scales(language)
    iboca = data["iboca"]["categories"]
    assert [(c["level"], c["name"], c["colour"], c["action"], c["lo"], c["hi"]) for c in got["iboca"]["categories"]] \
        == [(c["level"], c[f"name_{language}"], c["color_hex"], c[f"action_level_{language}"], c["i_lo"], c["i_hi"])
            for c in iboca]
    aqi = data["us_epa_aqi"]["categories"]
    assert [(c["name"], c["colour"], c["action"]) for c in got["us_aqi"]["categories"]] \
        == [(c["name"], c["color_hex"], None) for c in aqi]
    assert got["iboca"]["source"] == data["iboca"]["regulation"]["id"]
    for scale in got.values():
        for c in scale["categories"]:
            assert contrast_ratio(c["colour"], c["text"]) >= AA_TEXT, c
    with pytest.raises(ValueError, match="expected es or en, got 'fr'"):
        scales("fr")


def test_both_languages_have_the_same_words() -> None:
    assert set(page_words("es")) == set(page_words("en"))
    with pytest.raises(ValueError, match="got 'pt'"):
        page_words("pt")


def test_the_page_holds_no_advice_of_its_own() -> None:
    # indices.json: the resolution's health recommendations could not be read, so the page shows none
    assert "not reproduced" in load("indices")["iboca"]["health_messages"]
    for language in ("es", "en"):
        html = page_html(language, PublicSettings()).lower()
        for advice in ("avoid", "evite", "recomend", "recommend", "outdoor", "al aire libre", "sensitive groups sh"):
            assert advice not in html, (language, advice)


def test_a_tile_template_needs_z_x_and_y() -> None:
    with pytest.raises(ConfigError, match=r"public.tile_url.*lacks \{y\}"):
        settings_from_dict({"database": {"url": "postgresql://a@b/c"}, "mqtt": {"url": "mqtt://b:1883"},
                            "public": {"tile_url": "https://tiles.example/{z}/{x}.png"}})


async def _client(public: PublicSettings, language: str | None) -> tuple[httpx.AsyncClient, Any]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(f"postgresql://aqnet@127.0.0.1:{free_port()}/aqnet",
                                                         min_size=1, max_size=1, timeout=1.0, open=False)
    app = create_public_app(pool, public=public, language=language)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://public"), pool


async def test_the_page_in_english_with_only_its_own_origin() -> None:
    client, _ = await _client(PublicSettings(), "en")
    async with client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<html lang="en">' in page.text and "<title>Air quality now</title>" in page.text
        assert "Alert phase 1" in page.text and "Unhealthy for Sensitive Groups" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "img-src 'self' data:;" in csp and "connect-src 'self'" in csp
        script = await client.get("/static/page.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert "/indices/latest" in script.text
        assert (await client.get("/static/page.css")).status_code == 200
        assert (await client.get("/static/app.py")).status_code == 404
        assert (await client.get("/static/..%2fapp.py")).status_code == 404
        paths = (await client.get("/v1/openapi.json")).json()["paths"]
        assert "/" not in paths and not [p for p in paths if p.startswith("/static")]


async def test_the_page_defaults_to_spanish_and_admits_the_tile_server() -> None:
    tiles = PublicSettings(tile_url="https://tiles.example.org/{z}/{x}/{y}.png", tile_attribution="© Example")
    client, _ = await _client(tiles, None)
    async with client:
        page = await client.get("/")
        assert '<html lang="es">' in page.text and "Alerta fase 1" in page.text and "© Example" in page.text
        assert "img-src 'self' data: https://tiles.example.org;" in page.headers["content-security-policy"]
        assert "https://tiles.example.org/{z}/{x}/{y}.png" in page.text
    with pytest.raises(ValueError, match="expected es or en, got 'de'"):
        await _client(PublicSettings(), "de")


@pytest.mark.integration
def test_the_daemon_serves_the_page_in_the_alerts_language(tmp_path: Path, database_url: str,
                                                           mosquitto: MosquittoBroker) -> None:
    # public.language unset: the page speaks alerts.language, as the console does
    internal, public = free_port(), free_port()
    cfg = {"database": {"url": database_url, "pool_max_size": 3},
           "mqtt": {"url": mosquitto.url, "client_id": f"aqnet-{tmp_path.name}"},
           "http": http_listeners(internal, public=public), "storage": {"spool_dir": str(tmp_path / "spool")},
           "alerts": {**alert_keys_in(tmp_path), "language": "en"},
           "public": {"tile_url": "https://tiles.example.org/{z}/{x}/{y}.png"}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    with (tmp_path / "daemon.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(tmp_path / "run.yaml")],
                                stdout=log, stderr=log)
        try:
            page = wait_for(lambda: _get(f"http://127.0.0.1:{public}/"), 60, "the public listener")
            assert '<html lang="en">' in page.text and "Air quality now" in page.text
            assert "https://tiles.example.org" in page.headers["content-security-policy"]
        finally:
            proc.terminate()
            assert proc.wait(timeout=30) == 0, (tmp_path / "daemon.log").read_text()[-3000:]


def _get(url: str) -> httpx.Response | None:
    try:
        answer = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return answer if answer.status_code == 200 else None
