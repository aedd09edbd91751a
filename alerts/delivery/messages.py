"""What an alert transition says to people: `render(notice, language)` → subject, plain text and HTML in Spanish
or English, and `notice_payload(notice)` → the JSON document webhooks and MQTT carry. Pure (no I/O, no clock).

Contract:
- Every message carries the evidence: sensor id and name, locality (or the scope and its worst sensor), variable,
  value and unit, the comparison and threshold of the level, the level and its source (and a warning when the
  source says it is unverified), the period in the network's local time (`tz`, default America/Bogota) with its
  coverage, the episode's start, the dashboard and acknowledgement links when given.
- Microsensor alerts are marked indicative (not compliance data). Equipment alerts (no_data, flatline,
  device_fault, zero_span) are worded for technicians ("sin datos desde hace 45 min").
- IBOCA (kind index) messages name the category; the action level the resolution associates with it is quoted
  only as information, in one sentence saying that declaring an "Alerta fase" is the city's act, per zone.
  Nothing else in an index message mentions an alert phase.
- Numbers: one decimal below 100, none above ("62.3 µg/m³", "151 µg/m³"); minutes as integers; coverage as a
  whole percentage ("92 %"). The decimal separator is a point in both languages.
- `notice_payload`: stable snake_case keys, times as ISO-8601 with offset (UTC), `schema: "aqnet.alert/1"`;
  with `language` it also carries the rendered `message` (subject, text) in that language.
"""

from __future__ import annotations

import html as _html
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

from alerts.delivery.notice import Notice
from alerts.delivery.phrases import PHRASES, VARIABLE_NAMES, iboca_english
from sensors.variables import VARIABLES

__all__ = ["DEFAULT_TZ", "PAYLOAD_SCHEMA", "Language", "Message", "notice_payload", "render"]

Language = Literal["es", "en"]
DEFAULT_TZ = "America/Bogota"  #: the network's local time zone unless the caller says otherwise
PAYLOAD_SCHEMA = "aqnet.alert/1"
_EQUIPMENT = ("no_data", "flatline", "device_fault", "zero_span")


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notice: a one-line subject, a plain-text body and (e-mail) an HTML body."""

    subject: str
    text: str
    html: str | None = None


_COMPARISON = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


# ---------------------------------------------------------------------------------------------- formatting


def _number(value: float) -> str:
    """62.3, 151, 0.5: one decimal below 100 (dropped when .0), none from 100 up."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def _quantity(value: float | None, unit: str | None) -> str:
    if value is None:
        return "—"
    if unit == "min":
        return f"{value:.0f} min"
    if unit in ("IBOCA", "AQI"):
        return f"{unit} {value:.0f}"
    return f"{_number(value)} {unit}" if unit else _number(value)


@dataclass(frozen=True, slots=True)
class _Ctx:
    n: Notice
    lang: Language
    zone: tzinfo

    def t(self, key: str, *args: object, **kwargs: object) -> str:
        return PHRASES[self.lang][key].format(*args, **kwargs)

    def local(self, when: datetime) -> datetime:
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(self.zone)

    def zone_label(self, when: datetime) -> str:
        offset = self.local(when).strftime("%z")
        return self.t("zone", f"UTC{offset[:3]}:{offset[3:]}")

    def when(self, when: datetime) -> str:
        loc = self.local(when)
        return self.t("at", hm=f"{loc:%H:%M}", date=f"{loc:%Y-%m-%d}", zone=self.zone_label(when))

    def stamp(self, when: datetime) -> str:
        return f"{self.local(when):%Y-%m-%d %H:%M} ({self.zone_label(when)})"

    def day(self) -> str:
        n = self.n
        start = n.period_start or ((n.period_end or n.time) - timedelta(seconds=1))
        return f"{self.local(start):%Y-%m-%d}"

    def period(self) -> str:
        n = self.n
        end = n.period_end or n.time
        if n.period == "day":
            return self.t("day", date=self.day(), zone=self.zone_label(end))
        if n.period and n.period.endswith("h") and n.period[:-1].isdigit():
            loc = self.local(end)
            return self.t("rolling", n=n.period[:-1], hm=f"{loc:%H:%M}", date=f"{loc:%Y-%m-%d}",
                          zone=self.zone_label(end))
        return self.when(end)

    def period_short(self) -> str:
        p = self.n.period
        if p == "day":
            return self.t("period_day_short", self.day())
        return f"{p[:-1]} h" if p and p.endswith("h") else (p or "")

    def variable(self) -> str:
        code = self.n.variable
        if code is None:
            return self.t("any_var")
        named = VARIABLE_NAMES[self.lang].get(code)
        return named or (VARIABLES[code].name if code in VARIABLES else code)

    def short_variable(self) -> str:
        code = self.n.variable
        return VARIABLES[code].name if code in VARIABLES else (code or self.t("any_var"))

    def level(self, name: str | None) -> str:
        if not name:
            return "—"
        if self.n.kind == "threshold":
            return PHRASES[self.lang].get(f"lvl_{name}", name)
        if self.n.kind == "index" and self.lang == "en":
            return iboca_english().get(name, name)
        return name

    def sensor(self) -> str:
        n = self.n
        if n.sensor_id and n.sensor_name and n.sensor_name != n.sensor_id:
            return f"{n.sensor_id} ({n.sensor_name})"
        return n.sensor_id or n.sensor_name or "—"

    def place(self) -> str:
        n = self.n
        if n.scope == "locality":
            return self.t("worst", self.t("locality_of", n.locality or n.scope_key), self.sensor())
        if n.scope == "network":
            return self.t("worst", self.t("network"), self.sensor())
        return self.sensor()

    def threshold(self) -> str:
        n = self.n
        if n.threshold is None:
            return "—"
        comparison = _COMPARISON.get(n.comparison, n.comparison)
        if n.unit in ("IBOCA", "AQI"):
            return f"{n.unit} {comparison} {n.threshold:.0f}"
        return f"{comparison} {_quantity(n.threshold, n.unit)}"


# ---------------------------------------------------------------------------------------------- composing


@dataclass(slots=True)
class _Body:
    headline: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    links: list[tuple[str, str, str]] = field(default_factory=list)  #: (label, url, hint)


def _about(c: _Ctx) -> str:
    """The subject's description of the condition (without the transition label)."""
    n = c.n
    fields = {"var": c.short_variable(), "place": c.place(), "level": c.level(n.level),
              "from_level": c.level(n.from_level), "value": _quantity(n.value, n.unit), "period": c.period_short(),
              "threshold": _quantity(n.threshold, n.unit), "index": n.unit or "IBOCA",
              "minutes": c.t("minutes", f"{n.value:.0f}" if n.value is not None else "?"),
              "of_var": c.t("of_var", c.short_variable()) if n.variable else ""}
    if n.kind in _EQUIPMENT:
        return c.t(f"{n.kind}_{'resolved' if n.transition == 'resolved' else 'raised'}", **fields)
    prefix = "th" if n.kind == "threshold" else "ix"
    if n.transition == "resolved" and n.threshold is not None:
        return c.t(f"{prefix}_resolved", **fields)
    if n.transition == "escalated" and n.from_level:
        return c.t(f"{prefix}_escalated", **fields)
    return c.t(f"{prefix}_raised", **fields)


def _headline(c: _Ctx, about: str) -> str:
    n = c.n
    if n.transition == "acknowledged":
        return c.t("head_ack", actor=n.actor or "—")
    if n.transition == "resolved":
        return c.t("head_resolved_by", actor=n.actor) if n.actor else c.t("head_resolved", about)
    if n.transition == "unacknowledged":
        return c.t("head_unack", c.when(n.started_at))
    fields = {"var": c.variable(), "place": c.place(), "level": c.level(n.level),
              "from_level": c.level(n.from_level), "value": _quantity(n.value, n.unit), "index": n.unit or "IBOCA"}
    if n.kind == "threshold":
        return c.t("th_head_esc" if n.transition == "escalated" and n.from_level else "th_head", **fields)
    if n.kind == "index":
        return c.t("ix_head", **fields)
    return about[0].upper() + about[1:] + "."


def _body(c: _Ctx, about: str) -> _Body:
    n = c.n
    body = _Body(_headline(c, about))
    rows = body.rows
    rows.append((c.t("sensor"), c.sensor()))
    if n.scope != "sensor":
        rows.append((c.t("scope"), c.place()))
    if n.locality:
        rows.append((c.t("locality"), n.locality))
    if n.variable:
        rows.append((c.t("variable"), c.variable()))
    if n.kind == "index":
        rows.append((c.t("category"), c.level(n.level)))
    if n.value is not None:
        rows.append((c.t("value"), _quantity(n.value, n.unit)))
    if n.kind not in _EQUIPMENT:
        rows.append((c.t("period"), c.period()))
        if n.coverage is not None:
            rows.append((c.t("coverage"), c.t("coverage_v", f"{round(n.coverage * 100):.0f} %")))
    if n.kind != "index":
        rows.append((c.t("level"), c.level(n.level)))
    if n.from_level:
        rows.append((c.t("from_level"), c.level(n.from_level)))
    rows.append((c.t("threshold"), c.threshold()))
    if n.kind == "index" and n.action:
        rows.append((c.t("action"), iboca_english().get(n.action, n.action) if c.lang == "en" else n.action))
    rows.append((c.t("source"), n.source))
    rows.append((c.t("severity"), c.t(n.severity)))
    rows.append((c.t("started"), c.stamp(n.started_at)))
    if n.actor:
        rows.append((c.t("by_ack" if n.transition == "acknowledged" else "by_resolve"), n.actor))
    if n.note:
        rows.append((c.t("note"), n.note))
    rows.append((c.t("rule"), f"{n.rule_id} — {n.rule_description}" if n.rule_description else n.rule_id))

    if n.kind == "no_data" and n.value is not None and n.transition != "resolved":
        body.notes.append(c.t("last_data", c.when(n.time - timedelta(minutes=n.value))))
    if n.indicative:
        body.notes.append(c.t("indicative"))
    if "unverified" in n.source.lower():
        body.notes.append(c.t("unverified"))
    if n.unit == "µg/m³":
        body.notes.append(c.t("units"))
    if n.kind == "index":
        action = iboca_english().get(n.action, n.action) if n.action and c.lang == "en" else n.action
        body.notes.append(c.t("iboca") + " " + (c.t("iboca_action", action) if action else c.t("iboca_no_action")))
    if n.kind in _EQUIPMENT:
        body.notes.append(c.t("technicians"))
    if n.dashboard_url:
        body.links.append((c.t("dashboard"), n.dashboard_url, ""))
    if n.ack_url and n.state == "firing":
        body.links.append((c.t("ack"), n.ack_url, c.t("ack_hint")))
    return body


def _text(body: _Body, footer: str) -> str:
    width = min(max(len(label) for label, _ in body.rows), 20)
    lines = [body.headline, ""]
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in body.rows]
    if body.notes:
        lines += ["", *body.notes]
    if body.links:
        lines += [""] + [f"{label}: {url}" + (f"\n  ({hint})" if hint else "") for label, url, hint in body.links]
    return "\n".join([*lines, "", "-- ", footer, ""])


def _html_body(body: _Body, footer: str, lang: Language) -> str:
    e = _html.escape
    rows = "".join(f'<tr><th align="left">{e(label)}</th><td>{e(value)}</td></tr>' for label, value in body.rows)
    notes = "".join(f"<p>{e(note)}</p>" for note in body.notes)
    links = "".join(f'<p><a href="{e(url)}">{e(label)}</a>' + (f" <small>({e(hint)})</small>" if hint else "")
                    + "</p>" for label, url, hint in body.links)
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"></head><body>'
            f"<p><strong>{e(body.headline)}</strong></p><table>{rows}</table>{notes}{links}"
            f"<p><small>{e(footer)}</small></p></body></html>")


def render(notice: Notice, language: Language = "es", *, tz: str | tzinfo = DEFAULT_TZ) -> Message:
    """The notice as a message in `language`; times in the network's zone `tz` (an IANA name or tzinfo)."""
    if language not in PHRASES:
        raise ValueError(f"message language {language!r}: expected one of {sorted(PHRASES)}")
    c = _Ctx(notice, language, ZoneInfo(tz) if isinstance(tz, str) else tz)
    about = _about(c)
    tag = c.t("indicative_tag") if notice.indicative else ""
    subject = f"[aqnet]{tag} {c.t(notice.transition)}: {about}"
    body = _body(c, about)
    footer = c.t("footer", notice.alert_id, notice.event_id)
    return Message(subject=subject, text=_text(body, footer), html=_html_body(body, footer, language))


# ---------------------------------------------------------------------------------------------- payload


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def notice_payload(notice: Notice, *, language: Language | None = None,
                   tz: str | tzinfo = DEFAULT_TZ) -> dict[str, Any]:
    """The JSON document of a notice (webhook body, MQTT state); with `language`, plus the rendered message."""
    n = notice
    payload: dict[str, Any] = {
        "schema": PAYLOAD_SCHEMA, "key": n.key, "alert_id": n.alert_id, "event_id": n.event_id,
        "transition": n.transition, "state": n.state, "rule_id": n.rule_id, "rule_description": n.rule_description,
        "kind": n.kind, "audience": n.audience, "severity": n.severity, "indicative": n.indicative,
        "scope": n.scope, "scope_key": n.scope_key, "sensor_id": n.sensor_id, "sensor_name": n.sensor_name,
        "locality": n.locality, "variable": n.variable, "level": n.level, "from_level": n.from_level,
        "value": n.value, "unit": n.unit, "threshold": n.threshold, "comparison": n.comparison,
        "source": n.source, "period": n.period, "period_start": _iso(n.period_start),
        "period_end": _iso(n.period_end), "coverage": n.coverage, "started_at": _iso(n.started_at),
        "time": _iso(n.time), "actor": n.actor, "note": n.note, "action": n.action,
        "dashboard_url": n.dashboard_url, "ack_url": n.ack_url,
    }
    if language is not None:
        message = render(n, language, tz=tz)
        payload["language"] = language
        payload["message"] = {"subject": message.subject, "text": message.text}
    return payload
