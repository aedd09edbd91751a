"""alerts.delivery.dispatch: every transition reaches every channel that wants it exactly once, across repeated runs,
concurrent dispatchers and restarts; a failing channel backs off and goes to the dead letter without holding up
the others; notices carry the evidence and a signed acknowledgement link. Channels here are small fakes of the
Channel protocol (the real channels have their own tests), the database is real."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alerts.delivery.dispatch import Dispatcher, build_notice, retry_delay_s
from alerts.delivery.notice import DeliveryError, Notice
from alerts.delivery.signing import verify_ack_token
from alerts.rules.model import parse_rules
from alerts.settings import ChannelFilter
from storage import alert_outbox as outbox
from storage import alerts_store as store
from tests.storage.test_alerts_store import T0, add_alert, add_event, connect

RULES = parse_rules("""
rules:
  - id: pm25-24h-levels
    description: PM2.5 24 h prevention / alert / emergency (test copy)
    variable: pm25
    period: 24h
    clear_fraction: 0.9
    levels:
      - {name: prevention, threshold: 38, unit: "µg/m³", comparison: ">=", source: "Res. 2254/2017 Art. 10",
         status: verified_secondary}
      - {name: alert, threshold: 56, unit: "µg/m³", comparison: ">=", source: "Res. 2254/2017 Art. 10"}
""", source="test")


class FakeChannel:
    """Records what it is sent; fails the next `fail` sends (DeliveryError, permanent or not) or sleeps."""

    type = "fake"

    def __init__(self, name: str, *, fail: int = 0, permanent: bool = False, delay_s: float = 0.0) -> None:
        self.name = name
        self.fail = fail
        self.permanent = permanent
        self.delay_s = delay_s
        self.sent: list[Notice] = []
        self.attempts = 0
        self.closed = False

    async def send(self, notice: Notice) -> None:
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            self.fail -= 1
            raise DeliveryError(f"{self.name}: receiver said no", permanent=self.permanent)
        self.sent.append(notice)

    async def close(self) -> None:
        self.closed = True


class LinkChannel(FakeChannel):
    """A channel that reaches officers (as e-mail and webhook): its notices carry the acknowledgement link."""

    carries_links = True


class RepostChannel(FakeChannel):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.reposts: list[list[Notice]] = []

    async def repost(self, notices: list[Notice]) -> None:
        self.reposts.append(list(notices))


def dispatcher(url: str, *channels: FakeChannel | tuple[FakeChannel, ChannelFilter], **kw: Any) -> Dispatcher:
    table = {}
    for c in channels:
        channel, filt = c if isinstance(c, tuple) else (c, ChannelFilter(audience=["officers", "technicians"]))
        table[channel.name] = (channel, filt)
    kw.setdefault("rng", random.Random(1))
    return Dispatcher(url, table, rules=RULES, retry_min_s=5, retry_max_s=60, **kw)


def sent(channel: FakeChannel) -> list[tuple[int, str]]:
    return [(n.event_id, n.transition) for n in channel.sent]


async def episode(conn: AsyncConnection[Any], sensor: str = "KEN", **kw: Any) -> tuple[int, list[int]]:
    """An alert raised at T0 and escalated an hour later."""
    alert_id = await add_alert(conn, sensor_id=sensor, level="alert", **kw)
    e1 = await add_event(conn, alert_id)
    e2 = await add_event(conn, alert_id, kind="escalated", level="alert", from_level="prevention", value=60.0,
                         time=T0 + timedelta(hours=1), severity="critical")
    return alert_id, [e1, e2]


async def test_once_per_event_and_channel_across_runs_concurrent_dispatchers_and_restarts(database_url: str
                                                                                        ) -> None:
    async with await connect(database_url) as conn:
        _, events = await episode(conn)
        _, more = await episode(conn, sensor="USM")
    now = T0 + timedelta(hours=1, minutes=1)
    # two dispatchers at once, each with its own client of the same two channels, slow enough to overlap
    a_hook, a_mail = FakeChannel("hook", delay_s=0.05), FakeChannel("mail", delay_s=0.05)
    b_hook, b_mail = FakeChannel("hook", delay_s=0.05), FakeChannel("mail", delay_s=0.05)
    one, two = dispatcher(database_url, a_hook, a_mail), dispatcher(database_url, b_hook, b_mail)
    runs = await asyncio.gather(one.run_once(now), two.run_once(now))
    again = await one.run_once(now)
    assert again.planned == 0 and again.delivered == 0
    for hooks in ((a_hook, b_hook), (a_mail, b_mail)):
        got = sorted(sent(hooks[0]) + sent(hooks[1]))
        assert got == sorted([(events[0], "raised"), (events[1], "escalated"), (more[0], "raised"),
                              (more[1], "escalated")])
    assert sum(r.delivered for r in runs) + again.delivered == 8
    assert sum(r.planned for r in runs) == 8  # planned once although both planned at once
    # a restart: new dispatcher, new channel clients, later clock: nothing again
    c_hook, c_mail = FakeChannel("hook"), FakeChannel("mail")
    restarted = await dispatcher(database_url, c_hook, c_mail).run_once(now + timedelta(minutes=5))
    assert (restarted.planned, restarted.delivered, c_hook.sent, c_mail.sent) == (0, 0, [], [])
    async with await connect(database_url) as conn:
        counts = {(c.channel, c.state): c.count for c in await outbox.outbox_counts(conn)}
    assert counts == {("hook", "delivered"): 4, ("mail", "delivered"): 4}


async def test_failing_channel_backs_off_then_dead_while_the_other_delivers(database_url: str) -> None:
    async with await connect(database_url) as conn:
        alerts = [await add_alert(conn, sensor_id=s) for s in ("KEN", "USM", "CDAR")]
        events = [await add_event(conn, a) for a in alerts]
    bad, good = FakeChannel("bad", fail=1000), FakeChannel("good")
    d = dispatcher(database_url, bad, good, max_attempts=5)
    now = T0 + timedelta(minutes=1)
    first = await d.run_once(now)
    assert sorted(e for e, _ in sent(good)) == events
    assert (first.delivered, first.failed, first.dead) == (3, 3, 0)
    by_channel = {c.channel: c for c in first.channels}
    assert (by_channel["bad"].failed, by_channel["good"].delivered) == (3, 3)

    delays: list[float] = []
    async with await connect(database_url) as conn:
        for _ in range(10):
            rows = await (await conn.execute(
                "SELECT event_id, state, attempts, next_attempt_at, last_error FROM alert_outbox "
                "WHERE channel = 'bad' ORDER BY event_id")).fetchall()
            row = rows[0][1:]
            if row[0] == "dead":
                break
            assert row[3] == "bad: receiver said no"
            delays.append((row[2] - now).total_seconds())
            # not due a moment before: nothing is tried
            assert (await d.run_once(min(r[3] for r in rows) - timedelta(seconds=1))).failed == 0
            now = max(r[3] for r in rows)
            await d.run_once(now)
    assert {r[1:3] for r in rows} == {("dead", 5)}
    assert row[0] == "dead" and row[1] == 5  # dead after max_attempts
    assert len(delays) == 4 and all(b > a for a, b in itertools.pairwise(delays))
    assert 4 <= delays[0] <= 5 and delays[-1] <= 60
    assert bad.attempts == 15 and len(good.sent) == 3  # three rows × five attempts; nothing sent twice


def test_retry_delays_double_with_jitter_up_to_the_maximum() -> None:
    rng = random.Random(7)
    delays = [retry_delay_s(n, 5, 900, rng) for n in range(1, 12)]
    assert all(0.8 * min(900, 5 * 2 ** (n - 1)) <= d <= min(900, 5 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert all(b > a for a, b in itertools.pairwise(delays[:8]))


async def test_permanent_error_goes_dead_at_once(database_url: str) -> None:
    async with await connect(database_url) as conn:
        _, events = await episode(conn)
    refused = FakeChannel("refused", fail=1, permanent=True)
    run = await dispatcher(database_url, refused).run_once(T0 + timedelta(hours=2))
    # the raised event is dead at once; the escalation behind it is then delivered in the same run
    assert (run.dead, run.delivered, run.failed) == (1, 1, 0)
    assert sent(refused) == [(events[1], "escalated")]
    async with await connect(database_url) as conn:
        rows = await (await conn.execute("SELECT event_id, state, attempts, last_error FROM alert_outbox "
                                         "ORDER BY event_id")).fetchall()
    assert rows[0] == (events[0], "dead", 1, "refused: receiver said no") and rows[1][1] == "delivered"


async def test_an_alerts_transitions_arrive_in_order(database_url: str) -> None:
    async with await connect(database_url) as conn:
        _, events = await episode(conn)
    flaky = FakeChannel("flaky", fail=1)
    d = dispatcher(database_url, flaky)
    first = await d.run_once(T0 + timedelta(hours=2))
    assert (first.failed, first.delivered, flaky.sent) == (1, 0, [])  # the escalation waits for the raise
    await d.run_once(T0 + timedelta(hours=2, minutes=1))
    assert sent(flaky) == [(events[0], "raised"), (events[1], "escalated")]


async def test_a_slow_channel_times_out_without_holding_up_the_others(database_url: str) -> None:
    async with await connect(database_url) as conn:
        await episode(conn)
    slow, fast = FakeChannel("slow", delay_s=30), FakeChannel("fast")
    d = Dispatcher(database_url, {"slow": (slow, ChannelFilter()), "fast": (fast, ChannelFilter())},
                   timeout_s=0.3, rules=RULES)
    assert d.timeout_for("slow") == 0.3
    started = time.monotonic()
    run = await d.run_once(T0 + timedelta(hours=2))
    assert time.monotonic() - started < 5
    assert len(fast.sent) == 2 and slow.sent == []
    bad = next(c for c in run.channels if c.channel == "slow")
    assert bad.failed == 1  # the first transition timed out; the second waits behind it
    async with await connect(database_url) as conn:
        error = await (await conn.execute("SELECT last_error FROM alert_outbox WHERE channel = 'slow' "
                                          "AND attempts = 1")).fetchone()
    assert error is not None and "0.3 s" in error[0]


async def test_filters_route_each_channel_its_alerts(database_url: str) -> None:
    async with await connect(database_url) as conn:
        air = await add_alert(conn, sensor_id="KEN", severity="critical", level="alert")
        e_air = await add_event(conn, air, level="alert", severity="critical")
        micro = await add_alert(conn, sensor_id="MS01", indicative=True, rule="pm25-24h-levels-microsensor")
        e_micro = await add_event(conn, micro)
        tech = await add_alert(conn, sensor_id="USM", audience="technicians", kind="no_data", rule="station-no-data",
                               level="offline", locality="Usme")
        e_tech = await add_event(conn, tech, level="offline")
        ack = await store.acknowledge(conn, air, actor="ana", via="cli", at=T0 + timedelta(minutes=5))
        e_ack = max(e.id for e in (await store.get_alert(conn, ack.id)).events)
    channels = {
        "officers": FakeChannel("officers"), "technicians": FakeChannel("technicians"),
        "reference": FakeChannel("reference"), "microsensors": FakeChannel("microsensors"),
        "critical": FakeChannel("critical"), "raises": FakeChannel("raises"), "usme": FakeChannel("usme")}
    filters = {
        "officers": ChannelFilter(), "technicians": ChannelFilter(audience=["technicians"]),
        "reference": ChannelFilter(indicative="exclude"), "microsensors": ChannelFilter(indicative="only"),
        "critical": ChannelFilter(min_severity="critical"), "raises": ChannelFilter(transitions=["raised"]),
        "usme": ChannelFilter(audience=["officers", "technicians"], localities=["usme"])}
    d = Dispatcher(database_url, {n: (c, filters[n]) for n, c in channels.items()}, rules=RULES)
    run = await d.run_once(T0 + timedelta(minutes=6))
    got = {n: sorted(e for e, _ in sent(c)) for n, c in channels.items()}
    assert got == {"officers": sorted([e_air, e_micro, e_ack]), "technicians": [e_tech],
                   "reference": sorted([e_air, e_ack]), "microsensors": [e_micro],
                   "critical": sorted([e_air, e_ack]), "raises": sorted([e_air, e_micro]), "usme": [e_tech]}
    assert run.planned == run.delivered == sum(len(v) for v in got.values())
    # refused events are not planned again, and nothing more is sent
    assert (await d.run_once(T0 + timedelta(minutes=7))).planned == 0


async def test_a_channel_added_later_gets_only_new_events(database_url: str) -> None:
    async with await connect(database_url) as conn:
        old_alert = await add_alert(conn, sensor_id="KEN", started_at=T0 - timedelta(days=9))
        await add_event(conn, old_alert, time=T0 - timedelta(days=9))  # beyond 7 days: never planned
        a = await add_alert(conn, sensor_id="USM")
        e1 = await add_event(conn, a)  # T0
    first = FakeChannel("first")
    await dispatcher(database_url, first).run_once(T0 + timedelta(minutes=1))
    assert sent(first) == [(e1, "raised")]

    later = T0 + timedelta(days=1)
    async with await connect(database_url) as conn:
        e2 = await add_event(conn, a, kind="resolved", to_state="resolved", time=later)
    first, added = FakeChannel("first"), FakeChannel("added")
    await dispatcher(database_url, first, added).run_once(later + timedelta(minutes=1))
    assert sent(first) == [(e2, "resolved")] and sent(added) == [(e2, "resolved")]
    async with await connect(database_url) as conn:
        seen = await outbox.ensure_channels(conn, ["first", "added"], later + timedelta(days=5))
    assert seen == {"first": T0 + timedelta(minutes=1), "added": later + timedelta(minutes=1)}


async def test_an_evaluation_just_before_the_first_run_is_delivered(database_url: str) -> None:
    """The channel is first seen at the first run; events of the evaluation before it (stamped with the hour
    that ended up to 2 h earlier) are still new."""
    async with await connect(database_url) as conn:
        a = await add_alert(conn)
        e1 = await add_event(conn, a, time=T0 - timedelta(minutes=50))
    hook = FakeChannel("hook")
    await dispatcher(database_url, hook).run_once(T0 + timedelta(minutes=5))
    assert sent(hook) == [(e1, "raised")]


async def test_notices_carry_the_evidence_and_a_signed_link(database_url: str) -> None:
    key = b"k" * 32
    async with await connect(database_url) as conn:
        a, (e1, e2) = await episode(conn)
        await store.acknowledge(conn, a, actor="ana", via="link", note="checking the station",
                                at=T0 + timedelta(hours=2))
        e4 = await add_event(conn, a, kind="resolved", to_state="resolved", value=30.0, level="alert",
                             time=T0 + timedelta(hours=5))
    hook = LinkChannel("hook")
    now = T0 + timedelta(hours=6)
    d = dispatcher(database_url, hook, public_url="https://aq.example/", signing_key=key,
                   dashboard_url="http://grafana:3000")
    await d.register_channels(T0)  # as the daemon does at start-up, before the evaluation
    await d.run_once(now)
    raised, escalated, acked, resolved = hook.sent
    assert (raised.transition, raised.level, raised.threshold, raised.comparison) == ("raised", "prevention", 38, ">=")
    assert raised.source == "Res. 2254/2017 Art. 10 (verified_secondary)"
    assert raised.rule_description.startswith("PM2.5 24 h") and raised.sensor_name == "Station KEN"
    assert (raised.locality, raised.variable, raised.unit, raised.period, raised.coverage) == (
        "Kennedy", "pm25", "µg/m³", "24h", 0.95)
    assert (escalated.from_level, escalated.level, escalated.threshold, escalated.value, escalated.severity) == (
        "prevention", "alert", 56, 60.0, "critical")
    assert raised.ack_url is not None and raised.ack_url.startswith("https://aq.example/api/v1/alerts/ack/")
    assert verify_ack_token(key, raised.ack_url.rsplit("/", 1)[1], now) == (a, e1)
    assert verify_ack_token(key, escalated.ack_url.rsplit("/", 1)[1], now) == (a, e2)  # type: ignore[union-attr]
    assert (acked.transition, acked.actor, acked.note, acked.ack_url) == (
        "acknowledged", "ana", "checking the station", None)
    assert (resolved.event_id, resolved.comparison, resolved.threshold, resolved.ack_url) == (e4, "<", 38 * 0.9, None)
    assert resolved.note is None  # the rule engine's evidence sentence is not an officer's note
    assert raised.dashboard_url is not None
    assert raised.dashboard_url.startswith("http://grafana:3000/d/aqnet-station?var-sensor=KEN&from=")
    start_ms = int((T0 - timedelta(hours=36)).timestamp() * 1000)  # period start (T0 - 24 h) - 12 h
    assert f"from={start_ms}&" in raised.dashboard_url


def test_without_the_rule_the_alert_row_and_details_are_used() -> None:
    row = outbox.NoticeRow(
        event_id=5, alert_id=4, transition="resolved", time=T0, to_state="resolved", level="offline",
        from_level=None, severity="warning", value=3.0, note="x", actor=None, via=None, rule="station-no-data",
        kind="no_data", audience="technicians", indicative=False, scope="sensor", scope_key="KEN", sensor_id="KEN",
        sensor_name=None, locality=None, variable=None, alert_state="resolved", alert_level="offline",
        threshold=30.0, unit="min", source="aqnet operational default", period=None, period_start=None,
        period_end=None, coverage=None, started_at=T0, resolved_at=T0,
        details={"clear_threshold": 10, "description": "no data"})
    n = build_notice(row, now=T0)
    assert (n.comparison, n.threshold, n.rule_description, n.dashboard_url, n.ack_url) == (
        "<", 10.0, "no data", None, None)
    firing = build_notice(outbox.NoticeRow(**{**{f: getattr(row, f) for f in row.__dataclass_fields__},
                                              "transition": "raised", "to_state": "firing"}), now=T0)
    assert (firing.comparison, firing.threshold, firing.source) == (">=", 30.0, "aqnet operational default")


async def test_repost_gives_alertmanager_every_active_alert(database_url: str) -> None:
    async with await connect(database_url) as conn:
        a, (_, e2) = await episode(conn)
        b = await add_alert(conn, sensor_id="USM", state="resolved")
        await add_event(conn, b)
        c = await add_alert(conn, sensor_id="MS01", indicative=True)
        await add_event(conn, c)
    am, hook = RepostChannel("am"), FakeChannel("hook")
    d = Dispatcher(database_url, {"am": (am, ChannelFilter(indicative="exclude", transitions=["raised"])),
                                  "hook": (hook, ChannelFilter())}, rules=RULES)
    assert await d.repost_active(T0 + timedelta(hours=2)) == {"am": 1}
    assert [(n.alert_id, n.event_id, n.transition) for n in am.reposts[0]] == [(a, e2, "escalated")]
    assert am.sent == [] and hook.sent == []  # a re-post is not a delivery
    await d.close()
    assert am.closed and hook.closed


async def test_a_pooled_dispatcher_and_a_url_one_share_the_outbox(database_url: str) -> None:
    async with await connect(database_url) as conn:
        _, events = await episode(conn)
    pooled, plain = FakeChannel("hook", delay_s=0.05), FakeChannel("hook", delay_s=0.05)
    async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
        await pool.open(wait=True)
        now = T0 + timedelta(hours=2)
        await asyncio.gather(dispatcher(pool, pooled).run_once(now), dispatcher(database_url, plain).run_once(now))
        assert sorted(sent(pooled) + sent(plain)) == [(events[0], "raised"), (events[1], "escalated")]
        async with pool.connection() as conn:
            assert pool.get_stats().get("connections_errors", 0) == 0
            assert [(c.state, c.count) for c in await outbox.outbox_counts(conn)] == [("delivered", 2)]


async def test_attack_channels_others_read_get_no_link(database_url: str) -> None:
    """Issue 16: only channels that reach officers (carries_links) get the signed link; a channel without it
    (the retained MQTT state, Alertmanager) and Alertmanager's re-posts get none, so whoever reads those cannot
    acknowledge."""
    async with await connect(database_url) as conn:
        await episode(conn)
    officers, others, am = LinkChannel("officers"), FakeChannel("others"), RepostChannel("am")
    d = dispatcher(database_url, officers, others, am, public_url="https://aq.example/", signing_key=b"k" * 32)
    await d.register_channels(T0)
    await d.run_once(T0 + timedelta(hours=2))
    assert officers.sent and all(n.ack_url for n in officers.sent if n.state == "firing")
    assert others.sent and am.sent and all(n.ack_url is None for n in others.sent + am.sent)
    await d.repost_active(T0 + timedelta(hours=2))
    assert am.reposts and all(n.ack_url is None for batch in am.reposts for n in batch)


def test_link_lifetime_over_the_maximum_is_refused_by_the_dispatcher() -> None:
    with pytest.raises(ValueError, match="ack_link_ttl_h"):
        Dispatcher("postgresql://unused", {}, ack_link_ttl_h=169.0)
