"""The technicians' probe: read registers once and show every way to interpret them. Thin I/O over a pure core.

On site, a technician knows the register address from the analyser's manual but not always the data type or
the byte and word order the firmware really uses. `interpretations(registers)` (pure) decodes the registers
through `sensors.modbus.decode` as every type in every order the profiles accept, at every register where a
value of that width fits: int16, uint16 and float16 in AB/BA; int32, uint32 and float32 in ABCD/CDAB/BADC/DCBA
(count >= 2); int64, uint64 and float64 in ABCDEFGH/HGFEDCBA/GHEFCDAB/BADCFEHG (count >= 4). The plausible row
names the `data_type` and `order` to write in the device profile. `probe(link, ...)` is the one read;
`render_table` and `as_json` present the result.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sensors.modbus.decode import ORDERS, Codec, decode_value, register_count
from sensors.modbus.link import ModbusLinkBase

__all__ = ["PROBE_TABLES", "Interpretation", "Probe", "as_json", "interpretations", "parse_endpoint", "probe",
           "render_table"]

#: tables the probe reads (registers; coils and discrete inputs have nothing to interpret)
PROBE_TABLES = ("input", "holding")
#: data types by width, in the order the table lists them
_TYPES: dict[int, tuple[str, ...]] = {1: ("int16", "uint16", "float16"), 2: ("int32", "uint32", "float32"),
                                      4: ("int64", "uint64", "float64")}
_FLOAT_FORMAT = {"float16": "e", "float32": "f", "float64": "d"}


@dataclass(frozen=True, slots=True)
class Interpretation:
    """One reading of the registers: `data_type` in `order`, starting `offset` registers into the read."""

    offset: int
    data_type: str
    order: str
    registers: tuple[int, ...]  #: the words it was decoded from, in wire order
    value: float | int

    @property
    def text(self) -> str:
        """The value as a technician compares it with the front panel (shortest exact float form)."""
        value = self.value
        if isinstance(value, int):
            return str(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return _shortest(value, _FLOAT_FORMAT[self.data_type])


@dataclass(frozen=True, slots=True)
class Probe:
    """The result of one probe read."""

    endpoint: str
    unit_id: int
    table: str
    address: int  #: 0-based PDU address of the first register
    registers: tuple[int, ...]
    interpretations: tuple[Interpretation, ...]


def _shortest(value: float, fmt: str) -> str:
    packed = struct.pack(">" + fmt, value)
    for digits in range(1, 18):
        text = f"{value:.{digits}g}"
        with contextlib.suppress(OverflowError):  # rounded past the type's largest value: more digits
            if struct.pack(">" + fmt, float(text)) == packed:
                return text
    return repr(value)


def interpretations(registers: Sequence[int]) -> list[Interpretation]:
    """Every type × order × start offset that fits in `registers` (16-bit words, wire order). Pure."""
    words = [int(r) for r in registers]
    bad = [w for w in words if not 0 <= w <= 0xFFFF]
    if bad:
        raise ValueError(f"registers: expected 16-bit words 0..65535, got {bad}")
    found: list[Interpretation] = []
    for width, types in _TYPES.items():
        for offset in range(len(words) - width + 1):
            chunk = tuple(words[offset:offset + width])
            for data_type in types:
                assert register_count(data_type) == width
                for order in ORDERS[width]:
                    value = decode_value(chunk, Codec(data_type, order))
                    found.append(Interpretation(offset, data_type, order, chunk, value))
    return found


def parse_endpoint(text: str, default_port: int = 502) -> tuple[str, int]:
    """"HOST[:PORT]" (or "[v6]:PORT") → (host, port); 502 is Modbus TCP's registered port."""
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"endpoint {text!r}: expected HOST[:PORT]")
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, _, raw = text.partition(":")
        port = _port(text, raw)
    if not host:
        raise ValueError(f"endpoint {text!r}: expected HOST[:PORT], got no host")
    return host, port


def _port(text: str, raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"endpoint {text!r}: port: expected 1..65535, got {raw!r}")
    return int(raw)


async def probe(link: ModbusLinkBase, *, unit_id: int, table: str, address: int, count: int = 2) -> Probe:
    """Read `count` registers of `table` from 0-based `address` once; ModbusReadError if the read fails."""
    if table not in PROBE_TABLES:
        raise ValueError(f"table: expected {'|'.join(PROBE_TABLES)}, got {table!r}")
    if not 1 <= count <= 125:  # Modbus Application Protocol V1.1b3, 6.3/6.4: 1..125 registers per read
        raise ValueError(f"count: expected 1..125, got {count}")
    values = await link.read(table, address, count, unit_id)
    words = tuple(int(v) for v in values)
    return Probe(link.endpoint, unit_id, table, address, words, tuple(interpretations(words)))


def render_table(result: Probe) -> str:
    """A plain-text table: the raw registers, then one line per interpretation."""
    lines = [(f"modbus {result.endpoint} unit {result.unit_id}: {result.table} registers from PDU address "
             f"{result.address} (0-based), {len(result.registers)} read"),
             "", "address  hex     uint16"]
    for i, word in enumerate(result.registers):
        lines.append(f"{result.address + i:<8} 0x{word:04X}  {word}")
    lines += ["", f"{'address':<8} {'data_type':<9} {'order':<8} value"]
    for item in result.interpretations:
        lines.append(f"{result.address + item.offset:<8} {item.data_type:<9} {item.order:<8} {item.text}")
    return "\n".join(lines)


def as_json(result: Probe) -> dict[str, Any]:
    """The probe as JSON-ready data; a NaN or infinite float is `null` with its `text`."""
    def value(item: Interpretation) -> float | int | None:
        v = item.value
        return v if isinstance(v, int) or math.isfinite(v) else None

    return {
        "endpoint": result.endpoint, "unit_id": result.unit_id, "table": result.table,
        "address": result.address, "registers": list(result.registers),
        "interpretations": [{"address": result.address + i.offset, "data_type": i.data_type, "order": i.order,
                             "registers": list(i.registers), "value": value(i), "text": i.text}
                            for i in result.interpretations],
    }
