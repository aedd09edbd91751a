"""Delivery of alert transitions: plans outbox rows from `alert_events` and sends them through every configured
channel, once. I/O (asyncio, psycopg 3 async through `storage.alert_outbox`).

Contract of `Dispatcher.run_once(now)`, one task per channel (a failing or slow channel never blocks another):
1. plan: events of kind raised | escalated | unacknowledged | acknowledged | resolved with no outbox row for the
   channel, from the last `history_days` (7) and not older than `new_channel_backlog_h` (2 h, the evaluation's
   freshness horizon) before the channel was first seen (`alert_channels`), so a channel configured later is
   not flooded with old history; those the channel's filter accepts (`alerts.delivery.routing.accepts`) get a row
   (ON CONFLICT DO NOTHING: two dispatchers plan the same row once).
2. send: claim one due row at a time (FOR UPDATE SKIP LOCKED, the row stays locked while it is sent: no two
   dispatchers send it), build its `Notice`, `send` it within the channel's timeout, mark it delivered; on
   `DeliveryError(permanent)` dead at once; on any other failure or a timeout attempts + 1 and a retry after
   `retry_min_s` doubling up to `retry_max_s` (× a jitter in [0.8, 1]), dead after `max_attempts`. A later
   transition of an alert waits for the earlier one on the same channel. A crash between a send and its mark
   sends that one notice again (at least once; webhook receivers have the X-Aqnet-Delivery idempotency key).
`repost_active(now)` gives every channel with a `repost(notices)` method (Alertmanager) all active alerts it
accepts: Alertmanager's protocol expects active alerts re-posted, so this is not a duplicate delivery.
Links: a notice carries a signed acknowledgement link (`signing_key`: the LINK key, never a webhook secret; valid
`ack_link_ttl_h` ≤ `alerts.delivery.signing.MAX_ACK_LINK_TTL_H`, bound to its event) only for a channel whose class says
`carries_links = True` (e-mail and webhook: they reach officers). Every other channel, Alertmanager and the
retained MQTT state among them (read by other people and systems), and every re-post get no link.
Times written to the outbox are the injected clock's (wall clock by default).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alerts.delivery.notice import TRANSITIONS, Channel, DeliveryError, Notice
from alerts.delivery.routing import ChannelFilterLike, accepts, accepts_alert
from alerts.delivery.signing import MAX_ACK_LINK_TTL_H, ack_token, ack_url
from alerts.rules.model import Rule
from storage import alert_outbox as outbox
from storage.alert_outbox import NoticeRow

__all__ = ["ChannelRun", "DispatchRun", "Dispatcher", "build_notice", "retry_delay_s"]

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ChannelRun:
    """What one run did for one channel (metrics: aqnet_alert_deliveries_total{channel,result})."""

    channel: str
    planned: int = 0  #: outbox rows created
    delivered: int = 0
    failed: int = 0  #: transient failures, to be retried
    dead: int = 0  #: permanent failures or the last attempt
    error: str | None = None  #: the run itself failed (e.g. the database): nothing lost, retried next run


@dataclass(frozen=True, slots=True)
class DispatchRun:
    """One `run_once`: per channel, and totals."""

    channels: tuple[ChannelRun, ...] = field(default=())

    @property
    def planned(self) -> int:
        return sum(c.planned for c in self.channels)

    @property
    def delivered(self) -> int:
        return sum(c.delivered for c in self.channels)

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.channels)

    @property
    def dead(self) -> int:
        return sum(c.dead for c in self.channels)


def retry_delay_s(attempts: int, min_s: float, max_s: float, rng: random.Random) -> float:
    """Delay before retry number `attempts` (1 = after the first failure): min_s doubling up to max_s, times a
    jitter in [0.8, 1] so that retries spread out; still growing, since 2 × 0.8 > 1."""
    base = min(max_s, min_s * 2.0 ** max(0, attempts - 1))
    return base * (0.8 + 0.2 * rng.random())


def build_notice(row: NoticeRow, *, rule: Rule | None = None, now: datetime, public_url: str | None = None,
                 signing_key: bytes | None = None, ack_link_ttl_h: float = 72.0,
                 dashboard_url: str | None = None) -> Notice:
    """The Notice of one stored event. Threshold, comparison and source come from the rule's level when the
    rule is known (resolved: the clear threshold and '<'), else from the alert row and its details."""
    details = row.details or {}
    level_name = row.level or row.alert_level
    level = None
    if rule is not None:
        try:
            level = rule.levels[rule.level_named(level_name)]
        except ValueError:
            level = None
    resolved = row.transition == "resolved"
    threshold = row.threshold
    comparison = str(details.get("comparison", ">="))
    source = row.source or ""
    if level is not None:
        threshold, comparison = level.threshold, level.comparison
        status = getattr(level, "status", None)
        source = f"{level.source} ({status})" if status else level.source
    if resolved:
        comparison = "<"
        if rule is not None:
            with suppress(AssertionError, AttributeError, ValueError):
                threshold = rule.clear_threshold
        elif "clear_threshold" in details:
            threshold = float(details["clear_threshold"])
    description = rule.description if rule is not None else str(details.get("description", ""))
    link = None
    if public_url and signing_key and row.to_state == "firing":
        link = ack_url(public_url, ack_token(signing_key, row.alert_id, row.event_id,
                                             now + timedelta(hours=ack_link_ttl_h), issued=now))
    officer = row.actor is not None
    return Notice(
        alert_id=row.alert_id, event_id=row.event_id, transition=cast("Any", row.transition),
        state=cast("Any", row.to_state), rule_id=row.rule, rule_description=description or row.rule,
        kind=cast("Any", row.kind), audience=cast("Any", row.audience), severity=cast("Any", row.severity),
        indicative=row.indicative, scope=cast("Any", row.scope), scope_key=row.scope_key, sensor_id=row.sensor_id,
        sensor_name=row.sensor_name, locality=row.locality, variable=row.variable, level=level_name,
        from_level=row.from_level, value=row.value, unit=row.unit, threshold=threshold, comparison=comparison,
        source=source, period=row.period, period_start=row.period_start, period_end=row.period_end,
        coverage=row.coverage, started_at=row.started_at, time=row.time, actor=row.actor,
        note=row.note if officer else None, dashboard_url=_dashboard(dashboard_url, row), ack_url=link,
        action=getattr(level, "action", None) if level is not None else details.get("action"))


def _dashboard(base: str | None, row: NoticeRow) -> str | None:
    """Grafana's station dashboard for the sensor, from 12 h before the episode to 1 h after the transition."""
    if not base or row.sensor_id is None:
        return None
    start = min(row.started_at, row.period_start or row.started_at) - 12 * HOUR
    end = max(row.time, row.period_end or row.time) + HOUR
    return (f"{base.rstrip('/')}/d/aqnet-station?var-sensor={quote(row.sensor_id, safe='')}"
            f"&from={int(start.timestamp() * 1000)}&to={int(end.timestamp() * 1000)}")


class _AcceptAll:
    audience = ("officers", "technicians")
    indicative = "include"
    min_severity = "info"
    transitions = TRANSITIONS
    localities: tuple[str, ...] = ()


class Dispatcher:
    """Plans and sends deliveries for `channels` (name → (Channel, filter or None = everything)); see the module
    docstring. `db` is a connection URL (a connection per channel and run) or an AsyncConnectionPool."""

    def __init__(self, db: str | AsyncConnectionPool[Any],
                 channels: Mapping[str, tuple[Channel, ChannelFilterLike | None]], *, max_attempts: int = 8,
                 retry_min_s: float = 5.0, retry_max_s: float = 900.0, public_url: str | None = None,
                 dashboard_url: str | None = None, signing_key: bytes | None = None, ack_link_ttl_h: float = 72.0,
                 rules: Iterable[Rule] = (), timeout_s: float = 30.0, history_days: float = 7.0,
                 new_channel_backlog_h: float = 2.0, max_per_run: int = 500,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), rng: random.Random | None = None) -> None:
        for name, (channel, _) in channels.items():
            if channel.name != name:
                raise ValueError(f"dispatcher: channel configured as {name!r} calls itself {channel.name!r}")
        if not 0 < ack_link_ttl_h <= MAX_ACK_LINK_TTL_H:
            raise ValueError(f"dispatcher: ack_link_ttl_h: expected over 0 and at most {MAX_ACK_LINK_TTL_H:g} h, got "
                             f"{ack_link_ttl_h!r}")
        if max_attempts < 1 or retry_min_s <= 0 or retry_max_s < retry_min_s:
            raise ValueError(f"dispatcher: expected max_attempts >= 1 and 0 < retry_min_s <= retry_max_s, got "
                             f"{max_attempts}, {retry_min_s}, {retry_max_s}")
        self._db = db
        self._channels = {n: (c, f if f is not None else _AcceptAll()) for n, (c, f) in channels.items()}
        self._max_attempts = max_attempts
        self._retry = (retry_min_s, retry_max_s)
        self._links = {"public_url": public_url, "signing_key": signing_key, "ack_link_ttl_h": ack_link_ttl_h,
                       "dashboard_url": dashboard_url}
        self._rules = {r.id: r for r in rules}
        self._timeout_s = timeout_s
        self._history = timedelta(days=history_days)
        self._backlog = timedelta(hours=new_channel_backlog_h)
        self._max_per_run = max_per_run
        self._clock = clock
        self._rng = rng or random.Random()
        self._first_seen: dict[str, datetime] = {}
        self._skipped: dict[str, set[int]] = {n: set() for n in channels}  #: events the filter refused

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        if isinstance(self._db, AsyncConnectionPool):
            async with self._db.connection() as conn:
                yield conn
        else:
            async with await AsyncConnection.connect(self._db, autocommit=True) as conn:
                yield conn

    def timeout_for(self, name: str) -> float:
        """A send's time limit on channel `name`: its `timeout_s` setting, else the dispatcher's."""
        channel, f = self._channels[name]
        return float(getattr(f, "timeout_s", None) or getattr(channel, "timeout_s", None) or self._timeout_s)

    async def register_channels(self, now: datetime | None = None) -> dict[str, datetime]:
        """Record the channels' first appearance (idempotent); called by run_once, or early at start-up."""
        if set(self._first_seen) != set(self._channels):
            async with self._connection() as conn:
                self._first_seen = await outbox.ensure_channels(conn, list(self._channels), now or self._clock())
        return dict(self._first_seen)

    async def run_once(self, now: datetime | None = None) -> DispatchRun:
        """Plan and send every due delivery, each channel in its own task; what happened per channel."""
        now = now or self._clock()
        if not self._channels:
            return DispatchRun()
        try:
            await self.register_channels(now)
        except Exception as exc:  # the database is down: every channel waits for the next run
            log.error("alert dispatch: cannot record channels: %s; retrying next run", exc)
            return DispatchRun(tuple(ChannelRun(n, error=str(exc)) for n in self._channels))
        runs = await asyncio.gather(*(self._run_channel(n, now) for n in self._channels))
        return DispatchRun(tuple(runs))

    def _notice(self, row: NoticeRow, now: datetime, *, link: bool = False) -> Notice:
        """The row's notice; with a signed acknowledgement link only when `link` (a channel that carries them)."""
        links = self._links if link else {**self._links, "signing_key": None}
        return build_notice(row, rule=self._rules.get(row.rule), now=now, **links)  # type: ignore[arg-type]

    async def _run_channel(self, name: str, now: datetime) -> ChannelRun:
        counts = {"planned": 0, "delivered": 0, "failed": 0, "dead": 0}
        error: str | None = None
        try:
            async with self._connection() as conn:
                counts["planned"] = await self._plan(conn, name, now)
                for _ in range(self._max_per_run):
                    result = await self._send_next(conn, name, now)
                    if result is None:
                        break
                    counts[result] += 1
        except Exception as exc:  # database trouble: nothing is lost, the outbox is retried next run
            log.error("alert channel %s: dispatch run failed: %s; retrying next run", name, exc)
            error = str(exc)
        return ChannelRun(name, planned=counts["planned"], delivered=counts["delivered"], failed=counts["failed"],
                          dead=counts["dead"], error=error)

    async def _plan(self, conn: AsyncConnection[Any], name: str, now: datetime) -> int:
        _, f = self._channels[name]
        since = max(now - self._history, self._first_seen[name] - self._backlog)
        skipped = self._skipped[name]
        async with conn.transaction():  # a pooled connection is not in autocommit: end the read here
            rows = await outbox.unplanned_events(conn, name, since=since, exclude=skipped)
        wanted: list[tuple[int, int]] = []
        for row in rows:
            if accepts(f, self._notice(row, now)):
                wanted.append((row.event_id, row.alert_id))
            else:
                skipped.add(row.event_id)
        return await outbox.insert_deliveries(conn, name, wanted, now)

    async def _send_next(self, conn: AsyncConnection[Any], name: str, now: datetime) -> str | None:
        """Claim, send and mark one due delivery; its result (delivered | failed | dead) or None if none due."""
        channel, _ = self._channels[name]
        async with outbox.claim_due(conn, name, now=now) as claimed:
            if not claimed:
                return None
            row = claimed[0]
            found = (await outbox.notice_rows(conn, [row.event_id])).get(row.event_id)
            where = f"alert channel {name} ({channel.type}): alert {row.alert_id} event {row.event_id}"
            if found is None:  # cannot happen with the foreign keys; never loop on it
                await outbox.mark_dead(conn, row.id, error="event not found")
                return "dead"
            try:
                notice = self._notice(found, now, link=getattr(channel, "carries_links", False) is True)
                async with asyncio.timeout(self.timeout_for(name)):  # not wait_for: 3.11's can drop a cancel
                    await channel.send(notice)
            except DeliveryError as exc:
                error, permanent = str(exc), exc.permanent
            except TimeoutError:
                error, permanent = f"no answer within {self.timeout_for(name):g} s", False
            except Exception as exc:  # a bug or an unexpected client error: retry, and say what it was
                log.exception("%s: unexpected error", where)
                error, permanent = f"{type(exc).__name__}: {exc}", False
            else:
                await outbox.mark_delivered(conn, row.id, at=now)
                log.info("%s: %s delivered", where, notice.transition)
                return "delivered"
            attempts = row.attempts + 1
            if permanent or attempts >= self._max_attempts:
                await outbox.mark_dead(conn, row.id, error=error)
                why = "permanent error" if permanent else f"{attempts} failed attempts"
                log.error("%s: %s; dead letter after %s", where, error, why)
                return "dead"
            delay = retry_delay_s(attempts, *self._retry, self._rng)
            await outbox.mark_failed(conn, row.id, error=error, next_attempt_at=now + timedelta(seconds=delay))
            log.warning("%s: %s; attempt %d of %d, retry in %.0f s", where, error, attempts, self._max_attempts,
                        delay)
            return "failed"

    async def repost_active(self, now: datetime | None = None) -> dict[str, int]:
        """Re-post every active alert to the channels that have `repost` (Alertmanager); alerts posted per
        channel (-1: that channel failed; logged, retried at the next re-post)."""
        now = now or self._clock()
        targets = {n: cf for n, cf in self._channels.items() if callable(getattr(cf[0], "repost", None))}
        if not targets:
            return {}
        async with self._connection() as conn, conn.transaction():
            rows = await outbox.active_notice_rows(conn)
        notices = [self._notice(r, now) for r in rows]

        async def one(name: str, channel: Any, f: ChannelFilterLike) -> tuple[str, int]:
            mine = [n for n in notices if accepts_alert(f, n)]
            try:
                async with asyncio.timeout(self.timeout_for(name)):
                    await channel.repost(mine)
            except Exception as exc:  # any failure: the next re-post tries again
                log.warning("alert channel %s: re-posting %d active alerts failed: %s", name, len(mine), exc)
                return name, -1
            return name, len(mine)

        return dict(await asyncio.gather(*(one(n, c, f) for n, (c, f) in targets.items())))

    async def close(self) -> None:
        """Close every channel (the dispatcher owns them once given)."""
        for channel, _ in self._channels.values():
            try:
                await channel.close()
            except Exception as exc:
                log.warning("alert channel %s: close failed: %s", channel.name, exc)
