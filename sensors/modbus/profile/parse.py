"""Validating a device profile written by people: parsed YAML → `Profile`, or a `ProfileError` with every
problem. Pure.

A profile goes through pydantic with `extra="forbid"` first, then through cross-checks (data type against table,
byte order against width, address base, overlapping registers, unit, range, conditions, golden vectors). Every
problem found is collected and reported at once as a `ProfileError` whose lines read
`sensors/profiles/sim-nox.yaml: variables.no2.order: expected ABCD|CDAB|BADC|DCBA, got "CADB"`.
Part of `sensors.modbus.profile`.
"""

from __future__ import annotations

import json
import math
import re
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from sensors.modbus.decode import DATA_TYPES, DEFAULT_ORDER, check_encoding, decode_value, register_count
from sensors.modbus.history import HISTORY_PROTOCOLS, RecordField, RingLayout
from sensors.modbus.profile.records import (
    BIT_TABLES,
    HistoryBuffer,
    Profile,
    ProfileError,
    StatusBit,
    StatusRegister,
    Table,
    VariableSpec,
    Vector,
)
from sensors.variables import VARIABLES, Kind

__all__ = ["parse_profile", "show", "vector_matches"]

#: Modbus allows at most 2000 bits per read of coils / discrete inputs (spec 6.1, 6.2)
_MAX_STATUS_BITS = 2000


# ---- the edge: pydantic models of the YAML -----------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _StatusBitIn(_Strict):
    name: str
    flag: Literal["device_invalid", "maintenance"] | None = None
    when: Literal["set", "clear"] = "set"


class _StatusIn(_Strict):
    table: Table
    address: int
    data_type: str | None = None
    order: str | None = None
    bits: dict[int, _StatusBitIn]


class _VariableIn(_Strict):
    table: Table
    address: int
    data_type: str
    order: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str
    range: tuple[float, float]


class _VectorIn(_Strict):
    variable: str
    registers: list[int]
    value: float
    source: str


class _HistoryIn(_Strict):
    protocol: str
    table: Table
    address: int
    capacity: int
    variables: list[str] | None = None


class _ProfileIn(_Strict):
    model: str
    manufacturer: str
    firmware: str
    source: str
    address_base: Literal[0, 1]
    conditions: Literal["local", "reference", "required"] | None = None
    status: _StatusIn | None = None
    variables: dict[str, _VariableIn]
    vectors: list[_VectorIn] = []
    history: _HistoryIn | None = None


def parse_profile(name: str, data: Any, shown: str) -> Profile:
    """Validate already-parsed YAML `data` of profile `name` (`shown` is the file name used in messages)."""
    if not isinstance(data, dict):
        raise ProfileError(shown, [f"{shown}: expected a mapping of profile keys, got {type(data).__name__}"])
    variables = data.get("variables")
    if isinstance(variables, dict):
        # YAML 1.1 reads an unquoted `no:` (the NO variable), `yes:`, `on:`, `off:` as a boolean
        bools = [k for k in variables if isinstance(k, bool)]
        if bools:
            raise ProfileError(shown, [
                f'{shown}: variables.{"yes/on" if k else "no"}: YAML read this unquoted key as the boolean '
                f'{str(k).lower()}: quote it (e.g. "no": for nitric oxide)' for k in bools])
    try:
        raw = _ProfileIn.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(shown, [f"{shown}: {_pydantic_line(err)}" for err in exc.errors()]) from None
    errors: list[str] = []
    profile = _build(name, shown, raw, errors)
    if errors:
        raise ProfileError(shown, [f"{shown}: {e}" for e in errors])
    return profile


def _build(name: str, shown: str, raw: _ProfileIn, errors: list[str]) -> Profile:
    base = raw.address_base
    variables: list[VariableSpec] = []
    for code, var in raw.variables.items():
        key = f"variables.{code}"
        if code not in VARIABLES:
            errors.append(
                f"{key}: unknown variable {show(code)}: expected one of {', '.join(sorted(VARIABLES))}")
        if var.scale == 0 or not math.isfinite(var.scale) or not math.isfinite(var.offset):
            errors.append(f"{key}.scale: expected a finite non-zero scale and finite offset, "
                          f"got scale {var.scale}, offset {var.offset}")
        if not var.unit.strip():
            errors.append(f"{key}.unit: expected the unit the device reports, got an empty string")
        if not var.range[0] < var.range[1]:
            errors.append(f"{key}.range: expected [min, max] with min < max, got {list(var.range)}")
        problem = check_encoding(var.data_type, var.order)
        if problem:
            errors.append(f"{key}.{problem}")
            continue  # the checks below need a valid data type
        _check_table_type(key, var.table, var.data_type, errors)
        _check_address(key, var.address, base, register_count(var.data_type), errors)
        order = var.order
        if order is None and var.data_type != "bool":
            order = DEFAULT_ORDER[register_count(var.data_type)]
        variables.append(VariableSpec(code, var.table, var.address, var.address - base, var.data_type, order,
                                      var.scale, var.offset, var.unit, var.range))
    if not raw.variables:
        errors.append("variables: expected at least one variable")
    has_mass = any(VARIABLES[code].kind is Kind.MASS for code in raw.variables if code in VARIABLES)
    if has_mass and raw.conditions is None:
        errors.append("conditions: required for a profile with a mass concentration (pm*): "
                      "expected local|reference|required")
    status = _build_status(raw.status, base, errors) if raw.status else None
    _check_overlaps(variables, status, errors)
    vectors = _build_vectors(raw.vectors, variables, errors)
    history = _build_history(raw.history, base, variables, status, errors) if raw.history else None
    return Profile(name, shown, raw.model, raw.manufacturer, raw.firmware, raw.source, base, raw.conditions,
                   tuple(variables), status, vectors, history)


def _check_table_type(key: str, table: str, data_type: str, errors: list[str]) -> None:
    if table in BIT_TABLES and data_type != "bool":
        errors.append(f"{key}.data_type: a {table} holds single bits: expected bool, got {show(data_type)}")
    if table not in BIT_TABLES and data_type == "bool":
        registers = "|".join(t for t in DATA_TYPES if t != "bool")
        errors.append(f'{key}.data_type: {table} registers are 16-bit: expected {registers}, got "bool"')


def _check_address(key: str, address: int, base: int, count: int, errors: list[str]) -> None:
    pdu = address - base
    if pdu < 0 or pdu + count - 1 > 0xFFFF:
        errors.append(f"{key}.address: expected {base}..{0xFFFF + base - count + 1} "
                      f"(address_base {base}, {count} register(s)), got {address}")


def _build_status(raw: _StatusIn, base: int, errors: list[str]) -> StatusRegister | None:
    bit_table = raw.table in BIT_TABLES
    data_type = raw.data_type or ("bool" if bit_table else "uint16")
    expected = "bool" if bit_table else "uint16"
    start = len(errors)
    if data_type != expected:
        errors.append(f"status.data_type: a status in {raw.table} must be {expected}, got {show(data_type)}")
    if raw.order is not None and (bit_table or raw.order not in ("AB", "BA")):
        errors.append(f"status.order: expected {'no order for bits' if bit_table else 'AB|BA'}, "
                      f"got {show(raw.order)}")
    if not raw.bits:
        errors.append("status.bits: expected at least one bit")
    top = _MAX_STATUS_BITS - 1 if bit_table else 15
    for bit in raw.bits:
        if not 0 <= bit <= top:
            errors.append(f"status.bits.{bit}: expected a bit number 0..{top}, got {bit}")
    if len(errors) > start:
        return None
    bits = MappingProxyType({b: StatusBit(s.name, s.flag, s.when) for b, s in sorted(raw.bits.items())})
    order = None if bit_table else (raw.order or "AB")
    status = StatusRegister(raw.table, raw.address, raw.address - base, data_type, order, bits)
    _check_address("status", raw.address, base, status.count, errors)
    return status


def _check_overlaps(variables: list[VariableSpec], status: StatusRegister | None, errors: list[str]) -> None:
    spans = [(f"variables.{v.name}", v.table, v.pdu_address, v.count) for v in variables]
    if status is not None:
        spans.append(("status", status.table, status.pdu_address, status.count))
    taken: dict[tuple[str, int], str] = {}
    for key, table, start, count in spans:
        for pdu in range(start, start + count):
            other = taken.get((table, pdu))
            if other is not None:
                errors.append(f"{key}.address: {table} register {pdu} (0-based) is also used by {other}")
                break
            taken[(table, pdu)] = key


def _build_vectors(raw: list[_VectorIn], variables: list[VariableSpec],
                   errors: list[str]) -> tuple[Vector, ...]:
    by_name = {v.name: v for v in variables}
    vectors: list[Vector] = []
    for i, vec in enumerate(raw):
        key = f"vectors[{i}]"
        spec = by_name.get(vec.variable)
        if spec is None:
            errors.append(f"{key}.variable: expected one of {', '.join(by_name)}, got {show(vec.variable)}")
            continue
        try:
            got = decode_value(vec.registers, spec)
        except ValueError as exc:
            errors.append(f"{key}.registers: {exc}")
            continue
        if not vector_matches(got, vec.value):
            errors.append(f"{key}: {vec.variable} decodes {vec.registers} to {got!r}, expected {vec.value!r}")
        vectors.append(Vector(vec.variable, tuple(vec.registers), vec.value, vec.source))
    return tuple(vectors)


def vector_matches(decoded: float, expected: float) -> bool:
    """Whether a golden vector's decoded value equals the expected one (relative 1e-6: a float32 keeps ~7 digits)."""
    return math.isclose(decoded, expected, rel_tol=1e-6, abs_tol=1e-9)


def _build_history(raw: _HistoryIn, base: int, variables: list[VariableSpec], status: StatusRegister | None,
                   errors: list[str]) -> HistoryBuffer | None:
    if raw.protocol not in HISTORY_PROTOCOLS:
        errors.append(f"history.protocol: expected {'|'.join(HISTORY_PROTOCOLS)}, got {show(raw.protocol)}")
        return None
    by_name = {v.name: v for v in variables}
    names = raw.variables if raw.variables is not None else [v.name for v in variables if v.data_type != "bool"]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        errors.append(f"history.variables: expected variables of this profile ({', '.join(by_name)}), "
                      f"got {', '.join(show(n) for n in unknown)}")
        return None
    try:
        layout = RingLayout(raw.table, raw.address - base, raw.capacity,
                            tuple(RecordField(n, by_name[n]) for n in names))
    except ValueError as exc:
        errors.append(f"history.{exc}")
        return None
    end = layout.pdu_address + layout.registers
    spans = [(f"variables.{v.name}", v.table, v.pdu_address, v.count) for v in variables]
    if status is not None:
        spans.append(("status", status.table, status.pdu_address, status.count))
    for key, table, start, count in spans:
        if table == layout.table and start < end and layout.pdu_address < start + count:
            errors.append(f"history.address: the ring ({layout.table} {layout.pdu_address}..{end - 1}, 0-based) "
                          f"overlaps {key}")
    return HistoryBuffer(raw.protocol, raw.address, layout)


def _pydantic_line(err: Any) -> str:
    key = _key_path(err["loc"])
    kind = err["type"]
    if kind == "missing":
        return f"{key}: required key missing"
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    got = show(err.get("input"))
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", ""))
        choices = re.findall(r"'([^']*)'|(\d+)", expected)
        return f"{key}: expected {'|'.join(a or b for a, b in choices)}, got {got}"
    return f"{key}: {err['msg'].removeprefix('Input should be ')}, got {got}"


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int) and i > 0 and loc[i - 1] != "bits":
            parts[-1] += f"[{part}]"
        else:
            parts.append(str(part))
    return ".".join(parts) or "(top level)"


def show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)
