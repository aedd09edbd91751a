"""`aqnet users add | list | disable | reset-password`: the web console's people (storage.users). Shell (click);
I/O. Parses, calls `storage.users`, renders a table or `--json`, sets the exit code (1 on a refused operation or
an unreachable database).

The database is `--url`, else the `--config` file's `database.url`, else the running local stack's, as for
`aqnet tokens`. A password is asked twice at the terminal (never echoed), or read from the first line of
`--password-file` (`-`: standard input) for scripts; `--generate` makes a random one and prints it once.
"""

from __future__ import annotations

import getpass
import json
import secrets
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from psycopg import AsyncConnection

from aqnet.cli.db_context import run_in_database
from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from storage.users import USER_ROLES, User, UserError, add_user, disable_user, list_users, reset_password

__all__ = ["users"]

T = TypeVar("T")
_db_options = database_options("YAML settings file whose database.url to use")


def _run(url: str, work: Callable[[AsyncConnection[Any]], Coroutine[Any, Any, T]]) -> T:
    return run_in_database(url, work, table="console_users", refusals=(UserError,))


def _password(password_file: str | None, generate: bool) -> tuple[str, bool]:
    """(the password, whether it was generated)."""
    if generate:
        return secrets.token_urlsafe(18), True
    if password_file is not None:
        stdin = password_file == "-"  # noqa: S105 (the name of standard input, not a password)
        stream = sys.stdin if stdin else Path(password_file).open(encoding="utf-8")  # noqa: SIM115
        with stream:
            return stream.readline().rstrip("\r\n"), False
    first = click.prompt("password", hide_input=True)
    if click.prompt("again", hide_input=True) != first:
        raise click.ClickException("the two passwords differ; nothing changed")
    return first, False


def _table(rows: list[User]) -> str:
    now = datetime.now(UTC)

    def status(u: User) -> str:
        if u.disabled_at is not None:
            return f"disabled {u.disabled_at:%Y-%m-%d %H:%M}"
        if u.locked(now):
            return f"locked until {u.locked_until:%Y-%m-%d %H:%M}" if u.locked_until.year < 9999 else "locked"  # type: ignore[union-attr]
        return "active"

    return render_table(("ID", "USER", "ROLE", "STATUS", "FAILURES", "LAST SIGN-IN", "CREATED BY"),
                        [(str(u.id), u.username, u.role, status(u), str(u.failed_logins),
                          u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never", u.created_by)
                         for u in rows])


_password_options = [
    click.option("--password-file", default=None, metavar="FILE",
                 help="read the password from the first line of FILE (- for standard input)"),
    click.option("--generate", is_flag=True, help="generate a random password and print it once"),
]


def _with_password(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_password_options):
        f = option(f)
    return f


@click.group()
def users() -> None:
    """People who sign in to the web console (roles: technician, officer, reader, admin)."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(USER_ROLES), required=True,
              help="technician: sensors; officer: alerts; reader: read only; admin: the users")
@_with_password
@click.option("--actor", default=None, help="who adds the user (default: the OS user name)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_db_options
def add_command(username: str, role: str, password_file: str | None, generate: bool, actor: str | None,
                as_json: bool, url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """Add a user with a role and a password (at least 12 characters)."""
    db = database_target(url, config_path, var_dir).url
    password, generated = _password(password_file, generate)
    user = _run(db, lambda conn: add_user(conn, username=username, role=role, password=password,
                                          created_by=actor or getpass.getuser()))
    if as_json:
        click.echo(json.dumps({**user.as_dict(), **({"password": password} if generated else {})}, indent=2))
        return
    click.echo(f"user {user.username} ({user.role}) added")
    if generated:
        click.echo(password)
        click.echo("give it to them now: it is not shown again.", err=True)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_db_options
def list_command(as_json: bool, url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """Every user, with role, status (active, locked, disabled) and last sign-in (never a password)."""
    rows = _run(database_target(url, config_path, var_dir).url, list_users)
    if as_json:
        click.echo(json.dumps([u.as_dict() for u in rows], indent=2))
    elif rows:
        click.echo(_table(rows))
    else:
        click.echo("no users; add one with `aqnet users add NAME --role admin`")


@users.command("disable")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_db_options
def disable_command(username: str, as_json: bool, url: str | None, config_path: Path | None,
                    var_dir: Path) -> None:
    """Disable a user at once: their sessions end and they cannot sign in (the account is kept)."""
    user = _run(database_target(url, config_path, var_dir).url, lambda conn: disable_user(conn, username))
    click.echo(json.dumps(user.as_dict(), indent=2) if as_json else f"user {user.username} disabled")


@users.command("reset-password")
@click.argument("username")
@_with_password
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_db_options
def reset_command(username: str, password_file: str | None, generate: bool, as_json: bool, url: str | None,
                  config_path: Path | None, var_dir: Path) -> None:
    """Set a new password, unlock the account and end its sessions."""
    db = database_target(url, config_path, var_dir).url
    password, generated = _password(password_file, generate)
    user = _run(db, lambda conn: reset_password(conn, username, password))
    if as_json:
        click.echo(json.dumps({**user.as_dict(), **({"password": password} if generated else {})}, indent=2))
        return
    click.echo(f"user {user.username}: password reset, unlocked")
    if generated:
        click.echo(password)
