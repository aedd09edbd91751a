"""The Modbus register codec: registers ↔ number for every data type and byte/word order. Pure, no I/O.

Contract: `decode_value(registers, spec)` turns the 16-bit words of one value, in the order they arrived on
the wire, into `raw * spec.scale + spec.offset`; `encode_value(value, spec)` is its inverse (used by the
simulators); `status_word` and `status_flags` turn a status register (or a run of status bits) into flag
names.

Byte order is written in the letter notation of analyser datasheets and Telegraf: the letters name the bytes
of the big-endian value (A = most significant), in the order they arrive on the wire. So `ABCD` is big-endian
(Teledyne T-series "high word, low word"), `CDAB` has the words swapped (Thermo iSeries "least significant 16
bits first"), `BADC` has the bytes of each word swapped and `DCBA` is fully little-endian. The codec is one
table row per data type, never a branch per device. Values are never clamped: range checks belong to ingest's
QC.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "DATA_TYPES",
    "DEFAULT_ORDER",
    "DEVICE_STATUS_BITS",
    "ORDERS",
    "Codec",
    "DataType",
    "StatusBitSpec",
    "StatusSpec",
    "ValueSpec",
    "check_encoding",
    "compile_decoder",
    "decode_value",
    "device_status",
    "encode_value",
    "register_count",
    "status_flags",
    "status_word",
]

DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64"
]

#: data type → (struct format character, 16-bit registers per value); "bool" is one coil / discrete input
_STRUCT: dict[str, tuple[str, int]] = {
    "int16": ("h", 1),
    "uint16": ("H", 1),
    "float16": ("e", 1),
    "int32": ("i", 2),
    "uint32": ("I", 2),
    "float32": ("f", 2),
    "int64": ("q", 4),
    "uint64": ("Q", 4),
    "float64": ("d", 4),
}
DATA_TYPES: tuple[str, ...] = ("bool", *_STRUCT)

#: registers per value → the orders accepted for that width (the first is the default, big-endian)
ORDERS: dict[int, tuple[str, ...]] = {
    1: ("AB", "BA"),
    2: ("ABCD", "CDAB", "BADC", "DCBA"),
    4: ("ABCDEFGH", "HGFEDCBA", "GHEFCDAB", "BADCFEHG"),
}
DEFAULT_ORDER: dict[int, str] = {n: orders[0] for n, orders in ORDERS.items()}

#: Status flag name → the bit it sets in `sensors.reading.RawReading.device_status`. These values equal
#: ingest.reading.QC.DEVICE_INVALID and QC.MAINTENANCE (sensors may not import ingest; a test asserts that).
DEVICE_STATUS_BITS: dict[str, int] = {"device_invalid": 1 << 5, "maintenance": 1 << 6}


class ValueSpec(Protocol):
    """What the codec needs to know about one value (a profile variable satisfies it)."""

    @property
    def data_type(self) -> str: ...
    @property
    def order(self) -> str | None: ...
    @property
    def scale(self) -> float: ...
    @property
    def offset(self) -> float: ...


class StatusBitSpec(Protocol):
    """One named bit of a status register."""

    @property
    def name(self) -> str: ...
    @property
    def flag(self) -> str | None: ...
    @property
    def when(self) -> str: ...


class StatusSpec(Protocol):
    """A status register (one uint16 of a register table) or a run of status bits (coil / discrete_input)."""

    @property
    def table(self) -> str: ...
    @property
    def order(self) -> str | None: ...
    @property
    def bits(self) -> Mapping[int, StatusBitSpec]: ...


@dataclass(frozen=True, slots=True)
class Codec:
    """A stand-alone value encoding, e.g. `Codec("float32", "CDAB")`, `Codec("int16", scale=0.1)`."""

    data_type: str  #: one of DATA_TYPES
    order: str | None = None  #: letter order for the type's width; None = big-endian (AB, ABCD, ABCDEFGH)
    scale: float = 1.0  #: value = raw * scale + offset
    offset: float = 0.0

    def __post_init__(self) -> None:
        problem = check_encoding(self.data_type, self.order)
        if problem:
            raise ValueError(f"Codec: {problem}")
        if self.scale == 0:
            raise ValueError("Codec: scale: expected a non-zero number, got 0")


def check_encoding(data_type: str, order: str | None) -> str | None:
    """Return what is wrong with a data type / order pair, or None (for profile validation messages)."""
    if data_type not in DATA_TYPES:
        return f'data_type: expected {"|".join(DATA_TYPES)}, got "{data_type}"'
    if order is None:
        return None
    if data_type == "bool":
        return f'order: a bool (coil / discrete input) has no byte order, got "{order}"'
    allowed = ORDERS[register_count(data_type)]
    if order not in allowed:
        return f'order: expected {"|".join(allowed)}, got "{order}"'
    return None


def register_count(data_type: str) -> int:
    """Registers (or bits, for "bool") one value of `data_type` occupies."""
    if data_type == "bool":
        return 1
    try:
        return _STRUCT[data_type][1]
    except KeyError:
        raise ValueError(f"data_type: expected {'|'.join(DATA_TYPES)}, got {data_type!r}") from None


def _resolved_order(spec: ValueSpec) -> str:
    width = register_count(spec.data_type)
    order = spec.order or DEFAULT_ORDER[width]
    if order not in ORDERS[width]:
        raise ValueError(f'order: expected {"|".join(ORDERS[width])} for {spec.data_type}, got "{order}"')
    return order


def _check_length(registers: Sequence[int | bool], spec: ValueSpec) -> None:
    expected = register_count(spec.data_type)
    if len(registers) != expected:
        raise ValueError(f"{spec.data_type}: expected {expected} register(s), got {len(registers)}")


def decode_value(registers: Sequence[int | bool], spec: ValueSpec) -> float:
    """Registers (wire order) → `raw * scale + offset`, in the unit the device reports."""
    _check_length(registers, spec)
    if spec.data_type == "bool":
        return float(bool(registers[0])) * spec.scale + spec.offset
    order = _resolved_order(spec)
    wire = b"".join(_word(r).to_bytes(2, "big") for r in registers)
    big_endian = bytearray(len(wire))
    for position, letter in enumerate(order):
        big_endian[ord(letter) - ord("A")] = wire[position]
    (raw,) = struct.unpack(">" + _STRUCT[spec.data_type][0], bytes(big_endian))
    if spec.scale == 1 and spec.offset == 0:
        return raw  # type: ignore[no-any-return]  # an int64 stays exact when nothing scales it
    scaled: float = raw * spec.scale + spec.offset
    return scaled


def _word_moves(order: str) -> tuple[bool, bool] | None:
    """(reverse the words, swap each word's bytes) that turn registers in `order` into a big-endian value, or
    None when the order is no such pair (every order in ORDERS is one; the generic path covers any other)."""
    width = len(order) // 2
    big_endian = [chr(ord("A") + i) for i in range(len(order))]
    for reverse in (False, True):
        for swap in (False, True):
            words = [order[2 * i:2 * i + 2] for i in range(width)]
            if reverse:
                words.reverse()
            if swap:
                words = [w[::-1] for w in words]
            if list("".join(words)) == big_endian:
                return reverse, swap
    return None


def compile_decoder(spec: ValueSpec) -> Callable[[Sequence[int | bool]], float]:
    """`decode_value` for one spec, with the format, byte order and scaling worked out once.

    `compile_decoder(spec)(registers) == decode_value(registers, spec)` for every input, same type and same
    ValueError: anything the fast path cannot take (a register outside 0..65535 or not an int, a wrong count,
    a spec `decode_value` refuses) goes through `decode_value` itself.
    """
    data_type, scale, offset = spec.data_type, spec.scale, spec.offset

    def slow(registers: Sequence[int | bool]) -> float:
        return decode_value(registers, spec)

    try:
        width = register_count(data_type)
        order = None if data_type == "bool" else _resolved_order(spec)
    except ValueError:
        return slow
    if order is None:
        def decode_bit(registers: Sequence[int | bool]) -> float:
            if len(registers) != 1:
                return slow(registers)
            return float(bool(registers[0])) * scale + offset
        return decode_bit
    moves = _word_moves(order)
    if moves is None:
        return slow
    reverse, swap = moves
    pack = struct.Struct(("<" if swap else ">") + "H" * width).pack
    unpack = struct.Struct(">" + _STRUCT[data_type][0]).unpack
    exact = scale == 1 and offset == 0
    pack_error = struct.error

    def decode(registers: Sequence[int | bool]) -> float:
        if len(registers) != width:
            return slow(registers)
        try:
            wire = pack(*(registers[::-1] if reverse else registers))
        except pack_error:  # a register outside 0..65535, or not an int: decode_value says which
            return slow(registers)
        (raw,) = unpack(wire)
        if exact:
            return raw  # type: ignore[no-any-return]  # an int64 stays exact when nothing scales it
        scaled: float = raw * scale + offset
        return scaled

    return decode


def encode_value(value: float, spec: ValueSpec) -> list[int]:
    """`value` → registers in wire order (inverse of `decode_value`); ValueError if the type can't hold it."""
    # unscaled: keep an int exact (a 64-bit integer does not survive the float division)
    raw: float | int = value if spec.scale == 1 and spec.offset == 0 else (value - spec.offset) / spec.scale
    if spec.data_type == "bool":
        return [1 if raw else 0]
    order = _resolved_order(spec)
    code = _STRUCT[spec.data_type][0]
    if code in "efd":
        packable: float | int = raw
    else:
        if math.isnan(raw) or math.isinf(raw):
            raise ValueError(f"{spec.data_type}: cannot encode {value!r}")
        packable = round(raw)
    try:
        big_endian = struct.pack(">" + code, packable)
    except (struct.error, OverflowError) as exc:
        raise ValueError(
            f"{spec.data_type}: {value!r} (raw {raw!r} at scale {spec.scale}, offset {spec.offset}) "
            "does not fit"
        ) from exc
    wire = bytes(big_endian[ord(letter) - ord("A")] for letter in order)
    return [int.from_bytes(wire[i:i + 2], "big") for i in range(0, len(wire), 2)]


def status_word(values: Sequence[int | bool], status: StatusSpec) -> int:
    """A status read → one integer: a 16-bit register (honouring AB/BA) or bits (bit i = values[i])."""
    if status.table in ("coil", "discrete_input"):
        return sum(1 << i for i, bit in enumerate(values) if bit)
    if len(values) != 1:
        raise ValueError(f"status register: expected 1 register, got {len(values)}")
    return int(decode_value(values, Codec("uint16", status.order)))


def status_flags(word: int, status: StatusSpec) -> frozenset[str]:
    """The flag names ("device_invalid", "maintenance") that the status word raises."""
    raised: set[str] = set()
    for bit, spec in status.bits.items():
        is_set = bool((word >> bit) & 1)
        if spec.flag and is_set == (spec.when == "set"):
            raised.add(spec.flag)
    return frozenset(raised)


def device_status(flags: Iterable[str]) -> int:
    """Flag names → the `RawReading.device_status` bits (DEVICE_STATUS_BITS)."""
    bits = 0
    for flag in flags:
        bits |= DEVICE_STATUS_BITS[flag]
    return bits


def _word(register: int | bool) -> int:
    value = int(register)
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register: expected 0..65535, got {value}")
    return value
