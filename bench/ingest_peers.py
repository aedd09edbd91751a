"""The end-to-end ingest benchmark's load and peers (`bench.ingest`): the workload (aqnet JSON messages from the
bundled microsensors), the publisher processes, and the hand-written subscriber the benchmark compares aqnet with.
I/O (each runs in a process of its own, started with the "spawn" method).

- Message `i` comes from microsensor `SENSORS[i % 25]`, with reading time `t0 + i ms` (every reading is a
  distinct row) and the four values a bundled microsensor reports.
- Publishers: each owns the messages of every n-th sensor, so a sensor's messages travel, in order, over one
  MQTT connection; QoS 1; each records when it handed every message to paho.
- The hand-written subscriber ("copy"): paho, MQTT 5, QoS 1 with manual acks sent after the batch is committed,
  batches by size or age and binary-COPYs them straight into `measurements` (no staging, no dedup). "insert":
  the naive peer, one autocommitted INSERT per reading, acked as paho does after the callback returns.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from array import array
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import sql

from sensors.network import bundled_network
from sensors.variables import VARIABLES

__all__ = ["COLUMNS", "SENSORS", "VALUES", "WIDE", "Publishers", "payload", "reading_time", "sensor_of", "stream",
           "subscriber"]

INFLIGHT = 100  #: a publisher's unacknowledged messages at most
VALUES = ("pm25", "pm10", "temperature", "relativehumidity")  #: what a bundled microsensor reports
#: eight values, the 10,000-sensor rate's message (issue 19: 10,000 sensors × 8 values every 10 s): a low-cost
#: node with a PM sensor of four size bins, temperature, humidity, pressure and an NDIR CO2 cell
WIDE = ("pm1", "pm25", "pm4", "pm10", "temperature", "relativehumidity", "pressure", "co2")
SENSORS = tuple(s.id for s in bundled_network({}) if s.kind == "microsensor")
#: the columns the peers fill (storage/migrations/0001_initial.sql); columns added later keep their defaults
COLUMNS = ("time", "sensor_id", "variable", "value", "unit", "flags", "raw_value", "raw_unit", "device_id",
           "received_at")
TYPES = ("timestamptz", "text", "text", "float8", "text", "int4", "float8", "text", "text", "timestamptz")


def sensor_of(i: int) -> str:
    """The microsensor that publishes message `i`."""
    return SENSORS[i % len(SENSORS)]


def reading_time(t0: datetime, i: int) -> datetime:
    """Message `i`'s reading time: one millisecond apart, so every reading is distinct."""
    return t0 + timedelta(milliseconds=i)


def _values(i: int, names: tuple[str, ...]) -> dict[str, float]:
    """Message `i`'s plausible values (Bogotá: ~750 hPa at 2,600 m) of the variables `names`."""
    every = {"pm1": 6.0 + i % 20, "pm25": 8.5 + i % 30, "pm4": 15.0 + i % 35, "pm10": 20.0 + i % 40,
             "temperature": 14.0 + i % 10 / 10, "relativehumidity": 60.0 + i % 30, "pressure": 750.0 + i % 5,
             "co2": 420.0 + i % 60}
    return {name: every[name] for name in names}


def payload(t0: datetime, i: int, names: tuple[str, ...] = VALUES) -> bytes:
    """Message `i` as aqnet JSON with the values of `names` (plausible values, no QC flag)."""
    return json.dumps({"time": reading_time(t0, i).isoformat(timespec="milliseconds"),
                       "values": _values(i, names)}).encode()


def _publisher(port: int, prefix: str, t0: datetime, indices: list[int], rate: float | None, names: tuple[str, ...],
               pipe: Any) -> None:
    """A publisher process: connect, say ready, wait for the start time, publish, wait for every PUBACK.

    One thread drives paho (no loop_start): `publish` writes at once and `loop` reads the PUBACKs. At most
    `INFLIGHT` messages are unacknowledged: paho scans its in-flight messages on every PUBACK, and a network
    thread beside the publishing one hands the GIL back and forth: each tripled the CPU per message here.
    """
    messages = [(f"{prefix}/{sensor_of(i)}/readings", payload(t0, i, names)) for i in indices]
    acked = [0]

    def on_publish(client: paho.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        acked[0] += 1

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", protocol=paho.MQTTv311)
    client.max_inflight_messages_set(INFLIGHT)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    while not client.is_connected():
        client.loop(0.01)
    pipe.send("ready")
    while not pipe.poll():
        client.loop(0.01)
    start_at: float = pipe.recv()
    cpu0 = time.process_time()
    times = array("d")
    while time.time() < start_at:
        client.loop(max(0.0, min(0.01, start_at - time.time())))
    for k, (topic, body) in enumerate(messages):
        while rate and time.time() < start_at + k / rate:
            client.loop(max(0.0, min(0.01, start_at + k / rate - time.time())))
        while k - acked[0] >= INFLIGHT:
            client.loop(0.01)
        times.append(time.time())
        client.publish(topic, body, qos=1)
        if k % 32 == 0:
            client.loop(0)
    deadline = time.time() + 600
    while acked[0] < len(messages) and time.time() < deadline:
        client.loop(0.01)
    client.disconnect()
    pipe.send((times.tobytes(), time.process_time() - cpu0))


def stream(port: int, prefix: str, sensors: list[str], rate: float, seconds: float, names: tuple[str, ...],
           pipe: Any) -> None:
    """A soak publisher process: message k at `start + k / rate` from `sensors[k % len(sensors)]`, stamped with
    the time it is published (a live sensor's reading), for `seconds`; then sends (messages, CPU s, worst lag s).

    The lag is how far behind its schedule the publisher fell (the offered rate is short when it grows)."""
    acked = [0]

    def on_publish(client: paho.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        acked[0] += 1

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-stream-{os.getpid()}",
                         protocol=paho.MQTTv311)
    client.max_inflight_messages_set(INFLIGHT)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    while not client.is_connected():
        client.loop(0.01)
    pipe.send("ready")
    while not pipe.poll():
        client.loop(0.01)
    start_at: float = pipe.recv()
    cpu0, lag, k = time.process_time(), 0.0, 0
    topics = [f"{prefix}/{sid}/readings" for sid in sensors]
    while (due := start_at + k / rate) < start_at + seconds:
        while (now := time.time()) < due:
            client.loop(max(0.0, min(0.01, due - now)))
        while k - acked[0] >= INFLIGHT:
            client.loop(0.01)
        now = time.time()
        lag = max(lag, now - due)
        doc = {"time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"), "values": _values(k, names)}
        client.publish(topics[k % len(topics)], json.dumps(doc).encode(), qos=1)
        k += 1
        if k % 32 == 0:
            client.loop(0)
        if pipe.poll():  # told to stop early
            break
    deadline = time.time() + 60
    while acked[0] < k and time.time() < deadline:
        client.loop(0.01)
    client.disconnect()
    pipe.send((k, time.process_time() - cpu0, lag))


class Publishers:
    """`n` publisher processes, each owning the messages of every n-th sensor (so a sensor's order is kept);
    `rate`: messages/s in all (None: flat out); `names`: the variables each message carries."""

    def __init__(self, n: int, port: int, prefix: str, t0: datetime, indices: range, rate: float | None,
                 names: tuple[str, ...] = VALUES) -> None:
        ctx = mp.get_context("spawn")
        self.slices = self.partition(n, indices)
        self.pipes, self.procs = [], []
        for part in self.slices:
            mine, theirs = ctx.Pipe()
            share = rate * len(part) / len(indices) if rate else None
            proc = ctx.Process(target=_publisher, args=(port, prefix, t0, part, share, names, theirs), daemon=True)
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)
        for pipe in self.pipes:
            if not pipe.poll(60) or pipe.recv() != "ready":
                self.close()
                raise RuntimeError("bench: a publisher process did not connect to the broker within 60 s")

    @staticmethod
    def partition(n: int, indices: range) -> list[list[int]]:
        """`indices` split between `n` publishers: publisher p sends the messages of sensors s with s % n == p."""
        return [[i for i in indices if (i % len(SENSORS)) % n == p] for p in range(n)]

    def go(self) -> None:
        start_at = time.time() + 0.1
        for pipe in self.pipes:
            pipe.send(start_at)

    def join(self) -> tuple[dict[int, float], float]:
        """Publish time of each message (s since the epoch) and the publishers' CPU since `go()`, in s."""
        out: dict[int, float] = {}
        cpu = 0.0
        for part, pipe, proc in zip(self.slices, self.pipes, self.procs, strict=True):
            if not pipe.poll(660):
                raise RuntimeError(f"bench: publisher {proc.pid} sent no publish times (exit code {proc.exitcode})")
            raw, used = pipe.recv()
            times = array("d")
            times.frombytes(raw)
            cpu += used
            out.update(zip(part, times, strict=True))
            proc.join(30)
        return out, cpu

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join(10)


def subscriber(mode: str, port: int, prefix: str, url: str, batch_max: int, receive_maximum: int,
               max_age_s: float, ready: Any, stop: Any) -> None:
    """The hand-written subscriber: "copy" batches and COPYs, acking after commit; "insert" autocommits each."""
    conn = psycopg.connect(url, autocommit=mode == "insert")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{mode}", protocol=paho.MQTTv5,
                         manual_ack=mode == "copy")
    insert = sql.SQL("INSERT INTO measurements ({}) VALUES ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))
    copy_sql = sql.SQL("COPY measurements ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    pending: list[tuple[int, list[tuple[object, ...]]]] = []
    oldest = [0.0]

    def flush() -> None:
        if not pending:
            return
        with conn.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(list(TYPES))
            for _, rows in pending:
                for row in rows:
                    copy.write_row(row)
        conn.commit()
        for mid, _ in pending:
            client.ack(mid, 1)
        pending.clear()

    def on_message(c: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        doc, sensor, now = json.loads(msg.payload), msg.topic.split("/")[1], datetime.now(UTC)
        at = datetime.fromisoformat(doc["time"])
        rows = [(at, sensor, v, float(x), VARIABLES[v].unit, 0, float(x), VARIABLES[v].unit, sensor, now)
                for v, x in doc["values"].items()]
        if mode == "insert":
            for row in rows:
                conn.execute(insert, row)
            return
        if not pending:
            oldest[0] = time.monotonic()
        pending.append((msg.mid, rows))
        if len(pending) >= batch_max:
            flush()

    client.on_message = on_message
    client.on_connect = lambda c, *args: c.subscribe(f"{prefix}/+/readings", qos=1)
    client.on_subscribe = lambda *args: ready.set()
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = receive_maximum
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    while not stop.is_set():
        client.loop(timeout=0.05)
        if pending and time.monotonic() - oldest[0] >= max_age_s:
            flush()
    flush()
    client.disconnect()
    conn.close()
