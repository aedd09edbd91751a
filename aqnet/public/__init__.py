"""The public open-data API (`/v1/…` on the listener `http.public`): read-only, no login, rate-limited per client;
JSON and CSV; every value with its provenance. Shell (FastAPI over `storage.public_read`).

Index: `aqnet.public.app` (`create_public_app`, the rate and method gate), `aqnet.public.context`
(`PublicContext`: what routes need, how a page is answered), `aqnet.public.routes`
(the routes), `aqnet.public.models` (the records, OpenAQ v3 names), `aqnet.public.formats` (JSON/CSV, cache headers),
`aqnet.public.compliance` (`router`: the annual compliance report, `GET /v1/compliance/{year}`)."""

from aqnet.public.app import create_public_app
from aqnet.public.context import PREFIX, PublicContext

__all__ = ["PREFIX", "PublicContext", "create_public_app"]
