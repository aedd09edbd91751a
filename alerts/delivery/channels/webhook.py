"""Webhook delivery (I/O): POST one alert transition as signed JSON with httpx. Implements
`alerts.delivery.notice.Channel`.

Contract:
- Body: `alerts.delivery.messages.notice_payload(notice, language=…)` (schema aqnet.alert/1, with the rendered subject
  and text) as compact UTF-8 JSON with sorted keys.
- Headers: `X-Aqnet-Signature: sha256=<hex HMAC-SHA256(key, exact body bytes)>`, `X-Aqnet-Event: <transition>`,
  `X-Aqnet-Delivery: aqnet-<alert_id>-<event_id>` (the same on every retry: the receiver's idempotency key), plus
  the configured headers (which cannot override these three or Content-Type).
- 2xx: delivered. 408, 429, 5xx, connection errors and timeouts: transient `DeliveryError` (retried). Any other
  status (other 4xx, 3xx: redirects are not followed): permanent. The whole request gives up after `timeout_s`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import tzinfo
from urllib.parse import SplitResult, urlsplit

import httpx

from alerts.delivery.messages import DEFAULT_TZ, Language, notice_payload
from alerts.delivery.notice import DeliveryError, Notice
from alerts.delivery.signing import signature
from sensors.redact import redact, redact_url

__all__ = ["WebhookChannel", "webhook_body"]

_TRANSIENT_STATUS = frozenset({408, 429})


def webhook_body(notice: Notice, language: Language, tz: str | tzinfo = DEFAULT_TZ) -> bytes:
    """The exact bytes POSTed (and signed) for a notice."""
    payload = notice_payload(notice, language=language, tz=tz)
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _host(parts: SplitResult) -> str:
    """host[:port] of a URL, without its user and password."""
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else (parts.hostname or "")
    return f"{host}:{parts.port}" if parts.port else host


class WebhookChannel:
    """POSTs each notice to `url`, signed with `key`.

    Args:
        name: the configured channel name (alert_outbox.channel).
        url: http(s) URL.
        key: HMAC-SHA256 key of the X-Aqnet-Signature header.
        timeout_s: the whole request (connect, send, response) gives up after this.
        headers: extra headers (e.g. an Authorization the receiver wants).
        language: message language of the embedded subject and text.
        tz: the network's time zone for the rendered message.
    """

    type = "webhook"
    carries_links = True  #: reaches officers: notices carry the signed acknowledgement link

    def __init__(self, name: str, url: str, *, key: bytes, timeout_s: float = 10.0,
                 headers: Mapping[str, str] | None = None, language: Language = "es",
                 tz: str | tzinfo = DEFAULT_TZ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"webhook channel {name}: url: expected http(s)://host/..., got {redact_url(url)!r}")
        if not key:
            raise ValueError(f"webhook channel {name}: expected a non-empty signing key")
        self.name = name
        self.url = url
        self.timeout_s = timeout_s
        self.language: Language = language
        self.tz = tz
        self._key = key
        self._headers = dict(headers or {})
        # no user:password@, no query: either may hold secrets
        self._where = f"webhook {name} ({parts.scheme}://{_host(parts)}{parts.path})"
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), follow_redirects=False)

    def request_headers(self, notice: Notice, body: bytes) -> dict[str, str]:
        """The headers sent with `body` (configured ones first; aqnet's own win)."""
        return {**self._headers, "Content-Type": "application/json; charset=utf-8", "User-Agent": "aqnet",
                "X-Aqnet-Signature": signature(self._key, body), "X-Aqnet-Event": notice.transition,
                "X-Aqnet-Delivery": f"aqnet-{notice.alert_id}-{notice.event_id}"}

    async def send(self, notice: Notice) -> None:
        """POST the notice; DeliveryError (transient or permanent) unless the receiver answered 2xx."""
        body = webhook_body(notice, self.language, self.tz)
        headers = self.request_headers(notice, body)
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._client.post(self.url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryError(f"{self._where}: no answer within {self.timeout_s:g} s; will retry") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(redact(f"{self._where}: {type(exc).__name__}: {exc}; will retry")) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = response.text[:200].strip()
        what = f"{self._where}: HTTP {status} {response.reason_phrase}" + (f": {detail}" if detail else "")
        if status in _TRANSIENT_STATUS or status >= 500:
            raise DeliveryError(f"{what}; will retry")
        raise DeliveryError(f"{what}; not retried (the receiver refused the request)", permanent=True)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()
