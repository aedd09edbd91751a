"""What every HTTP API operation depends on, as FastAPI dependencies: the router's context (`Context`: the
pooled database, the clock, the acknowledgement links' key, the network's time zone and language) and the
caller's bearer token checked for a role (`Reader`, `Technician`, `Officer`, `Validator`: technician or officer)
against the role sets of aqnet.http.roles, which the web console checks its users against too.
Shell (FastAPI over `storage.tokens` through `aqnet.http.auth`); I/O: `ApiContext.db` and the role checks use the
database.

Contract: `aqnet.api.router.api_router` binds one `ApiContext` to each request (`bind_context`); `ApiContext.db()`
is one pooled connection, committed on success, with `RegistryError`/`AlertError` mapped to 404, 409 or 422, a
value the database refuses (SQLSTATE class 22) or an unusable calibration to 422, a refused validation decision
(`DecisionRefused`) to 403, 404, 409 or 422, and an unreachable database to
503 (the answer names no host: the log line has the detail). A role check answers 401 without a known token, 403
for another role, 429 after too many failures from the address, 503 when tokens cannot be checked.
"""

# no `from __future__ import annotations`: FastAPI reads the dependencies' annotations
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from aqnet.api.errors import STATUS, ApiError, problem
from aqnet.http.auth import Authenticator, Limited, Unavailable
from aqnet.http.roles import OFFICER, READERS, TECHNICIAN, VALIDATORS, refusal
from ingest.calibration import CalibrationError
from storage.alerts_store import AlertError
from storage.registry.models import RegistryError
from storage.tokens import ApiToken
from storage.validation import DecisionRefused

__all__ = ["OFFICER", "READERS", "TECHNICIAN", "VALIDATORS", "ApiContext", "Context", "Officer", "Reader",
           "Technician", "Validator", "actor", "api_context", "bind_context"]

log = logging.getLogger("aqnet.api")


_bearer = HTTPBearer(auto_error=False, bearerFormat="aqn_<43 characters>",
                     description="a token from `aqnet tokens create --role technician|officer|reader`")


@dataclass(frozen=True, slots=True)
class ApiContext:
    """One router's database, token checks, clock and settings (aqnet.api.router.api_router documents them)."""

    pool: AsyncConnectionPool[Any]
    authenticator: Authenticator
    clock: Callable[[], datetime]
    signing_key: bytes | None
    tz_name: str
    language: Literal["es", "en"]

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection, committed on success; registry and database refusals become 4xx."""
        try:
            async with self.pool.connection() as conn:
                yield conn
        except RegistryError as exc:
            raise problem(STATUS.get(exc.code, 422), exc.code, exc.message, exc.field) from None
        except AlertError as exc:
            raise problem(STATUS.get(exc.code, 422), exc.code, exc.message) from None
        except DecisionRefused as exc:
            raise problem({**STATUS, "forbidden": 403}.get(exc.code, 422), exc.code, exc.message, exc.field) from None
        except CalibrationError as exc:
            raise problem(422, "invalid_calibration", str(exc)) from None
        except psycopg.errors.DataError as exc:  # SQLSTATE class 22: the database refused a value
            raise problem(422, "invalid", f"the database refused a value: {exc.diag.message_primary}") from None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            # the answer names no host, port, user or libpq text (it comes before any authentication); the log
            # line has the detail, passwords masked (aqnet.logs)
            log.warning("API: database unavailable: %s", exc)
            raise HTTPException(503, "database unavailable; try again later") from None


def bind_context(context: ApiContext) -> Callable[[Request], None]:
    """The router-wide dependency that hands `context` to this request's operations (`api_context`)."""

    def bind(request: Request) -> None:
        request.state.aqnet_api = context

    return bind


def api_context(request: Request) -> ApiContext:
    """The context `bind_context` bound to this request."""
    context: ApiContext = request.state.aqnet_api
    return context


Context = Annotated[ApiContext, Depends(api_context)]


def _role(allowed: Iterable[str]) -> Callable[..., Awaitable[ApiToken]]:
    """The dependency answering the caller's token when its role is one of `allowed`."""
    roles = frozenset(allowed)

    async def check(request: Request, api: Context,
                    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]) -> ApiToken:
        auth = api.authenticator
        found = await auth.bearer(auth.client(request.scope), None if credentials is None else credentials.credentials)
        if isinstance(found, Limited):
            raise HTTPException(429, ApiError(code="too_many_failures", message="too many failed "
                                "authentications from this address; wait").model_dump(),
                                {"Retry-After": str(found.retry_after_s)})
        if isinstance(found, Unavailable):
            raise HTTPException(503, "database unavailable; try again")
        if found is None and credentials is None:
            raise problem(401, "unauthorized", "missing `Authorization: Bearer <token>` header")
        if found is None:
            raise problem(401, "unauthorized", "unknown or revoked token")
        token = found
        refused = refusal(f"token {token.name!r}", token.role, roles)
        if refused is not None:
            raise problem(403, "forbidden", refused)
        return token

    return check


Reader = Annotated[ApiToken, Depends(_role(READERS))]
Technician = Annotated[ApiToken, Depends(_role(TECHNICIAN))]
Officer = Annotated[ApiToken, Depends(_role(OFFICER))]
Validator = Annotated[ApiToken, Depends(_role(VALIDATORS))]


def actor(token: ApiToken) -> str:
    """The audit log's actor of a change made with `token`."""
    return f"api:{token.name}"
