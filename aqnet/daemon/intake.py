"""The daemon's start steps for intake: the MQTT subscriber and the station pollers. Shell (aqnet), I/O.

With their metrics. Builds `sensors` drivers from the settings, hands what they read to the pipeline (refusals and
Modbus outages through `ingest.intake.IntakeSubmitter`) and pushes their cleanup on the daemon's exit stack."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aqnet.daemon.observer import TaskMetrics
from aqnet.daemon.processes import Role
from aqnet.daemon.wiring import Wiring
from aqnet.preflight import StartupRefused, watch_subscriptions
from ingest.intake import IntakeSubmitter
from ingest.pipeline import Pipeline
from sensors.modbus.decode import DEVICE_STATUS_BITS
from sensors.modbus.link import LinkRegistry
from sensors.modbus.poller import StationPoller, StatusEvent
from sensors.modbus.supervisor import PollerSupervisor, PollTarget
from sensors.mqtt.client import Message, MqttSubscriberClient
from sensors.mqtt.subscriber import Intake, MqttSubscriber
from sensors.reading import Gap, RawReading
from sensors.zero_span import StatusPurge
from storage.live_network import LiveNetwork

__all__ = ["MqttIntake", "start_mqtt_intake", "start_pollers"]


@dataclass(frozen=True)
class MqttIntake:
    """The running MQTT subscriber and its connection's status (`/status`)."""

    subscriber: MqttSubscriber
    status: Callable[[], dict[str, Any]]


def start_mqtt_intake(w: Wiring, intake: Intake, submitter: IntakeSubmitter, pipeline: Pipeline, *,
                      refuse: Callable[[StartupRefused], None], role: Role) -> MqttIntake:
    """Start the MQTT subscriber (decoded messages → pipeline; refusals → dead letters) and its watch of the
    first subscription outcome (a refusal calls `refuse`: aqnet.preflight); with several processes, on shared
    subscriptions under the process's own client id (`aqnet.daemon.processes`)."""
    s, m = w.settings, w.metrics
    loop = asyncio.get_running_loop()
    last_message = [time.monotonic()]

    def message_seen(message: Message) -> None:
        last_message[0] = time.monotonic()
        if getattr(message, "dup", False):
            m.mqtt_redelivered.inc()

    def client_factory(on_message: Callable[[Message], None]) -> MqttSubscriberClient:
        return MqttSubscriberClient(
            s.mqtt.url, client_id=role.client_id(s.mqtt.client_id), topics=role.topics(s.mqtt.topics,
                                                                                      s.mqtt.share_group), loop=loop,
            on_message=on_message, receive_maximum=s.mqtt.receive_maximum,
            session_expiry_s=s.mqtt.session_expiry_s, clock=w.clock, protocol=s.mqtt.protocol,
            ca_file=s.mqtt.ca_file, cert_file=s.mqtt.cert_file, key_file=s.mqtt.key_file,
            reconnect_min_s=s.mqtt.reconnect_min_s, reconnect_max_s=s.mqtt.reconnect_max_s,
            on_connection=lambda up: m.mqtt_connected.set(1 if up else 0), max_pending=s.mqtt.receive_maximum,
            verify_read_s=s.mqtt.verify_read_s)

    subscriber = MqttSubscriber(
        client_factory, intake, submit=pipeline.submit, reject=submitter.reject, on_message_seen=message_seen,
        max_pending=s.mqtt.receive_maximum,
        on_unmapped=lambda sid, n: m.unmapped_channels.labels(sid).inc(n))
    client = subscriber.client
    w.stack.push_async_callback(asyncio.to_thread, client.stop)
    w.start("mqtt", subscriber.run)
    # one-shot: the first subscription outcome (a refusal stops the daemon: aqnet.preflight)
    subscribed = asyncio.create_task(watch_subscriptions(client, refuse), name="mqtt-subscribed")
    w.stack.callback(subscribed.cancel)
    m.mqtt_silence.set_function(lambda: time.monotonic() - last_message[0])
    m.mqtt_attempts.set_function(lambda: client.connection_attempts)
    return MqttIntake(subscriber, lambda: dataclasses.asdict(client.status()))


def start_pollers(w: Wiring, links: LinkRegistry, intake: Intake, submitter: IntakeSubmitter, pipeline: Pipeline, *,
                  interval_of: Callable[[str], float],
                  stations: Callable[[Mapping[str, PollTarget]], Mapping[str, PollTarget]] | None = None,
                  ) -> tuple[PollerSupervisor, LiveNetwork]:
    """The station pollers' supervisor, and the live network that starts and stops them as the registry says
    (nothing is polled until the first registry snapshot is applied); `stations` picks this process's share."""
    s, m = w.settings, w.metrics

    def on_gap(gap: Gap) -> None:
        m.read_failures.labels(gap.sensor_id, gap.reason).inc()

    def on_status(event: StatusEvent) -> None:
        up = m.device_up.labels(event.sensor_id, event.device_id)
        if event.recovered:
            up.set(1)
            return
        up.set(0)
        m.modbus_status.labels(event.sensor_id, event.device_id, event.reason).inc()
        submitter.modbus_status(event)  # one dead letter per outage, not one per poll

    def on_modbus_readings(readings: list[RawReading]) -> bool:
        # a poller never waits on ingest: when it is full the readings are counted as dropped and the
        # poller reads them back from the logger's history once ingest accepts again
        if not pipeline.try_submit(readings):
            m.dropped.labels("modbus", readings[0].sensor_id).inc(len(readings))
            return False
        backfilled = sum(1 for r in readings if r.time_source == "device")
        if backfilled:
            m.backfilled.labels(readings[0].sensor_id).inc(backfilled)
        return True

    # the purge after an analyser's own zero/span status bit clears, per device (zero_span.status_purge_min)
    status_purge = StatusPurge({device: minutes * 60 for device, minutes in
                                w.settings.zero_span.status_purge_min.items()}, DEVICE_STATUS_BITS["maintenance"])

    def make_poller(target: PollTarget) -> StationPoller:
        # ValueError (a profile that did not load, a link conflict): the supervisor logs it and skips
        return StationPoller(target.sensor, links.link_for, live.profiles, on_readings=on_modbus_readings,
                             on_gap=on_gap, on_status=on_status, clock=w.clock, interval_s=target.interval_s,
                             real_seconds=getattr(w.clock, "real_seconds", None), status_purge=status_purge)

    task_metrics = TaskMetrics(m)
    pollers = PollerSupervisor(make_poller, policy=dataclasses.replace(w.tasks.policy, max_restarts=None),
                               on_state=task_metrics.state, on_restart=task_metrics.restarted,
                               on_removed=task_metrics.removed)
    w.stack.callback(pollers.cancel)
    live = LiveNetwork(pipeline=pipeline, intake=intake, pollers=pollers, links=links, interval_of=interval_of,
                       microsensor_cadence_s=s.network.microsensor_cadence_s, mqtt_topics=s.mqtt.topics,
                       stations=stations)
    return pollers, live
