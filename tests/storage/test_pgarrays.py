"""storage.pgarrays: arrays built in binary form reach PostgreSQL as the values they were built from (exact floats,
NaN, extremes of int4, non-ASCII text, picked elements), and bad input is refused."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import pgarrays


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as c:
        pgarrays.register(c)
        yield c


@pytest.mark.integration
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(floats=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=30),
       ints=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=30), bools=st.lists(st.booleans(), max_size=30),
       texts=st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
                      min_size=1, max_size=8), data=st.data())
def test_arrays_arrive_as_built(conn, floats, ints, bools, texts, data) -> None:
    pick = data.draw(st.lists(st.integers(0, len(texts) - 1), max_size=20))
    elements = pgarrays.text_elements(texts)
    got = conn.execute("SELECT %b, %b, %b, %b, %b", (
        pgarrays.float8_array(np.array(floats, dtype=float)), pgarrays.int4_array(ints), pgarrays.bool_array(bools),
        pgarrays.text_array(elements), pgarrays.text_array(elements, pick))).fetchone()
    assert got is not None
    assert len(got[0]) == len(floats)
    assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(got[0], floats, strict=True))
    assert got[1:] == (ints, bools, texts, [texts[i] for i in pick])
    (typed,) = conn.execute("SELECT pg_typeof(%b)::text", (pgarrays.float8_array([1.5]),)).fetchone() or (None,)
    assert typed == "double precision[]"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="int4"):
        pgarrays.int4_array([2**31])
    dumper = pgarrays._DUMPERS["int4"](pgarrays.PgArray)
    with pytest.raises(TypeError, match="int4"):
        dumper.dump(pgarrays.float8_array([1.0]))
