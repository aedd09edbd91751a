"""What an alert transition says to people: `render(notice, language)` → subject, plain text and HTML in Spanish
or English, and `notice_payload(notice)` → the JSON document webhooks and MQTT carry. Pure (no I/O, no clock).

Contract:
- Every message carries the evidence: sensor id and name, locality (or the scope and its worst sensor), variable,
  value and unit, the comparison and threshold of the level, the level and its source (and a warning when the
  source says it is unverified), the period in the network's local time (`tz`, default America/Bogota) with its
  coverage, the episode's start, the dashboard and acknowledgement links when given.
- Microsensor alerts are marked indicative (not compliance data). Equipment alerts (no_data, flatline,
  device_fault) are worded for technicians ("sin datos desde hace 45 min").
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
from sensors.domain import load
from sensors.variables import VARIABLES

__all__ = ["DEFAULT_TZ", "PAYLOAD_SCHEMA", "Language", "Message", "notice_payload", "render"]

Language = Literal["es", "en"]
DEFAULT_TZ = "America/Bogota"  #: the network's local time zone unless the caller says otherwise
PAYLOAD_SCHEMA = "aqnet.alert/1"
_EQUIPMENT = ("no_data", "flatline", "device_fault")


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notice: a one-line subject, a plain-text body and (e-mail) an HTML body."""

    subject: str
    text: str
    html: str | None = None


# ---------------------------------------------------------------------------------------------- catalogue

_T: dict[str, dict[str, str]] = {
    "es": {
        "raised": "Activada", "escalated": "Escalada", "unacknowledged": "Sin confirmar",
        "acknowledged": "Confirmada", "resolved": "Resuelta", "indicative_tag": " [indicativa]",
        "info": "informativa", "warning": "advertencia", "critical": "crítica",
        "sensor": "Sensor", "locality": "Localidad", "scope": "Alcance", "variable": "Variable", "value": "Valor",
        "threshold": "Umbral", "level": "Nivel", "from_level": "Nivel anterior", "severity": "Severidad",
        "source": "Fuente", "period": "Periodo", "coverage": "Cobertura", "started": "Inicio del episodio",
        "rule": "Regla", "by_ack": "Confirmada por", "by_resolve": "Resuelta por", "note": "Nota",
        "action": "Nivel de acción asociado (informativo)", "category": "Categoría",
        "dashboard": "Panel", "ack": "Confirmar recibo",
        "ack_hint": "abre una página donde confirma con su nombre",
        "in": "en", "locality_of": "localidad {0}", "network": "la red", "worst": "{0} (peor sensor: {1})",
        "rolling": "media de {n} h que termina a las {hm} del {date} ({zone})",
        "day": "día {date} (media del día calendario, {zone})",
        "at": "a las {hm} del {date} ({zone})", "zone": "hora local, {0}",
        "coverage_v": "{0} del periodo con datos válidos", "minutes": "{0} min",
        "period_day_short": "día {0}",
        "lvl_limit": "límite máximo permisible", "lvl_prevention": "prevención", "lvl_alert": "alerta",
        "lvl_emergency": "emergencia",
        "th_raised": "{var} en nivel de {level} en {place}: {value} ({period})",
        "th_escalated": "{var} sube de {from_level} a {level} en {place}: {value} ({period})",
        "th_resolved": "{var} de nuevo bajo {threshold} en {place}",
        "th_head": "{var} alcanzó el nivel de {level} en {place}.",
        "th_head_esc": "{var} subió del nivel de {from_level} al de {level} en {place}.",
        "ix_raised": "{index} {level} ({var}) en {place}",
        "ix_escalated": "{index} ({var}) sube de {from_level} a {level} en {place}",
        "ix_resolved": "{index} ({var}) de nuevo bajo {threshold} en {place}",
        "ix_head": "El {index} ({var}) está en la categoría {level} en {place}: {value}.",
        "no_data_raised": "{place} sin datos{of_var} desde hace {minutes}",
        "no_data_resolved": "{place} envía datos{of_var} de nuevo",
        "flatline_raised": "{place}: {var} plano (sin variación) desde hace {minutes}",
        "flatline_resolved": "{place}: {var} varía de nuevo",
        "device_fault_raised": "{place}: falla reportada por el equipo{of_var} desde hace {minutes}",
        "device_fault_resolved": "{place}: el equipo ya no reporta falla{of_var}",
        "of_var": " de {0}", "any_var": "la variable",
        "last_data": "Último dato recibido {0}.",
        "head_ack": "{actor} confirmó el recibo de esta alerta.",
        "head_resolved_by": "{actor} resolvió esta alerta manualmente.",
        "head_unack": "Nadie ha confirmado esta alerta; sigue activa desde {0}.",
        "head_resolved": "La condición terminó: {0}.",
        "indicative": "Indicativa (microsensor): datos de sensores de bajo costo, no sirven para verificar el "
                      "cumplimiento de la norma.",
        "unverified": "La fuente de este umbral está marcada como no verificada: confírmelo con el texto de la "
                      "norma antes de actuar.",
        "units": "Concentraciones en µg/m³ a condiciones de referencia (25 °C, 760 mmHg), Res. 2254/2017.",
        "iboca": "Categoría informativa del índice; no es una declaratoria.",
        "iboca_action": "La resolución asocia a esta categoría el nivel de acción «{0}». Es solo información: "
                        "la declaratoria de Alerta fase la hace la ciudad por zona, no esta estación.",
        "iboca_no_action": "La declaratoria de Alerta fase la hace la ciudad por zona, no esta estación.",
        "technicians": "Aviso de equipo para técnicos: revise comunicación, alimentación y estado del equipo.",
        "footer": "aqnet · alerta {0} · transición {1}",
    },
    "en": {
        "raised": "Raised", "escalated": "Escalated", "unacknowledged": "Not acknowledged",
        "acknowledged": "Acknowledged", "resolved": "Resolved", "indicative_tag": " [indicative]",
        "info": "info", "warning": "warning", "critical": "critical",
        "sensor": "Sensor", "locality": "Locality", "scope": "Scope", "variable": "Variable", "value": "Value",
        "threshold": "Threshold", "level": "Level", "from_level": "Previous level", "severity": "Severity",
        "source": "Source", "period": "Period", "coverage": "Coverage", "started": "Episode started",
        "rule": "Rule", "by_ack": "Acknowledged by", "by_resolve": "Resolved by", "note": "Note",
        "action": "Associated action level (information)", "category": "Category",
        "dashboard": "Dashboard", "ack": "Acknowledge",
        "ack_hint": "opens a page where you acknowledge with your name",
        "in": "at", "locality_of": "locality {0}", "network": "the network", "worst": "{0} (worst sensor: {1})",
        "rolling": "{n}-hour mean ending at {hm} on {date} ({zone})",
        "day": "day {date} (calendar-day mean, {zone})",
        "at": "at {hm} on {date} ({zone})", "zone": "local time, {0}",
        "coverage_v": "{0} of the period with valid data", "minutes": "{0} min",
        "period_day_short": "day {0}",
        "lvl_limit": "maximum permissible limit", "lvl_prevention": "prevention", "lvl_alert": "alert",
        "lvl_emergency": "emergency",
        "th_raised": "{var} at {level} level at {place}: {value} ({period})",
        "th_escalated": "{var} up from {from_level} to {level} at {place}: {value} ({period})",
        "th_resolved": "{var} back below {threshold} at {place}",
        "th_head": "{var} reached the {level} level at {place}.",
        "th_head_esc": "{var} rose from the {from_level} level to the {level} level at {place}.",
        "ix_raised": "{index} {level} ({var}) at {place}",
        "ix_escalated": "{index} ({var}) up from {from_level} to {level} at {place}",
        "ix_resolved": "{index} ({var}) back below {threshold} at {place}",
        "ix_head": "The {index} ({var}) is in the {level} category at {place}: {value}.",
        "no_data_raised": "{place}: no data{of_var} for {minutes}",
        "no_data_resolved": "{place}: reporting{of_var} again",
        "flatline_raised": "{place}: {var} flat (not varying) for {minutes}",
        "flatline_resolved": "{place}: {var} varying again",
        "device_fault_raised": "{place}: device-reported fault{of_var} for {minutes}",
        "device_fault_resolved": "{place}: device fault{of_var} cleared",
        "of_var": " ({0})", "any_var": "the variable",
        "last_data": "Last data received {0}.",
        "head_ack": "{actor} acknowledged this alert.",
        "head_resolved_by": "{actor} resolved this alert manually.",
        "head_unack": "Nobody has acknowledged this alert; it has been active since {0}.",
        "head_resolved": "The condition ended: {0}.",
        "indicative": "Indicative (microsensor): low-cost sensor data, not for verifying compliance with the norm.",
        "unverified": "The source of this threshold is marked unverified: check it against the norm's text before "
                      "acting on it.",
        "units": "Concentrations in µg/m³ at reference conditions (25 °C, 760 mmHg), Res. 2254/2017.",
        "iboca": "Informational index category; not a declaration.",
        "iboca_action": "The resolution associates this category with the action level “{0}”. This is "
                        "information only: declaring an alert phase is the city's act, per zone, not this station's.",
        "iboca_no_action": "Declaring an alert phase is the city's act, per zone, not this station's.",
        "technicians": "Equipment notice for technicians: check communications, power and the instrument's status.",
        "footer": "aqnet · alert {0} · transition {1}",
    },
}

_VARIABLE_NAMES = {
    "es": {"o3": "ozono (O3)", "no2": "dióxido de nitrógeno (NO2)", "so2": "dióxido de azufre (SO2)",
           "co": "monóxido de carbono (CO)"},
    "en": {"o3": "ozone (O3)", "no2": "nitrogen dioxide (NO2)", "so2": "sulphur dioxide (SO2)",
           "co": "carbon monoxide (CO)"},
}
_COMPARISON = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


def _iboca_en() -> dict[str, str]:
    """Spanish IBOCA category and action-level names → English (sensors/domain/indices.json)."""
    out: dict[str, str] = {}
    for cat in load("indices")["iboca"]["categories"]:
        out[cat["name_es"]] = cat["name_en"]
        out[cat["action_level_es"]] = cat["action_level_en"]
    return out


# ---------------------------------------------------------------------------------------------- formatting


def _number(value: float) -> str:
    """62.3, 151, 0.5: one decimal below 100 (dropped when .0), none from 100 up."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


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
        return _T[self.lang][key].format(*args, **kwargs)

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
        named = _VARIABLE_NAMES[self.lang].get(code)
        return named or (VARIABLES[code].name if code in VARIABLES else code)

    def short_variable(self) -> str:
        code = self.n.variable
        return VARIABLES[code].name if code in VARIABLES else (code or self.t("any_var"))

    def level(self, name: str | None) -> str:
        if not name:
            return "—"
        if self.n.kind == "threshold":
            return _T[self.lang].get(f"lvl_{name}", name)
        if self.n.kind == "index" and self.lang == "en":
            return _iboca_en().get(name, name)
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
        rows.append((c.t("action"), _iboca_en().get(n.action, n.action) if c.lang == "en" else n.action))
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
        action = _iboca_en().get(n.action, n.action) if n.action and c.lang == "en" else n.action
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
    rows = "".join(f"<tr><th align=\"left\">{e(label)}</th><td>{e(value)}</td></tr>" for label, value in body.rows)
    notes = "".join(f"<p>{e(note)}</p>" for note in body.notes)
    links = "".join(f"<p><a href=\"{e(url)}\">{e(label)}</a>" + (f" <small>({e(hint)})</small>" if hint else "")
                    + "</p>" for label, url, hint in body.links)
    return (f"<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"></head><body>"
            f"<p><strong>{e(body.headline)}</strong></p><table>{rows}</table>{notes}{links}"
            f"<p><small>{e(footer)}</small></p></body></html>")


def render(notice: Notice, language: Language = "es", *, tz: str | tzinfo = DEFAULT_TZ) -> Message:
    """The notice as a message in `language`; times in the network's zone `tz` (an IANA name or tzinfo)."""
    if language not in _T:
        raise ValueError(f"message language {language!r}: expected one of {sorted(_T)}")
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
