"""The web console's user management for admins: who may sign in, with which role, whether they are disabled or
locked out; add a user, disable one, reset a password. Shell (aqnet.console) over `storage.users`; I/O.

Contract: admins only (ADMIN, aqnet.http.roles); every form CSRF-checked. A password set here is generated
(`secrets`, 24 URL-safe characters) and shown once on the answer page, never typed into a form; `aqnet users …`
does the same on the server. Disabling or resetting ends the user's sessions (storage.users). A refusal
(`UserError`: bad name or role, taken name, no such user) is the list again with its message (422), nothing
written. An admin cannot disable their own account here (so the console always keeps one).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aqnet.console.context import ConsoleContext, console_context
from aqnet.http.roles import ADMIN
from storage.users import USER_ROLES, UserError, add_user, disable_user, list_users, reset_password

__all__ = ["router"]

router = APIRouter()
Console = Annotated[ConsoleContext, Depends(console_context)]


async def _page(ctx: ConsoleContext, session: Any, *, status: int = 200, message: str = "",
                issued: tuple[str, str] | None = None) -> Response:
    async with ctx.db() as conn:
        users = await list_users(conn)
    return ctx.page("users.html", session, status=status, users=users, now=ctx.clock(), roles=USER_ROLES,
                    message=message, issued=issued)


@router.get("/users")
async def users_page(request: Request, ctx: Console) -> Response:
    """Every console account, and the forms to manage them (admins only)."""
    session = await ctx.require(request, ADMIN)
    if isinstance(session, Response):
        return session
    return await _page(ctx, session)


@router.post("/users")
async def manage_user(request: Request, ctx: Console) -> Response:
    """Add (`action=add`, username, role), disable (`action=disable`) or reset (`action=reset`) a user."""
    got = await ctx.posted(request, ADMIN)
    if isinstance(got, Response):
        return got
    session, form = got
    action, username = form.get("action", ""), form.get("username", "").strip().lower()
    password = secrets.token_urlsafe(18)
    if action not in ("add", "reset", "disable") or (action == "disable" and username == session.user.username):
        return await _page(ctx, session, status=422, message=f"user {username!r}: cannot {action or 'do that'} here")
    try:
        async with ctx.db() as conn:
            if action == "add":
                await add_user(conn, username=username, role=form.get("role", ""), password=password,
                               created_by=f"console:{session.user.username}")
            elif action == "reset":
                await reset_password(conn, username, password)
            else:
                await disable_user(conn, username)
                return await _page(ctx, session, message=f"{username}: {ctx.text()['disabled']}")
    except UserError as exc:
        return await _page(ctx, session, status=422, message=exc.message)
    return await _page(ctx, session, issued=(username, password))
