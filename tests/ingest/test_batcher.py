"""ingest.batcher: size-or-age batching on an injected clock; nothing lost, nothing duplicated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.batcher import Batcher

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_full_batch_returned_by_add() -> None:
    b: Batcher[int] = Batcher(max_size=3, max_age_s=10)
    assert b.add(1, at(0)) is None
    assert b.add(2, at(1)) is None
    assert len(b) == 2
    assert b.add(3, at(2)) == [1, 2, 3]
    assert len(b) == 0
    assert b.deadline() is None


def test_due_after_max_age_of_oldest_item() -> None:
    b: Batcher[str] = Batcher(max_size=100, max_age_s=5)
    assert b.due(at(0)) is None  # nothing pending
    b.add("a", at(0))
    b.add("b", at(4))
    assert b.deadline() == at(5)
    assert b.due(at(4.9)) is None
    assert b.due(at(5)) == ["a", "b"]
    assert b.due(at(100)) is None
    b.add("c", at(100))
    assert b.deadline() == at(105)  # the age restarts with the next batch


def test_drain_releases_everything() -> None:
    b: Batcher[int] = Batcher(max_size=10, max_age_s=60)
    assert b.drain() == []
    for i in range(4):
        b.add(i, at(i))
    assert b.drain() == [0, 1, 2, 3]
    assert len(b) == 0


def test_size_one_and_age_zero() -> None:
    assert Batcher[int](max_size=1, max_age_s=60).add(7, at(0)) == [7]
    b: Batcher[int] = Batcher(max_size=10, max_age_s=0)
    b.add(1, at(0))
    assert b.due(at(0)) == [1]


@pytest.mark.parametrize(("size", "age"), [(0, 1), (-1, 1), (1, -0.1), (1, float("nan")), (1, float("inf"))])
def test_invalid_parameters(size: int, age: float) -> None:
    with pytest.raises(ValueError):
        Batcher(max_size=size, max_age_s=age)


_OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.floats(min_value=0, max_value=30)),
    st.tuples(st.just("due"), st.floats(min_value=0, max_value=30)),
    st.tuples(st.just("drain"), st.just(0.0)),
), max_size=200)


@given(max_size=st.integers(min_value=1, max_value=20), max_age_s=st.floats(min_value=0, max_value=60),
       ops=_OPS)
def test_no_item_lost_or_duplicated(max_size: int, max_age_s: float, ops: list[tuple[str, float]]) -> None:
    b: Batcher[int] = Batcher(max_size=max_size, max_age_s=max_age_s)
    now, added, out = 0.0, [], []
    for op, step in ops:
        now += step  # time never goes backwards
        if op == "add":
            item = len(added)
            added.append(item)
            batch = b.add(item, at(now))
        elif op == "due":
            batch = b.due(at(now))
        else:
            batch = b.drain()
        if batch is not None:
            assert len(batch) <= max_size
            if op == "due":
                assert batch, "due never returns an empty batch"
            out.extend(batch)
        assert len(b) < max_size
        assert len(b) + len(out) == len(added)
    out.extend(b.drain())
    assert out == added  # in order, each exactly once


@given(max_size=st.integers(min_value=1, max_value=50), sizes=st.lists(st.integers(min_value=1, max_value=30),
                                                                         max_size=100))
def test_sized_items_release_a_batch_once_their_sizes_reach_max_size(max_size: int, sizes: list[int]) -> None:
    """An item counts its size (the pipeline's groups of submissions count their messages): `add` releases the
    batch on the item that brings the sum to `max_size` or past it, never earlier, and loses nothing."""
    b: Batcher[int] = Batcher(max_size=max_size, max_age_s=60)
    out: list[int] = []
    for i, size in enumerate(sizes):
        before = b.size
        batch = b.add(i, at(0), size)
        if before + size >= max_size:
            assert batch is not None and batch[-1] == i and sum(sizes[j] for j in batch) == before + size
            assert b.size == 0 and len(b) == 0
            out.extend(batch)
        else:
            assert batch is None and b.size == before + size
    out.extend(b.drain())
    assert out == list(range(len(sizes)))


def test_an_item_of_size_below_one_is_refused() -> None:
    b: Batcher[int] = Batcher(max_size=3, max_age_s=1)
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        b.add(1, at(0), 0)
