"""`aqnet sensors add|list|show|update|move|calibrate|swap|maintenance|retire|commission|activate|import|export|
history`: the registry for technicians. Shell (click); I/O. Parses, calls `storage.registry`, renders an aligned
table or `--json`.

The database is `--url`, else the `--config` file's `database.url`, else the running local stack's
(`var/state.json`), as for `aqnet db migrate`. Every change is recorded in the audit log under `--actor` (default:
the OS user name). Times are ISO 8601 (`2026-05-01T08:00`, a date, `now`, or `+2h` / `-30m` from now); without an
offset they are in the network's time zone (the configuration's, else America/Bogota).
Exit status 0 on success, 1 when the registry refuses (the message names what, where and what was expected; with
`--json` the error is printed as `{"error": {"code", "field", "message"}}`), 2 on a usage error.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, TypeVar

import click
import psycopg
from psycopg import AsyncConnection

from aqnet.cli.options import URL_HELP, VAR_HELP
from aqnet.cli.registry_context import (
    device_options,
    device_values,
    maintenance_table,
    record_out,
    registry_context,
    registry_options,
    show_text,
    time_text,
    validate,
)
from aqnet.cli.render import render_table
from sensors.network import bundled_network
from sensors.redact import redact
from storage import registry
from storage.registry.models import (
    LIFECYCLES,
    CalibrationSpec,
    DeviceSpec,
    Location,
    MaintenanceSpec,
    RegistryError,
    SensorPatch,
    SensorRecord,
    SensorSpec,
)
from storage.registry.network_file import NetworkFileError, dump_network, line_of, parse_network

__all__ = ["REGISTRY_COMMANDS"]

T = TypeVar("T")


@click.command("add")
@click.argument("sensor_id", required=False)
@click.option("--file", "file_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="a YAML file with one sensor (as `export` writes them) instead of the options")
@click.option("--name", default=None)
@click.option("--kind", type=click.Choice(["station", "microsensor"]), default=None)
@click.option("--lat", type=float, default=None, help="latitude, degrees (WGS 84)")
@click.option("--lon", type=float, default=None, help="longitude, degrees (WGS 84)")
@click.option("--elevation", type=float, default=None, help="metres above sea level")
@click.option("--address", default="")
@click.option("--locality", default="")
@click.option("--mobile", is_flag=True)
@click.option("--notes", default="")
@click.option("--lifecycle", type=click.Choice(LIFECYCLES), default="planned", show_default=True)
@device_options
@registry_options(writes=True)
def add_command(sensor_id: str | None, file_path: Path | None, name: str | None, kind: str | None,
                lat: float | None, lon: float | None, elevation: float | None, address: str, locality: str,
                mobile: bool, notes: str, lifecycle: str, url: str | None, config_path: Path | None, var_dir: Path,
                as_json: bool, actor: str | None, **device: Any) -> None:
    """Register a sensor (with one device from the device options), or the sensor of --file."""
    ctx = registry_context(url, config_path, var_dir, as_json, actor)
    if file_path is not None:
        try:
            specs = parse_network(file_path.read_text(encoding="utf-8"), source=str(file_path), fmt="yaml")
        except NetworkFileError as exc:
            ctx.fail(RegistryError("invalid", str(exc), field=exc.field))
        if len(specs) != 1:
            raise click.UsageError(f"{file_path}: expected one sensor, found {len(specs)} (use `import`)")
        spec = specs[0]
    else:
        if sensor_id is None or name is None or kind is None or lat is None or lon is None:
            raise click.UsageError("give SENSOR_ID --name --kind --lat --lon (and device options), or --file")
        dev = device_values(device)
        spec = ctx.model(SensorSpec, f"sensor {sensor_id}", id=sensor_id, name=name, kind=kind,
                         location={"lat": lat, "lon": lon, "elevation_m": elevation, "address": address,
                                   "locality": locality},
                         mobile=mobile, notes=notes, lifecycle=lifecycle,
                         devices=[{"id": sensor_id, **dev} if "id" not in dev else dev] if dev else [])
    record_out(ctx, ctx.run(lambda c: registry.add_sensor(c, spec, actor=ctx.actor)), "added")


@click.command("list")
@click.option("--kind", type=click.Choice(["station", "microsensor"]), default=None)
@click.option("--lifecycle", type=click.Choice(LIFECYCLES), default=None)
@registry_options(writes=False)
def list_command(kind: str | None, lifecycle: str | None, url: str | None, config_path: Path | None,
                 var_dir: Path, as_json: bool) -> None:
    """The registered sensors, stations first."""
    ctx = registry_context(url, config_path, var_dir, as_json)
    records = ctx.run(lambda c: registry.list_sensors(c, kind=kind, lifecycle=lifecycle))
    ctx.echo([r.model_dump(mode="json") for r in records],
             render_table(["ID", "KIND", "LIFECYCLE", "DEVICES", "LAT", "LON", "LOCALITY", "NAME"],
                          [[r.id, r.kind, r.lifecycle, len(r.devices), f"{r.location.lat:.5f}",
                            f"{r.location.lon:.5f}", r.location.locality, r.name] for r in records])
             + f"\n{len(records)} sensor{'s' if len(records) != 1 else ''}")


@click.command("show")
@click.argument("sensor_id")
@registry_options(writes=False)
def show_command(sensor_id: str, url: str | None, config_path: Path | None, var_dir: Path, as_json: bool) -> None:
    """One sensor: location, lifecycle, devices and maintenance windows."""
    ctx = registry_context(url, config_path, var_dir, as_json)
    r = ctx.run(lambda c: registry.get_sensor(c, sensor_id))
    ctx.echo(r.model_dump(mode="json"), show_text(r, ctx.tz))


@click.command("update")
@click.argument("sensor_id")
@click.option("--name", default=None)
@click.option("--notes", default=None)
@click.option("--mobile/--fixed", default=None, help="whether the sensor moves around")
@click.option("--address", default=None)
@click.option("--locality", default=None)
@registry_options(writes=True)
def update_command(sensor_id: str, name: str | None, notes: str | None, mobile: bool | None, address: str | None,
                   locality: str | None, url: str | None, config_path: Path | None, var_dir: Path, as_json: bool,
                   actor: str | None) -> None:
    """Change a sensor's name, notes, mobility, address or locality."""
    ctx = registry_context(url, config_path, var_dir, as_json, actor)
    patch = ctx.model(SensorPatch, f"sensor {sensor_id}", name=name, notes=notes, mobile=mobile, address=address,
                      locality=locality)
    record_out(ctx, ctx.run(lambda c: registry.update_sensor(c, sensor_id, patch, actor=ctx.actor)), "updated")


@click.command("move")
@click.argument("sensor_id")
@click.option("--lat", type=float, required=True, help="latitude, degrees (WGS 84)")
@click.option("--lon", type=float, required=True, help="longitude, degrees (WGS 84)")
@click.option("--elevation", type=float, default=None, help="metres above sea level (default: unchanged)")
@click.option("--address", default=None, help="default: unchanged")
@click.option("--locality", default=None, help="default: unchanged")
@registry_options(writes=True)
def move_command(sensor_id: str, lat: float, lon: float, elevation: float | None, address: str | None,
                 locality: str | None, url: str | None, config_path: Path | None, var_dir: Path, as_json: bool,
                 actor: str | None) -> None:
    """Move a sensor to a new location (recorded with the old one in the audit log)."""
    ctx = registry_context(url, config_path, var_dir, as_json, actor)

    async def work(conn: AsyncConnection[Any]) -> SensorRecord:
        old = (await registry.get_sensor(conn, sensor_id)).location
        loc = validate(Location, f"sensor {sensor_id}", lat=lat, lon=lon,
                        elevation_m=old.elevation_m if elevation is None else elevation,
                        address=old.address if address is None else address,
                        locality=old.locality if locality is None else locality)
        return await registry.move_sensor(conn, sensor_id, loc, actor=ctx.actor)

    record_out(ctx, ctx.run(work), "moved")


def _lifecycle_command(name: str, to: str, doc: str) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("sensor_id")
    @click.option("--reason", default="", help="why (kept in the audit log)")
    @registry_options(writes=True)
    def command(sensor_id: str, reason: str, url: str | None, config_path: Path | None, var_dir: Path,
                as_json: bool, actor: str | None) -> None:
        ctx = registry_context(url, config_path, var_dir, as_json, actor)
        r = ctx.run(lambda c: registry.set_lifecycle(c, sensor_id, to, actor=ctx.actor,  # type: ignore[arg-type]
                                                     reason=reason))
        ctx.echo(r.model_dump(mode="json"), f"{r.id} is now {r.lifecycle}")

    return command




@click.command("lifecycle")
@click.argument("sensor_id")
@click.argument("state", type=click.Choice(LIFECYCLES))
@click.option("--reason", default="", help="why (kept in the audit log)")
@registry_options(writes=True)
def lifecycle_command(sensor_id: str, state: str, reason: str, url: str | None, config_path: Path | None,
                      var_dir: Path, as_json: bool, actor: str | None) -> None:
    """Move a sensor to STATE: planned → commissioning → active ⇄ maintenance; any → retired (final)."""
    ctx = registry_context(url, config_path, var_dir, as_json, actor)
    r = ctx.run(lambda c: registry.set_lifecycle(c, sensor_id, state, actor=ctx.actor,  # type: ignore[arg-type]
                                                 reason=reason))
    ctx.echo(r.model_dump(mode="json"), f"{r.id} is now {r.lifecycle}")


@click.command("calibrate")
@click.argument("sensor_id")
@click.option("--variable", required=True, help="vocabulary code, e.g. pm25, no2")
@click.option("--kind", type=click.Choice(["linear", "polynomial", "humidity", "linear_rh"]), required=True)
@click.option("--coefficients", required=True,
              help="linear: 'a b'; polynomial: 'c0 c1 …'; humidity: 'κ'; linear_rh: 'a b c' (a·x + b·RH + c)")
@click.option("--unit", required=True, help="the reported unit the coefficients apply in, e.g. ppb, ug/m3")
@click.option("--from", "valid_from", default="now", show_default=True, help="valid from (inclusive)")
@click.option("--to", "valid_to", default=None, help="valid until (exclusive); default: open")
@click.option("--device", default=None, help="the device (default: the sensor's primary device for --variable)")
@click.option("--source", default="", help="where the coefficients come from (co-location report, datasheet)")
@click.option("--note", default="")
@registry_options(writes=True)
def calibrate_command(sensor_id: str, variable: str, kind: str, coefficients: str, unit: str, valid_from: str,
                      valid_to: str | None, device: str | None, source: str, note: str, url: str | None,
                      config_path: Path | None, var_dir: Path, as_json: bool, actor: str | None) -> None:
    """Add a calibration to a sensor's device (validated; may not overlap one in force)."""
    ctx = registry_context(url, config_path, var_dir, as_json, actor)
    try:
        coeffs = [float(c) for c in coefficients.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by spaces, got {coefficients!r}",
                                 param_hint="--coefficients") from None
    spec = ctx.model(CalibrationSpec, f"sensor {sensor_id} calibration", variable=variable, kind=kind,
                     coefficients=coeffs, unit=unit, valid_from=ctx.time(valid_from, "--from"),
                     valid_to=ctx.time(valid_to, "--to") if valid_to else None, source=source, note=note)

    async def work(conn: AsyncConnection[Any]) -> tuple[str, int]:
        r = await registry.get_sensor(conn, sensor_id)
        dev = device or next((d.id for d in r.devices if variable in d.variables and d.primary),
                             next((d.id for d in r.devices if variable in d.variables), None))
        if dev is None or dev not in {d.id for d in r.devices}:
            raise RegistryError("not_found", f"sensor {sensor_id}: no device in service "
                                f"{'named ' + dev if dev else 'measures ' + variable}; its devices: "
                                f"{', '.join(d.id for d in r.devices) or 'none'}", field="device")
        return dev, await registry.calibrate(conn, dev, spec, actor=ctx.actor)

    dev, cal_id = ctx.run(work)
    ctx.echo({"id": cal_id, "sensor_id": sensor_id, "device_id": dev, **spec.model_dump(mode="json")},
             f"calibration {cal_id}: {sensor_id} device {dev} {variable} {kind} {coeffs} ({unit}) from "
             f"{time_text(spec.valid_from, ctx.tz)}"
             + (f" to {time_text(spec.valid_to, ctx.tz)}" if spec.valid_to else ""))


@click.command("swap")
@click.argument("sensor_id")
@click.option("--old", "old_device", required=True, help="the device taken out")
@click.option("--at", "at_text", default="now", show_default=True, help="when the new device took over")
@device_options
@registry_options(writes=True)
def swap_command(sensor_id: str, old_device: str, at_text: str, url: str | None, config_path: Path | None,
                 var_dir: Path, as_json: bool, actor: str | None, **device: Any) -> None:
    """Replace a device (--device: the new id); the new one inherits every setting not given as an option."""
    ctx = registry_context(url, config_path, var_dir, as_json, actor)
    if not device.get("device"):
        raise click.UsageError("give --device, the new device's id")
    at = ctx.time(at_text, "--at")

    async def work(conn: AsyncConnection[Any]) -> SensorRecord:
        r = await registry.get_sensor(conn, sensor_id)
        old = next((d for d in r.devices if d.id == old_device), None)
        base = old.model_dump(exclude={"firmware", "hardware_serial", "client_id"}) if old else {}
        new = validate(DeviceSpec, f"sensor {sensor_id} device {device['device']}",
                        **(device_values(device, base) or {}))
        return await registry.swap_device(conn, sensor_id, old_device, new, actor=ctx.actor, at=at)

    record_out(ctx, ctx.run(work), f"swapped {old_device} → {device['device']} in")


@click.command("maintenance")
@click.argument("sensor_id")
@click.option("--from", "starts", default=None, help="start (inclusive); default now when --to is given")
@click.option("--to", "ends", default=None, help="end (exclusive), e.g. +4h or 2026-05-01T17:00")
@click.option("--reason", default=None, help="why (required to add a window)")
@click.option("--device", default=None, help="only this device of the sensor")
@click.option("--variable", default=None, help="only this variable")
@registry_options(writes=True)
def maintenance_command(sensor_id: str, starts: str | None, ends: str | None, reason: str | None,
                        device: str | None, variable: str | None, url: str | None, config_path: Path | None,
                        var_dir: Path, as_json: bool, actor: str | None) -> None:
    """Put a sensor (or one device or variable) in maintenance for a period; without --to, list its windows."""
    ctx = registry_context(url, config_path, var_dir, as_json, actor)
    if ends is None:
        if starts or reason:
            raise click.UsageError("give --to (and --reason) to add a maintenance window")
        windows = ctx.run(lambda c: registry.list_maintenance(c, sensor_id=sensor_id))
        ctx.echo([w.model_dump(mode="json") for w in windows],
                 maintenance_table(windows, ctx.tz) if windows else f"{sensor_id}: no maintenance windows")
        return
    if not reason:
        raise click.UsageError("give --reason: it is kept with the window and shown with suppressed alerts")
    spec = ctx.model(MaintenanceSpec, f"sensor {sensor_id} maintenance", starts_at=ctx.time(starts or "now", "--from"),
                     ends_at=ctx.time(ends, "--to"), reason=reason, device_id=device, variable=variable)
    w = ctx.run(lambda c: registry.add_maintenance(c, sensor_id, spec, actor=ctx.actor))
    ctx.echo(w.model_dump(mode="json"),
             f"maintenance window {w.id} for {sensor_id}\n\n{maintenance_table([w], ctx.tz)}")


def _format(path: Path | None, fmt: str | None) -> str:
    if fmt:
        return fmt
    if path is not None and path.suffix.lower() == ".csv":
        return "csv"
    return "yaml"


@click.command("import")
@click.argument("file_path", type=click.Path(path_type=Path, dir_okay=False, exists=True), required=False)
@click.option("--bundled", is_flag=True, help="import the bundled network (19 stations, 25 microsensors)")
@click.option("--format", "fmt", type=click.Choice(["yaml", "csv"]), default=None,
              help="default: from the file's extension (.csv, else YAML)")
@registry_options(writes=True)
def import_command(file_path: Path | None, bundled: bool, fmt: str | None, url: str | None,
                   config_path: Path | None, var_dir: Path, as_json: bool, actor: str | None) -> None:
    """Import a whole network (YAML or CSV) in one transaction: all of it, or nothing."""
    if (file_path is None) == (not bundled):
        raise click.UsageError("give a FILE or --bundled")
    ctx = registry_context(url, config_path, var_dir, as_json, actor)
    text, kind = "", _format(file_path, fmt)
    if bundled:
        source = "bundled network"
        specs = [registry.spec_from_sensor(s) for s in bundled_network()]
    else:
        assert file_path is not None
        source, text = str(file_path), file_path.read_text(encoding="utf-8")
        try:
            specs = parse_network(text, source=source, fmt=kind)  # type: ignore[arg-type]
        except NetworkFileError as exc:
            ctx.fail(RegistryError("invalid", str(exc), field=exc.field))
    try:
        result = asyncio.run(_import(ctx.url, specs, ctx.actor, source))
    except RegistryError as exc:
        if exc.index is not None and text:
            line = line_of(text, fmt=kind, index=exc.index, field=exc.field)  # type: ignore[arg-type]
            where = f"{source}:{line}" if line else source
            field = f"sensors[{exc.index}].{exc.field}" if exc.field else f"sensors[{exc.index}]"
            exc = RegistryError(exc.code, f"{where}: {field}: {exc.message}; nothing was imported", field=field,
                                index=exc.index)
        ctx.fail(exc)
    except psycopg.OperationalError as exc:
        raise click.ClickException(redact(f"cannot use the database at {ctx.url}: {exc}")) from None
    ctx.echo(result.model_dump(), f"{source}: {result.added} added, {result.updated} updated, "
                                  f"{result.unchanged} unchanged")


async def _import(url: str, specs: list[SensorSpec], actor: str, source: str) -> Any:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        return await registry.import_network(conn, specs, actor=actor, source=source)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["yaml", "csv"]), default=None,
              help="default: from --output's extension, else YAML")
@click.option("--output", "-o", "out_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="write to this file (default: standard output)")
@click.option("--url", default=None, help=URL_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var"),
              help=VAR_HELP)
def export_command(fmt: str | None, out_path: Path | None, url: str | None, config_path: Path | None,
                   var_dir: Path) -> None:
    """Write the whole network as YAML or CSV (what `import` reads back)."""
    ctx = registry_context(url, config_path, var_dir, False)
    text = dump_network(ctx.run(registry.export_network), fmt=_format(out_path, fmt))  # type: ignore[arg-type]
    if out_path is None:
        click.echo(text, nl=False)
    else:
        out_path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out_path}", err=True)


@click.command("history")
@click.argument("sensor_id", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="newest N entries")
@registry_options(writes=False)
def history_command(sensor_id: str | None, limit: int, url: str | None, config_path: Path | None, var_dir: Path,
                    as_json: bool) -> None:
    """The audit log (who changed what, when, before and after), newest first; of one sensor or all."""
    ctx = registry_context(url, config_path, var_dir, as_json)

    async def work(conn: AsyncConnection[Any]) -> list[Any]:
        if sensor_id is not None:
            await registry.get_sensor(conn, sensor_id)
        return await registry.audit_log(conn, sensor_id=sensor_id, limit=limit)

    entries = ctx.run(work)

    def change(e: Any) -> str:
        keys = list(dict.fromkeys([*(e.before or {}), *(e.after or {})]))
        if e.before is None or not keys:
            return ", ".join(f"{k}={json.dumps((e.after or {})[k], ensure_ascii=False)}" for k in keys
                             if k not in ("devices", "location"))[:100]
        return ", ".join(f"{k}: {json.dumps((e.before or {}).get(k), ensure_ascii=False)} → "
                         f"{json.dumps((e.after or {}).get(k), ensure_ascii=False)}" for k in keys)[:100]

    ctx.echo([e.model_dump(mode="json") for e in entries],
             render_table(["ID", "AT", "ACTOR", "ACTION", "SENSOR", "DEVICE", "CHANGE"],
                          [[e.id, f"{e.at.astimezone(ctx.tz):%Y-%m-%d %H:%M:%S %Z}", e.actor, e.action,
                            e.sensor_id or "", e.device_id or "", change(e)] for e in entries]))


#: the `aqnet sensors` commands of the registry (aqnet.cli.sensors attaches them)
REGISTRY_COMMANDS: tuple[click.Command, ...] = (
    add_command, list_command, show_command, update_command, move_command, lifecycle_command, calibrate_command,
    swap_command, maintenance_command, import_command, export_command, history_command,
    _lifecycle_command("commission", "commissioning",
                       "Start commissioning a planned sensor (planned → commissioning)."),
    _lifecycle_command("activate", "active", "Put a sensor in service (commissioning or maintenance → active)."),
    _lifecycle_command("retire", "retired", "Retire a sensor for good; its devices go out of service."),
)
