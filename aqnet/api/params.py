"""The HTTP API's shared path and query parameters (ids, RFC 3339 instants) and OpenAPI links between
operations. Shell (FastAPI), pure: declarations and one parser, no I/O.
"""

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Path, Query

from aqnet.api.errors import problem

__all__ = ["FROM_BODY", "FROM_PATH", "ID_PATTERN", "TAGS", "DeviceId", "Instant", "SensorId", "instant", "links"]

#: the registry's identifiers (storage.registry.models' Identifier), said in the schema so clients see it
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TAGS: list[str | Enum] = ["registry"]  #: the registry's operations (aqnet.api.alerts tags its own "alerts")

#: RFC 3339 with its offset; a str, not a datetime, because pydantic would also take "0.5" as a Unix time
Instant = Annotated[str | None, Query(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$",
                                      json_schema_extra={"format": "date-time"}, examples=["2026-05-01T08:00:00Z"])]
SensorId = Annotated[str, Path(pattern=ID_PATTERN, description="the sensor's id")]
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="the device's id")]

FROM_BODY = {"sensor_id": "$response.body#/id"}
FROM_PATH = {"sensor_id": "$request.path.sensor_id"}


def instant(name: str, value: str | None) -> datetime | None:
    """The `Instant` query parameter `name` as a time, or a 422 when it matches the pattern but is no date."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # matches the pattern but is no date (month 13)
        raise problem(422, "invalid", f"{name}: expected an RFC 3339 time such as 2026-05-01T08:00:00Z, "
                      f"got {value!r}", name) from None


def links(**targets: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links to the operations named, with their parameters' sources."""
    return {name: {"operationId": name, "parameters": params} for name, params in targets.items()}
