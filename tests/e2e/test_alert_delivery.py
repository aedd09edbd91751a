"""Acceptance of issue 10: alerts reach people once, with the evidence, through real receivers.

Real everything: TimescaleDB (`database_url`), the write path (ingest.pipeline → storage.writer), the stage jobs
(`alerts.jobs.run_stage_jobs`: averages with completeness, then the rules), the dispatcher and channels the daemon
builds (`aqnet.alert_channels`), and the receivers started on free ports: an HTTP server (webhook), an SMTP
server with STARTTLS (aiosmtpd), Mosquitto (retained state topics) and Prometheus Alertmanager. The city is
`simulators.signals` with a scripted episode (tests/e2e/alert_harness.py explains the script and the clocks):

    hour (end)   24   30   31   32   35   60   62     24-h PM2.5 mean ending at the hour (µg/m³)
    USQ         38.3 ──────── flaps 34.6 … 45.6 across 38, never < 30 (clear) nor >= 56 (alert) ────────
    CSE               42.5      58.3                 29.7   raised 30, escalated 32, resolved 62
    KEN                    40.1      56.1      26.9         raised 31, escalated 35, resolved 60

so with the rule pm25-24h-levels (prevention 38, alert 56, clear below 30) every channel gets exactly
7 deliveries: USQ raised (1; its flapping adds none), CSE raised + escalated + resolved (3), KEN the same (3).

- the episode: those counts at the webhook, SMTP, MQTT and Alertmanager receivers, across a restart of the
  evaluation and the delivery mid-episode (with a second dispatcher racing the restarted one at that hour);
- a webhook answering 503 twice: retried with backoff and delivered once, e-mail and MQTT not held back; the
  signed acknowledgement link of the message (GET shows a form, POST acknowledges, actor "<name> (link)");
- escalation for want of an acknowledgement on time (and none for the acknowledged alert), officer-only
  ack / resolve / note over the HTTP API and the CLI (technician and reader tokens refused);
- routing: the technicians' no-data alert goes to the technicians' channel, air quality to the officers'.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection

from tests.e2e.alert_harness import (
    EPISODE_STATIONS,
    FLAPPING_STATION,
    AlertHarness,
    Delivery,
    MqttTally,
    alert_settings,
    api_client,
    crossings,
    test_rules,
    wait_until,
)
from tests.fixtures.alertmanager import alertmanager_factory  # noqa: F401  (fixture)
from tests.fixtures.receivers import (  # noqa: F401  (fixtures)
    WebhookReceiver,
    smtp_pki,
    smtp_receiver,
    smtp_receiver_factory,
    webhook_receiver,
)

pytestmark = pytest.mark.integration

PREFIX = "aqnet/alerts"
#: (sensor, event kind, level, from_level, hour of the evaluated period's end): the table in the docstring
EPISODE_EVENTS = [
    ("USQ", "raised", "prevention", None, 24),
    ("CSE", "raised", "prevention", None, 30),
    ("KEN", "raised", "prevention", None, 31),
    ("CSE", "escalated", "alert", "prevention", 32),
    ("KEN", "escalated", "alert", "prevention", 35),
    ("KEN", "resolved", "alert", None, 60),
    ("CSE", "resolved", "alert", None, 62),
]
LAST_HOUR = 62
RESTART_AT = 32  #: mid-episode: CSE escalated in this hour's stage jobs, not yet delivered when the restart comes


def _prefix(tmp_path: Path) -> str:
    """A state-topic prefix of this test's own: the session's broker keeps other tests' retained states."""
    return f"{PREFIX}/{tmp_path.name}"


def _channels(hook: WebhookReceiver, smtp: Any, mqtt_port: int, am_url: str | None, prefix: str
              ) -> list[dict[str, Any]]:
    channels: list[dict[str, Any]] = [
        {"type": "webhook", "name": "officers-hook", "url": hook.url, "audience": ["officers"], "timeout_s": 5},
        {"type": "email", "name": "officers-mail", "host": smtp.host, "port": smtp.port, "starttls": True,
         "ca_file": smtp.ca_file, "sender": "aqnet@example.org", "to": ["oficiales@example.org"], "timeout_s": 10},
        {"type": "mqtt", "name": "state", "url": f"mqtt://127.0.0.1:{mqtt_port}", "topic_prefix": prefix,
         "audience": ["officers", "technicians"]},
    ]
    if am_url is not None:
        channels.append({"type": "alertmanager", "name": "am", "url": am_url})
    return channels


def _alert_ids(harness: AlertHarness) -> dict[str, int]:
    return {key: alert_id for alert_id, key in harness.query("SELECT id, scope_key FROM alerts")}


async def test_pm25_episode_reaches_every_receiver_once_per_transition_across_a_restart(
        database_url: str, tmp_path: Path, mosquitto: Any, webhook_receiver: WebhookReceiver,  # noqa: F811
        smtp_receiver: Any, alertmanager_factory: Any) -> None:  # noqa: F811
    am_hook = WebhookReceiver()  # where Alertmanager sends its own notifications
    prefix = _prefix(tmp_path)
    tally = MqttTally(mosquitto.port, prefix, client_id="alert-tally-episode")
    try:
        am = alertmanager_factory(am_hook.url)
        settings = alert_settings(database_url, mosquitto.port,
                                  _channels(webhook_receiver, smtp_receiver, mosquitto.port, am.url, prefix),
                                  tmp_dir=str(tmp_path))
        harness = AlertHarness(database_url, test_rules(escalate_after_min=0))
        delivery = Delivery(settings, clock=lambda: harness.now)
        delivered_per_hour: list[int] = []

        async def dispatch(hour: int) -> None:
            runs = []
            if hour == RESTART_AT:  # the stage jobs of this hour ran; the "daemon" restarts before delivering,
                await harness.restart()  # and a second daemon (another leader for a moment) delivers at once
                await delivery.restart()
                rival = Delivery(settings, clock=lambda: harness.now)
                try:
                    runs += await asyncio.gather(delivery.run_once(), rival.run_once())
                finally:
                    await rival.close()
            else:
                runs.append(await delivery.run_once())
            assert not [c for r in runs for c in r.channels if c.error or c.failed or c.dead], (hour, runs)
            again = await delivery.run_once()  # a second run at the same instant finds nothing to send
            assert again.delivered == again.planned == 0, (hour, again)
            delivered_per_hour.append(sum(r.delivered for r in runs))
            if hour == RESTART_AT:
                assert delivered_per_hour[-1] == 4, runs  # CSE's escalation, once per channel in all

        try:
            async with harness:
                await harness.warm_up(24)
                await dispatch(24)
                await harness.advance(LAST_HOUR - 24, after_each=dispatch)
        finally:
            await delivery.close()

        # the data explain the counts: the means of the docstring's table
        means = {s: harness.means_24h(s) for s in ("KEN", "CSE", "USQ")}
        flapping = [m for m in means[FLAPPING_STATION] if 24 <= m[0] <= LAST_HOUR]
        assert all(valid for _, _, valid in flapping)
        assert crossings(flapping, 38) >= 3, f"USQ should flap across 38 µg/m³: {flapping}"
        assert min(v for _, v, _ in flapping) >= 30 and max(v for _, v, _ in flapping) < 56, flapping

        # the alerts and their history: one alert per sensor and rule; escalation, not a new alert
        assert [e[1:] for e in harness.events()] == EPISODE_EVENTS
        ids = _alert_ids(harness)
        assert sorted(ids) == ["CSE", "KEN", "USQ"]
        states = dict(harness.query("SELECT scope_key, state FROM alerts"))
        assert states == {"USQ": "firing", "CSE": "resolved", "KEN": "resolved"}
        assert sum(delivered_per_hour) == 4 * len(EPISODE_EVENTS)  # 4 channels × 7 transitions, none twice

        # webhook: 7 signed JSON POSTs, one per transition (idempotency keys unique), none failed
        hooks = await webhook_receiver.wait_for(len(EPISODE_EVENTS))
        assert len(hooks) == len(EPISODE_EVENTS) and all(r.status == 200 for r in hooks)
        assert len({r.headers["x-aqnet-delivery"] for r in hooks}) == len(hooks)
        by_alert: dict[int, list[str]] = {}
        for r in hooks:
            body = r.json()
            by_alert.setdefault(body["alert_id"], []).append(r.headers["x-aqnet-event"])
            assert r.headers["x-aqnet-signature"].startswith("sha256=")
            assert body["unit"] == "µg/m³" and body["variable"] == "pm25" and body["period"] == "24h"
        assert by_alert == {ids["USQ"]: ["raised"], ids["CSE"]: ["raised", "escalated", "resolved"],
                            ids["KEN"]: ["raised", "escalated", "resolved"]}

        # e-mail over STARTTLS: 7 messages, each transition of an alert in the same thread
        mails = await smtp_receiver.wait_for(len(EPISODE_EVENTS))
        assert len(mails) == len(EPISODE_EVENTS)
        assert all(m.tls for m in smtp_receiver.received)
        assert len({m["Message-ID"] for m in mails}) == len(mails)

        # MQTT: 7 publishes on 3 retained state topics; the last state of each is the alert's state
        published = tally.wait_for(len(EPISODE_EVENTS))
        assert len(published) == len(EPISODE_EVENTS), [(t, p.get("transition")) for t, _, p in published]
        assert Counter(t for t, _, _ in published) == {f"{prefix}/{ids['USQ']}": 1, f"{prefix}/{ids['CSE']}": 3,
                                                       f"{prefix}/{ids['KEN']}": 3}
        last = {t: p["state"] for t, _, p in published}
        assert last == {f"{prefix}/{ids['USQ']}": "firing", f"{prefix}/{ids['CSE']}": "resolved",
                        f"{prefix}/{ids['KEN']}": "resolved"}
        assert not any(retained for _, retained, _ in published)  # live deliveries, not replays

        # Alertmanager holds the three alerts; only USQ's is still active
        wait_until(lambda: len(am.alerts()) >= 1, 10, "Alertmanager to hold the alerts")
        active = am.alerts(active_only=True)
        assert [(a["labels"]["alertname"], a["labels"]["scope_key"]) for a in active] == [
            ("pm25-24h-levels", FLAPPING_STATION)]
        assert active[0]["labels"]["severity"] == "warning" and active[0]["labels"]["audience"] == "officers"
        # ... and notified its own receiver: USQ firing (grouped by alertname and scope_key)
        wait_until(lambda: any(_am_alerts(am_hook, FLAPPING_STATION, "firing")), 15,
                   "Alertmanager's notification of the USQ alert")
        for station in EPISODE_STATIONS:  # the episode's alerts were notified resolved (send_resolved)
            wait_until(lambda s=station: any(_am_alerts(am_hook, s, "resolved")), 15,
                       f"Alertmanager's resolved notification of the {station} alert")

        # the outbox: every transition × channel delivered exactly once
        outbox = harness.outbox()
        assert Counter(c for c, _, _ in outbox) == {n: len(EPISODE_EVENTS) for n in
                                                    ("officers-hook", "officers-mail", "state", "am")}
        assert {s for _, s, _ in outbox} == {"delivered"}
    finally:
        tally.close()
        am_hook.stop()


async def _cli(args: list[str]) -> Any:
    """`aqnet <args>` through click's runner, in a thread (the command runs its own event loop)."""
    from click.testing import CliRunner

    from aqnet.cli import cli

    return await asyncio.to_thread(CliRunner().invoke, cli, args)


def _am_alerts(hook: WebhookReceiver, scope_key: str, status: str) -> list[dict[str, Any]]:
    found = []
    for r in list(hook.requests):
        for alert in json.loads(r.body).get("alerts", []):
            if alert["labels"].get("scope_key") == scope_key and alert["status"] == status:
                found.append(alert)
    return found


async def test_failing_receiver_is_retried_and_delivered_once_without_delaying_the_others(
        database_url: str, tmp_path: Path, mosquitto: Any, webhook_receiver: WebhookReceiver,  # noqa: F811
        smtp_receiver: Any) -> None:  # noqa: F811
    prefix = _prefix(tmp_path)
    tally = MqttTally(mosquitto.port, prefix, client_id="alert-tally-503")
    try:
        settings = alert_settings(database_url, mosquitto.port,
                                  _channels(webhook_receiver, smtp_receiver, mosquitto.port, None, prefix),
                                  tmp_dir=str(tmp_path), retry_min_s=60, retry_max_s=600, max_attempts=5)
        harness = AlertHarness(database_url, test_rules(escalate_after_min=0))
        delivery = Delivery(settings, clock=lambda: harness.now)
        try:
            async with harness:
                await harness.warm_up(24)  # USQ raised at hour 24 (one transition)
                webhook_receiver.fail_next(2, 503)
                first = await delivery.run_once()
                by_channel = {c.channel: c for c in first.channels}
                # the webhook failed; e-mail and MQTT delivered in the same run, not held back
                assert (by_channel["officers-hook"].failed, by_channel["officers-hook"].delivered) == (1, 0)
                assert by_channel["officers-mail"].delivered == by_channel["state"].delivered == 1
                assert len(smtp_receiver.received) == 1 and len(tally.wait_for(1)) == 1
                # not due again before its backoff (retry_min_s 60 s, jitter 0.8–1)
                early = await delivery.run_once(harness.now + timedelta(seconds=30))
                assert early.delivered == early.failed == 0
                second = await delivery.run_once(harness.now + timedelta(seconds=61))
                assert second.failed == 1 and second.delivered == 0  # the second 503
                third = await delivery.run_once(harness.now + timedelta(seconds=61 + 121))
                assert third.delivered == 1 and third.failed == 0
                later = await delivery.run_once(harness.now + timedelta(hours=1))
                assert later.planned == later.delivered == 0
                # the signed acknowledgement link of the message: GET only shows a form, POST acknowledges
                link = webhook_receiver.requests[-1].json()["ack_url"]
                assert link.startswith("http://aqnet.example:8080/api/v1/alerts/ack/")
                path = link.removeprefix("http://aqnet.example:8080")
                async with api_client(database_url, delivery.key) as http:
                    form = await http.get(path)
                    assert form.status_code == 200 and "<form" in form.text
                    assert harness.query("SELECT state FROM alerts") == [("firing",)]
                    done = await http.post(path, data={"name": "Ana Pérez"})
                    assert done.status_code == 200, done.text
                acked = await delivery.run_once(harness.now + timedelta(hours=1, seconds=1))
                assert acked.delivered == 3  # the 'acknowledged' transition, once per channel
        finally:
            await delivery.close()
        statuses = [(r.headers["x-aqnet-event"], r.status) for r in webhook_receiver.requests]
        assert statuses == [("raised", 503), ("raised", 503), ("raised", 200), ("acknowledged", 200)]
        assert len({r.headers["x-aqnet-delivery"] for r in webhook_receiver.requests}) == 2  # 2 deliveries
        assert len(smtp_receiver.received) == 2 and len(tally.wait_for(2)) == 2
        assert harness.query("SELECT actor, via FROM alert_events WHERE kind = 'acknowledged'") == [
            ("Ana Pérez (link)", "link")]
        assert harness.query("SELECT channel, state, attempts FROM alert_outbox WHERE channel = 'officers-hook' "
                             "ORDER BY id") == [("officers-hook", "delivered", 3),  # 503, 503, 200
                                                ("officers-hook", "delivered", 1)]
    finally:
        tally.close()


async def test_unacknowledged_alert_escalates_on_time_acknowledged_one_does_not_officers_only(
        database_url: str, tmp_path: Path, mosquitto: Any, webhook_receiver: WebhookReceiver,  # noqa: F811
        smtp_receiver: Any) -> None:  # noqa: F811
    """Escalation for want of an acknowledgement after 60 min (the rule's setting). USQ, raised at hour 24, is
    acknowledged at once by an officer over the HTTP API (a technician and a reader are refused: 403 for ack,
    resolve and note) and never escalates for want of one over the next 9 hours. CSE is raised at 30: nobody
    acknowledges, so at 31 (60.5 min later) one 'unacknowledged' transition; its escalation to alert at 32 needs a
    new acknowledgement: another at 33. KEN is raised at 31: 'unacknowledged' at 32. Each delivered once."""
    from storage.tokens import create_token

    prefix = _prefix(tmp_path)
    settings = alert_settings(database_url, mosquitto.port,
                              _channels(webhook_receiver, smtp_receiver, mosquitto.port, None, prefix),
                              tmp_dir=str(tmp_path))
    harness = AlertHarness(database_url, test_rules(escalate_after_min=60), escalate_after_min=0)
    delivery = Delivery(settings, clock=lambda: harness.now)
    async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
        tokens = {role: (await create_token(conn, name=f"{role}-ana", role=role, created_by="test")).secret
                  for role in ("officer", "technician", "reader")}
    refused: dict[str, list[int]] = {}
    refused_cli: list[str] = []
    try:
        async with harness:
            await harness.warm_up(24)
            usq = _alert_ids(harness)[FLAPPING_STATION]
            async with api_client(database_url, delivery.key) as http:
                for role in ("technician", "reader"):
                    auth = {"Authorization": f"Bearer {tokens[role]}"}
                    refused[role] = [
                        (await http.post(f"/api/v1/alerts/{usq}/ack", json={"note": "visto"},
                                         headers=auth)).status_code,
                        (await http.post(f"/api/v1/alerts/{usq}/resolve", json={}, headers=auth)).status_code,
                        (await http.post(f"/api/v1/alerts/{usq}/notes", json={"text": "x"},
                                         headers=auth)).status_code]
                    assert (await http.get(f"/api/v1/alerts/{usq}", headers=auth)).status_code == 200  # reads
                officer = {"Authorization": f"Bearer {tokens['officer']}"}
                ack = await http.post(f"/api/v1/alerts/{usq}/ack", json={"note": "en revisión"}, headers=officer)
                assert ack.status_code == 200, ack.text
                note = await http.post(f"/api/v1/alerts/{usq}/notes", json={"text": "cuadrilla enviada"},
                                       headers=officer)
                assert note.status_code in (200, 201), note.text
            for role in ("technician", "reader"):  # the CLI refuses their tokens too (exit 1, naming the role)
                for args in (["ack", str(usq)], ["resolve", str(usq)], ["note", str(usq), "x"]):
                    result = await _cli(["alerts", *args, "--url", database_url, "--token", tokens[role]])
                    assert result.exit_code == 1 and role in result.output, (role, args, result.output)
                    refused_cli.append(role)
            noted = await _cli(["alerts", "note", str(usq), "informe enviado", "--url", database_url,
                                "--token", tokens["officer"]])
            assert noted.exit_code == 0, noted.output
            await delivery.run_once()
            await harness.advance(33 - 24, after_each=lambda _: delivery.run_once())
    finally:
        await delivery.close()

    assert refused == {"technician": [403, 403, 403], "reader": [403, 403, 403]}
    assert refused_cli == ["technician"] * 3 + ["reader"] * 3
    assert harness.query("SELECT actor, via FROM alert_events WHERE kind = 'acknowledged'") == [("officer-ana", "api")]
    assert harness.query("SELECT actor, via FROM alert_events WHERE kind = 'note' ORDER BY id") == [
        ("officer-ana", "api"), ("officer-ana", "cli")]  # notes are history, never delivered
    unack = [(s, level, h) for s, kind, level, _, h in (e[1:] for e in harness.events()) if kind == "unacknowledged"]
    assert unack == [("CSE", "prevention", 31), ("KEN", "prevention", 32), ("CSE", "alert", 33)], harness.events()
    hooks = [(r.json()["scope_key"], r.headers["x-aqnet-event"]) for r in webhook_receiver.requests]
    assert Counter(hooks) == Counter({("USQ", "raised"): 1, ("USQ", "acknowledged"): 1, ("CSE", "raised"): 1,
                                      ("CSE", "unacknowledged"): 2, ("KEN", "raised"): 1,
                                      ("KEN", "unacknowledged"): 1, ("CSE", "escalated"): 1}), hooks
    assert len(webhook_receiver.requests) == 8 and len(smtp_receiver.received) == 8


async def test_equipment_alerts_reach_technicians_and_air_quality_alerts_officers(
        database_url: str, tmp_path: Path, mosquitto: Any, webhook_receiver: WebhookReceiver,  # noqa: F811
        smtp_receiver: Any) -> None:  # noqa: F811
    """KEN's link goes down for hours 25–26 (no reading at all) and comes back at 27: the technicians' rule
    station-no-data raises at 25 (70 min since its last reading >= 30) and resolves at 27 (10 min < 15). The
    officers' webhook gets only USQ's air-quality alert (raised at 24); the technicians' webhook only KEN's
    equipment alert (raised, resolved); the MQTT channel (both audiences) all three."""
    prefix = _prefix(tmp_path)
    technicians = WebhookReceiver()
    tally = MqttTally(mosquitto.port, prefix, client_id="alert-tally-routing")
    try:
        channels = [c for c in _channels(webhook_receiver, smtp_receiver, mosquitto.port, None, prefix)
                    if c["type"] != "email"]
        channels.append({"type": "webhook", "name": "technicians-hook", "url": technicians.url,
                         "audience": ["technicians"]})
        settings = alert_settings(database_url, mosquitto.port, channels, tmp_dir=str(tmp_path))
        harness = AlertHarness(database_url, test_rules(no_data=True))
        delivery = Delivery(settings, clock=lambda: harness.now)
        try:
            async with harness:
                # the harness writes its stations' PM analysers only: their other analysers are not on the air
                # (inactive), else station-no-data, judged per device, raises for them from the start
                harness.query("UPDATE devices SET active = false WHERE NOT (id = ANY(%s)) RETURNING id",
                              (list(harness.device_of.values()),))
                await harness.warm_up(24)
                await delivery.run_once()
                harness.silent.add("KEN")
                await harness.advance(2, after_each=lambda _: delivery.run_once())
                harness.silent.clear()
                await harness.advance(1, after_each=lambda _: delivery.run_once())
        finally:
            await delivery.close()
        assert [e[1:] for e in harness.events()] == [
            ("USQ", "raised", "prevention", None, 24), ("KEN", "raised", "no_data", None, 25),
            ("KEN", "resolved", "no_data", None, 27)], harness.events()
        audience = dict(harness.query("SELECT scope_key, audience FROM alerts"))
        assert audience == {"USQ": "officers", "KEN": "technicians"}
        officers = [(r.json()["scope_key"], r.headers["x-aqnet-event"]) for r in webhook_receiver.requests]
        techs = [(r.json()["scope_key"], r.headers["x-aqnet-event"]) for r in technicians.requests]
        assert officers == [("USQ", "raised")]
        assert techs == [("KEN", "raised"), ("KEN", "resolved")]
        assert len(tally.wait_for(3)) == 3
    finally:
        tally.close()
        technicians.stop()
