"""HMAC-SHA256 signatures for what aqnet sends out: the webhook body signature and the signed acknowledgement
link put in e-mail and webhook messages. Pure (no I/O, no clock: `now`, `issued` and `expires` are given).

Contract:
- `signature(key, body)` is `"sha256=" + hex(HMAC-SHA256(key, body))` over the exact body bytes, the value of
  the `X-Aqnet-Signature` header; a receiver recomputes it on the raw body and compares in constant time
  (`verify_signature`).
- An acknowledgement token is `urlsafe_base64(payload + mac)` without padding, where payload is the ASCII text
  `v2:<alert_id>:<event_id>:<issued unix seconds>:<expires unix seconds>` and mac the 32-byte HMAC-SHA256 of
  `b"aqnet-ack\\0" + payload`. The LINK KEY signing tokens must be a key of its own, never a webhook secret
  (aqnet.alert_channels loads `alerts.link_key_file`): whoever holds a webhook secret could otherwise mint links.
  The prefix is defence in depth should the keys ever be the same.
- A token's lifetime (`expires - issued`) is at most `MAX_ACK_LINK_TTL_H` (7 days): `ack_token` refuses to make a
  longer one and `verify_ack_token` refuses one (and one whose expiry is more than that ahead of `now`), so a
  link signed under an older, laxer configuration (or a forged expiry) cannot live longer.
  v1 tokens (no issue time, before issue 16) are refused.
- The token says which transition (`event_id`) it was issued for; whether that transition is still the alert's
  current level is the acknowledging side's check (`storage.alerts_store.acknowledge(as_of_event=…)`).
- `verify_ack_token` raises `ValueError` saying why: malformed, bad signature, over the maximum lifetime, or
  expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from alerts.settings import MAX_ACK_LINK_TTL_H

__all__ = ["MAX_ACK_LINK_TTL_H", "ack_token", "ack_url", "signature", "verify_ack_token", "verify_signature"]


_PREFIX = "sha256="
_TOKEN_DOMAIN = b"aqnet-ack\0"
_MAC_BYTES = 32


def signature(key: bytes, body: bytes) -> str:
    """The `X-Aqnet-Signature` value of a body: `sha256=<hex HMAC-SHA256(key, body)>`."""
    return _PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(key: bytes, body: bytes, header: str) -> bool:
    """True when `header` is the signature of `body` under `key` (constant-time comparison)."""
    return hmac.compare_digest(signature(key, body).encode(), header.strip().encode())


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _TOKEN_DOMAIN + payload, hashlib.sha256).digest()


def ack_token(key: bytes, alert_id: int, event_id: int, expires: datetime, *, issued: datetime) -> str:
    """A URL-safe token acknowledging `alert_id` as of its transition `event_id`, issued at `issued` and valid
    until `expires` (both aware; at most `MAX_ACK_LINK_TTL_H` apart)."""
    for name, when in (("expiry", expires), ("issue time", issued)):
        if when.tzinfo is None:
            raise ValueError(f"ack token {name} {when.isoformat()}: expected an aware datetime")
    if alert_id < 0 or event_id < 0:
        raise ValueError(f"ack token: expected non-negative ids, got alert {alert_id} event {event_id}")
    lifetime = expires - issued
    if lifetime > timedelta(hours=MAX_ACK_LINK_TTL_H):
        raise ValueError(f"ack token: lifetime {lifetime.total_seconds() / 3600:g} h is over the maximum "
                         f"{MAX_ACK_LINK_TTL_H:g} h (alerts.ack_link_ttl_h)")
    payload = f"v2:{alert_id}:{event_id}:{int(issued.timestamp())}:{int(expires.timestamp())}".encode("ascii")
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode("ascii")


def verify_ack_token(key: bytes, token: str, now: datetime) -> tuple[int, int]:
    """(alert_id, event_id) of a valid token; ValueError('malformed…' | 'bad signature…' | 'lifetime…' |
    'expired…') if not."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError(f"malformed ack token: not URL-safe base64 ({exc})") from None
    if len(raw) <= _MAC_BYTES:
        raise ValueError(f"malformed ack token: {len(raw)} bytes, expected more than {_MAC_BYTES}")
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise ValueError("bad signature: the ack token was not signed with this key (or was altered)")
    try:
        version, alert, event, issued, expires = payload.decode("ascii").split(":")
        if version != "v2":
            raise ValueError(f"version {version!r}")  # noqa: TRY301 - reported below with every other malformed part
        alert_id, event_id, issued_s, expires_s = int(alert), int(event), int(issued), int(expires)
    except ValueError as exc:
        raise ValueError(f"malformed ack token: expected v2:<alert>:<event>:<issued>:<expires>, {exc}") from None
    max_s = MAX_ACK_LINK_TTL_H * 3600
    if expires_s - issued_s > max_s or expires_s - now.timestamp() > max_s:
        raise ValueError(f"ack token lifetime over the maximum of {MAX_ACK_LINK_TTL_H:g} h: refused; ask for a "
                         "new link or acknowledge in aqnet")
    if now.timestamp() >= expires_s:
        at = datetime.fromtimestamp(expires_s, UTC).isoformat()
        raise ValueError(f"expired ack token: valid until {at}; ask for a new link or acknowledge in aqnet")
    return alert_id, event_id


def ack_url(public_url: str, token: str) -> str:
    """The signed acknowledgement link: `{public_url}/api/v1/alerts/ack/{token}`."""
    return f"{public_url.rstrip('/')}/api/v1/alerts/ack/{token}"
