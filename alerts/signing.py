"""HMAC-SHA256 signatures for what aqnet sends out: the webhook body signature and the signed acknowledgement
link put in e-mail and webhook messages. Pure (no I/O, no clock: `now` and `expires` are given).

Contract:
- `signature(key, body)` is `"sha256=" + hex(HMAC-SHA256(key, body))` over the exact body bytes, the value of
  the `X-Aqnet-Signature` header; a receiver recomputes it on the raw body and compares in constant time
  (`verify_signature`).
- An acknowledgement token is `urlsafe_base64(payload + mac)` without padding, where payload is the ASCII text
  `v1:<alert_id>:<event_id>:<expires unix seconds>` and mac the 32-byte HMAC-SHA256 of `b"aqnet-ack\\0" +
  payload` (the prefix separates token MACs from body signatures made with the same key).
  `verify_ack_token` raises `ValueError` saying why: malformed, bad signature, or expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime

__all__ = ["ack_token", "ack_url", "signature", "verify_ack_token", "verify_signature"]

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


def ack_token(key: bytes, alert_id: int, event_id: int, expires: datetime) -> str:
    """A URL-safe token acknowledging `alert_id` (as of its transition `event_id`) until `expires` (aware)."""
    if expires.tzinfo is None:
        raise ValueError(f"ack token expiry {expires.isoformat()}: expected an aware datetime")
    if alert_id < 0 or event_id < 0:
        raise ValueError(f"ack token: expected non-negative ids, got alert {alert_id} event {event_id}")
    payload = f"v1:{alert_id}:{event_id}:{int(expires.timestamp())}".encode("ascii")
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode("ascii")


def verify_ack_token(key: bytes, token: str, now: datetime) -> tuple[int, int]:
    """(alert_id, event_id) of a valid token; ValueError('malformed…' | 'bad signature…' | 'expired…') if not."""
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
        version, alert, event, expires = payload.decode("ascii").split(":")
        if version != "v1":
            raise ValueError(f"version {version!r}")
        alert_id, event_id, expires_s = int(alert), int(event), int(expires)
    except ValueError as exc:
        raise ValueError(f"malformed ack token: expected v1:<alert>:<event>:<expires>, {exc}") from None
    if now.timestamp() >= expires_s:
        at = datetime.fromtimestamp(expires_s, UTC).isoformat()
        raise ValueError(f"expired ack token: valid until {at}; ask for a new link or acknowledge in aqnet")
    return alert_id, event_id


def ack_url(public_url: str, token: str) -> str:
    """The signed acknowledgement link: `{public_url}/api/v1/alerts/ack/{token}`."""
    return f"{public_url.rstrip('/')}/api/v1/alerts/ack/{token}"
