"""The MQTT client's policy: URL parsing and backoff (pure); against a real Mosquitto: DUP on redelivery, acks only
on the connection that delivered, resubscription after a broker that lost the session, the Receive Maximum window,
MQTT 3.1.1 fallback behind a broker that refuses MQTT 5, TLS with a CA made here, shared subscriptions, a prompt
stop and backoff with jitter against a closed port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from aqnet.localstack import MosquittoBroker, MosquittoTls, free_port
from sensors.mqtt.client import Backoff, Message, MqttSubscriberClient, parse_mqtt_url
from tests.fixtures.waiting import until

# ------------------------------------------------------------------------------------------------ pure


def test_urls_give_host_port_credentials_and_tls() -> None:
    assert parse_mqtt_url("mqtt://broker.local") == parse_mqtt_url("tcp://broker.local:1883")
    url = parse_mqtt_url("mqtts://aq%40net:p%3Ass@broker.local")
    assert (url.host, url.port, url.username, url.password, url.tls) == ("broker.local", 8883, "aq@net", "p:ss", True)
    assert str(url) == "mqtts://broker.local:8883"  # never the password
    assert parse_mqtt_url("ssl://10.0.0.2:9883").port == 9883
    for bad in ("http://x:1883", "mqtt://:1883", "broker:1883", "mqtt://x:99999"):
        with pytest.raises(ValueError, match="MQTT URL"):
            parse_mqtt_url(bad)


def test_tls_files_need_a_tls_url() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match=r"ca_file given but the URL is not TLS; use mqtts://"):
            MqttSubscriberClient("mqtt://127.0.0.1:1", client_id="c", topics=["t"], loop=loop,
                                 on_message=lambda m: None, ca_file="/ca.pem")
        with pytest.raises(ValueError, match="key_file given without cert_file"):
            MqttSubscriberClient("mqtts://127.0.0.1:1", client_id="c", topics=["t"], loop=loop,
                                 on_message=lambda m: None, key_file="/key.pem")
        with pytest.raises(ValueError, match=r"receive_maximum: expected 1\.\.65535, got 0"):
            MqttSubscriberClient("mqtt://127.0.0.1:1", client_id="c", topics=["t"], loop=loop,
                                 on_message=lambda m: None, receive_maximum=0)
    finally:
        loop.close()


@given(st.floats(0.01, 10), st.floats(1, 100), st.integers(1, 200), st.integers(0, 2**32))
def test_backoff_stays_between_min_and_max(min_s: float, factor: float, attempt: int, seed: int) -> None:
    backoff = Backoff(min_s, min_s * factor)
    delay = backoff.delay_s(attempt, random.Random(seed))
    assert min_s <= delay <= min_s * factor


def test_backoff_doubles_with_jitter_and_is_reproducible() -> None:
    backoff = Backoff(1.0, 30.0)
    rng = random.Random(7)
    bands = [(1, 2), (2, 4), (4, 8), (8, 16), (15, 30), (15, 30)]
    for attempt, (lo, hi) in enumerate(bands, start=1):
        draws = [backoff.delay_s(attempt, rng) for _ in range(200)]
        assert lo <= min(draws) and max(draws) <= hi
        assert max(draws) - min(draws) > (hi - lo) / 2  # jittered, not a fixed delay
    assert [Backoff(1, 30).delay_s(3, random.Random(1)) for _ in range(3)] == [
        Backoff(1, 30).delay_s(3, random.Random(1))] * 3
    with pytest.raises(ValueError, match="min_s <= max_s"):
        Backoff(5, 1)


async def test_unreachable_broker_backs_off_with_jitter_and_stops_promptly() -> None:
    port = free_port()  # nothing listens there
    loop = asyncio.get_running_loop()
    fast = MqttSubscriberClient(f"mqtt://127.0.0.1:{port}", client_id="c-unreachable", topics=["t"], loop=loop,
                                on_message=lambda m: None, reconnect_min_s=0.05, reconnect_max_s=0.2,
                                rng=random.Random(3))
    slow = MqttSubscriberClient(f"mqtt://127.0.0.1:{port}", client_id="c-slow", topics=["t"], loop=loop,
                                on_message=lambda m: None, reconnect_min_s=60, reconnect_max_s=120)
    try:
        fast.start()
        slow.start()
        await until(lambda: fast.connection_attempts >= 4, "four connection attempts", timeout_s=5)
        status = fast.status()
        assert status.state in ("connecting", "backoff")
        assert status.connections == 0 and status.consecutive_failures >= 3
        assert "ConnectionRefusedError" in (status.last_error or "")
        await until(lambda: slow.status().state == "backoff", "the slow client to back off", timeout_s=5)
        assert slow.connection_attempts == 1  # waiting 60–120 s before the next
        for client in (fast, slow):  # prompt whatever the backoff
            started = time.monotonic()
            client.stop()
            assert time.monotonic() - started < 1.0
            assert client.status().state == "stopped"
    finally:
        fast.stop()
        slow.stop()


# ------------------------------------------------------------------------------------------ helpers


class Inbox:
    """A subscriber client whose messages are collected in order."""

    def __init__(self, url: str, client_id: str, topics: list[str], **kwargs: object) -> None:
        self.messages: list[Message] = []
        self.connection_events: list[bool] = []
        kwargs.setdefault("reconnect_min_s", 0.1)
        kwargs.setdefault("reconnect_max_s", 0.5)
        self.client = MqttSubscriberClient(url, client_id=client_id, topics=topics, loop=asyncio.get_running_loop(),
                                           on_message=self.messages.append,
                                           on_connection=self.connection_events.append,
                                           **kwargs)  # type: ignore[arg-type]

    async def __aenter__(self) -> Self:
        self.client.start()
        await self.ready()
        return self

    async def ready(self) -> None:
        await until(self.client.connected.is_set, f"{self.client.url} to accept the connection", timeout_s=10)
        await asyncio.sleep(0.2)  # the SUBACK

    async def __aexit__(self, *exc: object) -> None:
        self.client.stop()

    def payloads(self) -> list[bytes]:
        return [m.payload for m in self.messages]


def _publish(port: int, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 and wait for every PUBACK."""
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        infos = [pub.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        pub.disconnect()
        pub.loop_stop()


def _port(broker: MosquittoBroker) -> int:
    return int(broker.url.rsplit(":", 1)[1])


# ----------------------------------------------------------------------------------- real broker


async def test_message_fields_dup_on_redelivery_and_watchdog_clock(mosquitto: MosquittoBroker) -> None:
    ticks = iter(range(100, 10_000))
    async with Inbox(mosquitto.url, "c-dup", ["test/dup/#"], monotonic=lambda: float(next(ticks))) as first:
        assert first.client.last_message_at is None and first.client.seconds_since_last_message() is None
        _publish(_port(mosquitto), "test/dup/a", [b"one", b"two"])
        await until(lambda: len(first.messages) == 2, "two messages", timeout_s=5)
        assert [(m.topic, m.qos, m.dup) for m in first.messages] == [("test/dup/a", 1, False)] * 2
        assert first.client.last_message_at is not None
        assert first.client.seconds_since_last_message(now=first.client.last_message_at + 42) == 42
        assert first.client.status().session_present is False
        first.client.ack(first.messages[0])  # "two" stays unacknowledged
        await asyncio.sleep(0.2)
    async with Inbox(mosquitto.url, "c-dup", ["test/dup/#"]) as second:
        await until(lambda: len(second.messages) == 1, "the redelivery", timeout_s=5)
        (again,) = second.messages
        assert (again.payload, again.dup) == (b"two", True)
        assert second.client.status().session_present is True
        second.client.ack(again)
        await asyncio.sleep(0.2)
    async with Inbox(mosquitto.url, "c-dup", ["test/dup/#"]) as third:
        await asyncio.sleep(0.5)
        assert third.messages == []


async def test_acks_given_before_stop_reach_the_broker(mosquitto: MosquittoBroker) -> None:
    async with Inbox(mosquitto.url, "c-flush", ["test/flush"]) as inbox:
        _publish(_port(mosquitto), "test/flush", [b"a", b"b", b"c"])
        await until(lambda: len(inbox.messages) == 3, "three messages", timeout_s=5)
        for m in inbox.messages:
            inbox.client.ack(m)
        # no pause: stop() must send the queued PUBACKs before its DISCONNECT
    async with Inbox(mosquitto.url, "c-flush", ["test/flush"]) as again:
        await asyncio.sleep(0.5)
        assert again.messages == []


async def test_receive_maximum_bounds_unacknowledged_messages(mosquitto: MosquittoBroker) -> None:
    async with Inbox(mosquitto.url, "c-window", ["test/window"], receive_maximum=5) as inbox:
        _publish(_port(mosquitto), "test/window", [str(i).encode() for i in range(12)])
        await until(lambda: len(inbox.messages) == 5, "five messages", timeout_s=5)
        await asyncio.sleep(0.5)
        assert len(inbox.messages) == 5  # the broker waits for acks
        for m in list(inbox.messages):
            inbox.client.ack(m)
        await until(lambda: len(inbox.messages) == 12, "the rest once acknowledged", timeout_s=5)
        assert inbox.payloads() == [str(i).encode() for i in range(12)]


async def test_a_turns_acks_go_to_the_broker_as_one_write_in_order(mosquitto: MosquittoBroker,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[bytes] = []
    async with Inbox(mosquitto.url, "c-many", ["test/many"], receive_maximum=50) as inbox:
        queue = inbox.client._client._packet_queue  # type: ignore[attr-defined]  # paho's write queue, spied on

        def spy(command: int, packet: bytes, *args: object) -> object:
            writes.append(bytes(packet))
            return queue(command, packet, *args)

        monkeypatch.setattr(inbox.client._client, "_packet_queue", spy)
        _publish(_port(mosquitto), "test/many", [str(i).encode() for i in range(80)])
        await until(lambda: len(inbox.messages) == 50, "the window's 50 messages", timeout_s=5)
        first = list(inbox.messages)
        for m in first:
            inbox.client.ack(m)
        await until(lambda: len(inbox.messages) == 80, "the other 30 once the 50 are acknowledged", timeout_s=5)
        # one write of 50 PUBACKs (type 4, remaining length 2, the packet id), in the order they were given
        assert writes[0] == b"".join(bytes([0x40, 2]) + m.mid.to_bytes(2, "big") for m in first)
        for m in inbox.messages[50:]:
            inbox.client.ack(m)
    async with Inbox(mosquitto.url, "c-many", ["test/many"]) as again:
        await asyncio.sleep(0.5)
        assert again.messages == []  # every PUBACK reached the broker


async def test_late_ack_is_not_sent_on_a_newer_connection(mosquitto_factory: Callable[..., MosquittoBroker]) -> None:
    broker = mosquitto_factory()
    async with Inbox(broker.url, "c-late", ["test/late"]) as inbox:
        _publish(_port(broker), "test/late", [b"m"])
        await until(lambda: len(inbox.messages) == 1, "the message", timeout_s=5)
        broker.stop()  # SIGTERM: the broker saves the session with the unacknowledged message
        broker.start()
        await until(lambda: len(inbox.messages) == 2, "the redelivery after the broker restart", timeout_s=10)
        old, new = inbox.messages
        assert (new.payload, new.dup) == (b"m", True)
        assert new.connection > old.connection
        inbox.client.ack(old)  # from a connection that no longer exists: dropped
        await asyncio.sleep(0.3)
    async with Inbox(broker.url, "c-late", ["test/late"]) as again:
        await until(lambda: len(again.messages) == 1, "the redelivery: the late ack was not sent", timeout_s=5)
        again.client.ack(again.messages[0])
        await asyncio.sleep(0.3)
    async with Inbox(broker.url, "c-late", ["test/late"]) as done:
        await asyncio.sleep(0.5)
        assert done.messages == []


async def test_resubscribes_when_the_broker_lost_the_session(mosquitto_factory: Callable[..., MosquittoBroker]
                                                             ) -> None:
    broker = mosquitto_factory()
    async with Inbox(broker.url, "c-lost", ["test/lost"]) as inbox:
        attempts = inbox.client.connection_attempts
        broker.kill()  # SIGKILL before any autosave: the session and its subscription are gone
        await until(lambda: not inbox.client.connected.is_set(), "the disconnect", timeout_s=5)
        broker.start()
        await inbox.ready()
        assert inbox.client.status().session_present is False
        assert inbox.client.connection_attempts > attempts
        assert inbox.connection_events[:2] == [True, False] and inbox.connection_events[-1] is True
        _publish(_port(broker), "test/lost", [b"after"])
        await until(lambda: inbox.payloads() == [b"after"], "a message on the resubscribed filter", timeout_s=5)


async def test_shared_subscription_splits_messages_exactly_once(mosquitto: MosquittoBroker) -> None:
    topics = ["$share/aqnet-test/test/shared/#"]
    async with Inbox(mosquitto.url, "c-share-1", topics) as one, Inbox(mosquitto.url, "c-share-2", topics) as two:
        sent = [f"{i}".encode() for i in range(200)]
        _publish(_port(mosquitto), "test/shared/x", sent)
        await until(lambda: len(one.messages) + len(two.messages) >= 200, "200 messages between the two", timeout_s=10)
        await asyncio.sleep(0.3)
        for inbox in (one, two):
            for m in inbox.messages:
                inbox.client.ack(m)
        got = one.payloads() + two.payloads()
        assert sorted(got) == sorted(sent)  # each exactly once
        assert one.messages and two.messages  # and both took a share
        assert {m.topic for m in one.messages + two.messages} == {"test/shared/x"}


class Mqtt311OnlyProxy:
    """A TCP proxy in front of a real broker that answers an MQTT 5 CONNECT as a 3.1.1-only broker does
    (CONNACK "unacceptable protocol version", then close) and forwards everything else."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.refused = 0
        self.broker_closed = 0  # forwarded connections the broker has ended (after a DISCONNECT, say)
        self._socks: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self._socks.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_packet(conn: socket.socket) -> tuple[bytes, int]:
        """One packet and the offset of its variable header."""
        head = conn.recv(1, socket.MSG_WAITALL)
        length, mult, raw = 0, 1, b""
        while True:
            b = conn.recv(1, socket.MSG_WAITALL)
            raw += b
            length += (b[0] & 0x7F) * mult
            mult *= 128
            if not b[0] & 0x80:
                break
        return head + raw + conn.recv(length, socket.MSG_WAITALL), 1 + len(raw)

    def _serve(self, conn: socket.socket) -> None:
        try:
            packet, body_at = self._read_packet(conn)
            level = packet[body_at + 6]  # CONNECT: protocol name "MQTT" (2 + 4 bytes), then the level
            if level == 5:
                self.refused += 1
                conn.sendall(b"\x20\x02\x00\x01")
                conn.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._socks.append(upstream)
            upstream.sendall(packet)
            threading.Thread(target=self._downstream, args=(upstream, conn), daemon=True).start()
            self._pump(conn, upstream)
        except OSError:
            conn.close()

    def _downstream(self, upstream: socket.socket, conn: socket.socket) -> None:
        self._pump(upstream, conn)
        self.broker_closed += 1

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()
        for s in self._socks:
            s.close()


async def test_falls_back_to_311_with_a_persistent_session(mosquitto_factory: Callable[..., MosquittoBroker],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    broker = mosquitto_factory(max_inflight=7)
    proxy = Mqtt311OnlyProxy(broker.port)
    url = f"mqtt://127.0.0.1:{proxy.port}"
    try:
        with caplog.at_level(logging.WARNING, logger="sensors.mqtt.client"):
            async with Inbox(url, "c-311", ["test/v311"], receive_maximum=500) as inbox:
                assert inbox.client.protocol == "3.1.1" and proxy.refused == 1
                _publish(_port(broker), "test/v311", [str(i).encode() for i in range(10)])
                await until(lambda: len(inbox.messages) == 7, "seven messages", timeout_s=5)
                await asyncio.sleep(0.5)
                assert len(inbox.messages) == 7  # no Receive Maximum in 3.1.1: the broker's window (7) rules
                for m in inbox.messages[:7]:
                    inbox.client.ack(m)
                await until(lambda: len(inbox.messages) == 10, "the last three", timeout_s=5)
                inbox.client.ack(inbox.messages[7])  # 8 and 9 stay unacknowledged
                await asyncio.sleep(0.2)
            # the proxy forwards the DISCONNECT on its own thread: publish only once the broker has ended the
            # connection, or the broker may still send the message to it (and then again, as a duplicate)
            await until(lambda: proxy.broker_closed == 1, "the broker to end the first connection", timeout_s=5)
            _publish(_port(broker), "test/v311", [b"while away"])
            async with Inbox(url, "c-311", ["test/v311"]) as again:
                await until(lambda: len(again.messages) == 3, "the session's messages", timeout_s=5)
                assert again.payloads() == [b"8", b"9", b"while away"]
                assert [m.dup for m in again.messages] == [True, True, False]
                assert again.client.status().session_present is True
        warnings = [r for r in caplog.records if "refused MQTT 5" in r.getMessage()]
        assert len(warnings) == 2  # once per client, naming the broker and what to configure
        assert f"127.0.0.1:{proxy.port}" in warnings[0].getMessage()
        assert "max_inflight_messages 500" in warnings[0].getMessage()
    finally:
        proxy.close()


async def test_mqtt5_only_does_not_fall_back(mosquitto: MosquittoBroker) -> None:
    proxy = Mqtt311OnlyProxy(mosquitto.port)
    try:
        client = MqttSubscriberClient(f"mqtt://127.0.0.1:{proxy.port}", client_id="c-5only", topics=["t"],
                                      loop=asyncio.get_running_loop(), on_message=lambda m: None, protocol="5",
                                      reconnect_min_s=0.05, reconnect_max_s=0.1)
        client.start()
        await until(lambda: proxy.refused >= 2, "two refused attempts", timeout_s=5)
        client.stop()
        assert client.protocol == "5"
        assert "Unsupported protocol version" in (client.status().last_error or "")
    finally:
        proxy.close()


# ---------------------------------------------------------------------------------------------- TLS


def _tls_broker(make: Callable[..., MosquittoBroker], pki: Path, *, require_certificate: bool) -> MosquittoBroker:
    return make(tls=MosquittoTls(free_port(), pki / "ca.pem", pki / "server.pem", pki / "server.key",
                                 require_certificate=require_certificate))


async def test_tls_with_a_private_ca(mosquitto_factory: Callable[..., MosquittoBroker], pki: Path) -> None:
    broker = _tls_broker(mosquitto_factory, pki, require_certificate=False)
    async with Inbox(broker.tls_url, "c-tls", ["test/tls"], ca_file=str(pki / "ca.pem")) as inbox:
        _publish(_port(broker), "test/tls", [b"secret"])
        await until(lambda: inbox.payloads() == [b"secret"], "the message over TLS", timeout_s=5)
    untrusted = MqttSubscriberClient(broker.tls_url, client_id="c-untrusted", topics=["t"],
                                     loop=asyncio.get_running_loop(), on_message=lambda m: None,
                                     ca_file=str(pki / "other-ca.pem"), reconnect_min_s=0.05, reconnect_max_s=0.1)
    untrusted.start()
    try:
        await until(lambda: untrusted.connection_attempts >= 2, "two attempts", timeout_s=5)
        assert not untrusted.connected.is_set()
        assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.status().last_error or "")
    finally:
        untrusted.stop()


async def test_tls_client_certificate(mosquitto_factory: Callable[..., MosquittoBroker], pki: Path) -> None:
    broker = _tls_broker(mosquitto_factory, pki, require_certificate=True)
    async with Inbox(broker.tls_url, "c-cert", ["test/cert"], ca_file=str(pki / "ca.pem"),
                     cert_file=str(pki / "client.pem"), key_file=str(pki / "client.key")) as inbox:
        _publish(_port(broker), "test/cert", [b"hello"])
        await until(lambda: inbox.payloads() == [b"hello"], "the message with a client certificate", timeout_s=5)
    anonymous = MqttSubscriberClient(broker.tls_url, client_id="c-nocert", topics=["t"],
                                     loop=asyncio.get_running_loop(), on_message=lambda m: None,
                                     ca_file=str(pki / "ca.pem"), reconnect_min_s=0.05, reconnect_max_s=0.1)
    anonymous.start()
    try:
        await until(lambda: anonymous.connection_attempts >= 2, "two attempts", timeout_s=5)
        assert not anonymous.connected.is_set() and anonymous.status().connections == 0
    finally:
        anonymous.stop()
