"""Stage 4, delivery — pure (data, no I/O except the bundled indices.json): the phrases alert messages are made of,
in Spanish and English (subject templates, field labels, notes, level names) and the IBOCA category and
action-level names in English, for `alerts.delivery.messages`. Wording only: how a notice picks and fills them is
`messages`.
"""

from __future__ import annotations

from sensors.domain import load

__all__ = ["PHRASES", "VARIABLE_NAMES", "iboca_english"]

PHRASES: dict[str, dict[str, str]] = {
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
        "zero_span_raised": "{place}: chequeo de cero/span{of_var} fuera del límite de aceptación ({value})",
        "zero_span_resolved": "{place}: chequeo de cero/span{of_var} de nuevo dentro del límite",
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
        "zero_span_raised": "{place}: zero/span check{of_var} beyond its acceptance limit ({value})",
        "zero_span_resolved": "{place}: zero/span check{of_var} within its limit again",
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

VARIABLE_NAMES = {
    "es": {"o3": "ozono (O3)", "no2": "dióxido de nitrógeno (NO2)", "so2": "dióxido de azufre (SO2)",
           "co": "monóxido de carbono (CO)"},
    "en": {"o3": "ozone (O3)", "no2": "nitrogen dioxide (NO2)", "so2": "sulphur dioxide (SO2)",
           "co": "carbon monoxide (CO)"},
}


def iboca_english() -> dict[str, str]:
    """Spanish IBOCA category and action-level names → English (sensors/domain/indices.json)."""
    out: dict[str, str] = {}
    for cat in load("indices")["iboca"]["categories"]:
        out[cat["name_es"]] = cat["name_en"]
        out[cat["action_level_es"]] = cat["action_level_en"]
    return out
