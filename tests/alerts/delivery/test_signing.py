"""alerts.delivery.signing: webhook body signatures and signed acknowledgement tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.delivery.signing import (
    MAX_ACK_LINK_TTL_H,
    ack_token,
    ack_url,
    signature,
    verify_ack_token,
    verify_signature,
)

KEY = b"k" * 32
NOW = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)


def test_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = '{"a":"µ"}'.encode()
    assert signature(KEY, body) == "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
    assert verify_signature(KEY, body, signature(KEY, body))
    assert not verify_signature(KEY, body + b" ", signature(KEY, body))
    assert not verify_signature(b"other", body, signature(KEY, body))


@given(alert=st.integers(0, 2**40), event=st.integers(0, 2**40), hours=st.floats(0.01, MAX_ACK_LINK_TTL_H))
def test_token_round_trip(alert: int, event: int, hours: float) -> None:
    token = ack_token(KEY, alert, event, NOW + timedelta(hours=hours), issued=NOW)
    assert verify_ack_token(KEY, token, NOW) == (alert, event)
    assert all(c.isalnum() or c in "-_" for c in token)


def test_expired_token_refused() -> None:
    token = ack_token(KEY, 1, 2, NOW, issued=NOW - timedelta(hours=1))
    with pytest.raises(ValueError, match="expired"):
        verify_ack_token(KEY, token, NOW)
    assert verify_ack_token(KEY, token, NOW - timedelta(seconds=1)) == (1, 2)


def test_token_from_another_key_or_altered_refused() -> None:
    token = ack_token(KEY, 7, 9, NOW + timedelta(hours=1), issued=NOW)
    with pytest.raises(ValueError, match="bad signature"):
        verify_ack_token(b"another key", token, NOW)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] ^= 1  # the alert id changes
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(ValueError, match="bad signature"):
        verify_ack_token(KEY, forged, NOW)


@pytest.mark.parametrize("token", ["", "abc", "!!!!", "é"])
def test_malformed_token_refused(token: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        verify_ack_token(KEY, token, NOW)


def test_body_signature_is_not_a_token_signature() -> None:
    payload = b"v2:1:2:1000000000:9999999999"
    forged = base64.urlsafe_b64encode(payload + hmac.new(KEY, payload, hashlib.sha256).digest()).decode()
    with pytest.raises(ValueError, match="bad signature"):
        verify_ack_token(KEY, forged.rstrip("="), NOW)


def test_naive_expiry_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        ack_token(KEY, 1, 1, datetime(2026, 1, 1), issued=NOW)
    with pytest.raises(ValueError, match="aware"):
        ack_token(KEY, 1, 1, NOW, issued=datetime(2026, 1, 1))


def test_ack_url() -> None:
    assert ack_url("https://aqnet.example/", "TOK") == "https://aqnet.example/api/v1/alerts/ack/TOK"


def _signed(payload: bytes) -> str:
    """A token over any payload, signed the way aqnet signs (what the link key's holder could make)."""
    mac = hmac.new(KEY, b"aqnet-ack\0" + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()


def test_attack_link_lifetime_over_the_maximum_is_refused() -> None:
    """Issue 16: a link living longer than MAX_ACK_LINK_TTL_H (7 days) is neither made nor honoured, even while
    its expiry is still ahead and even once the remaining time falls under the maximum."""
    with pytest.raises(ValueError, match="maximum"):
        ack_token(KEY, 1, 2, NOW + timedelta(hours=MAX_ACK_LINK_TTL_H, seconds=1), issued=NOW)
    issued, expires = int(NOW.timestamp()), int((NOW + timedelta(days=30)).timestamp())
    long_lived = _signed(f"v2:1:2:{issued}:{expires}".encode())
    for later in (NOW, NOW + timedelta(days=29)):
        with pytest.raises(ValueError, match="maximum"):
            verify_ack_token(KEY, long_lived, later)
    future_issue = _signed(f"v2:1:2:{expires}:{expires + 60}".encode())  # claims a future issue time
    with pytest.raises(ValueError, match="maximum"):
        verify_ack_token(KEY, future_issue, NOW)
    exactly = ack_token(KEY, 1, 2, NOW + timedelta(hours=MAX_ACK_LINK_TTL_H), issued=NOW)
    assert verify_ack_token(KEY, exactly, NOW) == (1, 2)


def test_v1_tokens_without_issue_time_are_refused() -> None:
    """Today's v1 token (no issue time, so no bounded lifetime) no longer acknowledges."""
    v1 = _signed(f"v1:1:2:{int((NOW + timedelta(hours=1)).timestamp())}".encode())
    with pytest.raises(ValueError, match="malformed"):
        verify_ack_token(KEY, v1, NOW)
