"""Alert delivery wiring (aqnet.alert_channels): the signing key is created once with mode 600 and kept; channels
are built from `alerts.channels` with their secret files; every problem names the channel and the file, all at
once; the MQTT channel defaults to the ingest broker; the dispatcher takes the channels with their filters; the
scheduler's delivery jobs run the dispatcher on the leader, count deliveries and never raise."""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alerts.delivery.dispatch import ChannelRun, Dispatcher, DispatchRun
from alerts.delivery.signing import signature, verify_signature
from aqnet.alert_channels import (
    KEY_BYTES,
    ChannelConfigError,
    build_channels,
    build_dispatcher,
    close_channels,
    load_alert_keys,
    load_or_create_key,
    read_secret,
)
from aqnet.config import Settings, settings_from_dict
from aqnet.metrics import Metrics
from aqnet.schedule import add_stage_jobs
from tests.aqnet.api.test_alerts import seed_alert


def _settings(channels: list[dict[str, Any]], **alerts: Any) -> Settings:
    return settings_from_dict({"database": {"url": "postgresql://aqnet@127.0.0.1:1/aqnet"},
                               "mqtt": {"url": "mqtt://broker.example:1884"},
                               "alerts": {"channels": channels, **alerts}})


def test_signing_key_is_created_private_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keys" / "alert-signing.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key  # a restart keeps the key: links already sent stay valid
    assert load_or_create_key(tmp_path / "other.key") != key


def test_a_short_or_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    with pytest.raises(ChannelConfigError, match=r"alerts.signing_key_file: .*short.key holds 3 bytes"):
        load_or_create_key(short)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(ChannelConfigError, match=r"alerts.signing_key_file: cannot create .*file/k.key"):
        load_or_create_key(blocked / "k.key")


def test_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_bytes(b"s3cret\n")
    assert read_secret(str(secret), channel="city", key="secret_file") == b"s3cret"
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    with pytest.raises(ChannelConfigError, match=r"alerts.channels\[city\].secret_file: .*empty: the file is empty"):
        read_secret(str(empty), channel="city", key="secret_file")


def test_every_channel_type_is_built_with_its_settings(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_bytes(b"webhook-secret")
    password = tmp_path / "smtp.password"
    password.write_text("pw\n")
    s = _settings([
        {"type": "webhook", "name": "city", "url": "https://city.example/hook", "secret_file": str(secret),
         "audience": ["officers"], "min_severity": "warning"},
        {"type": "webhook", "name": "ops", "url": "http://127.0.0.1:9/hook", "audience": ["technicians"]},
        {"type": "email", "name": "officers-mail", "host": "smtp.example", "sender": "aqnet@city.example",
         "to": ["calidad@city.example"], "username": "aqnet", "password_file": str(password), "language": "en"},
        {"type": "mqtt", "name": "state"},
        {"type": "mqtt", "name": "other-broker", "url": "mqtt://other.example:1883", "topic_prefix": "city/alerts"},
        {"type": "alertmanager", "name": "am", "url": "http://127.0.0.1:9093"},
    ])
    key = bytes(range(32))
    built = build_channels(s, key)
    try:
        assert list(built) == ["city", "ops", "officers-mail", "state", "other-broker", "am"]
        assert {n: c.type for n, (c, _) in built.items()} == {
            "city": "webhook", "ops": "webhook", "officers-mail": "email", "state": "mqtt", "other-broker": "mqtt",
            "am": "alertmanager"}
        for name, (channel, filt) in built.items():
            assert channel.name == name and filt.name == name  # the settings are the filter
        assert built["city"][1].min_severity == "warning" and built["ops"][1].audience == ["technicians"]
        assert built["state"][0].topic_for(7) == "aqnet/alerts/7"
        assert "broker.example" in str(built["state"][0]._url)  # no url: the ingest broker (mqtt.url)
        assert "other.example" in str(built["other-broker"][0]._url)
        # the webhook signs with its secret file's key, else with the signing key
        body = b'{"a":1}'
        assert built["city"][0]._key == b"webhook-secret" and built["ops"][0]._key == key
        assert signature(built["ops"][0]._key, body) == signature(key, body)
        dispatcher = build_dispatcher("postgresql://aqnet@127.0.0.1:1/aqnet", s, built, key, clock=lambda: None)
        assert isinstance(dispatcher, Dispatcher) and dispatcher.timeout_for("officers-mail") == 20.0
    finally:
        assert asyncio.run(close_channels(built)) == []


def test_attack_the_link_key_signs_no_webhook(tmp_path: Path) -> None:
    """Issue 16: links and webhooks no longer share a key. A webhook without a secret_file signs with
    alerts.signing_key_file's key, the links with alerts.link_key_file's (both created when missing); a signature
    made with the link key does not verify at any webhook receiver, so holding a webhook secret mints no link."""
    s = _settings([{"type": "webhook", "name": "ops", "url": "http://127.0.0.1:9/hook"}],
                  signing_key_file=str(tmp_path / "alert-signing.key"), link_key_file=str(tmp_path / "alert-link.key"))
    keys = load_alert_keys(s)
    assert (tmp_path / "alert-link.key").read_bytes() == keys.link and len(keys.link) == KEY_BYTES
    assert keys.link != keys.webhook
    built = build_channels(s, keys.webhook)
    try:
        hook = built["ops"][0]
        body = b'{"alert_id":1}'
        header = hook.request_headers(_notice(), body)["X-Aqnet-Signature"]  # type: ignore[attr-defined]
        assert not verify_signature(keys.link, body, header) and verify_signature(keys.webhook, body, header)
        assert signature(keys.link, body) != header
    finally:
        asyncio.run(close_channels(built))


def test_link_key_shared_with_a_webhook_is_refused(tmp_path: Path) -> None:
    """The same file (config validation), or the same bytes in another file (at start), is refused."""
    with pytest.raises(ValueError, match="link_key_file: .* is also signing_key_file"):
        _settings([], signing_key_file=str(tmp_path / "k"), link_key_file=str(tmp_path / "k"))
    with pytest.raises(ValueError, match=r"channels\[city\].secret_file: .* is alerts.link_key_file"):
        _settings([{"type": "webhook", "name": "city", "url": "https://c.example/h",
                    "secret_file": str(tmp_path / "k")}], link_key_file=str(tmp_path / "k"))
    old = tmp_path / "alert-signing.key"
    key = load_or_create_key(old)
    (tmp_path / "copy.key").write_bytes(key)  # an operator "migrating" by copying the old key
    secret = tmp_path / "city.secret"
    secret.write_bytes(key)
    s = _settings([{"type": "webhook", "name": "city", "url": "https://c.example/h", "secret_file": str(secret)}],
                  signing_key_file=str(old), link_key_file=str(tmp_path / "copy.key"))
    with pytest.raises(ChannelConfigError) as refused:
        load_alert_keys(s)
    assert [e.split(" holds the same key as ")[1].split(":")[0] for e in refused.value.errors] == [
        "alerts.signing_key_file", "alerts.channels[city].secret_file"]


def _notice() -> Any:
    from tests.alerts.delivery.channels.test_alertmanager import make_notice

    return make_notice()


def test_file_problems_name_the_channel_and_the_file_all_at_once(tmp_path: Path) -> None:
    s = _settings([
        {"type": "webhook", "name": "city", "url": "https://city.example/hook",
         "secret_file": str(tmp_path / "missing.secret")},
        {"type": "email", "name": "mail", "host": "smtp.example", "sender": "a@b.example", "to": ["c@d.example"],
         "password_file": str(tmp_path / "nopass"), "username": "aqnet"},
        {"type": "email", "name": "mail-ca", "host": "smtp.example", "sender": "a@b.example", "to": ["c@d.example"],
         "ca_file": str(tmp_path / "ca.pem")},
        {"type": "email", "name": "mail-nopw", "host": "smtp.example", "sender": "a@b.example", "to": ["c@d.example"],
         "username": "aqnet"},
        {"type": "webhook", "name": "bad-url", "url": "ftp://city.example/hook"},
    ])
    with pytest.raises(ChannelConfigError) as caught:
        build_channels(s, bytes(32))
    errors = caught.value.errors
    assert len(errors) == 5, errors
    assert errors[0] == f"alerts.channels[city].secret_file: {tmp_path / 'missing.secret'}: no such file"
    assert errors[1] == f"alerts.channels[mail].password_file: {tmp_path / 'nopass'}: no such file"
    assert errors[2] == f"alerts.channels[mail-ca].ca_file: {tmp_path / 'ca.pem'}: no such file"
    assert errors[3].startswith("alerts.channels[mail-nopw].password_file: username 'aqnet' is set")
    assert errors[4].startswith("alerts.channels[bad-url] (webhook): ") and "ftp://" in errors[4]


class _Dispatcher:
    """Stands for alerts.delivery.dispatch.Dispatcher: one round's result, and an Alertmanager that is down."""

    def __init__(self) -> None:
        self.runs = self.reposts = 0

    async def run_once(self, now: Any = None) -> DispatchRun:
        self.runs += 1
        return DispatchRun((ChannelRun("city", planned=3, delivered=2, failed=1), ChannelRun("am", dead=1)))

    async def repost_active(self, now: Any = None) -> dict[str, int]:
        self.reposts += 1
        raise OSError("connection refused")


async def test_delivery_jobs_count_and_survive_failures(database_url: str) -> None:
    s = settings_from_dict({"database": {"url": database_url}, "mqtt": {"url": "mqtt://127.0.0.1:1"}, "alerts": {
        "channels": [{"type": "webhook", "name": "city", "url": "http://127.0.0.1:9/hook"},
                     {"type": "alertmanager", "name": "am", "url": "http://127.0.0.1:9"}]}})
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        await seed_alert(conn)  # one firing officers' alert, severity warning
    metrics = Metrics.create(CollectorRegistry())
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False)
    await pool.open(wait=True, timeout=30)
    dispatcher = _Dispatcher()
    scheduler = AsyncIOScheduler()
    leadership = add_stage_jobs(scheduler, s, clock=lambda: datetime.now(UTC), tz=UTC, cadences={}, rules=[],
                                dispatcher=dispatcher, metrics=metrics, pool=pool)  # type: ignore[arg-type]
    try:
        deliveries, repost = scheduler.get_job("deliveries"), scheduler.get_job("alertmanager-repost")
        await deliveries.func()  # not the leader yet: nothing
        assert dispatcher.runs == 0
        assert await asyncio.to_thread(leadership.hold)
        await deliveries.func()
        await repost.func()  # Alertmanager down: logged, not raised
    finally:
        leadership.release()
        await pool.close()
    assert (dispatcher.runs, dispatcher.reposts) == (1, 1)
    sample = metrics.registry.get_sample_value
    assert sample("aqnet_alert_deliveries_total", {"channel": "city", "result": "delivered"}) == 2
    assert sample("aqnet_alert_deliveries_total", {"channel": "city", "result": "failed"}) == 1
    assert sample("aqnet_alert_deliveries_total", {"channel": "am", "result": "dead"}) == 1
    assert sample("aqnet_alert_outbox_pending", {"channel": "city"}) == 0
    assert sample("aqnet_alerts_active", {"audience": "officers", "severity": "warning"}) == 1
    assert sample("aqnet_alerts_active", {"audience": "technicians", "severity": "critical"}) == 0
