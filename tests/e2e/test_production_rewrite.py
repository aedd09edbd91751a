"""tests/e2e/production.py, the rewrite the production acceptance test relies on: it touches only the keys it lists,
and its checks see any other change (pure: no service)."""

from __future__ import annotations

import pytest

from tests.e2e.production import (
    MOSQUITTO_CONF,
    YAML_KEYS,
    conf_changes,
    rewrite_mosquitto_conf,
    rewrite_settings,
    shipped_settings,
    url_changes,
    with_url,
    yaml_changes,
)


def test_every_listed_yaml_key_exists_in_the_shipped_file_but_one_added_port() -> None:
    shipped = shipped_settings()
    absent = []
    for key in YAML_KEYS:
        doc = shipped
        try:
            for part in key:
                doc = doc[part]
        except (KeyError, IndexError):
            absent.append(key)
    assert absent == [("alerts", "channels", 4, "port")]  # technicians-email: 587 by default
    assert [c["name"] for c in shipped["alerts"]["channels"]] == [
        "officers-email", "city-webhook", "alertmanager", "state-topics", "technicians-email"]


def test_the_yaml_rewrite_changes_only_what_it_is_given_and_refuses_other_keys() -> None:
    shipped = shipped_settings()
    rewritten = rewrite_settings(shipped, {("http", "intake", "port"): 1234, ("alerts", "channels", 4, "port"): 2525})
    assert yaml_changes(shipped, rewritten) == {("http", "intake", "port"), ("alerts", "channels", 4, "port")}
    assert shipped["http"]["intake"]["port"] == 9110  # a copy: the shipped document is untouched
    with pytest.raises(KeyError, match="scheduler"):
        rewrite_settings(shipped, {("scheduler", "averages_every_s"): 1})
    sneaky = rewrite_settings(shipped, {})
    sneaky["scheduler"]["averages_every_s"] = 1
    assert yaml_changes(shipped, sneaky) == {("scheduler", "averages_every_s")}


def test_urls_keep_everything_but_host_port_and_named_file_parameters() -> None:
    url = shipped_settings()["database"]["url"]
    rewritten = with_url(url, host="127.0.0.1", port=5555, query_paths={"sslrootcert": "/tmp/x/ca.pem"})
    assert rewritten == "postgresql://aqnet@127.0.0.1:5555/aqnet?sslmode=verify-full&sslrootcert=/tmp/x/ca.pem"
    assert url_changes(url, rewritten) == {"hostname", "port", "query:sslrootcert"}
    mqtt = shipped_settings()["mqtt"]["url"]
    assert url_changes(mqtt, with_url(mqtt, host="127.0.0.1", port=1)) == {"hostname", "port"}
    assert "password" in url_changes(mqtt, mqtt.replace("CHANGE-ME", "other"))
    assert url_changes(url, url.replace("verify-full", "require")) == {"query:sslmode"}


def test_the_mosquitto_rewrite_changes_only_the_listed_directives() -> None:
    shipped = MOSQUITTO_CONF.read_text()
    text = rewrite_mosquitto_conf(shipped, {"listener": {"8883": "1883 127.0.0.1", "8884": "1884 127.0.0.1"},
                                            "user": "root"})
    assert conf_changes(shipped, text) == {"listener", "user"}
    assert "listener 1883 127.0.0.1\n" in text and "listener 1884 127.0.0.1\n" in text
    assert text.endswith("user root\n")
    with pytest.raises(ValueError, match="listener 8884: no replacement"):  # every occurrence is accounted for
        rewrite_mosquitto_conf(shipped, {"listener": {"8883": "1883 127.0.0.1"}})
    with pytest.raises(ValueError, match="not in the shipped file"):
        rewrite_mosquitto_conf(shipped, {"listener": {"8883": "1", "8884": "2", "9999": "3"}})
    with pytest.raises(KeyError, match="allow_anonymous"):
        rewrite_mosquitto_conf(shipped, {"allow_anonymous": {"false": "true"}})
    assert conf_changes(shipped, shipped.replace("allow_anonymous false", "allow_anonymous true")) == {
        "allow_anonymous"}
    assert conf_changes(shipped, shipped.replace("tls_version tlsv1.2\n", "")) == {"tls_version"}
