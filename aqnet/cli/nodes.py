"""`aqnet nodes`: the nodes sharing this database, the partitions and link groups each holds, lease ages, and which
node leads the scheduler. Shell (click): parses, reads `storage.nodes.store`, renders a table or `--json`.
Read only. See docs/operators/nodes.md."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg import AsyncConnection

from alerts.leader import JOBS_LOCK_KEY
from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from storage.nodes import store

__all__ = ["nodes_command", "nodes_report"]


async def _read(url: str) -> dict[str, Any]:
    async with await AsyncConnection.connect(url, autocommit=True, application_name="aqnet-cli") as conn:
        members = await store.list_members(conn)
        leases = await store.list_leases(conn)
        leader = await store.lock_holder(conn, JOBS_LOCK_KEY)
    return nodes_report(members, leases, leader)


def nodes_report(members: list[store.Member], leases: list[store.Lease], leader: str | None) -> dict[str, Any]:
    """The `--json` document: nodes (with what each holds) and every lease."""
    prefix = "aqnet-leader "
    leader_node = leader[len(prefix):] if leader and leader.startswith(prefix) else None
    nodes = []
    for m in members:
        held = [x for x in leases if x.owner == m.node_id and x.live]
        nodes.append({"node": m.node_id, "host": m.host, "pid": m.pid, "live": m.live,
                      "started_at": m.started_at.isoformat(), "seen_at": m.seen_at.isoformat(),
                      "leader": m.node_id == leader_node,
                      "partitions": [x.key for x in held if x.kind == "partition"],
                      "stations": [x.key for x in held if x.kind == "station"]})
    return {"leader": leader_node if leader_node is not None else leader, "nodes": nodes, "leases": [
        {"kind": x.kind, "key": x.key, "owner": x.owner if x.live else None, "last_owner": x.owner,
         "epoch": x.epoch, "live": x.live, "age_s": round(x.age_s, 1), "acquired_at": x.acquired_at.isoformat(),
         "expires_at": x.expires_at.isoformat()} for x in leases]}


def render(report: dict[str, Any]) -> str:
    """Two tables: the nodes, then the leases."""
    nodes = render_table(
        ["node", "host", "pid", "live", "leader", "partitions", "link groups"],
        [[n["node"], n["host"], n["pid"], "yes" if n["live"] else "no", "yes" if n["leader"] else "",
          len(n["partitions"]), len(n["stations"])] for n in report["nodes"]])
    leases = render_table(
        ["kind", "key", "holder", "epoch", "held for"],
        [[x["kind"], x["key"], x["owner"] or f"(free; last {x['last_owner'] or '-'})", x["epoch"],
          f"{x['age_s']:.0f} s" if x["live"] else "-"] for x in report["leases"]])
    return f"{nodes}\n\n{leases}"


@click.command("nodes")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@database_options("settings file whose database to use")
def nodes_command(as_json: bool, url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """The nodes sharing this database: their partitions and link groups, lease ages, the scheduler's leader."""
    target = database_target(url, config_path, var_dir, stack_config=True)
    try:
        report = asyncio.run(_read(target.url))
    except psycopg.OperationalError as exc:
        raise click.ClickException(f"cannot reach the database: {exc}") from None
    except psycopg.errors.UndefinedTable:
        raise click.ClickException("the database has no node tables: run `aqnet db migrate`") from None
    if not report["nodes"] and not report["leases"]:
        click.echo(json.dumps(report, indent=2) if as_json else "no nodes (nodes.enabled is off everywhere)")
        return
    click.echo(json.dumps(report, indent=2) if as_json else render(report))
