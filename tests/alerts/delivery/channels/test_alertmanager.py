"""alerts.delivery.channels.alertmanager: the label set and times (pure), error classes (httpx mock transport), and a
real Alertmanager 0.25: the alert arrives with its labels, a resolution ends it, re-posts keep it active, and its own
webhook notifies the receiver once per group, not once per re-post."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from alerts.delivery.channels.alertmanager import AlertmanagerChannel, alert_labels, postable_alerts
from alerts.delivery.notice import Channel, DeliveryError, Notice
from aqnet.localstack import free_port

NOW = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def make_notice(**changes: object) -> Notice:
    """A raised PM2.5 24 h prevention alert at sensor KEN (Kennedy); `changes` override fields."""
    t0 = changes.pop("t0", NOW - timedelta(hours=1))
    base = Notice(
        alert_id=7, event_id=1, transition="raised", state="firing", rule_id="pm25-24h-levels",
        rule_description="PM2.5 24 h prevention / alert / emergency levels", kind="threshold", audience="officers",
        severity="warning", indicative=False, scope="sensor", scope_key="KEN", sensor_id="KEN",
        sensor_name="Kennedy", locality="Kennedy", variable="pm25", level="prevention", from_level=None,
        value=41.5, unit="µg/m³", threshold=37.0, comparison=">=", source="Resolución 2254 de 2017 (unverified)",
        period="24h", period_start=t0 - timedelta(hours=24), period_end=t0, coverage=0.92,  # type: ignore[operator]
        started_at=t0, time=t0, dashboard_url="http://grafana:3000/d/aqnet-station?var-sensor=KEN")  # type: ignore[arg-type]
    return replace(base, **changes)  # type: ignore[arg-type]


def escalated(**changes: object) -> Notice:
    return make_notice(event_id=2, transition="escalated", level="alert", from_level="prevention",
                       severity="critical", value=60.0, threshold=56.0, **changes)


def resolved(**changes: object) -> Notice:
    return make_notice(event_id=3, transition="resolved", state="resolved", comparison="<", value=20.0,
                       threshold=30.0, **changes)


# pure ------------------------------------------------------------------------------------------------------

def test_labels_are_valid_and_name_the_alert() -> None:
    labels = alert_labels(make_notice())
    assert labels == {"alertname": "pm25-24h-levels", "severity": "warning", "audience": "officers",
                      "kind": "threshold", "scope": "sensor", "scope_key": "KEN", "sensor": "KEN",
                      "locality": "Kennedy", "variable": "pm25", "indicative": "false", "source": "aqnet"}
    assert all(LABEL_NAME.match(k) and isinstance(v, str) and v for k, v in labels.items())


def test_locality_and_network_labels_stay_constant_when_the_worst_sensor_changes() -> None:
    loc = [make_notice(scope="locality", scope_key="Kennedy", sensor_id=s, indicative=True) for s in ("KEN", "CDAR")]
    assert alert_labels(loc[0]) == alert_labels(loc[1])
    assert alert_labels(loc[0])["locality"] == "Kennedy" and "sensor" not in alert_labels(loc[0])
    assert alert_labels(loc[0])["indicative"] == "true"
    net = alert_labels(make_notice(scope="network", scope_key="network", locality="Suba"))
    assert "locality" not in net and "sensor" not in net and net["scope_key"] == "network"
    tech = alert_labels(make_notice(kind="no_data", audience="technicians", variable=None, locality=None))
    assert "variable" not in tech and "locality" not in tech and tech["audience"] == "technicians"
    # an acknowledgement or an escalation at the same severity keeps the identity
    same = alert_labels(make_notice(transition="acknowledged", state="acknowledged", actor="ana"))
    assert same == alert_labels(make_notice())


def test_active_alert_ends_four_reposts_ahead_and_carries_the_evidence() -> None:
    [alert] = postable_alerts(make_notice(), now=NOW, repost_s=60, language="en")
    assert alert["startsAt"] == "2026-11-22T14:00:00Z"
    assert alert["endsAt"] == "2026-11-22T15:04:00Z"
    notes = alert["annotations"]
    assert notes["level"] == "prevention" and notes["value"] == "41.5" and notes["threshold"] == "37"
    assert notes["unit"] == "µg/m³" and notes["norm_source"].startswith("Resolución 2254")
    assert notes["dashboard"].startswith("http://grafana:3000") and notes["alert_id"] == "7"
    assert (notes["summary"] and "KEN" in notes["description"]) or "Kennedy" in notes["description"]
    assert "acknowledge" not in notes  # no signed link for this channel unless the dispatcher gives one
    assert all(isinstance(v, str) and v for v in notes.values())
    assert alert["generatorURL"] == notes["dashboard"]


def test_description_in_the_configured_language() -> None:
    es = postable_alerts(make_notice(), now=NOW, repost_s=60, language="es")[0]["annotations"]["description"]
    en = postable_alerts(make_notice(), now=NOW, repost_s=60, language="en")[0]["annotations"]["description"]
    assert es != en


def test_resolution_ends_every_severity_at_the_resolution_time() -> None:
    alerts = postable_alerts(resolved(time=NOW - timedelta(minutes=10)), now=NOW, repost_s=60)
    assert {a["labels"]["severity"] for a in alerts} == {"info", "warning", "critical"}
    assert {a["endsAt"] for a in alerts} == {"2026-11-22T14:50:00Z"}


def test_escalation_to_another_severity_ends_the_old_one() -> None:
    alerts = postable_alerts(escalated(time=NOW), now=NOW, repost_s=60)
    assert alerts[0]["labels"]["severity"] == "critical" and alerts[0]["endsAt"] == "2026-11-22T15:04:00Z"
    assert sorted(a["labels"]["severity"] for a in alerts[1:]) == ["info", "warning"]
    assert all(a["endsAt"] == "2026-11-22T15:00:00Z" for a in alerts[1:])
    assert len(postable_alerts(make_notice(transition="unacknowledged"), now=NOW, repost_s=60)) == 1


def test_times_clamped_to_the_wall_clock() -> None:
    """A simulated clock ahead of the wall clock must not keep a resolved alert active in Alertmanager."""
    future = NOW + timedelta(days=2)
    [alert, *_] = postable_alerts(resolved(t0=future, time=future + timedelta(hours=3)), now=NOW, repost_s=60)
    assert alert["startsAt"] == "2026-11-22T15:00:00Z" and alert["endsAt"] == "2026-11-22T15:00:00.001000Z"


def _channel(handler: Any, **kwargs: Any) -> AlertmanagerChannel:
    return AlertmanagerChannel("am", "http://alertmanager.test:9093", clock=lambda: NOW,
                               transport=httpx.MockTransport(handler), **kwargs)


async def test_request_shape_and_repost_of_active_only() -> None:
    seen: list[tuple[str, list[dict[str, Any]]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), json.loads(request.content)))
        return httpx.Response(200)

    channel = _channel(handler)
    await channel.send(make_notice())
    posted = await channel.repost([make_notice(), resolved(alert_id=8),
                                   make_notice(alert_id=9, scope_key="USM", sensor_id="USM", state="acknowledged")])
    assert posted == 2
    assert isinstance(channel, Channel) and channel.type == "alertmanager" and channel.name == "am"
    assert await channel.repost([resolved()]) == 0  # nothing active: no request
    await channel.close()
    assert [url for url, _ in seen] == ["http://alertmanager.test:9093/api/v2/alerts"] * 2
    assert [a["labels"]["scope_key"] for a in seen[1][1]] == ["KEN", "USM"]


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (404, True), (422, True), (408, False),
                                                   (429, False), (500, False), (503, False)])
async def test_status_classes(status: int, permanent: bool) -> None:
    channel = _channel(lambda r: httpx.Response(status, json='invalid label set: invalid name "x-y"'))
    with pytest.raises(DeliveryError) as failed:
        await channel.send(make_notice())
    await channel.close()
    assert failed.value.permanent is permanent
    assert str(status) in str(failed.value) and "invalid label set" in str(failed.value)


async def test_connection_refused_is_transient() -> None:
    channel = AlertmanagerChannel("am", f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(DeliveryError) as failed:
        await channel.send(make_notice())
    await channel.close()
    assert not failed.value.permanent and "am" in str(failed.value)


def test_bad_settings_refused() -> None:
    with pytest.raises(ValueError, match="url"):
        AlertmanagerChannel("am", "alertmanager:9093")
    with pytest.raises(ValueError, match="repost_s"):
        AlertmanagerChannel("am", "http://a:9093", repost_s=0)


# real Alertmanager -----------------------------------------------------------------------------------------

class Receiver:
    """A tiny HTTP server recording Alertmanager's webhook notifications (JSON bodies)."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while len(self.notifications) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.notifications) >= n, f"expected {n} notifications, got {self.notifications}"
        return list(self.notifications)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def _wall(**changes: object) -> Notice:
    """A notice timed by the wall clock (Alertmanager compares with its own)."""
    return make_notice(t0=datetime.now(UTC) - timedelta(minutes=30), **changes)


def _poll(fn: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.mark.integration
async def test_alertmanager_receives_the_alert_and_a_resolution_ends_it(alertmanager_factory: Any,
                                                                         receiver: Receiver) -> None:
    am = alertmanager_factory(receiver.url)
    channel = AlertmanagerChannel("am", am.url, repost_s=60, language="en")
    try:
        await channel.send(_wall())
        [alert] = am.alerts(active_only=True)
        assert dict(alert["labels"].items()) == alert_labels(_wall())
        assert alert["status"]["state"] == "active" and alert["annotations"]["level"] == "prevention"
        [firing] = receiver.wait_for(1)
        assert firing["status"] == "firing" and firing["alerts"][0]["labels"]["sensor"] == "KEN"

        await channel.send(_wall(event_id=3, transition="resolved", state="resolved", time=datetime.now(UTC)))
        assert _poll(lambda: am.alerts(active_only=True) == []), am.alerts()
        notes = receiver.wait_for(2)
        assert [n["status"] for n in notes] == ["firing", "resolved"]
    finally:
        await channel.close()


@pytest.mark.integration
async def test_reposts_keep_it_active_and_notify_once(alertmanager_factory: Any, receiver: Receiver) -> None:
    """repost_s 1: endsAt is 4 s ahead; re-posting for 6 s keeps it active, with one notification only."""
    am = alertmanager_factory(receiver.url, group_wait_s=0.5, group_interval_s=1)
    channel = AlertmanagerChannel("am", am.url, repost_s=1)
    try:
        await channel.send(_wall())
        started = time.monotonic()
        while time.monotonic() - started < 6:
            time.sleep(1)
            assert await channel.repost([_wall()]) == 1
        [alert] = am.alerts(active_only=True)
        assert alert["status"]["state"] == "active"
        assert [n["status"] for n in receiver.notifications] == ["firing"], "a re-post notified again"
        # aqnet stops re-posting (down): Alertmanager resolves the alert by itself after 4 missed re-posts
        assert _poll(lambda: am.alerts(active_only=True) == [], timeout_s=8)
        assert [n["status"] for n in receiver.wait_for(2)] == ["firing", "resolved"]
    finally:
        await channel.close()


@pytest.mark.integration
async def test_escalation_to_critical_leaves_one_alert(alertmanager_factory: Any, receiver: Receiver) -> None:
    am = alertmanager_factory(receiver.url)
    channel = AlertmanagerChannel("am", am.url)
    try:
        await channel.send(_wall())
        receiver.wait_for(1)
        await channel.send(_wall(event_id=2, transition="escalated", level="alert", from_level="prevention",
                                 severity="critical", value=60.0, threshold=56.0, time=datetime.now(UTC)))
        assert _poll(lambda: [a["labels"]["severity"] for a in am.alerts(active_only=True)] == ["critical"]), \
            am.alerts()
        [*_, last] = receiver.wait_for(2)
        assert [a["labels"]["severity"] for a in last["alerts"] if a["status"] == "firing"] == ["critical"]
    finally:
        await channel.close()


@pytest.mark.integration
async def test_invalid_alert_is_permanent_with_alertmanagers_reason(alertmanager_factory: Any,
                                                                     receiver: Receiver) -> None:
    am = alertmanager_factory(receiver.url)
    channel = AlertmanagerChannel("am", am.url)
    try:
        with pytest.raises(DeliveryError) as failed:
            await channel._post([{"labels": {"bad-name": "x"}}])
        assert failed.value.permanent and "400" in str(failed.value) and "invalid label set" in str(failed.value)
    finally:
        await channel.close()


def test_attack_annotations_carry_no_live_link_even_when_the_notice_has_one() -> None:
    """Issue 16: Alertmanager's API, UI and receivers are read by others: whatever link the notice holds, no
    annotation (not `acknowledge`, not the rendered description) carries it, on a send or a re-post."""
    link = "https://aq.example/api/v1/alerts/ack/SECRET-TOKEN"
    for alert in (*postable_alerts(make_notice(ack_url=link), now=NOW, repost_s=60, language="en"),
                  *postable_alerts(escalated(ack_url=link), now=NOW, repost_s=60)):
        assert "SECRET-TOKEN" not in json.dumps(alert) and "/alerts/ack/" not in json.dumps(alert)
