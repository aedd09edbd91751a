"""One-dimensional PostgreSQL arrays built in binary form at once — from numpy arrays or from text — for bulk query
parameters (``unnest(%(x)b)``): psycopg dumps a Python list element by element (its text format even checks every
string for quoting), which for tens of thousands of values costs more than the statement that uses them. I/O-free;
`register` teaches a cursor to send them.

The binary array format (PostgreSQL ``array_send``): dimensions (1), a has-nulls flag, the element type's OID, the
length and lower bound (1), then every element as a 4-byte length and its binary value (``float8send``,
``int4send``, ``boolsend``, the UTF-8 bytes of a text). Only a text element may be NULL (length -1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from operator import itemgetter

import numpy as np
import psycopg
from psycopg.abc import DumperKey
from psycopg.adapt import Dumper, PyFormat
from psycopg.pq import Format

__all__ = ["PgArray", "bool_array", "float8_array", "int4_array", "register", "text_array", "text_elements"]

_NULL = struct.pack(">i", -1)  #: a NULL element (array_recv sets the array's null bitmap from it)
#: element type → (element OID, array OID) (pg_type)
_OIDS = {"float8": (701, 1022), "int4": (23, 1007), "bool": (16, 1000), "text": (25, 1009)}


class PgArray:
    """An array parameter in PostgreSQL's binary form."""

    __slots__ = ("data", "element")

    def __init__(self, element: str, data: bytes) -> None:
        self.element = element  #: 'float8', 'int4', 'bool' or 'text'
        self.data = data  #: the whole binary array


def _array(element: str, n: int, body: bytes) -> PgArray:
    return PgArray(element, struct.pack(">iiIii", 1, 0, _OIDS[element][0], n, 1) + body)


def _fixed(element: str, values: np.ndarray, dtype: str, size: int) -> PgArray:
    items = np.empty(values.shape[0], dtype=[("n", ">i4"), ("v", dtype)])
    items["n"] = size
    items["v"] = values
    return _array(element, values.shape[0], items.tobytes())


def float8_array(values: np.ndarray | Sequence[float]) -> PgArray:
    """float8[] of `values` (NaN stays NaN, not NULL)."""
    return _fixed("float8", np.asarray(values, dtype=float).ravel(), ">f8", 8)


def int4_array(values: np.ndarray | Sequence[int]) -> PgArray:
    """int4[] of `values` (they must fit in 32 bits)."""
    v = np.asarray(values, dtype=np.int64).ravel()
    if v.size and (v.min() < -(2**31) or v.max() >= 2**31):
        raise ValueError(f"int4_array: values {v.min()}..{v.max()} do not fit in int4")
    return _fixed("int4", v, ">i4", 4)


def bool_array(values: np.ndarray | Sequence[bool]) -> PgArray:
    """bool[] of `values`."""
    return _fixed("bool", np.asarray(values, dtype=bool).ravel().astype(np.uint8), "u1", 1)


def text_elements(strings: Iterable[str | None]) -> list[bytes]:
    """Each string as one encoded array element (length and UTF-8 bytes; None a NULL), for `text_array`."""
    out = []
    for s in strings:
        if s is None:
            out.append(_NULL)
            continue
        b = s.encode()
        out.append(struct.pack(">i", len(b)) + b)
    return out


def text_array(elements: Sequence[bytes], pick: np.ndarray | Sequence[int] | None = None) -> PgArray:
    """text[] of the encoded `elements` (`text_elements`), or of ``elements[i]`` for each i in `pick`."""
    if pick is None:
        return _array("text", len(elements), b"".join(elements))
    idx = np.asarray(pick, dtype=np.int64).ravel().tolist()
    if len(idx) < 2:  # itemgetter of one index returns the element itself, not a tuple
        return _array("text", len(idx), b"".join([elements[i] for i in idx]))
    return _array("text", len(idx), b"".join(itemgetter(*idx)(elements)))


def _dumper(element: str) -> type[Dumper]:
    class _ArrayDumper(Dumper):
        format = Format.BINARY
        oid = _OIDS[element][1]

        def dump(self, obj: PgArray) -> bytes:
            if obj.element != element:
                raise TypeError(f"expected a {element}[] PgArray, got {obj.element}[]")
            return obj.data

    return _ArrayDumper


_DUMPERS = {element: _dumper(element) for element in _OIDS}


class _PgArrayDumper(Dumper):
    """Dispatches on the element type (`upgrade`), so one registration serves every `PgArray`."""

    format = Format.BINARY

    def dump(self, obj: PgArray) -> bytes:  # pragma: no cover - upgrade always hands over to an element dumper
        return obj.data

    def get_key(self, obj: PgArray, format: PyFormat) -> DumperKey:  # noqa: A002 - psycopg's name
        return (PgArray, _DUMPERS[obj.element])

    def upgrade(self, obj: PgArray, format: PyFormat) -> Dumper:  # noqa: A002 - psycopg's name
        return _DUMPERS[obj.element](PgArray)


def register(context: psycopg.Cursor[object] | psycopg.Connection[object]) -> None:
    """Let `context` (a cursor or a connection) send `PgArray` parameters."""
    context.adapters.register_dumper(PgArray, _PgArrayDumper)
