"""`aqnet nodes` through click's CliRunner against a real TimescaleDB: nodes, their leases, the scheduler's leader."""

from __future__ import annotations

import asyncio
import json

import psycopg
from click.testing import CliRunner
from psycopg import AsyncConnection

from alerts.leader import JOBS_LOCK_KEY
from aqnet.cli.root import cli
from storage.nodes import store


async def _seed(url: str) -> None:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        for node, pid in (("aq-1", 11), ("aq-2", 12)):
            await store.heartbeat(conn, node, host="h", pid=pid, ttl_s=60)
        await store.heartbeat(conn, "aq-gone", host="h", pid=13, ttl_s=0.001)
        await store.take(conn, "aq-1", "partition", "aqnet-p0", ttl_s=60)
        await store.take(conn, "aq-2", "partition", "aqnet-p1", ttl_s=60)
        await store.take(conn, "aq-1", "station", "tcp:127.0.0.1:5020", ttl_s=60)
        await store.take(conn, "aq-gone", "partition", "aqnet-p2", ttl_s=0.001)


def test_nodes_lists_each_node_with_its_leases_and_the_leader(database_url: str) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli, ["nodes", "--url", database_url])
    assert empty.exit_code == 0 and "no nodes" in empty.output
    asyncio.run(_seed(database_url))
    with psycopg.connect(database_url, autocommit=True, application_name="aqnet-leader aq-2") as leader:
        assert leader.execute("SELECT pg_try_advisory_lock(%s)", (JOBS_LOCK_KEY,)).fetchone() == (True,)
        done = runner.invoke(cli, ["nodes", "--url", database_url, "--json"])
        table = runner.invoke(cli, ["nodes", "--url", database_url])
    assert done.exit_code == 0, done.output
    doc = json.loads(done.output)
    nodes = {n["node"]: n for n in doc["nodes"]}
    assert doc["leader"] == "aq-2" and nodes["aq-2"]["leader"] and not nodes["aq-1"]["leader"]
    assert nodes["aq-1"]["partitions"] == ["aqnet-p0"] and nodes["aq-1"]["stations"] == ["tcp:127.0.0.1:5020"]
    assert nodes["aq-gone"]["live"] is False and nodes["aq-gone"]["partitions"] == []
    lapsed = next(x for x in doc["leases"] if x["key"] == "aqnet-p2")
    assert lapsed["owner"] is None and lapsed["last_owner"] == "aq-gone" and lapsed["live"] is False
    assert table.exit_code == 0, table.output
    assert "(free; last aq-gone)" in table.output and "aq-1" in table.output.splitlines()[1]
