"""Start-up checks of the daemon's broker permissions: a refusal is an error at start, never a log line followed
by silence. Shell (awaits the MQTT clients' outcomes; the daemon calls it).

Contract:
- `check_alert_channels(channels)`: every channel with a `probe()` (the MQTT alert channel) publishes its probe
  before the daemon starts; a permanent refusal (the broker refused the login, or the ACL the alert topic) raises
  `StartupRefused` naming the channel, topic and user; a transient failure (broker unreachable) is a WARNING
  only: the outbox retries deliveries, and the daemon must start while the broker is down.
- `watch_subscriptions(client, fail)`: awaits the subscriber client's first subscription outcome
  (`MqttSubscriberClient.subscribed`); a refusal calls `fail(StartupRefused(...))` (the daemon stops and exits
  non-zero). It waits as long as it takes: the first connection may come long after start, and its refusal is
  still fatal. Refusals on later reconnects are the client's to report (ERROR log, `status().refused`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from alerts.delivery.notice import DeliveryError
from sensors.mqtt.client import MqttSubscriberClient, SubscriptionRefused

__all__ = ["EXIT_REFUSED", "StartupRefused", "check_alert_channels", "watch_subscriptions"]

log = logging.getLogger(__name__)

#: `aqnet run`'s exit status when the broker refused the daemon's subscription or alert publish
EXIT_REFUSED = 3


class StartupRefused(RuntimeError):
    """The broker refused what the daemon needs (a subscription, an alert topic); the message names the topic
    and the user."""


async def check_alert_channels(channels: Mapping[str, tuple[Any, Any]]) -> None:
    """Probe every channel that has `probe()`; StartupRefused on the first permanent refusal."""
    for name, (channel, _) in channels.items():
        probe = getattr(channel, "probe", None)
        if probe is None:
            continue
        try:
            await probe()
        except DeliveryError as exc:
            if exc.permanent:
                raise StartupRefused(f"alert channel {name}: {exc}") from None
            log.warning("alert channel %s: start-up check not done (%s); its deliveries are retried", name, exc)
        else:
            log.info("alert channel %s: the broker accepts its publishes", name)


async def watch_subscriptions(client: MqttSubscriberClient, fail: Callable[[StartupRefused], None]) -> None:
    """Wait for the first subscription outcome; on a refusal call `fail` with a StartupRefused."""
    try:
        await client.subscribed
    except SubscriptionRefused as exc:
        fail(StartupRefused(str(exc)))
