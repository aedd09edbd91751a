"""The `nodes` section: off by default, its lease timings checked, and one process per node."""

from __future__ import annotations

import pytest

from aqnet.config import ConfigError, settings_from_dict

MINIMAL = {"database": {"url": "postgresql://aqnet@127.0.0.1:1/aqnet"}, "mqtt": {"url": "mqtt://127.0.0.1:1"}}


def test_nodes_are_off_by_default_and_a_node_id_defaults_to_host_and_pid() -> None:
    s = settings_from_dict(MINIMAL)
    assert s.nodes.enabled is False
    assert s.nodes.resolved_node_id().rsplit("-", 1)[1].isdigit()
    on = settings_from_dict({**MINIMAL, "nodes": {"enabled": True, "node_id": "aq-1", "lease_ttl_s": 9,
                                                  "lease_renew_s": 3}})
    assert on.nodes.resolved_node_id() == "aq-1"
    assert on.nodes.fence_after_s() == 6


@pytest.mark.parametrize(("section", "message"), [
    ({"lease_ttl_s": 5, "lease_renew_s": 2}, "nodes.lease_renew_s: expected at most lease_ttl_s / 3"),
    ({"node_id": "has space"}, "nodes.node_id"),
    ({"partitions": 0}, "nodes.partitions"),
])
def test_bad_nodes_settings_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_dict({**MINIMAL, "nodes": section})


def test_a_node_runs_one_process() -> None:
    with pytest.raises(ConfigError, match="nodes.enabled: expected ingest.processes 1 on each node, got 2"):
        settings_from_dict({**MINIMAL, "nodes": {"enabled": True}, "ingest": {"processes": 2}})
