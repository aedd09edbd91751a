"""Read plan: one device's variables and status grouped into as few Modbus read requests as allowed. Pure.

Telegraf's grouping (influxdata/telegraf: plugins/inputs/modbus/request.go): sort the fields of each table by
address and extend the current request while the next field starts where it ends, up to the protocol's maximum
per read (125 registers for FC 3/4, 2000 bits for FC 1/2: Modbus Application Protocol V1.1b3, 6.1-6.4).
`max_gap` lets a request read through a few unmapped registers; it is 0 by default because some analysers
answer ILLEGAL DATA ADDRESS for registers that are not in their map. `split_response` slices a response back
into fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sensors.modbus.profile import BIT_TABLES, STATUS_FIELD, Profile, Table

__all__ = ["MAX_BITS", "MAX_REGISTERS", "Field", "Request", "plan_requests", "split_response"]

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
