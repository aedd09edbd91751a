"""A device profile as the rest of aqnet uses it: frozen records of one analyser model's register map. Pure.

`Profile` (its variables, status register, golden vectors and history ring) and `ProfileError` (every problem
of a profile, each line naming the file and the key path). Part of `sensors.modbus.profile`; the records are
built by `sensors.modbus.profile.parse` from a YAML file that `sensors.modbus.profile.files` reads.

Addresses are written as the device's manual writes them; `address_base` (0 or 1) says which convention that
is, and `pdu_address` is what goes on the wire (0-based).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sensors.modbus.decode import register_count
from sensors.modbus.history import RingLayout

__all__ = ["BIT_TABLES", "STATUS_FIELD", "HistoryBuffer", "Profile", "ProfileError", "StatusBit", "StatusRegister",
           "Table", "VariableSpec", "Vector"]

Table = Literal["coil", "discrete_input", "input", "holding"]
BIT_TABLES = frozenset({"coil", "discrete_input"})
#: the name under which the status register appears in read plans (never a vocabulary code)
STATUS_FIELD = "_status"


class ProfileError(ValueError):
    """A profile that can't be used (permanent): every problem, each line naming the file and the key path."""

    def __init__(self, path: str, errors: list[str]) -> None:
        self.path = path
        self.errors = tuple(errors)
        super().__init__("\n".join(errors))


# ---- frozen records (what the rest of aqnet uses) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """Where and how one variable sits in the register map."""

    name: str  #: vocabulary code (sensors.variables)
    table: Table
    address: int  #: as written in the profile (in the profile's address base)
    pdu_address: int  #: 0-based address sent on the wire
    data_type: str  #: one of sensors.modbus.decode.DATA_TYPES
    order: str | None  #: letter byte order, resolved to the big-endian default when omitted (None for bool)
    scale: float  #: value = raw * scale + offset
    offset: float
    unit: str  #: as the device reports it
    range: tuple[float, float]  #: plausible (measuring) range, in `unit`

    @property
    def count(self) -> int:
        """Registers (or bits) this variable occupies."""
        return register_count(self.data_type)


@dataclass(frozen=True, slots=True)
class StatusBit:
    """One named bit of the status register and the flag it raises."""

    name: str
    flag: str | None  #: "device_invalid", "maintenance", or None for a bit that is only informative
    when: str = "set"  #: "set": raised when the bit is 1; "clear": when it is 0 (e.g. a "system OK" bit)


@dataclass(frozen=True, slots=True)
class StatusRegister:
    """A uint16 status register (input / holding) or a run of status bits (coil / discrete_input)."""

    table: Table
    address: int
    pdu_address: int
    data_type: str  #: "uint16" for register tables, "bool" for bit tables
    order: str | None  #: AB or BA for a register; None for bits
    bits: Mapping[int, StatusBit]  #: bit number (register) or offset from `address` (bit tables) → bit

    @property
    def count(self) -> int:
        """Registers (1) or bits (highest bit + 1) a read of the status needs."""
        if self.table in BIT_TABLES:
            return max(self.bits, default=0) + 1
        return 1


@dataclass(frozen=True, slots=True)
class Vector:
    """A golden vector: registers as read from a device and the value they must decode to."""

    variable: str
    registers: tuple[int, ...]
    value: float
    source: str


@dataclass(frozen=True, slots=True)
class HistoryBuffer:
    """Where a logger keeps its history of records, and in which protocol (sensors.modbus.history)."""

    protocol: str  #: one of sensors.modbus.history.HISTORY_PROTOCOLS ("aqnet-ring-1": aqnet's own)
    address: int  #: the ring's first register as written in the profile (in its address base)
    layout: RingLayout  #: table, 0-based address, capacity and record fields


@dataclass(frozen=True, slots=True)
class Profile:
    """One device model's register map."""

    name: str  #: file stem, e.g. "sim-nox"
    path: str  #: the file it was read from (as shown in messages)
    model: str
    manufacturer: str
    firmware: str
    source: str  #: where the map comes from (manual page, driver, "simulated analyser of aqnet's simulators")
    address_base: int  #: 0 or 1
    conditions: str | None  #: "local" | "reference" | "required" (the technician states it per device)
    variables: tuple[VariableSpec, ...]
    status: StatusRegister | None = None
    vectors: tuple[Vector, ...] = field(default=())
    history: HistoryBuffer | None = None  #: the logger's history buffer, when it keeps one

    @property
    def variable_names(self) -> tuple[str, ...]:
        """The vocabulary codes this profile defines, in file order."""
        return tuple(v.name for v in self.variables)

    def variable(self, name: str) -> VariableSpec:
        """The spec of variable `name`; KeyError naming the profile when it has none."""
        for spec in self.variables:
            if spec.name == name:
                return spec
        raise KeyError(f"profile {self.name} ({self.path}) has no variable {name!r}: "
                       f"expected one of {', '.join(self.variable_names)}")
