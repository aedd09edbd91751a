"""The web console's doors: sign-in (with the lockout of storage.users), sign-out, the home page, and the
console's own static files (CSS and a little JavaScript, packaged with aqnet: nothing is fetched from elsewhere).
Shell (aqnet.console); I/O.

Contract: `POST /console/login` checks the double-submit token first (403, nothing counted without it), then
the address's recent failures (429 with Retry-After beyond `http.auth_failures_per_minute`, shared with the
listener's token checks: password spraying over many accounts is slowed too), then the password
(`storage.users.sign_in`): a wrong or unknown name answers one and the same "wrong" page (401), a locked account
the "locked" page (423); a right password opens a session, sets its cookie and redirects (303) to
`next` when it is a console path, else to the home page. `POST /console/logout` (CSRF-checked) ends the session.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
import hmac
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from aqnet.console.context import COOKIE, PREFIX, ConsoleContext, console_context, read_form
from aqnet.http.roles import OFFICER, READERS, permits
from storage.console_sessions import close_session, open_session
from storage.users import sign_in

__all__ = ["router"]

router = APIRouter()
Console = Annotated[ConsoleContext, Depends(console_context)]

#: the console's static files: name → media type (an allow-list: nothing else under static/ is served)
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


def _next(target: str) -> str:
    """`target` when it is a path of the console (no scheme, host or `//`), else the home page."""
    ok = target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target
    return target if ok else f"{PREFIX}/"


@router.get("/login")
async def login_page(request: Request, ctx: Console, next: str = "") -> Response:  # noqa: A002
    """The sign-in form."""
    token = ctx.login_token(request)
    response = ctx.page("login.html", None, login_csrf=token, next=_next(next), message="")
    ctx.set_login_cookie(response, token)
    return response


@router.post("/login")
async def login(request: Request, ctx: Console) -> Response:
    """Check the password (module docstring)."""
    form = await read_form(request)
    cookie = request.cookies.get("aqnet_login_csrf", "")
    sent = form.get("csrf", "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return ctx.error(None, 403, ctx.text()["csrf"])
    auth, client = ctx.auth, ctx.auth.client(request.scope)
    if auth.limiter.blocked(client, auth.clock()):
        auth.limited += 1
        wait_s = auth.limiter.retry_after(client, auth.clock())
        limited = ctx.page("login.html", None, status=429, login_csrf=cookie, next=_next(form.get("next", "")),
                           message=ctx.text()["too_many"].format(seconds=wait_s))
        limited.headers["Retry-After"] = str(wait_s)
        return limited
    now = ctx.clock()
    async with ctx.db() as conn:
        outcome = await sign_in(conn, form.get("username", "").strip().lower(), form.get("password", ""),
                                ctx.policy, now)
        if outcome.user is None:
            auth.failures += 1
            auth.limiter.failed(client, auth.clock())
            key = "locked" if outcome.refusal == "locked" else "wrong_password"
            return ctx.page("login.html", None, status=423 if key == "locked" else 401, login_csrf=cookie,
                            next=_next(form.get("next", "")), message=ctx.text()[key])
        secret, _ = await open_session(conn, outcome.user, ttl_s=ctx.session_ttl_s, now=now)
    response = RedirectResponse(_next(form.get("next", "")), status_code=303)
    ctx.set_session_cookie(response, secret)
    response.delete_cookie("aqnet_login_csrf", path=f"{PREFIX}/login")
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Console) -> Response:
    """End the session (CSRF-checked)."""
    got = await ctx.posted(request, READERS)
    if isinstance(got, Response):
        return got
    async with ctx.db() as conn:
        await close_session(conn, request.cookies.get(COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/")
async def home(request: Request, ctx: Console) -> Response:
    """The home page: where each role starts (officers: the alert inbox; the others: the sensors)."""
    session = await ctx.require(request, READERS)
    if isinstance(session, Response):
        return session
    if permits(session.user.role, OFFICER):
        return RedirectResponse(f"{PREFIX}/alerts", status_code=303)
    return RedirectResponse(f"{PREFIX}/sensors", status_code=303)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """One of the console's packaged static files (STATIC)."""
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    body = files("aqnet.console").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300",
                                                             "X-Content-Type-Options": "nosniff"})
