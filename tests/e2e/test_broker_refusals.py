"""A daemon whose broker login the ACL refuses fails at start, naming the topic and the user (exit 3), instead of
logging "subscribed" and then hearing nothing; the subscriber client and the MQTT alert channel report the
broker's refusal (SUBACK / PUBACK reason codes) against a real Mosquitto with aqnet's ACL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.delivery.channels.mqtt import MqttAlertChannel
from alerts.delivery.notice import DeliveryError
from aqnet.localstack import MosquittoBroker
from aqnet.preflight import EXIT_REFUSED
from sensors.mqtt.broker.acl import ServiceRole
from sensors.mqtt.broker.credentials import issue_credentials, set_service_user
from sensors.mqtt.client import MqttSubscriberClient, SubscriptionRefused
from tests.fixtures.listeners import alert_keys_in, http_listeners

pytestmark = pytest.mark.integration


def _url(broker: MosquittoBroker, user: str, password: str) -> str:
    return f"mqtt://{user}:{password}@127.0.0.1:{broker.port}"


def _logins(broker: MosquittoBroker) -> dict[str, str]:
    """A sensor login (MS01) and a daemon login (aqnet-daemon, alerts under aqnet/alerts), broker reloaded."""
    issued = issue_credentials(broker.files, "MS01")
    set_service_user(broker.files, ServiceRole("aqnet-daemon"), "daemon-secret")
    broker.reload()
    time.sleep(0.5)  # SIGHUP is asynchronous; the clients below retry anyway
    return {"MS01": issued.password, "aqnet-daemon": "daemon-secret"}


def _run_daemon(tmp_path: Path, database_url: str, mqtt_url: str, channels: list[dict[str, Any]],
                timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    config = {
        "database": {"url": database_url},
        "mqtt": {"url": mqtt_url, "client_id": f"aqnet-refusal-{tmp_path.name}"[:60]},
        "network": {"bundled": False},
        "storage": {"spool_dir": str(tmp_path / "spool")},
        "http": http_listeners(),
        "alerts": {**alert_keys_in(tmp_path), "channels": channels},
    }
    path = tmp_path / "aqnet.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "aqnet", "run", "--config", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"the daemon kept running with a refused login:\n{out[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def test_a_daemon_whose_subscription_is_refused_exits_naming_topic_and_user(
        tmp_path: Path, database_url: str, mosquitto_factory: Any) -> None:
    broker = mosquitto_factory(secure=True)
    secrets = _logins(broker)
    res = _run_daemon(tmp_path, database_url, _url(broker, "MS01", secrets["MS01"]), channels=[])
    assert res.returncode == EXIT_REFUSED, res.stdout[-3000:]
    assert "refused the subscription to 'aqnet/+/readings' for user MS01" in res.stdout, res.stdout[-3000:]


def test_a_daemon_whose_alert_topic_is_refused_exits_naming_topic_and_user(
        tmp_path: Path, database_url: str, mosquitto_factory: Any) -> None:
    broker = mosquitto_factory(secure=True)
    secrets = _logins(broker)
    channels = [{"name": "state", "type": "mqtt", "topic_prefix": "city/alerts"}]  # not the login's prefix
    res = _run_daemon(tmp_path, database_url, _url(broker, "aqnet-daemon", secrets["aqnet-daemon"]), channels)
    assert res.returncode == EXIT_REFUSED, res.stdout[-3000:]
    assert "city/alerts/probe as user aqnet-daemon" in res.stdout and "not authorized" in res.stdout.lower(), \
        res.stdout[-3000:]


async def test_subscriber_client_reports_granted_and_refused_subscriptions(mosquitto_factory: Any) -> None:
    broker = mosquitto_factory(secure=True)
    secrets = _logins(broker)
    loop = asyncio.get_running_loop()

    def client(user: str, topics: list[str]) -> MqttSubscriberClient:
        return MqttSubscriberClient(_url(broker, user, secrets[user]), client_id=f"t-{user}-{len(topics)}",
                                    topics=topics,
                                    loop=loop, on_message=lambda m: None, reconnect_min_s=0.2, reconnect_max_s=1)

    granted = client("aqnet-daemon", ["aqnet/+/readings", "airrohr/+/data", "purpleair/+/data"])
    # Mosquitto 2.0 grants the SUBACK and then delivers nothing a login may not read: the probe tells
    refused = client("MS01", ["aqnet/+/readings"])
    try:
        granted.start()
        refused.start()
        await asyncio.wait_for(granted.subscribed, 30)
        with pytest.raises(SubscriptionRefused) as exc:
            await asyncio.wait_for(refused.subscribed, 30)
        assert exc.value.topic == "aqnet/+/readings" and exc.value.username == "MS01"
        assert "delivered nothing published to aqnet/MS01/readings" in str(exc.value)
        status = refused.status()
        assert status.state == "refused" and status.refused == ("aqnet/+/readings",)
        assert "'aqnet/+/readings' for user MS01" in (status.last_error or "")
        assert granted.status().refused == ()
    finally:
        await asyncio.to_thread(granted.stop)
        await asyncio.to_thread(refused.stop)


async def test_alert_channel_probe_is_refused_outside_the_daemons_prefix(mosquitto_factory: Any) -> None:
    broker = mosquitto_factory(secure=True)
    secrets = _logins(broker)
    ok = MqttAlertChannel("ok", _url(broker, "aqnet-daemon", secrets["aqnet-daemon"]))
    denied = MqttAlertChannel("denied", _url(broker, "aqnet-daemon", secrets["aqnet-daemon"]),
                              topic_prefix="other/alerts")
    try:
        await ok.probe()
        with pytest.raises(DeliveryError) as exc:
            await denied.probe()
        assert exc.value.permanent and "other/alerts/probe as user aqnet-daemon" in str(exc.value)
    finally:
        await ok.close()
        await denied.close()
