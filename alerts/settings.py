"""The alerts stage's settings sections: `scheduler`, `alerts` (with its delivery channels). Pure (alerts).

The scheduled jobs, the alert messages and the delivery channels with their filters; composed by
`aqnet.config.Settings` under the same keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from sensors.settings import Section

__all__ = ["MAX_ACK_LINK_TTL_H", "AlertChannel", "AlertmanagerChannel", "AlertsSettings", "ChannelFilter",
           "EmailChannel", "HealthSettings", "MqttChannel", "SchedulerSettings", "WebhookChannel"]

#: the longest an acknowledgement link may stay valid, in hours (docs/security.md: why 7 days); here rather than in
#: alerts.delivery.signing, which enforces it, so that loading the configuration does not load the delivery stage
MAX_ACK_LINK_TTL_H = 168.0


class SchedulerSettings(Section):
    averages_every_s: Annotated[float, Field(gt=0)] = Field(default=60.0, description=(
        "How often averages, indices and alert rules are computed (on the leader only)."))
    settle_s: Annotated[float, Field(ge=0)] = Field(default=120.0, description=(
        "Seconds after a window ends before it is computed, so readings in flight are in (simulated seconds under "
        "`--speed`)."))
    lookback_h: Annotated[int, Field(ge=1)] = Field(default=72, description=(
        "After downtime, at most this many past hours are caught up (late data for older hours is still "
        "recomputed)."))
    leader_check_s: Annotated[float, Field(gt=0)] = Field(default=5.0, description=(
        "How often a process checks or tries to take the jobs' leader lock (a PostgreSQL advisory lock); a "
        "standby takes over within about this long."))


class HealthSettings(Section):
    """Device health (alerts.health; docs/operators/device-health.md). The defaults are aqnet operational
    choices, not norms, except where a source is named."""

    every_s: Annotated[float, Field(gt=0)] = Field(default=300.0, description=(
        "How often the health job records devices going down and up and refreshes the health metrics (on the "
        "leader only)."))
    down_after_station_s: Annotated[float, Field(gt=0)] = Field(default=1800.0, description=(
        "A station's device is down after this long without a reading (aqnet operational default, the "
        "`station-no-data` rule's 30 min, not a norm)."))
    down_after_microsensor_s: Annotated[float, Field(gt=0)] = Field(default=3600.0, description=(
        "A microsensor is down after this long without a reading (aqnet operational default, the "
        "`microsensor-no-data` rule's 60 min, not a norm)."))
    flatline_tolerance: Annotated[float, Field(ge=0)] = Field(default=0.0, description=(
        "A run of readings is flat while max − min stays within this, in the variable's unit (the "
        "`sensor-flatline` rule's default: exactly constant)."))
    colocation_max_distance_m: Annotated[float, Field(ge=0)] = Field(default=20.0, description=(
        "A microsensor is co-located with the nearest reference station of a variable within this distance "
        "(drift indicator, `aqnet calibrate propose`). UNVERIFIED default: 20 m is recalled from the "
        "co-location siting of EPA/600/R-20/280 (2021), whose text was not read; set your network's own."))


class ChannelFilter(Section):
    """Which alert transitions a channel receives (every condition must hold)."""

    audience: list[Literal["officers", "technicians"]] = Field(default=["officers"], description=(
        "Who the channel is for: officers (air quality) and/or technicians (equipment)."))
    indicative: Literal["include", "exclude", "only"] = Field(default="include", description=(
        "Microsensor (indicative) alerts: include them, exclude them, or send only them."))
    min_severity: Literal["info", "warning", "critical"] = Field(default="info", description=(
        "Only transitions of alerts at least this severe (info < warning < critical)."))
    transitions: list[Literal["raised", "escalated", "unacknowledged", "acknowledged", "resolved"]] = Field(
        default=["raised", "escalated", "unacknowledged", "acknowledged", "resolved"],
        description="Which alert transitions the channel receives.")
    localities: list[str] = Field(default=[], description="Only alerts in these localities (empty: all).")
    language: Literal["es", "en"] | None = Field(default=None, description=(
        "Message language of this channel (default `alerts.language`)."))


class WebhookChannel(ChannelFilter):
    type: Literal["webhook"] = Field(description="webhook: the transition's JSON is POSTed to `url`, signed.")
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$", description=(
        "The channel's name (lowercase letters, digits, `_.-`), unique among the channels."))
    url: str = Field(description="http(s) URL the JSON is POSTed to.")
    secret_file: str | None = Field(default=None, description=(
        "HMAC-SHA256 key of the X-Aqnet-Signature header (default `alerts.signing_key_file`)."))
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=10.0, description=(
        "Seconds a POST may take before it counts as failed (and is retried)."))
    headers: dict[str, str] = Field(default={}, description="Extra HTTP headers sent with every POST.")


class EmailChannel(ChannelFilter):
    type: Literal["email"] = Field(description="email: messages over SMTP.")
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$", description=(
        "The channel's name (lowercase letters, digits, `_.-`), unique among the channels."))
    host: str = Field(description="SMTP server.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=587, description="SMTP port.")
    starttls: bool = Field(default=True, description=(
        "Upgrade with STARTTLS before authenticating (nothing is sent if the server cannot)."))
    ca_file: str | None = Field(default=None, description=(
        "CA bundle that signs the server's certificate (default: the system's)."))
    username: str | None = Field(default=None, description="SMTP login (none: no authentication).")
    password_file: str | None = Field(default=None, description="File holding the SMTP password.")
    sender: str = Field(description="From address.")
    to: list[str] = Field(min_length=1, description="Recipients (at least one).")
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=20.0, description=(
        "Seconds a delivery may take before it counts as failed (and is retried)."))


class MqttChannel(ChannelFilter):
    type: Literal["mqtt"] = Field(description=(
        "mqtt: each alert's latest transition, retained, at `<topic_prefix>/<alert id>`."))
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$", description=(
        "The channel's name (lowercase letters, digits, `_.-`), unique among the channels."))
    url: str | None = Field(default=None, description="Broker URL (default `mqtt.url`).")
    topic_prefix: str = Field(default="aqnet/alerts", description=(
        "Retained state per alert is published at `<topic_prefix>/<alert id>`."))
    qos: Literal[0, 1, 2] = Field(default=1, description="MQTT QoS of the publications.")
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=10.0, description=(
        "Seconds a publication may take before it counts as failed (and is retried)."))


class AlertmanagerChannel(ChannelFilter):
    type: Literal["alertmanager"] = Field(description=(
        "alertmanager: alerts are POSTed to Alertmanager's /api/v2/alerts."))
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$", description=(
        "The channel's name (lowercase letters, digits, `_.-`), unique among the channels."))
    url: str = Field(description="alertmanager base URL, e.g. http://127.0.0.1:9093.")
    timeout_s: Annotated[float, Field(gt=0)] = Field(default=10.0, description=(
        "Seconds a POST may take before it counts as failed (and is retried)."))


AlertChannel = Annotated[WebhookChannel | EmailChannel | MqttChannel | AlertmanagerChannel,
                         Field(discriminator="type")]


class AlertsSettings(Section):
    """Alert rules and their delivery (alerts.rules.evaluate, alerts.delivery.dispatch)."""

    rules_file: str | None = Field(default=None, description=(
        'Alert rules YAML (see "Alerts for environmental officers"); the bundled defaults '
        "(`alerts/rules/default_rules.yaml`) when absent."))
    language: Literal["es", "en"] = Field(default="es", description=(
        "Message language, `es` or `en` (a channel's `language` overrides it)."))
    dashboard_url: str | None = Field(default=None, description=(
        "Grafana's base URL: messages link to the sensor's dashboard."))
    public_url: str | None = Field(default=None, description=(
        "aqnet's HTTP server as officers reach it: messages carry a signed acknowledgement link under it."))
    signing_key_file: str = Field(default="var/alert-signing.key", description=(
        "Default HMAC key of webhook signatures (channels without `secret_file`); created (mode 600) when "
        "missing; never signs links."))
    link_key_file: str = Field(default="var/alert-link.key", description=(
        "HMAC key of acknowledgement links only; created (mode 600) when missing; must differ from "
        "`alerts.signing_key_file` and every webhook `secret_file`."))
    ack_link_ttl_h: Annotated[float, Field(gt=0, le=MAX_ACK_LINK_TTL_H)] = Field(default=72.0, description=(
        "Hours an acknowledgement link stays valid; at most 168 (7 days)."))
    escalate_unacknowledged_after_min: Annotated[float, Field(ge=0)] = Field(default=60.0, description=(
        "A firing alert nobody acknowledged for this long is escalated (once per level); 0: never; a rule's "
        "`escalate_unacknowledged_after_min` overrides it."))
    dispatch_every_s: Annotated[float, Field(gt=0)] = Field(default=5.0, description=(
        "How often pending deliveries are sent."))
    max_attempts: Annotated[int, Field(ge=1)] = Field(default=8, description=(
        "Failed attempts before a delivery goes to the dead letter (`alert_outbox.state = 'dead'`)."))
    retry_min_s: Annotated[float, Field(gt=0)] = Field(default=5.0, description=(
        "First retry delay of a failed delivery (doubles, with jitter)."))
    retry_max_s: Annotated[float, Field(gt=0)] = Field(default=900.0, description="Longest retry delay.")
    alertmanager_repost_s: Annotated[float, Field(gt=0)] = Field(default=60.0, description=(
        "Active alerts are re-posted to Alertmanager this often (its protocol)."))
    channels: list[AlertChannel] = Field(default=[], description=(
        "Delivery channels (`type`: webhook, email, mqtt, alertmanager), each with a `name` and filters "
        '`audience`, `indicative`, `min_severity`, `transitions`, `localities`, `language`; see "Alerts for '
        'environmental officers".'))

    @model_validator(mode="after")
    def _names(self) -> AlertsSettings:
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channels: duplicate names {dup}")
        link = _same_file_key(self.link_key_file)
        if link == _same_file_key(self.signing_key_file):
            raise ValueError(f"link_key_file: {self.link_key_file} is also signing_key_file: acknowledgement links "
                             "need a key of their own (whoever verifies webhooks could otherwise make links)")
        for c in self.channels:
            if isinstance(c, WebhookChannel) and c.secret_file and _same_file_key(c.secret_file) == link:
                raise ValueError(f"channels[{c.name}].secret_file: {c.secret_file} is alerts.link_key_file: a "
                                 "webhook's secret must not be the acknowledgement-link key")
        return self


def _same_file_key(path: str) -> str:
    """A comparable form of a key file's path (resolved, without touching the file)."""
    return str(Path(path).expanduser().resolve(strict=False))
