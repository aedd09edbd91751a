"""Read plan: one device's variables and status grouped into as few Modbus read requests as allowed. Pure.

Telegraf's grouping (influxdata/telegraf: plugins/inputs/modbus/request.go): sort the fields of each table by
address and extend the current request while the next field starts where it ends, up to the protocol's maximum
per read (125 registers for FC 3/4, 2000 bits for FC 1/2: Modbus Application Protocol V1.1b3, 6.1-6.4).
`max_gap` lets a request read through a few unmapped registers; it is 0 by default because some analysers
answer ILLEGAL DATA ADDRESS for registers that are not in their map. `split_response` slices a response back
into fields. `DevicePlan` is one device's whole read worked out once (requests, field slices, a decoder per
variable, the status bits per status word), so a poll does no planning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sensors.modbus.decode import compile_decoder, device_status, status_flags, status_word
from sensors.modbus.profile import BIT_TABLES, STATUS_FIELD, Profile, StatusRegister, Table, VariableSpec

__all__ = ["MAX_BITS", "MAX_REGISTERS", "DevicePlan", "Field", "Request", "device_plan", "plan_requests",
           "split_response"]

#: Modbus Application Protocol V1.1b3: read holding/input registers 1..125 (6.3, 6.4), coils/inputs 1..2000
MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True, slots=True)
class Field:
    """One value inside a request: a variable code, or STATUS_FIELD for the status register."""

    name: str
    offset: int  #: position of its first register (or bit) within the request
    count: int


@dataclass(frozen=True, slots=True)
class Request:
    """One read: `count` registers (or bits) of `table` from 0-based `address`."""

    table: Table
    address: int
    count: int
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        limit = MAX_BITS if self.table in BIT_TABLES else MAX_REGISTERS
        if not 1 <= self.count <= limit:
            raise ValueError(
                f"Request {self.table} {self.address}: count expected 1..{limit}, got {self.count}")


def plan_requests(profile: Profile, variables: Iterable[str] | None = None, *, include_status: bool = True,
                  max_gap: int = 0) -> list[Request]:
    """Requests reading `variables` (default: all of the profile's) and the status, by table and address."""
    wanted = profile.variable_names if variables is None else tuple(variables)
    spans: list[tuple[str, int, str, int]] = []  # (table, address, name, count)
    for name in wanted:
        spec = profile.variable(name)
        spans.append((spec.table, spec.pdu_address, name, spec.count))
    if include_status and profile.status is not None:
        st = profile.status
        spans.append((st.table, st.pdu_address, STATUS_FIELD, st.count))
    spans.sort(key=lambda s: (s[0], s[1]))

    requests: list[Request] = []
    current: list[tuple[str, int, str, int]] = []
    for span in spans:
        if current and _fits(current, span, max_gap):
            current.append(span)
            continue
        if current:
            requests.append(_request(current))
        current = [span]
    if current:
        requests.append(_request(current))
    return requests


def _fits(current: list[tuple[str, int, str, int]], span: tuple[str, int, str, int], max_gap: int) -> bool:
    table, start = current[0][0], current[0][1]
    end = max(a + c for _, a, _, c in current)
    s_table, s_address, _, s_count = span
    limit = MAX_BITS if table in BIT_TABLES else MAX_REGISTERS
    return s_table == table and end <= s_address <= end + max_gap and s_address + s_count - start <= limit


def _request(spans: list[tuple[str, int, str, int]]) -> Request:
    table, start = spans[0][0], spans[0][1]
    end = max(a + c for _, a, _, c in spans)
    fields = tuple(Field(name, address - start, count) for _, address, name, count in spans)
    return Request(table, start, end - start, fields)  # type: ignore[arg-type]


def split_response(request: Request,
                   values: Sequence[int] | Sequence[bool]) -> dict[str, Sequence[int | bool]]:
    """Slice a response to `request` into {field name: its registers or bits}.

    Bit reads come back padded to a whole byte, so longer responses are accepted; shorter ones are errors.
    """
    if len(values) < request.count:
        raise ValueError(f"{request.table} {request.address}×{request.count}: response has only "
                         f"{len(values)} value(s)")
    return {f.name: list(values[f.offset:f.offset + f.count]) for f in request.fields}


#: distinct status reads remembered per plan (a status register has at most 65,536 words)
_STATUS_MEMO = 4096


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One device's read worked out once: `plan_requests(profile, variables)`, where each field sits in its
    request's response, and a decoder per variable (`sensors.modbus.decode.compile_decoder`)."""

    requests: tuple[Request, ...]
    #: per request: (field name, first, end) slices of its response
    cuts: tuple[tuple[tuple[str, int, int], ...], ...]
    #: the variables in the device's order: (name, spec, decoder)
    variables: tuple[tuple[str, VariableSpec, Callable[[Sequence[int | bool]], float]], ...]
    status: StatusRegister | None
    _status_bits: dict[tuple[int | bool, ...], int]

    def status_bits(self, values: Sequence[int | bool]) -> int:
        """The `RawReading.device_status` bits of a status read: `device_status(status_flags(status_word(...)))`
        (0 without a status register); each distinct read is worked out once."""
        if self.status is None:
            return 0
        key = tuple(values)
        bits = self._status_bits.get(key)
        if bits is None:
            bits = device_status(status_flags(status_word(values, self.status), self.status))
            if len(self._status_bits) < _STATUS_MEMO:
                self._status_bits[key] = bits
        return bits


def device_plan(profile: Profile, variables: Iterable[str]) -> DevicePlan:
    """The `DevicePlan` reading `variables` of `profile` and its status (KeyError for an unknown variable)."""
    names = tuple(variables)
    requests = tuple(plan_requests(profile, names))
    cuts = tuple(tuple((f.name, f.offset, f.offset + f.count) for f in r.fields) for r in requests)
    specs = [(name, profile.variable(name)) for name in names]
    decoders = tuple((name, spec, compile_decoder(spec)) for name, spec in specs)
    return DevicePlan(requests, cuts, decoders, profile.status, {})
