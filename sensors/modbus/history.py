"""A logger's history buffer in registers: aqnet's own ring protocol "aqnet-ring-1". Pure, no I/O.

No public logger history protocol is documented in the samples aqnet was built from (../shared/samples/modbus/
has live register maps only), so aqnet defines its own, and a device profile selects it by name
(`history: {protocol: aqnet-ring-1, ...}`, see `sensors.modbus.profile`): a real logger's protocol can be added
beside it later without touching the poller's backfill logic, which only needs records.

Layout, in 16-bit registers of one table (holding or input) from the ring's first address:

- header, `HEADER_REGISTERS` = 4 registers: write index (the slot the next record goes to), record count
  (valid records, at most the capacity), record size (registers per record), capacity (slots);
- then `capacity` slots of `record_size` registers; slot i starts `HEADER_REGISTERS + i * record_size`
  registers after the first address;
- a record: Unix time in seconds (uint32, ABCD), one value per field in that variable's own encoding (data type,
  byte/word order, scale and offset, exactly as its live register), then a status word (uint16, AB) whose bits
  mean what the profile's `status` bits mean (bit i = status bit i; bits above 15 are not recorded).

A writer puts record number n (counting from 0) in slot n mod capacity and advances the write index; until the
ring is full, slots 0 .. record count - 1 are the valid ones. A reader asks for whole records only (a record
never straddles two requests, so each one is consistent even while the logger keeps writing), newest first
(`read_chunks`), and orders what it got by time, not by slot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sensors.modbus.decode import (
    Codec,
    ValueSpec,
    decode_value,
    encode_value,
    register_count,
)

__all__ = [
    "HEADER_REGISTERS",
    "HISTORY_PROTOCOLS",
    "HistoryRecord",
    "RecordField",
    "RingHeader",
    "RingLayout",
    "decode_record",
    "decode_ring",
    "decode_slots",
    "encode_header",
    "encode_record",
    "encode_ring",
    "parse_header",
    "read_chunks",
]

#: history protocols aqnet reads; "aqnet-ring-1" is aqnet's own (this module)
HISTORY_PROTOCOLS: tuple[str, ...] = ("aqnet-ring-1",)
HEADER_REGISTERS = 4
_TIME = Codec("uint32", "ABCD")
_STATUS = Codec("uint16", "AB")
_TIME_REGISTERS = 2
_STATUS_REGISTERS = 1
#: Modbus Application Protocol V1.1b3, 6.3/6.4: at most 125 registers per read
_MAX_READ = 125
_UINT32_MAX = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class RecordField:
    """One value of a record: the variable it belongs to and its register encoding."""

    name: str
    spec: ValueSpec  #: data type, order, scale, offset (a profile's VariableSpec satisfies it)

    @property
    def count(self) -> int:
        """Registers this value occupies."""
        return register_count(self.spec.data_type)


@dataclass(frozen=True, slots=True)
class RingLayout:
    """Where a ring lives and what its records hold."""

    table: str  #: "holding" or "input"
    pdu_address: int  #: 0-based address of the header's first register
    capacity: int  #: slots in the ring
    fields: tuple[RecordField, ...]  #: the record's values, in register order

    def __post_init__(self) -> None:
        if self.table not in ("holding", "input"):
            raise ValueError(f'table: a history ring lives in registers: expected holding|input, got "{self.table}"')
        if not self.fields:
            raise ValueError("variables: a record needs at least one variable")
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variables: each variable once, got {', '.join(dupes)} more than once")
        bits = [f.name for f in self.fields if f.spec.data_type == "bool"]
        if bits:
            raise ValueError(f"variables: a record holds registers, not bits: {', '.join(bits)} is bool")
        if self.record_size > _MAX_READ:
            raise ValueError(f"variables: a record must fit one read (≤ {_MAX_READ} registers), "
                             f"these make {self.record_size}")
        if not 1 <= self.capacity <= 0xFFFF:
            raise ValueError(f"capacity: expected 1..65535 records, got {self.capacity}")
        if self.pdu_address < 0 or self.pdu_address + self.registers - 1 > 0xFFFF:
            raise ValueError(f"address: the ring needs {self.registers} registers from PDU address "
                             f"{self.pdu_address}: expected it to end by 65535")

    @property
    def record_size(self) -> int:
        """Registers per record: time, values, status."""
        return _TIME_REGISTERS + sum(f.count for f in self.fields) + _STATUS_REGISTERS

    @property
    def registers(self) -> int:
        """Registers of the whole ring, header included."""
        return HEADER_REGISTERS + self.capacity * self.record_size

    def slot_address(self, slot: int) -> int:
        """0-based address of slot `slot`'s first register."""
        if not 0 <= slot < self.capacity:
            raise ValueError(f"slot: expected 0..{self.capacity - 1}, got {slot}")
        return self.pdu_address + HEADER_REGISTERS + slot * self.record_size


@dataclass(frozen=True, slots=True)
class RingHeader:
    """The ring's header registers."""

    write_index: int  #: the slot the next record goes to
    record_count: int  #: valid records (≤ capacity)
    record_size: int
    capacity: int

    @classmethod
    def after(cls, written: int, layout: RingLayout) -> RingHeader:
        """The header once `written` records in all were put in the ring."""
        if written < 0:
            raise ValueError(f"written: expected >= 0, got {written}")
        return cls(written % layout.capacity, min(written, layout.capacity), layout.record_size, layout.capacity)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One logged record: its time (whole seconds, UTC), a value per field, the status word."""

    time: datetime
    values: Mapping[str, float] = field(default_factory=dict)
    status: int = 0

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("HistoryRecord: time must be timezone-aware")
        if not 0 <= self.status <= 0xFFFF:
            raise ValueError(f"HistoryRecord: status: expected 0..65535, got {self.status}")


def encode_header(header: RingHeader) -> list[int]:
    """The 4 header registers."""
    words = [header.write_index, header.record_count, header.record_size, header.capacity]
    for name, word in zip(("write_index", "record_count", "record_size", "capacity"), words, strict=True):
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"ring header {name}: expected 0..65535, got {word}")
    return words


def parse_header(registers: Sequence[int], layout: RingLayout) -> RingHeader:
    """The header read from a device, checked against the profile's layout (ValueError saying what differs)."""
    if len(registers) != HEADER_REGISTERS:
        raise ValueError(f"ring header: expected {HEADER_REGISTERS} registers, got {len(registers)}")
    header = RingHeader(*(int(r) for r in registers))
    if (header.record_size, header.capacity) != (layout.record_size, layout.capacity):
        raise ValueError(f"ring header: the device says {header.capacity} records of {header.record_size} "
                         f"registers, the profile {layout.capacity} of {layout.record_size}")
    if header.record_count > header.capacity or header.write_index >= header.capacity:
        raise ValueError(f"ring header: write index {header.write_index} and record count {header.record_count} "
                         f"do not fit a ring of {header.capacity}")
    if header.record_count < header.capacity and header.write_index != header.record_count:
        raise ValueError(f"ring header: a ring not yet full must have write index = record count, got "
                         f"{header.write_index} and {header.record_count}")
    return header


def encode_record(record: HistoryRecord, layout: RingLayout) -> list[int]:
    """One record's registers; ValueError if a value is missing or its type can't hold it."""
    seconds = math.floor(record.time.timestamp())
    if not 0 <= seconds <= _UINT32_MAX:
        raise ValueError(f"record time {record.time.isoformat()}: expected 1970-01-01..2106-02-07 (uint32 seconds)")
    words = encode_value(seconds, _TIME)
    for f in layout.fields:
        if f.name not in record.values:
            raise ValueError(f"record {record.time.isoformat()}: no value for {f.name}")
        words.extend(encode_value(record.values[f.name], f.spec))
    words.extend(encode_value(record.status, _STATUS))
    return words


def decode_record(registers: Sequence[int], layout: RingLayout) -> HistoryRecord:
    """One record's registers → HistoryRecord (a float NaN stays NaN: the logger had no value)."""
    if len(registers) != layout.record_size:
        raise ValueError(f"record: expected {layout.record_size} registers, got {len(registers)}")
    seconds = int(decode_value(registers[:_TIME_REGISTERS], _TIME))
    at = _TIME_REGISTERS
    values: dict[str, float] = {}
    for f in layout.fields:
        values[f.name] = decode_value(registers[at:at + f.count], f.spec)
        at += f.count
    status = int(decode_value(registers[at:at + _STATUS_REGISTERS], _STATUS))
    return HistoryRecord(datetime.fromtimestamp(seconds, UTC), values, status)


def decode_slots(registers: Sequence[int], layout: RingLayout) -> list[HistoryRecord]:
    """Consecutive whole records (as one chunk read returns them); never-written slots (time 0) are left out."""
    size = layout.record_size
    if len(registers) % size:
        raise ValueError(f"records: expected a multiple of {size} registers, got {len(registers)}")
    records = [decode_record(registers[i:i + size], layout) for i in range(0, len(registers), size)]
    return [r for r in records if r.time.timestamp() > 0]


def encode_ring(records: Sequence[HistoryRecord], layout: RingLayout, *, written: int | None = None) -> list[int]:
    """The whole ring's registers (header first) holding `records` (oldest first, the newest written last).

    `written` is how many records the logger wrote in all (default `len(records)`); only the last `capacity`
    of `records` can be in the ring. Slots never written are zeros.
    """
    total = len(records) if written is None else written
    if total < len(records):
        raise ValueError(f"written: expected >= {len(records)} (the records given), got {total}")
    kept = list(records)[-layout.capacity:] if records else []
    words = encode_header(RingHeader.after(total, layout))
    slots = [[0] * layout.record_size for _ in range(layout.capacity)]
    first = total - len(kept)
    for n, record in enumerate(kept, start=first):
        slots[n % layout.capacity] = encode_record(record, layout)
    for slot in slots:
        words.extend(slot)
    return words


def decode_ring(registers: Sequence[int], layout: RingLayout) -> list[HistoryRecord]:
    """The whole ring's registers → its valid records, oldest first (in write order)."""
    if len(registers) != layout.registers:
        raise ValueError(f"ring: expected {layout.registers} registers, got {len(registers)}")
    header = parse_header(registers[:HEADER_REGISTERS], layout)
    size = layout.record_size
    oldest = (header.write_index - header.record_count) % layout.capacity
    out = []
    for k in range(header.record_count):
        slot = (oldest + k) % layout.capacity
        start = HEADER_REGISTERS + slot * size
        out.append(decode_record(registers[start:start + size], layout))
    return out


def read_chunks(header: RingHeader, layout: RingLayout, max_registers: int = _MAX_READ) -> list[tuple[int, int]]:
    """The reads that cover the valid slots, newest first: (first slot, slots) runs of whole records.

    Each run is contiguous in registers (a run never wraps past the last slot) and at most `max_registers`
    long; within a run the newest record is the last one. A reader can stop once it reached what it has.
    """
    per_read = max_registers // layout.record_size
    if per_read < 1:
        raise ValueError(f"max_registers: a record is {layout.record_size} registers, got {max_registers}")
    chunks: list[tuple[int, int]] = []
    remaining = header.record_count
    end = header.write_index or layout.capacity  # one past the newest slot
    while remaining:
        n = min(per_read, remaining, end)
        chunks.append((end - n, n))
        remaining -= n
        end -= n
        if end == 0:
            end = layout.capacity
    return chunks
