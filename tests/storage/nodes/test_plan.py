"""storage.nodes.plan: partitions of sensors, fair share, and convergence of every node's rebalancing step."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.nodes.plan import LeasePlan, as_seen_by, fair_share, partition_keys, partition_of, plan_leases


def test_partition_of_is_stable_and_in_range() -> None:
    assert partition_of("KEN", 8) == partition_of("KEN", 8)
    assert {partition_of(f"MS{i:03d}", 8) for i in range(200)} == set(range(8))  # every partition gets sensors
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        partition_of("KEN", 0)
    with pytest.raises(ValueError, match="sensor_id"):
        partition_of("", 4)


def test_partition_keys_are_session_client_ids() -> None:
    assert partition_keys("aqnet-daemon", 3) == ["aqnet-daemon-p0", "aqnet-daemon-p1", "aqnet-daemon-p2"]


def test_fair_share() -> None:
    assert fair_share(8, 3) == 3
    assert fair_share(8, 1) == 8
    assert fair_share(0, 2) == 0
    with pytest.raises(ValueError):
        fair_share(8, 0)


def test_a_lone_node_takes_every_free_key() -> None:
    plan = plan_leases("a", ["k0", "k1", "k2"], {}, {"a"})
    assert sorted(plan.take) == ["k0", "k1", "k2"] and plan.release == ()


def test_a_node_over_its_share_gives_up_its_surplus() -> None:
    keys = [f"k{i}" for i in range(8)]
    plan = plan_leases("a", keys, dict.fromkeys(keys, "a"), {"a", "b"})  # b joined
    assert len(plan.release) == 4 and plan.take == ()


def test_a_key_held_by_a_dead_node_is_not_taken_before_its_lease_lapses() -> None:
    keys = ["k0", "k1"]
    plan = plan_leases("a", keys, {"k0": "a", "k1": "b"}, {"a"})  # b no longer live, its lease not lapsed
    assert plan.take == () and plan.release == ()
    assert plan_leases("a", keys, {"k0": "a", "k1": None}, {"a"}).take == ("k1",)


def test_keys_that_went_away_are_released() -> None:
    assert plan_leases("a", ["k0"], {"k0": "a", "old": "a"}, {"a"}).release == ("old",)


def test_a_node_started_again_under_its_id_waits_for_its_earlier_runs_leases() -> None:
    seen = as_seen_by("a", {"k0": "a", "k1": "a", "k2": None}, running={"k1"})
    assert seen == {"k0": "a (earlier run)", "k1": "a", "k2": None}
    plan = plan_leases("a", ["k0", "k1", "k2"], seen, {"a"})
    assert plan.take == ("k2",) and plan.release == ()  # k0 only once it lapses


def test_plan_refuses_a_key_both_taken_and_released() -> None:
    with pytest.raises(ValueError, match="both taken and released"):
        LeasePlan(take=("k",), release=("k",))


def _apply(me: str, keys: list[str], holders: dict[str, str | None], nodes: set[str]) -> None:
    """What the database does with a plan: a take succeeds only on a free key."""
    plan = plan_leases(me, keys, holders, nodes)
    share = fair_share(len(keys), len(nodes | {me}))
    assert not any(holders.get(k) not in (None, me) for k in plan.take), "took a key another node holds"
    held_after = sum(1 for k in keys if holders.get(k) == me) + len(plan.take) - len(plan.release)
    assert len(plan.take) == 0 or held_after <= share, "took beyond its fair share"
    for k in plan.release:
        assert holders.get(k) == me, "released a key it does not hold"
        holders[k] = None
    for k in plan.take:
        holders[k] = me


@settings(max_examples=300, deadline=None)
@given(n_keys=st.integers(1, 16), events=st.lists(st.tuples(st.sampled_from(["plan", "join", "die", "lapse"]),
                                                            st.integers(0, 5)), max_size=60))
def test_every_key_finds_one_holder_and_no_node_exceeds_its_share(n_keys: int,
                                                                   events: list[tuple[str, int]]) -> None:
    keys = [f"k{i}" for i in range(n_keys)]
    holders: dict[str, str | None] = {}
    live = {"n0"}
    for kind, i in events:  # a random history of plans, joins, deaths and lapsed leases
        node = f"n{i}"
        if kind == "join":
            live.add(node)
        elif kind == "die" and len(live) > 1:
            live.discard(node)
        elif kind == "lapse":  # the leases of dead nodes lapse
            for k, owner in holders.items():
                if owner is not None and owner not in live:
                    holders[k] = None
        elif kind == "plan" and node in live:
            _apply(node, keys, holders, live)
    for k, owner in holders.items():  # then membership holds still: lapse the dead, plan round after round
        if owner not in live:
            holders[k] = None
    for _ in range(3):
        for node in sorted(live):
            _apply(node, keys, holders, live)
    share = fair_share(n_keys, len(live))
    assert all(holders.get(k) in live for k in keys), holders
    for node in live:
        assert sum(1 for k in keys if holders[k] == node) <= share
