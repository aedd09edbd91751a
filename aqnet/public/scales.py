"""What the public air-quality page shows beside a value: the indices' categories (names, colours, action levels)
and the page's words in Spanish and English. Pure (reads only the packaged domain data, `sensors.domain`).

Every category name, colour and action level comes from `sensors/domain/indices.json` (IBOCA: Res. Conjunta
2840 de 2023, SDA-SDS; US AQI: EPA-454/B-24-002), never from this module: the page adds no health advice, since
indices.json records that the resolution's recommendations could not be read (`health_messages`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from sensors.domain.bundled import load

__all__ = ["LANGUAGES", "contrast_ratio", "page_words", "scales", "text_colour"]

LANGUAGES = ("es", "en")


def _luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance of `#RRGGBB` (WCAG 2.2, definition "relative luminance")."""
    if len(hex_colour) != 7 or hex_colour[0] != "#":
        raise ValueError(f"colour: expected #RRGGBB, got {hex_colour!r}")
    channels = []
    for i in (1, 3, 5):
        c = int(hex_colour[i:i + 2], 16) / 255
        # WCAG 2.2 "relative luminance": sRGB linearisation threshold 0.04045, 12.92, offset 0.055, 1.055, 2.4
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b  # WCAG 2.2 "relative luminance" weights


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.x contrast ratio of two `#RRGGBB` colours, 1..21 (WCAG 2.2, definition "contrast ratio")."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_colour(background: str) -> str:
    """Black or white, whichever contrasts more with `background` (the text on a category's colour)."""
    return "#000000" if contrast_ratio(background, "#000000") >= contrast_ratio(background, "#FFFFFF") else "#FFFFFF"


def _category(level: int, name: str, colour: str, lo: int, hi: int, action: str | None) -> dict[str, Any]:
    return {"level": level, "name": name, "colour": colour, "text": text_colour(colour), "lo": lo, "hi": hi,
            "action": action}


def scales(language: str) -> dict[str, dict[str, Any]]:
    """The two indices the page colours by, `iboca` and `us_aqi`: their name, source, and categories in order
    of level (1-based, as the index job numbers them: alerts.averaging.indices), named in `language` where
    indices.json has the language (US AQI's names are EPA's, in English only)."""
    if language not in LANGUAGES:
        raise ValueError(f"public page language: expected es or en, got {language!r}")
    data = load("indices")
    iboca, aqi = data["iboca"], data["us_epa_aqi"]
    return {
        "iboca": {"name": "IBOCA", "title": iboca["name"], "source": iboca["regulation"]["id"],
                  "url": iboca["regulation"]["url"],
                  "categories": [_category(int(c["level"]), c[f"name_{language}"], c["color_hex"], c["i_lo"],
                                           c["i_hi"], c[f"action_level_{language}"])
                                 for c in iboca["categories"]]},
        "us_aqi": {"name": "US AQI", "title": aqi["name"], "source": aqi["documents"][0]["id"],
                   "url": aqi["documents"][0]["url"],
                   "categories": [_category(level, c["name"], c["color_hex"], c["i_lo"], c["i_hi"], None)
                                  for level, c in enumerate(aqi["categories"], start=1)]},
    }


_EN = {
    "title": "Air quality now", "skip": "Skip to the list of locations", "index": "Index",
    "map": "Map of the network's locations", "map_note": "Each mark is a location, coloured by its current "
    "category; the list below says the same in words.", "list": "Locations", "legend": "Categories",
    "station": "Reference station", "indicative": "Indicative sensor (microsensor)",
    "indicative_short": "indicative", "no_index": "No current index", "dominant": "Dominant pollutant",
    "provisional": "Provisional (not yet validated)", "validated": "Validated", "updated": "Hour ending",
    "last24": "Last 24 hours", "chart_of": "Hourly averages of {parameter} at {name}, last 24 hours",
    "no_hours": "No hourly average in the last 24 hours.", "hour": "Hour ending", "value": "Value",
    "valid": "Valid", "not_valid": "Not valid", "close": "Close", "loading": "Loading…",
    "failed": "The data could not be read now; try again later.", "action": "Action level",
    "range": "Index range", "source": "Source", "data": "Data: the open-data API",
    "api_link": "Open data (API)", "select_hint": "Choose a location on the map or in the list to see its last "
    "24 hours.", "show": "Show", "tiles": "Map tiles", "index_value": "index",
    "category": "Category", "kind": "Kind", "status": "Status", "table": "The values as a table",
    "indicative_note": "An indicative sensor is a microsensor, not a reference instrument: its values are "
    "indicative only.",
}

_ES = {
    "title": "Calidad del aire ahora", "skip": "Ir a la lista de puntos de medición", "index": "Índice",
    "map": "Mapa de los puntos de medición de la red", "map_note": "Cada marca es un punto de medición, con el "
    "color de su categoría actual; la lista de abajo dice lo mismo en palabras.", "list": "Puntos de medición",
    "legend": "Categorías", "station": "Estación de referencia", "indicative": "Sensor indicativo (microsensor)",
    "indicative_short": "indicativo", "no_index": "Sin índice actual", "dominant": "Contaminante dominante",
    "provisional": "Provisional (aún no validado)", "validated": "Validado", "updated": "Hora que termina",
    "last24": "Últimas 24 horas", "chart_of": "Promedios horarios de {parameter} en {name}, últimas 24 horas",
    "no_hours": "Sin promedios horarios en las últimas 24 horas.", "hour": "Hora que termina", "value": "Valor",
    "valid": "Válido", "not_valid": "No válido", "close": "Cerrar", "loading": "Cargando…",
    "failed": "No se pudieron leer los datos ahora; intente más tarde.", "action": "Nivel de acción",
    "range": "Rango del índice", "source": "Fuente", "data": "Datos: la API de datos abiertos",
    "api_link": "Datos abiertos (API)", "select_hint": "Elija un punto en el mapa o en la lista para ver sus "
    "últimas 24 horas.", "show": "Mostrar", "tiles": "Teselas del mapa", "index_value": "índice",
    "category": "Categoría", "kind": "Tipo", "status": "Estado", "table": "Los valores en una tabla",
    "indicative_note": "Un sensor indicativo es un microsensor, no un instrumento de referencia: sus valores "
    "son solo indicativos.",
}

_TABLES = {"en": MappingProxyType(_EN), "es": MappingProxyType(_ES)}


def page_words(language: str) -> MappingProxyType[str, str]:
    """The page's words in `language` (es or en); ValueError naming the language otherwise."""
    try:
        return _TABLES[language]
    except KeyError:
        raise ValueError(f"public page language: expected es or en, got {language!r}") from None
