"""The public air-quality page at `/` of the public listener: a map of the network's locations coloured by the
current index category, each location's last 24 h as a chart. Shell (FastAPI, Jinja2); no I/O of its own.

Contract:
- `GET /` answers one HTML page in `language` (es or en): the legend of both indices (IBOCA, US AQI; names,
  colours, ranges and action levels from `aqnet.public.scales`, i.e. indices.json) rendered on the server, and
  the settings the page's script needs (the scales, the words, the tile template) as a JSON block. The script
  (`/static/page.js`) reads the open-data API of the same listener — `/v1/locations`, `/v1/indices/latest`,
  `/v1/locations/{id}/parameters/{parameter}/hours` — and draws the map and charts as plain SVG.
- `GET /static/{name}`: the page's packaged files (an allow-list, `STATIC`); anything else is 404.
- Every answer carries a Content-Security-Policy admitting only this listener's scripts, styles and API, plus the
  images of `public.tile_url`'s origin when tiles are configured: nothing else is fetched.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from aqnet.config import PublicSettings
from aqnet.public.context import PREFIX
from aqnet.public.scales import page_words, scales

__all__ = ["STATIC", "page_router"]

#: the page's static files: name → media type (nothing else under static/ is served)
STATIC = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}

_ENV = Environment(loader=PackageLoader("aqnet.public", "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def _csp(tile_url: str | None) -> str:
    """The page's Content-Security-Policy: this origin only, plus the tile server's origin for images."""
    images = "'self' data:"
    if tile_url:
        parts = urlsplit(tile_url.replace("{s}", "a"))
        images += f" {parts.scheme}://{parts.netloc}"
    return (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src {images}; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _json_block(value: Any) -> str:
    """JSON safe inside a `<script type="application/json">` element (no `</script>` can close it early)."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def page_html(language: str, public: PublicSettings) -> str:
    """The page's HTML in `language` (the module docstring)."""
    words, indices = page_words(language), scales(language)
    config = {"language": language, "api": PREFIX, "words": dict(words), "scales": indices,
              "tileUrl": public.tile_url, "tileAttribution": public.tile_attribution,
              "limit": min(public.max_limit, 1000)}  # one page of the API: at most what it allows
    return _ENV.get_template("page.html").render(language=language, w=words, scales=indices,
                                                 config=_json_block(config), public=public, api=PREFIX)


def page_router(public: PublicSettings, language: str) -> APIRouter:
    """The router of `/` and `/static/{name}`; ValueError naming a language the page does not speak."""
    html = page_html(language, public)  # rendered once: it depends only on the settings
    headers = {"Content-Security-Policy": _csp(public.tile_url), "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "same-origin", "Cache-Control": "public, max-age=300"}
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page() -> Response:
        """The air-quality page."""
        return HTMLResponse(html, headers=headers)

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        """One of the page's packaged files (STATIC)."""
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        body = files("aqnet.public").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers=headers)

    return router
