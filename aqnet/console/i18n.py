"""The web console's words in Spanish and English (`console.language`, default `alerts.language`). Shell
(aqnet.console); pure.

`words(language)` is the table the templates read as `t.key`; a key missing from a language is a test failure
(tests/aqnet/console/test_i18n.py), never an English word in a Spanish page.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal

__all__ = ["LANGUAGES", "words"]

Language = Literal["es", "en"]
LANGUAGES: tuple[Language, ...] = ("es", "en")

_EN: dict[str, str] = {
    "console": "aqnet console", "skip": "Skip to the content", "nav": "Main", "sensors": "Sensors",
    "alerts": "Alerts", "users": "Users", "sign_in": "Sign in", "sign_out": "Sign out", "username": "User name",
    "password": "Password", "signed_in_as": "Signed in as", "wrong_password": "Wrong user name or password.",
    "locked": "This account is locked after repeated wrong passwords. Ask an administrator to reset it, or wait.",
    "forbidden": "Your role does not allow this page.", "not_found": "Not found.",
    "csrf": "This form has expired or did not come from this console. Go back, reload the page and send it again.",
    "role": "Role", "sensor": "Sensor", "name": "Name", "kind": "Kind", "locality": "Locality",
    "lifecycle": "Lifecycle", "device": "Device", "status": "Status", "last_seen": "Last seen",
    "completeness_24h": "Data 24 h", "flags": "Flags", "up": "up", "down": "down", "unknown": "unknown",
    "never": "never", "devices": "Devices", "protocol": "Protocol", "profile": "Profile or format",
    "variables": "Variables", "endpoint": "Endpoint", "calibrations": "Calibrations", "maintenance": "Maintenance",
    "audit": "Audit trail", "when": "When", "who": "Who", "what": "What", "from": "From", "to": "To",
    "reason": "Reason", "none": "None.", "register": "Register a sensor", "register_do": "Register",
    "sensor_id": "Sensor id", "latitude": "Latitude (°)", "longitude": "Longitude (°)", "device_id": "Device id",
    "topic": "MQTT topic (MQTT devices)", "hardware_serial": "Hardware serial (chip id or MAC)",
    "credentials": "Device credentials", "issue_http": "Issue HTTP credentials",
    "credentials_once": "Copy this password into the device now: it is not shown again.",
    "credentials_mqtt": "MQTT devices get their broker login from the broker's files, on the broker's host:",
    "put_in_maintenance": "Put in maintenance", "save": "Save", "commissioning": "Commissioning",
    "verdict": "Verdict", "findings": "Findings", "raw": "Raw", "normalised": "Normalised", "time": "Time",
    "variable": "Variable", "received": "Received", "waiting": "Waiting for the first readings…",
    "live_note": "The table refreshes every few seconds with the readings stored for this sensor.",
    "inbox": "Alert inbox", "severity": "Severity", "state": "State", "level": "Level", "value": "Value",
    "threshold": "Limit", "started": "Started", "open_alerts": "Open", "closed_alerts": "Resolved",
    "evidence": "Evidence", "record": "Record", "acknowledge": "Acknowledge", "resolve": "Resolve",
    "annotate": "Add a note", "note": "Note", "averages_chart": "Averages that raised the alert, with the limit",
    "limit": "limit", "source": "Source", "validation": "Validation", "series": "Series",
    "validate": "Mark valid", "invalidate": "Mark invalid", "period_hint": "Click two points on the chart to "
    "select a period, or type its start and end.", "decision": "Decision", "text": "Why, in words",
    "decided": "Decision recorded.", "no_data": "No data in this period.", "done": "Done.", "back": "Back",
    "add_user": "Add a user", "disabled": "disabled", "actions": "Actions", "ack_by": "Acknowledged by",
    "coverage": "Coverage", "period": "Period", "indicative": "indicative", "home": "Home",
    "series_chart": "Values of the series; the selected period is shaded", "readings": "Readings",
    "too_many": "Too many failed sign-ins from this address; try again in {seconds} s.",
    "locked_short": "locked", "reset_password": "Reset password", "disable": "Disable",
    "no_findings": "No findings: every registered variable reported without a flag that fails it.",
}

_ES: dict[str, str] = {
    "console": "Consola aqnet", "skip": "Saltar al contenido", "nav": "Principal", "sensors": "Sensores",
    "alerts": "Alertas", "users": "Usuarios", "sign_in": "Ingresar", "sign_out": "Salir",
    "username": "Usuario", "password": "Contraseña", "signed_in_as": "Sesión de",
    "wrong_password": "Usuario o contraseña incorrectos.",
    "locked": "La cuenta está bloqueada por contraseñas erradas repetidas. Pida a un administrador que la "
    "restablezca, o espere.", "forbidden": "Su rol no permite esta página.", "not_found": "No encontrado.",
    "csrf": "Este formulario expiró o no viene de esta consola. Vuelva atrás, recargue la página y envíelo de "
    "nuevo.", "role": "Rol", "sensor": "Sensor", "name": "Nombre", "kind": "Tipo", "locality": "Localidad",
    "lifecycle": "Estado de vida", "device": "Equipo", "status": "Estado", "last_seen": "Último dato",
    "completeness_24h": "Datos 24 h", "flags": "Banderas", "up": "en línea", "down": "caído",
    "unknown": "desconocido", "never": "nunca", "devices": "Equipos", "protocol": "Protocolo",
    "profile": "Perfil o formato", "variables": "Variables", "endpoint": "Dirección",
    "calibrations": "Calibraciones", "maintenance": "Mantenimiento", "audit": "Registro de cambios",
    "when": "Cuándo", "who": "Quién", "what": "Qué", "from": "Desde", "to": "Hasta", "reason": "Motivo",
    "none": "Ninguno.", "register": "Registrar un sensor", "register_do": "Registrar",
    "sensor_id": "Id del sensor", "latitude": "Latitud (°)", "longitude": "Longitud (°)",
    "device_id": "Id del equipo", "topic": "Tópico MQTT (equipos MQTT)",
    "hardware_serial": "Serial del hardware (chip id o MAC)", "credentials": "Credenciales del equipo",
    "issue_http": "Emitir credenciales HTTP",
    "credentials_once": "Copie esta contraseña en el equipo ahora: no se vuelve a mostrar.",
    "credentials_mqtt": "Los equipos MQTT reciben su acceso al broker desde los archivos del broker, en su "
    "servidor:", "put_in_maintenance": "Poner en mantenimiento", "save": "Guardar",
    "commissioning": "Puesta en marcha", "verdict": "Veredicto", "findings": "Hallazgos", "raw": "Crudo",
    "normalised": "Normalizado", "time": "Hora", "variable": "Variable", "received": "Recibido",
    "waiting": "Esperando los primeros datos…",
    "live_note": "La tabla se actualiza cada pocos segundos con los datos guardados de este sensor.",
    "inbox": "Bandeja de alertas", "severity": "Severidad", "state": "Estado", "level": "Nivel",
    "value": "Valor", "threshold": "Límite", "started": "Inicio", "open_alerts": "Abiertas",
    "closed_alerts": "Resueltas", "evidence": "Evidencia", "record": "Historial", "acknowledge": "Reconocer",
    "resolve": "Resolver", "annotate": "Agregar una nota", "note": "Nota",
    "averages_chart": "Promedios que dispararon la alerta, con el límite", "limit": "límite",
    "source": "Fuente", "validation": "Validación", "series": "Serie", "validate": "Marcar válido",
    "invalidate": "Marcar inválido", "period_hint": "Haga clic en dos puntos de la gráfica para elegir un "
    "periodo, o escriba su inicio y fin.", "decision": "Decisión", "text": "Por qué, en palabras",
    "decided": "Decisión registrada.", "no_data": "Sin datos en este periodo.", "done": "Hecho.",
    "back": "Volver", "add_user": "Agregar un usuario", "disabled": "deshabilitado", "actions": "Acciones",
    "ack_by": "Reconocida por", "coverage": "Cobertura", "period": "Periodo", "indicative": "indicativo",
    "home": "Inicio", "series_chart": "Valores de la serie; el periodo elegido aparece sombreado",
    "locked_short": "bloqueada", "reset_password": "Restablecer contraseña", "disable": "Deshabilitar",
    "readings": "Datos", "too_many": "Demasiados ingresos fallidos desde esta dirección; intente de nuevo en "
    "{seconds} s.", "no_findings": "Sin hallazgos: cada variable registrada reportó sin una bandera que la "
    "haga fallar.",
}

_TABLES = {"en": MappingProxyType(_EN), "es": MappingProxyType(_ES)}


def words(language: str) -> MappingProxyType[str, str]:
    """The console's words in `language` (es or en); ValueError naming the language otherwise."""
    try:
        return _TABLES[language]
    except KeyError:
        raise ValueError(f"console language: expected es or en, got {language!r}") from None
