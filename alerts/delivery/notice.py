"""What a delivery channel is given: one `Notice` per alert transition, with the evidence an officer or a
technician needs (sensor, locality, variable, value and unit, period and coverage, level and its source, links),
and the `Channel` protocol every channel implements. Pure (no I/O): `alerts.delivery.dispatch` builds notices from
the stored alert and event, `alerts.delivery.messages` renders them, `alerts.delivery.channels.*` send them. A
notice's audience and severity are the rules' (`alerts.rules.model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from alerts.rules.model import Audience, Severity

__all__ = ["TRANSITIONS", "Channel", "DeliveryError", "Notice", "Transition"]

Transition = Literal["raised", "escalated", "unacknowledged", "acknowledged", "resolved"]
TRANSITIONS: tuple[Transition, ...] = ("raised", "escalated", "unacknowledged", "acknowledged", "resolved")


@dataclass(frozen=True, slots=True)
class Notice:
    """One transition of one alert, as delivered. Times are aware datetimes; values are in `unit`."""

    alert_id: int
    event_id: int
    transition: Transition
    state: Literal["firing", "acknowledged", "resolved"]  #: the alert's state after the transition
    rule_id: str
    rule_description: str
    kind: Literal["threshold", "index", "no_data", "flatline", "device_fault"]
    audience: Audience
    severity: Severity
    indicative: bool  #: from microsensors: indicative, not compliance data
    scope: Literal["sensor", "locality", "network"]
    scope_key: str  #: sensor id, locality name or 'network'
    sensor_id: str | None  #: the sensor whose value is reported (a locality's / the network's worst)
    sensor_name: str | None
    locality: str | None
    variable: str | None  #: vocabulary code (sensors.variables), e.g. pm25
    level: str  #: the level name after the transition (e.g. 'prevention', 'Regular', 'offline')
    from_level: str | None  #: escalated: the level before
    value: float | None  #: the evaluated value, in `unit`
    unit: str | None  #: the canonical unit (µg/m³ at 25 °C, 760 mmHg), 'IBOCA', 'AQI' or 'min'
    threshold: float | None  #: the level's threshold (resolved: the clear threshold), in `unit`
    comparison: str  #: '>' or '>=' (resolved: '<')
    source: str  #: where the threshold comes from (norm, article, table) and its verification status
    period: str | None  #: '1h', '8h', '24h' (rolling, stamped at the end), 'day' (calendar day); None: equipment
    period_start: datetime | None
    period_end: datetime | None
    coverage: float | None  #: 0..1, fraction of the period covered by valid readings
    started_at: datetime  #: when the episode started
    time: datetime  #: when the transition happened (the evaluated period's end for rule transitions)
    actor: str | None = None  #: acknowledged / resolved by an officer: who
    note: str | None = None  #: the officer's note with an acknowledgement or resolution
    dashboard_url: str | None = None  #: Grafana panel of the sensor and period, when configured
    ack_url: str | None = None  #: signed acknowledgement link (firing alerts, e-mail and webhook only)
    action: str | None = None  #: IBOCA: the action level the resolution associates with the category

    @property
    def key(self) -> str:
        """A stable identity of the alert across its transitions: `aqnet-<alert_id>`."""
        return f"aqnet-{self.alert_id}"


class DeliveryError(Exception):
    """A channel could not deliver a notice. `permanent`: retrying cannot help (e.g. HTTP 400, a refused
    recipient) and the delivery goes to the dead letter at once; otherwise it is retried with backoff."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@runtime_checkable
class Channel(Protocol):
    """A delivery channel. `send` returns when the receiver accepted the notice, or raises DeliveryError; it
    must not block the event loop (run blocking clients in a thread) and must give up within `timeout_s`.
    A channel whose class sets `carries_links = True` (e-mail, webhook: they reach officers) gets notices with the
    signed acknowledgement link; without it (Alertmanager, retained MQTT state: read by others) it gets none."""

    name: str  #: the configured channel name (alert_outbox.channel)
    type: str  #: webhook, email, mqtt, alertmanager

    async def send(self, notice: Notice) -> None: ...

    async def close(self) -> None: ...
