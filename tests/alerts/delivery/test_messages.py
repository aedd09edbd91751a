"""alerts.delivery.messages: the evidence in Spanish and English for every kind of alert, and the webhook/MQTT
payload."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.delivery.messages import notice_payload, render
from alerts.delivery.notice import Notice

END = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)  # 14:00 in Bogotá (UTC-5)
SOURCE = "Res. 2254/2017 Art. 2 Tabla 1 (PM2.5 24 h, from 2018-07-01) [verified_secondary]"


def notice(**changes: Any) -> Notice:
    base = Notice(
        alert_id=12, event_id=40, transition="raised", state="firing", rule_id="pm25-24h-levels",
        rule_description="PM2.5 24 h levels", kind="threshold", audience="officers", severity="warning",
        indicative=False, scope="sensor", scope_key="KEN", sensor_id="KEN", sensor_name="Kennedy",
        locality="Kennedy", variable="pm25", level="prevention", from_level=None, value=62.34, unit="µg/m³",
        threshold=38.0, comparison=">=", source=SOURCE, period="24h", period_start=END - timedelta(hours=24),
        period_end=END, coverage=0.917, started_at=END - timedelta(hours=2), time=END,
        dashboard_url="http://grafana:3000/d/aqnet-station?var-sensor=KEN&from=1&to=2",
        ack_url="https://aqnet.example/api/v1/alerts/ack/TOKEN")
    return dataclasses.replace(base, **changes)


def test_threshold_evidence_in_spanish() -> None:
    m = render(notice(), "es")
    assert m.subject == "[aqnet] Activada: PM2.5 en nivel de prevención en KEN (Kennedy): 62.3 µg/m³ (24 h)"
    for part in ("KEN (Kennedy)", "Localidad:", "Kennedy", "PM2.5", "62.3 µg/m³", "≥ 38 µg/m³", SOURCE,
                 "media de 24 h que termina a las 14:00 del 2026-11-22 (hora local, UTC-05:00)",
                 "92 % del periodo con datos válidos", "prevención", "advertencia", "2026-11-22 12:00",
                 "http://grafana:3000/d/aqnet-station?var-sensor=KEN&from=1&to=2",
                 "Confirmar recibo: https://aqnet.example/api/v1/alerts/ack/TOKEN", "25 °C, 760 mmHg"):
        assert part in m.text, part


def test_threshold_evidence_in_english() -> None:
    m = render(notice(), "en")
    assert m.subject == "[aqnet] Raised: PM2.5 at prevention level at KEN (Kennedy): 62.3 µg/m³ (24 h)"
    for part in ("24-hour mean ending at 14:00 on 2026-11-22 (local time, UTC-05:00)", "92 % of the period",
                 "Acknowledge: https://aqnet.example/api/v1/alerts/ack/TOKEN", "Threshold:", "≥ 38 µg/m³"):
        assert part in m.text, part


@pytest.mark.parametrize(("period", "es", "en"), [
    ("1h", "media de 1 h que termina a las 14:00 del 2026-11-22", "1-hour mean ending at 14:00 on 2026-11-22"),
    ("8h", "media de 8 h que termina a las 14:00 del 2026-11-22", "8-hour mean ending at 14:00 on 2026-11-22"),
    ("24h", "media de 24 h que termina a las 14:00", "24-hour mean ending at 14:00"),
])
def test_rolling_periods(period: str, es: str, en: str) -> None:
    n = notice(period=period)
    assert es in render(n, "es").text
    assert en in render(n, "en").text
    assert f"({period[:-1]} h)" in render(n, "es").subject


def test_calendar_day_is_the_local_date() -> None:
    # the day 2026-11-22 in Bogotá runs 05:00Z..05:00Z next day; stamped at its end
    start = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
    n = notice(rule_id="pm25-day-limit", period="day", level="limit", threshold=37.0, comparison=">",
               value=41.0, period_start=start, period_end=start + timedelta(days=1), time=start + timedelta(days=1))
    es, en = render(n, "es"), render(n, "en")
    assert "día 2026-11-22 (media del día calendario, hora local, UTC-05:00)" in es.text
    assert "día 2026-11-22" in es.subject and "límite máximo permisible" in es.subject
    assert "> 37 µg/m³" in es.text
    assert "day 2026-11-22 (calendar-day mean" in en.text
    # without period_start the day is the one the period ends in
    assert "día 2026-11-22" in render(dataclasses.replace(n, period_start=None), "es").text


def test_time_zone_is_configurable() -> None:
    assert "a las 19:00 del 2026-11-22 (hora local, UTC+00:00)" in render(notice(), "es", tz="UTC").text


def test_escalation_names_both_levels() -> None:
    n = notice(transition="escalated", level="alert", from_level="prevention", value=80.0, threshold=56.0,
               severity="critical")
    es = render(n, "es")
    assert es.subject.startswith("[aqnet] Escalada: PM2.5 sube de prevención a alerta en KEN (Kennedy): 80 µg/m³")
    assert "Nivel anterior:" in es.text and "crítica" in es.text
    assert "rose from the prevention level to the alert level" in render(n, "en").text


def test_acknowledged_resolved_unacknowledged() -> None:
    ack = render(notice(transition="acknowledged", state="acknowledged", actor="Ana Pérez (link)",
                        note="en camino"), "es")
    assert ack.subject.startswith("[aqnet] Confirmada:")
    assert "Ana Pérez (link) confirmó" in ack.text and "en camino" in ack.text
    assert "ack/TOKEN" not in ack.text  # only firing alerts carry the acknowledgement link
    res = render(notice(transition="resolved", state="resolved", threshold=30.0, comparison="<", value=25.0), "es")
    assert res.subject == "[aqnet] Resuelta: PM2.5 de nuevo bajo 30 µg/m³ en KEN (Kennedy)"
    assert "< 30 µg/m³" in res.text and "ack/TOKEN" not in res.text
    manual = render(notice(transition="resolved", state="resolved", actor="ops"), "en")
    assert "ops resolved this alert manually" in manual.text
    unack = render(notice(transition="unacknowledged"), "es")
    assert unack.subject.startswith("[aqnet] Sin confirmar:")
    assert "Nadie ha confirmado" in unack.text and "ack/TOKEN" in unack.text


def iboca(**changes: Any) -> Notice:
    fields: dict[str, Any] = {"rule_id": "iboca-category", "kind": "index", "level": "Regular", "unit": "IBOCA",
                              "value": 123.0, "threshold": 101.0, "period": "1h", "severity": "info",
                              "action": "Alerta fase 1", "source": "Res. Conjunta 2840/2023 Tabla 1 [secondary_single]"}
    return notice(**{**fields, **changes})


def test_iboca_names_the_category_and_never_declares_an_alert_phase() -> None:
    es, en = render(iboca(), "es"), render(iboca(), "en")
    assert es.subject == "[aqnet] Activada: IBOCA Regular (PM2.5) en KEN (Kennedy)"
    assert en.subject == "[aqnet] Raised: IBOCA Regular (fair to poor) (PM2.5) at KEN (Kennedy)"
    assert "IBOCA 123" in es.text and "IBOCA ≥ 101" in es.text
    for m in (es, en):
        assert "fase" not in m.subject.lower() and "phase" not in m.subject.lower()
    # the action level appears only as information, beside the sentence saying the city declares phases
    for line in es.text.splitlines():
        if "fase" in line.lower():
            assert "(informativo)" in line or "la declaratoria de Alerta fase la hace la ciudad por zona" in line
    assert "Es solo información" in es.text
    for line in en.text.splitlines():
        if "phase" in line.lower():
            assert "(information)" in line or "declaring an alert phase is the city's act" in line
    assert "“Alert phase 1”" in en.text
    for text in (es.text, es.html or "", en.text):
        assert "declara la alerta" not in text.lower() and "declared" not in text.lower()


def test_iboca_without_action_still_says_phases_are_the_citys() -> None:
    text = render(iboca(action=None), "es").text
    assert "la declaratoria de alerta fase la hace la ciudad por zona" in text.lower()
    assert "Nivel de acción" not in text


def test_equipment_alerts_are_worded_for_technicians() -> None:
    eq = {"audience": "technicians", "unit": "min", "period": None, "period_start": None, "period_end": None,
          "coverage": None, "source": "aqnet operational default (not a norm)", "ack_url": None}
    nd = notice(kind="no_data", level="offline", value=45.0, threshold=30.0, variable=None, **eq)
    es = render(nd, "es")
    assert es.subject == "[aqnet] Activada: KEN (Kennedy) sin datos desde hace 45 min"
    assert "Último dato recibido a las 13:15 del 2026-11-22" in es.text and "técnicos" in es.text
    assert "Periodo" not in es.text and "µg/m³" not in es.text
    assert render(nd, "en").subject == "[aqnet] Raised: KEN (Kennedy): no data for 45 min"
    back = render(dataclasses.replace(nd, transition="resolved", state="resolved"), "es")
    assert back.subject == "[aqnet] Resuelta: KEN (Kennedy) envía datos de nuevo"
    flat = notice(kind="flatline", level="flat", value=120.0, threshold=60.0, **eq)
    assert render(flat, "es").subject == ("[aqnet] Activada: KEN (Kennedy): PM2.5 plano (sin variación) "
                                          "desde hace 120 min")
    assert render(flat, "en").subject == "[aqnet] Raised: KEN (Kennedy): PM2.5 flat (not varying) for 120 min"
    fault = notice(kind="device_fault", level="fault", value=30.0, threshold=15.0, **eq)
    assert "falla reportada por el equipo de PM2.5 desde hace 30 min" in render(fault, "es").subject
    assert "device-reported fault (PM2.5) for 30 min" in render(fault, "en").subject
    zs = notice(kind="zero_span", level="beyond_limit", value=109.2, threshold=100.0, variable="o3",
                **(eq | {"unit": "%", "source": "EPA QA Handbook Vol. II App. D (unverified)"}))
    assert "chequeo de cero/span de O3 fuera del límite de aceptación (109 %)" in render(zs, "es").subject
    assert "zero/span check (O3) beyond its acceptance limit (109 %)" in render(zs, "en").subject
    assert "técnicos" in render(zs, "es").text


def test_microsensor_alerts_are_marked_indicative() -> None:
    n = notice(indicative=True, sensor_id="MS-07", sensor_name="Colegio Kennedy", rule_id="pm25-24h-levels-microsensor")
    es, en = render(n, "es"), render(n, "en")
    assert es.subject.startswith("[aqnet] [indicativa] Activada:")
    assert "Indicativa (microsensor)" in es.text and "no sirven para verificar el cumplimiento" in es.text
    assert en.subject.startswith("[aqnet] [indicative] Raised:") and "Indicative (microsensor)" in en.text
    assert "indicativ" not in render(notice(), "es").text.lower()


def test_locality_and_network_scopes_name_the_worst_sensor() -> None:
    loc = notice(scope="locality", scope_key="Kennedy")
    assert "en localidad Kennedy (peor sensor: KEN (Kennedy))" in render(loc, "es").subject
    assert "at locality Kennedy (worst sensor: KEN (Kennedy))" in render(loc, "en").subject
    net = notice(scope="network", scope_key="network", locality="Kennedy")
    assert "en la red (peor sensor: KEN (Kennedy))" in render(net, "es").subject


def test_unverified_source_is_flagged() -> None:
    n = notice(source="Res. 2254/2017 niveles NO2 1 h [unverified]")
    assert "marcada como no verificada" in render(n, "es").text
    assert "marked unverified" in render(n, "en").text
    assert "no verificada" not in render(notice(), "es").text


def test_numbers() -> None:
    assert "151 µg/m³" in render(notice(value=151.4), "es").text
    assert "7.5 µg/m³" in render(notice(value=7.49), "es").text
    assert "40 µg/m³" in render(notice(value=40.0), "es").text
    assert "100 % del periodo" in render(notice(coverage=1.0), "es").text


def test_html_escapes_and_links() -> None:
    html = render(notice(note="<b>x</b> & y", transition="acknowledged", state="acknowledged", actor="A"),
                  "es").html or ""
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in html and "<b>x</b>" not in html
    assert 'href="http://grafana:3000/d/aqnet-station?var-sensor=KEN&amp;from=1&amp;to=2"' in html
    assert '<html lang="es">' in html


def test_unknown_language_refused() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        render(notice(), "fr")  # type: ignore[arg-type]


def test_payload_has_stable_keys_and_iso_times() -> None:
    p = notice_payload(notice())
    assert p["schema"] == "aqnet.alert/1"
    assert p["key"] == "aqnet-12" and p["alert_id"] == 12 and p["event_id"] == 40
    assert p["period_end"] == "2026-11-22T19:00:00+00:00"
    assert p["started_at"] == "2026-11-22T17:00:00+00:00"
    assert p["value"] == 62.34 and p["unit"] == "µg/m³" and p["threshold"] == 38.0
    assert "message" not in p
    assert set(p) >= {"transition", "state", "rule_id", "kind", "audience", "severity", "indicative", "scope",
                      "scope_key", "sensor_id", "sensor_name", "locality", "variable", "level", "from_level",
                      "comparison", "source", "period", "period_start", "coverage", "time", "actor", "note",
                      "action", "dashboard_url", "ack_url"}
    assert json.loads(json.dumps(p)) == p
    with_message = notice_payload(notice(), language="en")
    assert with_message["language"] == "en"
    assert with_message["message"]["subject"] == render(notice(), "en").subject
    assert notice_payload(notice(period_start=None))["period_start"] is None
