"""sensors.redact: no URL password and no password=/token= value survives, everything else does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sensors.redact import MASK, redact, redact_url

# passwords as operators write them: anything printable but whitespace, quotes and '/', marked so that they
# cannot collide with the rest of the URL
PASSWORDS = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="'\"/"),
                    min_size=1, max_size=30).map(lambda p: "Zq" + p)


@given(password=PASSWORDS, scheme=st.sampled_from(["mqtt", "mqtts", "postgresql", "postgres", "https", "smtp"]))
def test_no_url_password_survives(password: str, scheme: str) -> None:
    url = f"{scheme}://aqnet-daemon:{password}@broker.example:8883/aq?sslmode=require"
    for text in (url, f"cannot connect to {url}: connection refused", f"MQTT URL {url!r}: port: expected 1..65535"):
        out = redact(text)
        assert password not in out and f"aqnet-daemon:{MASK}@broker.example:8883/aq?sslmode=require" in out


@pytest.mark.parametrize(("text", "expected"), [
    ("mqtt://broker:1883", "mqtt://broker:1883"),
    ("mqtt://user@broker", "mqtt://user@broker"),
    ("http://h:8080/p", "http://h:8080/p"),
    ("host=db password=s3cret user=aqnet", f"host=db password={MASK} user=aqnet"),
    ("password='a b c' dbname=aq", f"password={MASK} dbname=aq"),
    ("https://h/hook?token=abc&x=1", f"https://h/hook?token={MASK}&x=1"),
    ("postgresql://u:p%40ss@db:5432/aq", f"postgresql://u:{MASK}@db:5432/aq"),
])
def test_examples(text: str, expected: str) -> None:
    assert redact(text) == expected == redact_url(text)
