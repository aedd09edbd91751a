"""Checking a device profile a technician wrote: every error, and the result of each golden vector.

Stage 1 (sensors), behind `aqnet profiles check`. `check_profile_file` reads one YAML file (its only I/O, from any
path on disk); `check_profile_data` is pure. Both return a `ProfileReport` and never raise for a bad profile.

The profile itself goes through the same loader the daemon uses (`sensors.modbus.profile.parse_profile`), so a file that
passes here loads there. The golden vectors are taken out first and run here one by one, so a wrong vector shows as
a failed result with the expected and the decoded value instead of stopping at the first error. Every error line
names the file and the key path (`my.yaml: variables.no2.order: expected ABCD|CDAB|BADC|DCBA, got "CADB"`). A key
written twice in one mapping is an error too: YAML would silently keep the last one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from sensors.modbus.decode import decode_value
from sensors.modbus.profile import Profile, ProfileError, parse_profile, vector_matches

__all__ = ["ProfileReport", "VectorResult", "check_profile_data", "check_profile_file"]

_VECTOR_KEYS = ("variable", "registers", "value", "source")


@dataclass(frozen=True, slots=True)
class VectorResult:
    """One golden vector run against its variable's encoding."""

    index: int  #: position in the file's `vectors:` list
    variable: str
    registers: tuple[int, ...]
    expected: float
    decoded: float | None  #: None when the vector was not run (the profile has errors)
    status: Literal["pass", "fail", "not run"]
    source: str

    @property
    def passed(self) -> bool:
        """True only when the registers decoded to the expected value."""
        return self.status == "pass"


@dataclass(frozen=True, slots=True)
class ProfileReport:
    """The verdict on one profile file."""

    path: str  #: the file as named in messages
    profile: Profile | None  #: the loaded profile, None when it has errors
    errors: tuple[str, ...]  #: each line names the file and the key path
    vectors: tuple[VectorResult, ...]
    notes: tuple[str, ...] = ()  #: advice that does not make the file invalid

    @property
    def ok(self) -> bool:
        """Valid, and every golden vector passes."""
        return not self.errors and all(v.passed for v in self.vectors)


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key
        self.line = line
        self.first_line = first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping (it would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the loader reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKeyError(key, key_node.start_mark.line + 1, first)
        return super().construct_mapping(node, deep=deep)


def check_profile_file(path: Path) -> ProfileReport:
    """Read and check the profile at `path` (any file on disk); the report names the file as given."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _broken(shown, f"{shown}: no such file")
    except IsADirectoryError:
        return _broken(shown, f"{shown}: is a directory, expected a profile file (.yaml)")
    except UnicodeDecodeError as exc:
        return _broken(shown, f"{shown}: not UTF-8 text (byte {exc.start}): save the file as UTF-8")
    except OSError as exc:
        return _broken(shown, f"{shown}: cannot read: {exc.strerror}")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass: no arbitrary objects
    except _DuplicateKeyError as exc:
        return _broken(shown, f"{shown}: line {exc.line}: duplicate key {_show(exc.key)} "
                              f"(first written at line {exc.first_line}); YAML would keep only the last one")
    except yaml.YAMLError as exc:
        return _broken(shown, f"{shown}: not valid YAML: {exc}")
    return check_profile_data(path.stem, data, shown)


def check_profile_data(name: str, data: Any, shown: str) -> ProfileReport:
    """Check already-parsed YAML `data` of profile `name` (`shown` names the file in messages). Pure."""
    if not isinstance(data, dict):
        return _broken(shown, f"{shown}: expected a mapping of profile keys, got {_type_name(data)}")
    body = {k: v for k, v in data.items() if k != "vectors"}
    try:
        profile: Profile | None = parse_profile(name, body, shown)
        errors: list[str] = []
    except ProfileError as exc:
        profile, errors = None, list(exc.errors)
    results = _run_vectors(data.get("vectors", []), profile, shown, errors)
    if profile is not None and errors:
        profile = None
    return ProfileReport(shown, profile, tuple(errors), tuple(results), tuple(_notes(profile, results)))


def _run_vectors(raw: Any, profile: Profile | None, shown: str, errors: list[str]) -> list[VectorResult]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        errors.append(f"{shown}: vectors: expected a list of {{{', '.join(_VECTOR_KEYS)}}}, got {_type_name(raw)}")
        return []
    specs = {v.name: v for v in profile.variables} if profile else {}
    results: list[VectorResult] = []
    for index, item in enumerate(raw):
        key = f"{shown}: vectors[{index}]"
        start = len(errors)
        if not isinstance(item, dict):
            errors.append(f"{key}: expected a mapping of {', '.join(_VECTOR_KEYS)}, got {_type_name(item)}")
            continue
        errors += [f"{key}.{k}: unknown key" for k in item if k not in _VECTOR_KEYS]
        errors += [f"{key}.{k}: required key missing" for k in _VECTOR_KEYS if k not in item]
        variable, registers, value, source = (item.get(k) for k in _VECTOR_KEYS)
        if "variable" in item and not isinstance(variable, str):
            errors.append(f'{key}.variable: expected a variable code (quote "no"), got {_show(variable)}')
        if "registers" in item and not _is_registers(registers):
            errors.append(f"{key}.registers: expected a list of 16-bit registers 0..65535 as read, "
                          f"got {_show(registers)}")
        if "value" in item and not _is_number(value):
            errors.append(f"{key}.value: expected a number (the value the registers must decode to), "
                          f"got {_show(value)}")
        if "source" in item and (not isinstance(source, str) or not source.strip()):
            errors.append(f"{key}.source: expected where the vector comes from (a capture, a manual page), "
                          f"got {_show(source)}")
        if len(errors) > start:
            continue
        # checked above: a variable code, 16-bit registers, a number and a source
        variable, value, source = cast("str", variable), cast("float", value), cast("str", source)
        regs = tuple(int(r) for r in cast("list[int]", registers))
        if profile is None:
            results.append(VectorResult(index, variable, regs, float(value), None, "not run", source))
            continue
        spec = specs.get(variable)
        if spec is None:
            errors.append(f"{key}.variable: expected one of {', '.join(specs)}, got {_show(variable)}")
            continue
        try:
            decoded = float(decode_value(regs, spec))
        except ValueError as exc:
            errors.append(f"{key}.registers: {variable} is {spec.data_type}: {exc}")
            continue
        status: Literal["pass", "fail"] = "pass" if vector_matches(decoded, float(value)) else "fail"
        results.append(VectorResult(index, variable, regs, float(value), decoded, status, source))
    return results


def _notes(profile: Profile | None, results: list[VectorResult]) -> list[str]:
    if profile is None:
        return []
    notes: list[str] = []
    if profile.conditions == "required":
        notes.append("conditions: required: every device registered with this profile must state whether it "
                     "reports at local or reference conditions")
    if not results:
        notes.append("vectors: none: add at least one golden vector (registers read from the device and the value "
                     "its display showed at that moment)")
    else:
        untested = [v for v in profile.variable_names if v not in {r.variable for r in results}]
        if untested:
            notes.append(f"vectors: no golden vector for {', '.join(untested)}")
    return notes


def _broken(shown: str, error: str) -> ProfileReport:
    return ProfileReport(shown, None, (error,), ())


def _is_registers(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= 0xFFFF for r in value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)
