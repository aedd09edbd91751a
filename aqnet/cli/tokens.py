"""`aqnet tokens create | list | revoke`: the HTTP API's bearer tokens. Shell (click); I/O. Parses, calls
`storage.tokens`, renders a table or `--json`, sets the exit code (1 on a refused operation or an unreachable
database).

The database is `--url`, else the `--config` file's `database.url`, else the running local stack's
(`var/state.json`), as for `aqnet db migrate`. `create` prints the secret once: only its hash is stored.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from psycopg import AsyncConnection

from aqnet.cli.db_context import run_in_database
from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from storage.tokens import ROLES, ApiToken, TokenError, create_token, list_tokens, revoke_token

__all__ = ["tokens"]

T = TypeVar("T")


def _run(url: str, work: Callable[[AsyncConnection[Any]], Coroutine[Any, Any, T]]) -> T:
    return run_in_database(url, work, table="api_tokens", refusals=(TokenError,))


def _as_dict(token: ApiToken) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "role": token.role, "created_at": token.created_at.isoformat(),
            "created_by": token.created_by,
            "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None}


def _table(rows: list[ApiToken]) -> str:
    return render_table(("ID", "NAME", "ROLE", "CREATED", "BY", "LAST USED", "REVOKED"),
                        [(str(t.id), t.name, t.role, t.created_at.strftime("%Y-%m-%d %H:%M"), t.created_by,
                          t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else "never",
                          t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else "") for t in rows])


_db_options = database_options("YAML settings file whose database.url to use")


@click.group()
def tokens() -> None:
    """Bearer tokens of the HTTP API (roles: technician, officer, reader)."""


@tokens.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="technician: registry and maintenance; officer: alerts; reader: read only")
@click.option("--name", required=True, help="who or what uses the token (shown as the actor in the audit log)")
@click.option("--actor", default=None, help="who issues it (default: the OS user name)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_db_options
def create_command(role: str, name: str, actor: str | None, as_json: bool, url: str | None,
                   config_path: Path | None, var_dir: Path) -> None:
    """Issue a token and print its secret ONCE (only its hash is stored)."""
    db = database_target(url, config_path, var_dir).url
    issued = _run(db, lambda conn: create_token(conn, name=name, role=role, created_by=actor or getpass.getuser()))
    if as_json:
        click.echo(json.dumps({**_as_dict(issued.token), "token": issued.secret}, indent=2))
        return
    click.echo(f"token {issued.token.id} ({issued.token.role}, {issued.token.name}):")
    click.echo(issued.secret)
    click.echo("store it now: it is not shown again. Send it as `Authorization: Bearer <token>`.", err=True)


@tokens.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="include revoked tokens")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_db_options
def list_command(include_revoked: bool, as_json: bool, url: str | None, config_path: Path | None,
                 var_dir: Path) -> None:
    """The tokens issued (never their secrets)."""
    rows = _run(database_target(url, config_path, var_dir).url,
                lambda conn: list_tokens(conn, include_revoked=include_revoked))
    if as_json:
        click.echo(json.dumps([_as_dict(t) for t in rows], indent=2))
    elif rows:
        click.echo(_table(rows))
    else:
        click.echo("no tokens; issue one with `aqnet tokens create --role reader --name NAME`")


@tokens.command("revoke")
@click.argument("token_id", type=click.IntRange(min=1), metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_db_options
def revoke_command(token_id: int, as_json: bool, url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """Revoke a token at once (it is kept, listed with --all)."""
    token = _run(database_target(url, config_path, var_dir).url, lambda conn: revoke_token(conn, token_id))
    if as_json:
        click.echo(json.dumps(_as_dict(token), indent=2))
    else:
        click.echo(f"token {token.id} ({token.role}, {token.name}) revoked")
