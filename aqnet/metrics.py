"""Every Prometheus metric of the daemon, defined once on a registry passed in (no global registry).

Names follow `aqnet_<stage>_<what>_<unit>`. README's "Metrics" table documents each one (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["HealthMetrics", "Metrics", "NodeMetrics", "ProcessesCollector", "merge_processes"]


@dataclass(frozen=True)
class HealthMetrics:
    """Device health gauges (alerts.health), refreshed by the health job on the leader; definitions in
    docs/operators/device-health.md."""

    uptime: Gauge
    completeness: Gauge
    mtbf: Gauge
    mttr: Gauge
    down: Gauge
    flat: Gauge
    drift: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HealthMetrics:
        """Register the health gauges on `registry`."""
        device = ["sensor_id", "device_id"]
        return cls(
            uptime=Gauge("aqnet_sensors_device_uptime_ratio",
                         "Fraction of the window (24h, 30d) a device was not down (device health)",
                         [*device, "window"], registry=registry),
            completeness=Gauge("aqnet_sensors_device_completeness_ratio",
                               "Data completeness of a device's series over the window (24h, 30d): summed 1-h "
                               "coverage over expected hours", [*device, "window"], registry=registry),
            mtbf=Gauge("aqnet_sensors_device_mtbf_seconds",
                       "Mean time between failures over 30 days (up time / outages); absent without outages",
                       device, registry=registry),
            mttr=Gauge("aqnet_sensors_device_mttr_seconds",
                       "Mean time to repair over 30 days (mean length of the outages that ended); absent "
                       "without repairs", device, registry=registry),
            down=Gauge("aqnet_sensors_device_down",
                       "1 while a device is down (silent longer than health.down_after_*_s), else 0", device,
                       registry=registry),
            flat=Gauge("aqnet_sensors_device_flat_seconds",
                       "How long the device's flattest variable has stayed constant (last 24 h)", device,
                       registry=registry),
            drift=Gauge("aqnet_sensors_device_drift_per_day",
                        "Slope of device − co-located reference over 30 days of 1-h averages, the variable's "
                        "unit per day", [*device, "variable"], registry=registry),
        )


@dataclass(frozen=True)
class NodeMetrics:
    """One node of several (`nodes.enabled`: aqnet.daemon.nodes), each sample labelled with its node id."""

    leases_held: Gauge
    renewal_age: Gauge
    leases_taken: Counter
    fenced: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> NodeMetrics:
        """Register the node metrics on `registry`."""
        return cls(
            leases_held=Gauge("aqnet_node_leases_held", "Leases this node holds, by kind (partition, station: a "
                              "Modbus link group)", ["node", "kind"], registry=registry),
            renewal_age=Gauge("aqnet_node_lease_renewal_age_seconds", "Seconds since this node's last successful "
                              "lease renewal began (it stops consuming at nodes.lease_ttl_s − nodes.lease_renew_s)",
                              ["node"], registry=registry),
            leases_taken=Counter("aqnet_node_leases_taken_total", "Leases this node took, by kind",
                                 ["node", "kind"], registry=registry),
            fenced=Counter("aqnet_node_fenced_total", "Times this node stopped consuming because it could not renew "
                           "its leases in time, or the database refused a late write", ["node"], registry=registry),
        )


@dataclass(frozen=True)
class Metrics:
    """The daemon's metrics on one registry."""

    registry: CollectorRegistry
    readings: Counter
    rejected: Counter
    read_failures: Counter
    modbus_status: Counter
    device_up: Gauge
    backfilled: Counter
    dropped: Counter
    rows: Counter
    write_seconds: Histogram
    write_failures: Counter
    last_reading: Gauge
    mqtt_connected: Gauge
    mqtt_redelivered: Counter
    mqtt_attempts: Gauge
    mqtt_silence: Gauge
    unmapped_channels: Counter
    queue_length: Gauge
    spool_bytes: Gauge
    spool_batches: Gauge
    spool_readings: Gauge
    spool_near_full: Gauge
    spool_full: Gauge
    spool_disk_full: Gauge
    spooled: Counter
    replayed: Counter
    forwarding_state: Gauge
    alert_deliveries: Counter
    alert_outbox_pending: Gauge
    alerts_active: Gauge
    task_up: Gauge
    task_restarts: Counter
    health: HealthMetrics
    nodes: NodeMetrics

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        """Register every metric on `registry`."""
        return cls(
            registry=registry,
            readings=Counter("aqnet_ingest_readings_total",
                             "Readings written durably to the database, by driver protocol",
                             ["protocol"], registry=registry),
            rejected=Counter("aqnet_ingest_rejected_total",
                             "Messages or readings rejected before storage, by protocol and reason",
                             ["protocol", "reason"], registry=registry),
            read_failures=Counter("aqnet_sensors_read_failures_total",
                                  "Failed device reads (gaps recorded, never zeros), by sensor and reason",
                                  ["sensor_id", "reason"], registry=registry),
            modbus_status=Counter("aqnet_sensors_modbus_status_events_total",
                                  "Failed Modbus device reads, by sensor, device and reason",
                                  ["sensor_id", "device_id", "reason"], registry=registry),
            device_up=Gauge("aqnet_sensors_device_up", "0 while a Modbus device's reads fail, 1 after it recovers",
                            ["sensor_id", "device_id"], registry=registry),
            backfilled=Counter("aqnet_sensors_backfilled_readings_total",
                               "Readings recovered from a logger's history buffer after an outage",
                               ["sensor_id"], registry=registry),
            dropped=Counter("aqnet_ingest_dropped_readings_total",
                            "Readings refused because ingest was full (Modbus: read back from the logger's "
                            "history later)", ["protocol", "sensor_id"], registry=registry),
            rows=Counter("aqnet_storage_rows_total",
                         "Rows handled by the writer: inserted, duplicate (exact repeat, no-op) or conflict "
                         "(same key, different value: dead letter)", ["result"], registry=registry),
            write_seconds=Histogram("aqnet_storage_batch_write_seconds",
                                    "Time to write one batch (COPY + idempotent insert + commit)",
                                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                    registry=registry),
            write_failures=Counter("aqnet_storage_write_failures_total",
                                   "Batch writes that failed and will be retried", registry=registry),
            last_reading=Gauge("aqnet_sensor_last_reading_timestamp_seconds",
                               "Measurement time of the newest stored reading per sensor (Unix seconds)",
                               ["sensor_id"], registry=registry),
            mqtt_connected=Gauge("aqnet_mqtt_connected", "1 while connected to the MQTT broker",
                                 registry=registry),
            mqtt_redelivered=Counter("aqnet_mqtt_redelivered_total",
                                     "Messages the broker redelivered (DUP flag): not acknowledged before a "
                                     "restart or disconnect", registry=registry),
            mqtt_attempts=Gauge("aqnet_mqtt_connection_attempts",
                                 "Connection attempts to the broker since start (1 when all went well)",
                                 registry=registry),
            mqtt_silence=Gauge("aqnet_mqtt_seconds_since_last_message",
                               "Seconds since the last MQTT message arrived (watchdog)", registry=registry),
            unmapped_channels=Counter("aqnet_ingest_unmapped_channels_total",
                                      "Payload values whose channel no device of the sensor takes",
                                      ["sensor_id"], registry=registry),
            queue_length=Gauge("aqnet_ingest_queue_length", "Submissions waiting in the ingest queue",
                               registry=registry),
            spool_bytes=Gauge("aqnet_storage_spool_bytes",
                              "Bytes of batches waiting in the store-and-forward spool (database unreachable)",
                              registry=registry),
            spool_batches=Gauge("aqnet_storage_spool_batches", "Batches waiting in the spool", registry=registry),
            spool_readings=Gauge("aqnet_storage_spool_readings", "Readings waiting in the spool", registry=registry),
            spool_near_full=Gauge("aqnet_storage_spool_near_full",
                                  "1 when the spool's files reach storage.spool_near_full_fraction of "
                                  "storage.spool_max_bytes (alarm)", registry=registry),
            spool_full=Gauge("aqnet_storage_spool_full",
                             "1 while the spool refuses batches: intake stops acknowledging", registry=registry),
            spool_disk_full=Gauge("aqnet_storage_spool_disk_full",
                                  "1 while the spool refuses batches because its filesystem is full (ENOSPC), not "
                                  "its byte limit", registry=registry),
            spooled=Counter("aqnet_storage_spooled_readings_total",
                            "Readings written to the spool because the database was unreachable",
                            registry=registry),
            replayed=Counter("aqnet_storage_replayed_readings_total",
                             "Spooled readings replayed into the database", registry=registry),
            forwarding_state=Gauge("aqnet_storage_forwarding_state",
                                   "1 for the current store-and-forward state: direct (to the database), "
                                   "spooling (database unreachable) or replaying (draining the spool)",
                                   ["state"], registry=registry),
            # the three alert metrics' names and labels are a contract with deploy/prometheus' rules (issue 11)
            alert_deliveries=Counter("aqnet_alert_deliveries_total",
                                     "Alert deliveries attempted, by channel and result: delivered, failed (to be "
                                     "retried) or dead (gave up: the delivery dead letter)",
                                     ["channel", "result"], registry=registry),
            alert_outbox_pending=Gauge("aqnet_alert_outbox_pending",
                                       "Alert deliveries waiting in the outbox (not yet accepted by the channel)",
                                       ["channel"], registry=registry),
            alerts_active=Gauge("aqnet_alerts_active",
                                "Open alerts (firing or acknowledged), by audience and severity",
                                ["audience", "severity"], registry=registry),
            task_up=Gauge("aqnet_task_up", "1 while a supervised long-running task of the daemon runs, 0 while it "
                          "is down (waiting for its restart, or given up: the daemon then exits)", ["task"],
                          registry=registry),
            task_restarts=Counter("aqnet_task_restarts_total",
                                  "Restarts of a supervised task after it died (the log has the cause)", ["task"],
                                  registry=registry),
            health=HealthMetrics.create(registry),
            nodes=NodeMetrics.create(registry),
        )


def merge_processes(families: Mapping[str, Iterable[Metric]], *, label: str = "process") -> list[Metric]:
    """One family per metric name from the families of several processes (`ingest.processes` > 1): every sample
    keeps its labels and gains `label="<process>"`, so no metric of any process is lost or summed away (PromQL's
    `sum without (process)` adds them up). A family whose type differs from the first one seen under its name is
    left out (it cannot be exposed under that name)."""
    merged: dict[str, Metric] = {}
    for process, process_families in families.items():
        for family in process_families:
            out = merged.get(family.name)
            if out is None:
                out = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            elif out.type != family.type:
                continue
            out.samples.extend(s._replace(labels={**s.labels, label: process}) for s in family.samples)
    return list(merged.values())


class ProcessesCollector(Collector):
    """A collector that exposes this process's registry and the other processes' latest families together
    (`merge_processes`); `others()` returns process name → families (gathered before the scrape)."""

    def __init__(self, own: CollectorRegistry, own_name: str,
                 others: Callable[[], Mapping[str, Iterable[Metric]]]) -> None:
        self._own = own
        self._own_name = own_name
        self._others = others

    def collect(self) -> Iterable[Metric]:
        """The merged families."""
        return merge_processes({self._own_name: list(self._own.collect()), **self._others()})
