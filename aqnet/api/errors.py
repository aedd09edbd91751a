"""The HTTP API's errors: the `{"detail": ApiError}` body, the HTTPException that carries it, and the error
responses every operation declares in the OpenAPI description. Shell (FastAPI), pure: no I/O.

Contract: `problem(status, code, message, field)` is the HTTPException of an `ApiError` (a 401 says
`WWW-Authenticate: Bearer`); `responses(*codes)` is an operation's `responses=`: 400, 401, 403, 422, 429 and 503
always, plus `codes`. `STATUS` maps storage's error codes to their status (the rest are 422).
"""

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["STATUS", "ApiError", "ErrorBody", "UnparsableBody", "ValidationBody", "ValidationIssue", "problem",
           "responses"]

STATUS = {"not_found": 404, "duplicate": 409, "conflict": 409, "illegal_transition": 409}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiError(_Model):
    """What went wrong: a machine code, the field at fault when there is one, and a sentence naming it."""

    code: str = Field(description="unauthorized, forbidden, not_found, duplicate, conflict, illegal_transition, "
                                  "unknown_profile, out_of_range, invalid_calibration, invalid")
    field: str | None = None
    message: str


class ErrorBody(_Model):
    detail: ApiError


class UnparsableBody(BaseModel):
    """400: the body is not JSON (FastAPI's own answer)."""

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationBody(BaseModel):
    """422: the request's shape (FastAPI's list of issues) or a registry rule (an ApiError) was not met."""

    detail: list[ValidationIssue] | ApiError


def problem(status: int, code: str, message: str, field: str | None = None) -> HTTPException:
    """The HTTPException answering `{"detail": ApiError}` with `status`."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, ApiError(code=code, field=field, message=message).model_dump(), headers)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of an operation that may also answer `codes` (404, 409)."""
    said = {400: "the body is not JSON", 401: "no token, or an unknown or revoked one",
            403: "the token's role may not do this", 404: "no such sensor or device",
            409: "conflicts with the registry (duplicate, already used, illegal lifecycle transition)",
            422: "malformed request or a registry rule not met",
            429: "too many failed authentications from this address (Retry-After)",
            503: "the database cannot answer now; try again"}
    models = {400: UnparsableBody, 422: ValidationBody, 503: UnparsableBody}
    out: dict[int | str, dict[str, Any]] = {c: {"model": models.get(c, ErrorBody), "description": said[c]}
                                            for c in (400, 401, 403, 422, 429, 503, *codes)}
    out[401]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}
    return out
