"""The database context of the CLI's database commands (`aqnet alerts`, `aqnet validation`): where the database
is, how to print, how a refusal ends the command. Shell (click); I/O.

`run(work)` opens an autocommit connection, awaits `work(conn)` and closes it; a refusal of one of the
`refusals` types (errors with `code` and `message`) exits 1 with `{"error": {"code", "message"}}` under `--json`
or the message otherwise; an unreachable database exits 1 naming it (password redacted).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, Protocol, TypeVar

import click
import psycopg
from psycopg import AsyncConnection

from sensors.redact import redact

__all__ = ["DbContext", "Refusal", "run_in_database"]

T = TypeVar("T")


class Refusal(Protocol):
    """An error a command reports as refused: a short code and a sentence."""

    code: str
    message: str


class DbContext:
    """`url` and `as_json`, with `fail`, `run` and `echo` (see the module docstring)."""

    url: str
    as_json: bool
    #: the exception types `run` reports as refusals (each has `code` and `message`)
    refusals: tuple[type[Exception], ...] = ()

    def fail(self, code: str, message: str) -> NoReturn:
        """Exit 1: the error as JSON under `--json`, else click's message."""
        if self.as_json:
            click.echo(json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False, indent=2))
            sys.exit(1)
        raise click.ClickException(message)

    def run(self, work: Callable[[AsyncConnection[Any]], Coroutine[Any, Any, T]]) -> T:
        """Run `work` on a fresh autocommit connection; refusals and an unreachable database exit 1."""
        try:
            return asyncio.run(_on_connection(self.url, work))
        except self.refusals as exc:
            refusal: Any = exc
            self.fail(refusal.code, refusal.message)
        except psycopg.OperationalError as exc:
            raise click.ClickException(redact(f"cannot use the database at {self.url}: {exc}")) from None

    def echo(self, data: Any, text: str) -> None:
        """`data` as JSON under `--json`, else `text`."""
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str) if self.as_json else text)


def run_in_database(url: str, work: Callable[[AsyncConnection[Any]], Coroutine[Any, Any, T]], *, table: str,
                    refusals: tuple[type[Exception], ...] = ()) -> T:
    """Run `work` on a fresh autocommit connection to `url`; an unreachable database, a missing `table` (not
    migrated) or a refusal (an error with `message`) ends the command with its message (exit 1)."""
    try:
        return asyncio.run(_on_connection(url, work))
    except psycopg.OperationalError as exc:
        raise click.ClickException(redact(f"cannot connect to {url}: {exc}")) from None
    except psycopg.errors.UndefinedTable:
        raise click.ClickException(redact(f"{url}: no {table} table; run `aqnet db migrate` first")) from None
    except refusals as exc:
        refusal: Any = exc
        raise click.ClickException(refusal.message) from None


async def _on_connection(url: str, work: Callable[[AsyncConnection[Any]], Coroutine[Any, Any, T]]) -> T:
    """`work` awaited on a fresh autocommit connection to `url`, closed after it."""
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        return await work(conn)
