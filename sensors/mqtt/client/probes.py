"""A subscriber's read-access probes: which topics to publish, which came back, which are overdue. No paho: the
session publishes through the callable it passes and reads the clock this was given. Pure but for the nonce.

Read access is proven, not assumed. Mosquitto 2.0 grants every SUBACK and applies its ACL's `read` lines
only when delivering, so a login without read access is subscribed and hears nothing. On the first connection,
after every SUBACK is granted, the client therefore publishes one probe per filter (`probe_topic`: the filter
with its wildcards replaced by the username, e.g. `aqnet/aqnet-daemon/readings`, which aqnet's pattern ACL lets
any login publish; payload `aqnet-probe <nonce>`, QoS 1, not retained) and waits `verify_read_s` for it to come
back: not back in time → SubscriptionRefused ("delivers nothing"); the probe publish itself refused (PUBACK
failure) → a WARNING that read access could not be checked. Shared (`$share/…`) filters are not probed
(another member of the group may receive it). A message whose payload starts with `aqnet-probe ` is acked
and never handed to `on_message`. Any other message delivered proves read access to the filters it matches, and
moves the others' deadline on: after a restart the probes queue behind the session's backlog, which the client
reads only as fast as the pipeline takes it (`MqttSubscriberClient`'s `max_pending`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from sensors.mqtt.directory import topic_matches

__all__ = ["PROBE_PREFIX", "ReadProbes", "probe_topic"]

PROBE_PREFIX = b"aqnet-probe "  #: payload prefix of the read-access probes (never a reading)


def probe_topic(filter_: str, username: str | None) -> str | None:
    """A concrete topic matching `filter_` to probe read access with (wildcards → the username); None for shared
    (`$share/…`) and `$` filters, which cannot be probed. Pure."""
    if filter_.startswith("$"):
        return None
    level = username or "aqnet-probe"
    return "/".join(level if part in ("+", "#") else part for part in filter_.split("/"))


class ReadProbes:
    """The probes of one subscriber's first connection: probe topic → (filter, payload) until it comes back, and
    the PUBLISH packet ids until their PUBACK."""

    def __init__(self, username: str | None, verify_read_s: float | None, monotonic: Callable[[], float]) -> None:
        self._username = username
        self._verify_read_s = verify_read_s
        self._monotonic = monotonic
        self._probes: dict[str, tuple[str, bytes]] = {}  #: probe topic → (filter, payload), until it comes back
        self._mids: dict[int, str] = {}  #: PUBLISH mid → probe topic, until its PUBACK
        self._deadline: float | None = None

    @property
    def pending(self) -> bool:
        """Some probe is neither back, nor overdue, nor refused."""
        return bool(self._probes)

    def start(self, filters: list[str], publish: Callable[[str, bytes], int]) -> None:
        """Publish one probe per probe-able filter (`publish(topic, payload)` returns the PUBLISH mid) and start
        the deadline; nothing when verification is off (`verify_read_s` None)."""
        if self._verify_read_s is None:
            return
        for filter_ in filters:
            topic = probe_topic(filter_, self._username)
            if topic is None or topic in self._probes:
                continue
            payload = PROBE_PREFIX + secrets.token_hex(8).encode()
            self._probes[topic] = (filter_, payload)
            self._mids[publish(topic, payload)] = topic
        self._deadline = self._monotonic() + self._verify_read_s

    def delivered(self, topic: str) -> list[str]:
        """A message (not a probe) arrived on `topic`: the filters it proves read access to (their probes are
        settled), and the deadline of the others moves on — the broker is delivering what it queued for the
        session (a backlog after a restart, held back by the subscriber's bound) and the probes wait behind it."""
        if not self._probes:
            return []
        proved = [t for t, (f, _) in self._probes.items() if topic_matches(f, topic)]
        filters = [self._probes.pop(t)[0] for t in proved]
        if self._deadline is not None and self._verify_read_s is not None:
            self._deadline = max(self._deadline, self._monotonic() + self._verify_read_s)
        return filters

    def overdue(self) -> list[tuple[str, str]]:
        """(filter, probe topic) of every probe not back by the deadline, which are then forgotten."""
        if not self._probes or self._deadline is None or self._monotonic() < self._deadline:
            return []
        pending, self._probes = self._probes, {}
        return [(filter_, topic) for topic, (filter_, _) in pending.items()]

    def published(self, mid: int, failed: bool) -> tuple[str, str] | None:
        """A PUBACK: (filter, probe topic) when the broker refused that probe's publish (then forgotten)."""
        topic = self._mids.pop(mid, None)
        if topic is None or not failed or topic not in self._probes:
            return None
        filter_, _ = self._probes.pop(topic)
        return filter_, topic

    def came_back(self, topic: str, payload: bytes) -> str | None:
        """A received probe message: the filter it proves read access to, when it is one of ours still pending."""
        probe = self._probes.get(topic)
        if probe is None or probe[1] != payload:
            return None
        del self._probes[topic]
        return probe[0]
