"""Pure pieces of the HTTP listeners' defences (aqnet.http.limits) and the listener settings."""

from __future__ import annotations

import base64

import pytest

from aqnet.config import ConfigError, settings_from_dict
from aqnet.http.limits import FailureLimiter, TrustedProxies, client_address, parse_basic
from storage.device_credentials import hash_password, verify_password

PROXY = TrustedProxies(["10.0.0.5", "10.1.0.0/16"])


@pytest.mark.parametrize(("peer", "headers", "expected"), [
    ("203.0.113.9", [(b"x-forwarded-for", b"1.2.3.4")], "203.0.113.9"),  # not a proxy: header ignored
    ("10.0.0.5", [(b"x-forwarded-for", b"1.2.3.4")], "1.2.3.4"),
    ("10.0.0.5", [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4")], "1.2.3.4"),  # the left is the client's own claim
    ("10.0.0.5", [(b"x-forwarded-for", b"1.2.3.4, 10.1.2.3")], "1.2.3.4"),  # a chain of trusted proxies
    ("10.0.0.5", [(b"forwarded", b'for="[2001:db8::1]:4711";proto=https')], "2001:db8::1"),
    ("10.0.0.5", [(b"forwarded", b"for=192.0.2.60:8080")], "192.0.2.60"),
    ("10.0.0.5", [(b"forwarded", b"for=unknown")], "10.0.0.5"),
    ("10.0.0.5", [], "10.0.0.5"),
    (None, [(b"x-forwarded-for", b"1.2.3.4")], "unknown"),
])
def test_client_address_believes_only_trusted_proxies(peer, headers, expected) -> None:
    assert client_address(peer, headers, PROXY) == expected


def test_no_trusted_proxy_means_the_peer() -> None:
    assert client_address("10.0.0.5", [(b"x-forwarded-for", b"1.2.3.4")], TrustedProxies()) == "10.0.0.5"


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("value", "expected"), [
    (_basic("MS13:secret"), ("MS13", "secret")), (_basic("MS13:a:b"), ("MS13", "a:b")),
    (None, None), ("", None), ("Bearer x", None), ("Basic !!!", None), (_basic("MS13"), None),
    (_basic(":pw"), None), (_basic("MS13:"), None), ("Basic " + "A" * 2000, None),
])
def test_parse_basic(value, expected) -> None:
    assert parse_basic(value) == expected


def test_failure_limiter_counts_per_client_in_a_sliding_window() -> None:
    lim = FailureLimiter(3, 60.0)
    for t in (0, 1, 2):
        assert not lim.blocked("a", t)
        lim.failed("a", t)
    assert lim.blocked("a", 3) and not lim.blocked("b", 3)
    assert lim.retry_after("a", 3) == 57
    assert not lim.blocked("a", 60.5)  # the first failure left the window


def test_failure_limiter_memory_is_bounded() -> None:
    lim = FailureLimiter(1, 60.0, max_clients=100)
    for n in range(1000):
        lim.failed(f"c{n}", 0)
    assert len(lim) == 100 and lim.blocked("c999", 1) and not lim.blocked("c0", 1)


def test_scrypt_hash_verifies_only_its_password() -> None:
    # a password with a space: base64 (salt and digest) can never contain it
    secret = "pw pw"
    stored = hash_password(secret)
    assert verify_password(secret, stored) and not verify_password("pw pX", stored)
    assert stored.startswith("scrypt$") and secret not in stored
    for bad in ("", "scrypt$x", "bcrypt$1$2$3$4$5", "scrypt$16384$8$1$!!$!!"):
        assert not verify_password("pw", bad)


BASE = {"database": {"url": "postgresql://x/y"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"}}


@pytest.mark.parametrize("key", ["host", "port"])
def test_the_old_single_listener_keys_are_refused_naming_the_new_ones(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**BASE, "http": {key: 9108 if key == "port" else "0.0.0.0"}}, "aqnet.yaml")
    assert f"http.internal.{key}" in str(err.value) and "http.intake.port" in str(err.value)


def test_listener_defaults_hold_per_section() -> None:
    s = settings_from_dict({**BASE, "http": {"intake": {"port": 1234}}})
    assert (s.http.intake.port, s.http.intake.max_body_bytes) == (1234, 64 << 10)
    assert (s.http.api.port, s.http.internal.port) == (9109, 9108)


@pytest.mark.parametrize(("http", "says"), [
    ({"intake": {"port": 9108}}, "internal and intake both listen on 127.0.0.1:9108"),
    ({"api": {"tls_cert_file": "c.pem"}}, "tls_cert_file and tls_key_file go together"),
    ({"trusted_proxies": ["proxy.local"]}, "expected an IP address or network"),
])
def test_listener_settings_errors_name_the_key(http, says) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict({**BASE, "http": http}, "aqnet.yaml")
    assert says in str(err.value)
