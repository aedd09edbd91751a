"""`aqnet profiles`: check a device profile a technician wrote, list the shipped ones. Shell (click); I/O (reads
profile files). Parses, calls `sensors.modbus.profile_check` / `sensors.modbus.profile`, renders text or `--json`,
sets the exit code (0 all good, 1 otherwise)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from sensors.modbus.profile import Profile, ProfileError, default_profiles_dir, list_profiles, load_profile
from sensors.modbus.profile_check import ProfileReport, VectorResult, check_profile_file

__all__ = ["profiles"]


@click.group()
def profiles() -> None:
    """Device profiles: the register maps of analyser models (docs/profiles.md)."""


@profiles.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
def check(files: tuple[Path, ...], as_json: bool) -> None:
    """Validate profile FILE(s) and run their golden vectors; exit 1 if any is invalid or any vector fails."""
    reports = [check_profile_file(path) for path in files]
    if as_json:
        click.echo(json.dumps({"ok": all(r.ok for r in reports), "files": [_report_doc(r) for r in reports]},
                              indent=2, ensure_ascii=False))
    else:
        for report in reports:
            _echo_report(report)
        bad = sum(not r.ok for r in reports)
        if len(reports) > 1:
            click.echo(f"{len(reports) - bad} of {len(reports)} profile(s) OK")
    sys.exit(0 if all(r.ok for r in reports) else 1)


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_command(as_json: bool) -> None:
    """List the shipped profiles: model, manufacturer, firmware, variables, source."""
    rows: list[dict[str, Any]] = []
    failed = False
    for name in list_profiles():
        try:
            rows.append(_profile_doc(load_profile(name)))
        except ProfileError as exc:
            failed = True
            rows.append({"name": name, "path": exc.path, "errors": list(exc.errors)})
    if as_json:
        click.echo(json.dumps({"directory": str(default_profiles_dir()), "profiles": rows}, indent=2,
                              ensure_ascii=False))
    else:
        for row in rows:
            if "errors" in row:
                click.echo(f"{row['name']}: INVALID")
                for line in row["errors"]:
                    click.echo(f"  {line}")
                continue
            click.echo(f"{row['name']}: {row['manufacturer']} {row['model']}, firmware {row['firmware']}")
            variables = ", ".join(f"{v['name']} ({v['unit']})" for v in row["variables"])
            click.echo(f"  variables: {variables}")
            if row["conditions"]:
                click.echo(f"  conditions: {row['conditions']}")
            click.echo(f"  source: {row['source']}")
    sys.exit(1 if failed else 0)


def _echo_report(report: ProfileReport) -> None:
    passed = sum(v.passed for v in report.vectors)
    failed = [v for v in report.vectors if v.status == "fail"]
    if report.ok:
        profile = report.profile
        what = f"{profile.manufacturer} {profile.model}, firmware {profile.firmware}" if profile else ""
        click.echo(f"{report.path}: OK ({what}; {passed} golden vector(s) passed)")
    else:
        parts = [f"{len(report.errors)} error(s)"] if report.errors else []
        if failed:
            parts.append(f"{len(failed)} of {len(report.vectors)} golden vector(s) failed")
        click.echo(f"{report.path}: INVALID ({', '.join(parts)})")
    for line in report.errors:
        click.echo(f"  error: {line}")
    for vec in report.vectors:
        click.echo(f"  {_vector_line(report.path, vec)}")
    for note in report.notes:
        click.echo(f"  note: {note}")


def _vector_line(path: str, vec: VectorResult) -> str:
    where = f"{path}: vectors[{vec.index}] {vec.variable} {list(vec.registers)}"
    if vec.decoded is None:
        return f"{vec.status}: {where} (the profile has errors)"
    if vec.passed:
        return f"pass: {where} -> {vec.decoded!r} (expected {vec.expected!r})"
    return f"FAIL: {where}: expected {vec.expected!r}, decoded {vec.decoded!r}"


def _report_doc(report: ProfileReport) -> dict[str, Any]:
    return {
        "file": report.path,
        "ok": report.ok,
        "profile": _profile_doc(report.profile) if report.profile else None,
        "errors": list(report.errors),
        "vectors": [{"index": v.index, "variable": v.variable, "registers": list(v.registers),
                     "expected": _number(v.expected), "decoded": _number(v.decoded), "status": v.status,
                     "source": v.source} for v in report.vectors],
        "notes": list(report.notes),
    }


def _profile_doc(profile: Profile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "path": profile.path,
        "model": profile.model,
        "manufacturer": profile.manufacturer,
        "firmware": profile.firmware,
        "source": profile.source,
        "address_base": profile.address_base,
        "conditions": profile.conditions,
        "variables": [{"name": v.name, "table": v.table, "address": v.address, "data_type": v.data_type,
                       "order": v.order, "unit": v.unit} for v in profile.variables],
        "vectors": len(profile.vectors),
    }


def _number(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those are written as strings."""
    if value is None or math.isfinite(value):
        return value
    return str(value)
