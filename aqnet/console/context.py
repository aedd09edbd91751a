"""What every web console page depends on: the console's context (database, clock, language, lockout policy,
templates), who is signed in (the session cookie), the role check (the API's own role sets and `refusal`,
aqnet.http.roles), the CSRF check of every form, and how a page is answered. Shell (aqnet.console); I/O (the
database, through the pool).

Contracts:
- The session cookie (`aqnet_session`) is HTTP-only, SameSite=Strict, `Secure` (unless `console.cookie_secure`
  is off), scoped to `/console`. Its secret is checked in `console_sessions` on every request.
- `require(request, roles)` answers the session when its user's role is one of `roles`; else a response: a
  redirect to the sign-in page without a session, a 403 page for another role. Pages check `roles` with the same
  sets as the API's operations (READERS, TECHNICIAN, OFFICER, VALIDATORS, ADMIN).
- `posted(request, roles)` also reads the form (application/x-www-form-urlencoded) and refuses it with a 403
  page unless its `csrf` field equals the session's token (synchronizer token, compared in constant time);
  nothing is written then. The sign-in form, sent before any session exists, carries a double-submit token: a
  random `aqnet_login_csrf` cookie and the same value in the form.
- Every answer carries a Content-Security-Policy allowing only the console's own scripts, styles and images,
  `frame-ancestors 'none'`, `nosniff`, `Referrer-Policy: same-origin` and `Cache-Control: no-store`.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo

import psycopg
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from alerts.health import HealthPolicy
from aqnet.console.i18n import words
from aqnet.http.auth import Authenticator
from aqnet.http.roles import ADMIN, OFFICER, READERS, TECHNICIAN, refusal
from storage.console_sessions import ConsoleSession, session_of
from storage.users import LockoutPolicy

__all__ = ["COOKIE", "LOGIN_COOKIE", "PREFIX", "ConsoleContext", "console_context"]

log = logging.getLogger("aqnet.console")

PREFIX = "/console"
COOKIE = "aqnet_session"
LOGIN_COOKIE = "aqnet_login_csrf"
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
_MAX_FIELD = 4000


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("aqnet.console", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(prefix=PREFIX, READERS=READERS, TECHNICIAN=TECHNICIAN, OFFICER=OFFICER, ADMIN=ADMIN)
    return env


@dataclass(frozen=True)
class ConsoleContext:
    """The console's database, clock and settings (aqnet.console.console_router documents them)."""

    pool: AsyncConnectionPool[Any]
    database_url: str
    clock: Callable[[], datetime]
    language: str
    tz_name: str
    policy: LockoutPolicy
    session_ttl_s: float
    cookie_secure: bool
    health_policy: HealthPolicy
    auth: Authenticator  #: its per-address failure limit (`http.auth_failures_per_minute`) guards the sign-in too
    env: Environment = field(default_factory=_environment)

    @property
    def tz(self) -> tzinfo:
        """The network's time zone (times are shown in it)."""
        return ZoneInfo(self.tz_name)

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection, committed on success."""
        async with self.pool.connection() as conn:
            yield conn

    def text(self) -> Mapping[str, str]:
        """The console's words in its language."""
        return words(self.language)

    def local(self, t: datetime | None) -> str:
        """`t` in the network's time zone, to the minute ('' for None)."""
        return "" if t is None else t.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def page(self, template: str, session: ConsoleSession | None, *, status: int = 200,
             **values: Any) -> HTMLResponse:
        """A rendered page with the console's security headers."""
        html = self.env.get_template(template).render(
            t=words(self.language), lang=self.language, session=session, local=self.local,
            csrf=session.csrf_token if session else "", **values)
        return HTMLResponse(html, status_code=status, headers=_HEADERS)

    def error(self, session: ConsoleSession | None, status: int, message: str) -> HTMLResponse:
        """An error page (403, 404, 409, 422) saying `message`."""
        return self.page("error.html", session, status=status, message=message)

    async def session(self, request: Request) -> ConsoleSession | None:
        """The signed-in session of this request, or None."""
        try:
            async with self.db() as conn:
                return await session_of(conn, request.cookies.get(COOKIE), self.clock())
        except (PoolTimeout, psycopg.OperationalError) as exc:
            log.warning("console: database unavailable: %s", exc)
            return None

    async def require(self, request: Request, roles: Iterable[str]) -> ConsoleSession | Response:
        """The session when its role is one of `roles`; else the sign-in redirect or a 403 page."""
        session = await self.session(request)
        if session is None:
            target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
            return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303, headers=_HEADERS)
        refused = refusal(f"user {session.user.username!r}", session.user.role, roles)
        if refused is not None:
            return self.error(session, 403, f"{words(self.language)['forbidden']} ({refused})")
        return session

    async def posted(self, request: Request, roles: Iterable[str]
                     ) -> tuple[ConsoleSession, dict[str, str]] | Response:
        """The session and the form's fields, when the role may and the CSRF token matches (module docstring)."""
        session = await self.require(request, roles)
        if isinstance(session, Response):
            return session
        form = await read_form(request)
        if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf_token.encode()):
            return self.error(session, 403, words(self.language)["csrf"])
        return session, form

    def set_session_cookie(self, response: Response, secret: str) -> None:
        """Put the session's secret in its cookie (module docstring)."""
        response.set_cookie(COOKIE, secret, max_age=int(self.session_ttl_s), path=PREFIX, httponly=True,
                            secure=self.cookie_secure, samesite="strict")

    def login_token(self, request: Request) -> str:
        """The sign-in form's double-submit token: the cookie's when it has one, else a new one."""
        token = request.cookies.get(LOGIN_COOKIE, "")
        return token if 32 <= len(token) <= 64 else secrets.token_urlsafe(32)

    def set_login_cookie(self, response: Response, token: str) -> None:
        """The sign-in form's double-submit cookie."""
        response.set_cookie(LOGIN_COOKIE, token, path=f"{PREFIX}/login", httponly=True, secure=self.cookie_secure,
                            samesite="strict")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each), each cut to a bounded length."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0][:_MAX_FIELD] for k, v in parse_qs(body, keep_blank_values=True).items()}


def bind_console(context: ConsoleContext) -> Callable[[Request], None]:
    """The router-wide dependency that hands `context` to this request's pages."""

    def bind(request: Request) -> None:
        request.state.aqnet_console = context

    return bind


def console_context(request: Request) -> ConsoleContext:
    """The context `bind_console` bound to this request."""
    context: ConsoleContext = request.state.aqnet_console
    return context
