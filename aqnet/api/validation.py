"""The HTTP API's validation by people (`/api/v1/validation/…`), the values with their verification state, and an
alert's record of decisions. Shell (FastAPI over `storage.validation` and `storage.alert_record`).

Contract: technicians and officers take decisions (validate, invalidate with a reason, undo); a reader gets 403 and
nothing is written. The actor recorded is the token's name and role, via "api"; the decision's time is the router's
clock. Every role reads the audit trail, the values and the alert records; an alert's record shows each actor's
role, not the name (`storage.alert_record`).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aqnet.api.context import Context, Reader, Validator
from aqnet.api.errors import responses
from aqnet.api.params import ID_PATTERN, Instant, SensorId, instant
from ingest.validation import REASONS, DecisionError, Period, Scope
from storage import alert_record, validation

__all__ = ["router"]

router = APIRouter()
TAGS: list[Any] = ["validation"]
TEXT = r"^[^\x00]*$"  #: PostgreSQL text cannot hold NUL
BIGINT = 2**63 - 1

DecisionId = Annotated[int, Path(ge=1, le=BIGINT, description="the decision's id")]
AlertId = Annotated[int, Path(ge=1, le=BIGINT, description="the alert's id")]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DecisionBody(_In):
    """Validate a period of a series, or invalidate it with a reason: the whole sensor, one device (device_id), one
    variable of one device (both), or one variable over all the sensor's devices (variable alone)."""

    action: Literal["validate", "invalidate"]
    sensor_id: Identifier
    device_id: Identifier | None = None
    variable: Identifier | None = None
    starts_at: datetime = Field(strict=False, description="start of the period (inclusive), with its UTC offset")
    ends_at: datetime = Field(strict=False, description="end of the period (exclusive), with its UTC offset")
    reason: Literal[tuple(REASONS)] | None = Field(  # type: ignore[valid-type]
        None, description="invalidate only: " + "; ".join(f"{k}: {v}" for k, v in REASONS.items()))
    text: str = Field("", max_length=2000, pattern=TEXT, description="why, in words (required with reason other)")

    @model_validator(mode="after")
    def _period(self) -> "DecisionBody":
        try:
            Period(self.starts_at, self.ends_at)
        except DecisionError as exc:
            raise ValueError(exc.message) from None
        return self


class UndoBody(_In):
    """Undo a decision (its scope and period are repeated in the undo)."""

    text: str = Field("", max_length=2000, pattern=TEXT, description="why it is undone")


class DecisionOut(BaseModel):
    """A stored decision: who (the token's name and role), how (cli, api), when, what, why, and what it changed."""

    model_config = ConfigDict(frozen=True)

    id: int
    decided_at: datetime
    actor: str
    actor_role: str
    via: str
    action: Literal["validate", "invalidate", "undo"]
    sensor: str
    device: str | None
    variable: str | None
    scope: Literal["sensor", "device", "variable"]
    from_: datetime = Field(alias="from")
    to: datetime
    reason: str | None
    text: str
    undoes: int | None
    undone_by: int | None
    effect: dict[str, Any] = Field(description="readings covered and changed (per variable), 15-minute slots "
                                   "recomputed, alerts whose evidence it invalidated")


class ValueOut(BaseModel):
    """A stored value with its three levels (raw, automatic QC, person) and its e-Reporting flags."""

    model_config = ConfigDict(frozen=True)

    time: datetime
    device_id: str
    raw_value: float | None
    raw_unit: str | None
    value: float | None
    unit: str
    flags: int = Field(description="QC bitmask (ingest.reading.QC)")
    qc_valid: bool
    decision: Literal["validate", "invalidate"] | None
    decision_id: int | None
    reason: str | None
    verification: Literal[1, 2, 3] = Field(description="1 verified, 2 preliminary verified, 3 not verified")
    validity: Literal[1, -1, -99] = Field(description="1 valid, -1 not valid, -99 not valid: maintenance/calibration")


class RecordEntry(BaseModel):
    """One transition of an alert as the public may see it: the actor's role, not the name."""

    model_config = ConfigDict(frozen=True)

    event_id: int
    time: datetime
    kind: str
    level: str | None
    from_level: str | None
    severity: str | None
    value: float | None
    unit: str | None
    threshold: float | None
    source: str | None = Field(description="the level's legal source")
    sensor_id: str | None
    variable: str | None
    period: str | None
    period_start: datetime | None
    period_end: datetime | None
    coverage: float | None
    indicative: bool
    actor: str | None = Field(description="system, technician or officer")
    actor_role: str | None
    via: str | None
    decision_id: int | None
    note: str | None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _out(d: validation.RecordedDecision) -> DecisionOut:
    return DecisionOut.model_validate(d.as_dict())


def _period(since: str | None, until: str | None) -> Period:
    start, end = instant("since", since), instant("until", until)
    if start is None or end is None:
        raise validation.DecisionRefused("invalid", "since and until are both required", "since")
    try:
        return Period(start, end)
    except DecisionError as exc:
        raise validation.DecisionRefused("invalid", exc.message, "since") from None


@router.post("/validation/decisions", tags=TAGS, operation_id="add_validation_decision", status_code=201,
             responses=responses(404, 409), response_model_by_alias=True)
async def add_decision(body: DecisionBody, token: Validator, api: Context) -> DecisionOut:
    """Validate or invalidate a period of a series (technicians and officers). The averages, indices and
    exceedances it touches are recomputed by the next averaging run; raw values are never changed."""
    async with api.db() as conn:
        decided = await validation.decide(
            conn, body.action, scope=Scope(body.sensor_id, body.device_id, body.variable),
            period=Period(body.starts_at, body.ends_at), reason=body.reason, text=body.text, actor=token.name,
            role=token.role, via="api", now=api.clock())
    return _out(decided)


@router.post("/validation/decisions/{decision_id}/undo", tags=TAGS, operation_id="undo_validation_decision",
             status_code=201, responses=responses(404, 409), response_model_by_alias=True)
async def undo_decision(decision_id: DecisionId, body: UndoBody, token: Validator, api: Context) -> DecisionOut:
    """Undo a validation or an invalidation (technicians and officers): what decided before it decides again."""
    async with api.db() as conn:
        decided = await validation.decide(conn, "undo", undoes=decision_id, text=body.text, actor=token.name,
                                          role=token.role, via="api", now=api.clock())
    return _out(decided)


@router.get("/validation/decisions", tags=TAGS, operation_id="list_validation_decisions", responses=responses(),
            response_model_by_alias=True)
async def list_decisions(_: Reader, api: Context, sensor_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                         since: Instant = None, until: Instant = None,
                         limit: Annotated[int, Query(ge=1, le=10_000)] = 200) -> list[DecisionOut]:
    """The audit trail, newest first: every decision (of a sensor; whose period meets [since, until)), with who
    took it, why, what it changed and which decision undid it."""
    async with api.db() as conn:
        found = await validation.list_decisions(conn, sensor_id=sensor_id, since=instant("since", since),
                                                until=instant("until", until), limit=limit)
    return [_out(d) for d in found]


@router.get("/sensors/{sensor_id}/values", tags=TAGS, operation_id="list_values", responses=responses())
async def list_values(sensor_id: SensorId, _: Reader, api: Context,
                      variable: Annotated[str, Query(pattern=ID_PATTERN)], since: Instant = None,
                      until: Instant = None, device_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[ValueOut]:
    """A series' stored values in [since, until), oldest first, each with its raw value, QC flags, a person's
    decision and its e-Reporting verification and validity flags."""
    async with api.db() as conn:
        period = _period(since, until)
        rows = await validation.values(conn, sensor_id, variable, period, device_id=device_id, limit=limit)
    return [ValueOut.model_validate({**r, "raw_value": _finite(r["raw_value"]), "value": _finite(r["value"])})
            for r in rows]


@router.get("/alerts/{alert_id}/record", tags=["alerts"], operation_id="get_alert_record", responses=responses())
async def get_alert_record(alert_id: AlertId, _: Reader, api: Context) -> list[RecordEntry]:
    """Every decision on the alert (raised, escalated, acknowledged, resolved, evidence invalidated, notes), with
    its evidence, level, threshold and legal source, and the actor's role (never a name). Empty for an unknown
    alert."""
    async with api.db() as conn:
        rows = await alert_record.alert_record(conn, alert_id)
    return [RecordEntry.model_validate({**r, "value": _finite(r["value"]), "threshold": _finite(r["threshold"]),
                                        "coverage": _finite(r["coverage"])}) for r in rows]
