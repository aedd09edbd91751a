"""The Alertmanager alert channel: aqnet alerts as Prometheus Alertmanager alerts (API v2). I/O (httpx).

Alertmanager does the routing (by the labels below), grouping, silencing and inhibition; aqnet is one more alert
source, like Prometheus. `send(notice)` POSTs the notice's alert to `<url>/api/v2/alerts`; `repost(notices)`
POSTs every active alert in one request. Re-posting is Alertmanager's protocol, not a duplicate: an active alert
carries `endsAt` = now + 4 × `repost_s` (as Prometheus does with its resend delay), so an alert aqnet stops
re-posting (aqnet down) resolves by itself after four missed re-posts, and Alertmanager's own grouping keeps a
re-post from notifying anybody again.

Identity. Alertmanager identifies an alert by its label set, so the labels hold only what stays constant for the
alert's whole episode (severity changes only with the level): `alertname` (rule id), `severity`, `audience`,
`kind`, `scope`, `scope_key`, `sensor` (sensor scope: the sensor id), `locality` (sensor scope: the sensor's
locality; locality scope: the locality), `variable`, `indicative` ("true"/"false"), `source` ("aqnet"). A label
with no value (no locality, a network-scope alert's sensor) is left out: Alertmanager treats an empty label as
absent, and a matcher `locality=""` matches it. The reported (worst) sensor of a locality or network alert, the
level, value, unit, threshold, norm source and dashboard link are annotations, which may change on every post.
No acknowledgement link, ever (not in an annotation, not in the rendered description): Alertmanager's API, UI and
receivers are read by people and systems that are not the officers, and a live link there would let any of them
acknowledge; `send` and `repost` drop a notice's `ack_url` before rendering. When a
transition changes the severity (escalation to a critical level), the alert under the other severities is ended
in the same request, so Alertmanager shows one alert per aqnet alert; a resolution ends all three.

Times: `startsAt` = the episode's start, `endsAt` = the resolution time for a resolved alert. Alertmanager judges
activity by its own wall clock, so both are clamped to `clock()` (a simulated clock in the future must not keep
a resolved alert active). Errors (`DeliveryError`): 4xx permanent (400 quotes Alertmanager's reason), 408/429,
5xx, connection failures and timeouts transient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import httpx

from alerts.delivery.messages import DEFAULT_TZ, Language, render
from alerts.delivery.notice import DeliveryError, Notice
from alerts.rules.model import SEVERITIES
from sensors.redact import redact, redact_url

__all__ = ["AlertmanagerChannel", "alert_labels", "postable_alerts"]

_ACTIVE = ("firing", "acknowledged")
_TRANSIENT_STATUS = frozenset({408, 425, 429})


def alert_labels(notice: Notice) -> dict[str, str]:
    """The alert's Alertmanager label set: constant over its episode except `severity`; no empty values. Pure."""
    sensor = notice.scope_key if notice.scope == "sensor" else None
    locality = notice.scope_key if notice.scope == "locality" else (
        notice.locality if notice.scope == "sensor" else None)
    labels = {
        "alertname": notice.rule_id, "severity": notice.severity, "audience": notice.audience, "kind": notice.kind,
        "scope": notice.scope, "scope_key": notice.scope_key, "sensor": sensor or "", "locality": locality or "",
        "variable": notice.variable or "", "indicative": "true" if notice.indicative else "false",
        "source": "aqnet",
    }
    return {k: v for k, v in labels.items() if v}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _annotations(notice: Notice, language: Language, tz: str | tzinfo) -> dict[str, str]:
    notice = replace(notice, ack_url=None)  # readable by others: no live acknowledgement link
    message = render(notice, language, tz=tz)
    values = {
        "summary": message.subject, "description": message.text, "level": notice.level,
        "value": _number(notice.value), "unit": notice.unit or "", "threshold": _number(notice.threshold),
        "norm_source": notice.source, "dashboard": notice.dashboard_url or "",
        "alert_id": str(notice.alert_id), "state": notice.state, "transition": notice.transition,
        "reported_sensor": notice.sensor_id or "", "period": notice.period or "",
        "coverage": "" if notice.coverage is None else f"{notice.coverage:.0%}",
        "acknowledged_by": (notice.actor or "") if notice.state == "acknowledged" else "",
    }
    return {k: v for k, v in values.items() if v}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def postable_alerts(notice: Notice, *, now: datetime, repost_s: float, language: Language = "es",
                    tz: str | tzinfo = DEFAULT_TZ) -> list[dict[str, Any]]:
    """The postable alerts (API v2 JSON) for one notice: the alert itself, plus its other severities ended
    (on a severity change or a resolution). `now` is the wall clock. Pure."""
    labels = alert_labels(notice)
    starts = min(notice.started_at, now)
    if notice.state in _ACTIVE:
        ends = now + timedelta(seconds=4 * repost_s)
    else:
        ends = max(min(notice.time, now), starts + timedelta(milliseconds=1))
    alert = {"labels": labels, "annotations": _annotations(notice, language, tz), "startsAt": _iso(starts),
             "endsAt": _iso(ends)}
    if notice.dashboard_url:  # Alertmanager's "Source" link
        alert["generatorURL"] = notice.dashboard_url
    alerts = [alert]
    if notice.transition in ("escalated", "resolved"):
        ended = _iso(max(min(notice.time, now), starts + timedelta(milliseconds=1)))
        for severity in SEVERITIES:
            if severity != notice.severity:
                alerts.append({"labels": {**labels, "severity": severity}, "startsAt": _iso(starts),
                               "endsAt": ended})
    return alerts


class AlertmanagerChannel:
    """POSTs alert transitions to Alertmanager's API v2 and re-posts the active ones.

    Args:
        name: the configured channel name (alert_outbox.channel).
        url: Alertmanager's base URL, e.g. `http://127.0.0.1:9093` (alerts go to `<url>/api/v2/alerts`).
        repost_s: how often the active alerts are re-posted (alerts.alertmanager_repost_s); endsAt = now + 4 ×.
        timeout_s: one request's timeout.
        language: of the `summary` and `description` annotations.
        tz: the network's time zone for the description's local times.
        clock: the wall clock Alertmanager compares endsAt with.
        transport: an httpx transport (tests).
    """

    type = "alertmanager"

    def __init__(self, name: str, url: str, *, repost_s: float = 60.0, timeout_s: float = 10.0,
                 language: Language = "es", tz: str | tzinfo = DEFAULT_TZ,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        where = f"alert channel {name} (Alertmanager {redact_url(url)})"
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: url: expected http(s)://host:port, got {redact_url(url)!r}")
        if not repost_s > 0 or not timeout_s > 0:
            raise ValueError(f"{where}: repost_s and timeout_s: expected > 0, got {repost_s!r}, {timeout_s!r}")
        if language not in ("es", "en"):
            raise ValueError(f"{where}: language: expected es or en, got {language!r}")
        self.name = name
        self.url = url.rstrip("/")
        self.repost_s = float(repost_s)
        self.timeout_s = float(timeout_s)
        self._language: Language = language
        self._tz = tz
        self._clock = clock
        self._where = where
        self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=transport)

    async def send(self, notice: Notice) -> None:
        """POST the notice's alert (active until re-posted, or ended when resolved)."""
        await self._post(postable_alerts(notice, now=self._clock(), repost_s=self.repost_s,
                                         language=self._language, tz=self._tz))

    async def repost(self, notices: Iterable[Notice]) -> int:
        """POST every active (firing or acknowledged) alert of `notices` in one request; how many were posted."""
        now = self._clock()
        alerts = [postable_alerts(n, now=now, repost_s=self.repost_s, language=self._language, tz=self._tz)[0]
                  for n in notices if n.state in _ACTIVE]
        if alerts:
            await self._post(alerts)
        return len(alerts)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

    async def _post(self, alerts: list[dict[str, Any]]) -> None:
        endpoint = f"{self.url}/api/v2/alerts"
        try:
            response = await self._client.post(endpoint, json=alerts)
        except httpx.TimeoutException:
            raise DeliveryError(f"{self._where}: no answer within {self.timeout_s:g} s; retrying later") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(redact(f"{self._where}: {type(exc).__name__}: {exc}; retrying later")) from None
        if response.is_success:
            return
        reason = response.text.strip()[:500] or response.reason_phrase
        status = response.status_code
        permanent = 400 <= status < 500 and status not in _TRANSIENT_STATUS
        raise DeliveryError(f"{self._where}: POST {redact_url(endpoint)} answered {status}: {reason}"
                            + ("" if permanent else "; retrying later"), permanent=permanent)
