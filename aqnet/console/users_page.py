"""The web console's user list for admins: who may sign in, with which role, and whether they are disabled or
locked out. Shell (aqnet.console) over `storage.users`; I/O. Adding, disabling and resetting users is
`aqnet users …` on the server (a password never travels through a page here).
"""

# no `from __future__ import annotations`: FastAPI reads the endpoints' annotations
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aqnet.console.context import ConsoleContext, console_context
from aqnet.http.roles import ADMIN
from storage.users import list_users

__all__ = ["router"]

router = APIRouter()
Console = Annotated[ConsoleContext, Depends(console_context)]


@router.get("/users")
async def users_page(request: Request, ctx: Console) -> Response:
    """Every console account (admins only)."""
    session = await ctx.require(request, ADMIN)
    if isinstance(session, Response):
        return session
    async with ctx.db() as conn:
        users = await list_users(conn)
    return ctx.page("users.html", session, users=users, now=ctx.clock())
