"""`aqnet tokens create | list | revoke` against a real database: the secret is printed once and works."""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner
from psycopg import AsyncConnection

from aqnet.cli import cli
from storage.tokens import authenticate


def _auth(url: str, secret: str):
    async def go():
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            return await authenticate(conn, secret)

    return asyncio.run(go())


def test_create_list_revoke(database_url: str) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["tokens", "create", "--role", "technician", "--name", "field tablet 3",
                               "--actor", "ana", "--json", "--url", database_url])
    assert made.exit_code == 0, made.output
    doc = json.loads(made.stdout)
    assert doc["role"] == "technician" and doc["created_by"] == "ana" and doc["token"].startswith("aqn_")
    token = _auth(database_url, doc["token"])
    assert token is not None and token.name == "field tablet 3"

    plain = runner.invoke(cli, ["tokens", "create", "--role", "reader", "--name", "open data portal",
                                "--url", database_url])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.splitlines()[1].startswith("aqn_") and "not shown again" in plain.stderr

    table = runner.invoke(cli, ["tokens", "list", "--url", database_url])
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "ROLE"] and len(lines) == 3
    assert doc["token"] not in table.stdout
    assert lines[1].index("technician") == lines[2].index("reader")  # aligned columns

    revoked = runner.invoke(cli, ["tokens", "revoke", str(doc["id"]), "--url", database_url])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    assert _auth(database_url, doc["token"]) is None
    twice = runner.invoke(cli, ["tokens", "revoke", str(doc["id"]), "--url", database_url])
    assert twice.exit_code == 1 and "already revoked" in twice.output
    listed = json.loads(runner.invoke(cli, ["tokens", "list", "--all", "--json", "--url", database_url]).stdout)
    assert [(t["role"], t["revoked_at"] is not None) for t in listed] == [("technician", True), ("reader", False)]


def test_bad_role_and_unreachable_database() -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["tokens", "create", "--role", "admin", "--name", "x", "--url", "postgresql://x"])
    assert bad.exit_code == 2 and "admin" in bad.output
    down = runner.invoke(cli, ["tokens", "list", "--url", "postgresql://aqnet@127.0.0.1:1/aqnet?connect_timeout=2"])
    assert down.exit_code == 1 and "cannot connect" in down.output
