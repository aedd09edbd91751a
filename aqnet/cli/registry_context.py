"""What every `aqnet sensors` registry command shares: the database, time zone, actor and output of a command
(`RegistryContext`), its common options, the device options of `add` and `swap`, and how a sensor is printed.
Shell (click over `storage.registry.models`); I/O: `RegistryContext.run` connects to the database.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import psycopg
from psycopg import AsyncConnection
from pydantic import BaseModel, ValidationError

from aqnet.cli.options import database_options, database_target
from aqnet.cli.render import render_table
from aqnet.cli.times import parse_time
from sensors.redact import redact
from storage.registry.models import DeviceSpec, RegistryError, SensorRecord, error_from_validation

__all__ = ["DEVICE_KEYS", "RegistryContext", "device_options", "device_values", "maintenance_table", "record_out",
           "registry_context", "registry_options", "show_text", "time_text", "validate"]

T = TypeVar("T")


def validate(cls: type[BaseModel], where: str, **values: Any) -> Any:
    """The model, or a RegistryError naming `where` and the field (out_of_range for coordinates)."""
    try:
        return cls.model_validate(values, strict=False)
    except ValidationError as exc:
        raise error_from_validation(exc, where) from None


class RegistryContext:
    """What every command gets: where the database is, the zone, who acts, and how to print."""

    def __init__(self, url: str, tz: tzinfo, actor: str, as_json: bool) -> None:
        self.url, self.tz, self.actor, self.as_json = url, tz, actor, as_json

    def time(self, text: str, option: str) -> datetime:
        return parse_time(text, self.tz, datetime.now(UTC), relative="signed", option=option)

    def fail(self, err: RegistryError) -> NoReturn:
        if self.as_json:
            click.echo(json.dumps({"error": err.as_dict()}, ensure_ascii=False, indent=2))
            sys.exit(1)
        raise click.ClickException(err.message)

    def run(self, work: Callable[[AsyncConnection[Any]], Coroutine[Any, Any, T]]) -> T:
        async def go() -> T:
            async with await AsyncConnection.connect(self.url, autocommit=True) as conn:
                return await work(conn)

        try:
            return asyncio.run(go())
        except RegistryError as exc:
            self.fail(exc)
        except psycopg.OperationalError as exc:
            raise click.ClickException(redact(f"cannot use the database at {self.url}: {exc}")) from None

    def model(self, cls: type[BaseModel], where: str, **values: Any) -> Any:
        try:
            return validate(cls, where, **values)
        except RegistryError as exc:
            self.fail(exc)

    def echo(self, data: Any, text: str) -> None:
        if self.as_json:
            click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        else:
            click.echo(text)


def registry_options(*, writes: bool) -> Callable[[Any], Any]:
    def decorate(f: Any) -> Any:
        f = click.option("--json", "as_json", is_flag=True, help="print JSON for programs")(f)
        f = database_options("YAML settings: its database and time zone")(f)
        if writes:
            f = click.option("--actor", default=None, help="who makes the change (audit log); default: OS user")(f)
        return f
    return decorate


def registry_context(url: str | None, config_path: Path | None, var_dir: Path, as_json: bool, actor: str | None = None
         ) -> RegistryContext:
    target = database_target(url, config_path, var_dir)
    return RegistryContext(target.url, target.tz, actor or getpass.getuser(), as_json)


# ------------------------------------------------------------------------------------------------ rendering

def endpoint_text(d: DeviceSpec) -> str:
    if d.protocol in ("modbus-tcp", "modbus-rtu-tcp"):
        return f"{d.host}:{d.port} unit {d.unit_id}"
    if d.protocol == "modbus-rtu":
        return f"{d.serial_port} unit {d.unit_id}"
    parts = [d.topic or "", f"serial {d.hardware_serial}" if d.hardware_serial else ""]
    return " ".join(p for p in parts if p) or "-"


def time_text(value: datetime, tz: tzinfo) -> str:
    return f"{value.astimezone(tz):%Y-%m-%d %H:%M %Z}"


def show_text(r: SensorRecord, tz: tzinfo) -> str:
    loc = r.location
    lines = [f"{r.id}  {r.name}", f"  kind       {r.kind}{' (mobile)' if r.mobile else ''}",
             f"  lifecycle  {r.lifecycle}" + (f" since {time_text(r.retired_at, tz)}" if r.retired_at else ""),
             f"  location   {loc.lat:.6f}, {loc.lon:.6f}"
             + (f", {loc.elevation_m:g} m" if loc.elevation_m is not None else ""),
             f"  address    {', '.join(p for p in (loc.address, loc.locality) if p) or '-'}",
             f"  notes      {r.notes or '-'}", f"  updated    {time_text(r.updated_at, tz)}", ""]
    lines.append(render_table(
        ["DEVICE", "PROFILE", "PROTOCOL", "ENDPOINT", "VARIABLES", "PRIMARY", "FIRMWARE"],
        [[d.id, d.profile, d.protocol, endpoint_text(d), " ".join(d.variables), "yes" if d.primary else "no",
          d.firmware or ""] for d in r.devices]) if r.devices else "no devices")
    if r.maintenance:
        lines += ["", maintenance_table(r.maintenance, tz)]
    return "\n".join(lines)


def maintenance_table(windows: Sequence[Any], tz: tzinfo) -> str:
    return render_table(["ID", "FROM", "TO", "SCOPE", "REASON", "BY"],
                        [[w.id, time_text(w.starts_at, tz), time_text(w.ends_at, tz),
                          (w.variable and f"{w.device_id or 'sensor'} {w.variable}") or w.device_id or "sensor",
                          w.reason, w.created_by] for w in windows])


def record_out(ctx: RegistryContext, r: SensorRecord, verb: str) -> None:
    ctx.echo(r.model_dump(mode="json"), f"{verb} {r.id} ({r.lifecycle})\n\n{show_text(r, ctx.tz)}")


# ------------------------------------------------------------------------------------------------- commands

def device_options(f: Any) -> Any:
    options: list[tuple[str, dict[str, Any]]] = [
        ("--device", {"default": None, "help": "device id (a new id for a new device)"}),
        ("--profile", {"default": None, "help": "Modbus device profile, or payload format (aqnet-json, …)"}),
        ("--protocol", {"default": None, "help": "modbus-tcp, modbus-rtu, modbus-rtu-tcp, mqtt or http"}),
        ("--variables", {"default": None, "help": "variables it measures, space separated: 'pm25 pm10'"}),
        ("--host", {"default": None}), ("--port", {"type": int, "default": None}),
        ("--unit-id", {"type": int, "default": None}), ("--serial-port", {"default": None}),
        ("--baudrate", {"type": int, "default": None}), ("--parity", {"default": None}),
        ("--stopbits", {"type": int, "default": None}), ("--bytesize", {"type": int, "default": None}),
        ("--topic", {"default": None}), ("--client-id", {"default": None}),
        ("--hardware-serial", {"default": None, "help": "airrohr esp8266id or PurpleAir MAC"}),
        ("--channels", {"default": None, "help": "payload channels it takes, space separated"}),
        ("--firmware", {"default": None}),
        ("--secondary", {"is_flag": True, "help": "not the sensor's primary instrument for its variables"}),
    ]
    for name, kw in reversed(options):
        f = click.option(name, **kw)(f)
    return f


DEVICE_KEYS = ("profile", "protocol", "variables", "host", "port", "unit_id", "serial_port", "baudrate", "parity",
                "stopbits", "bytesize", "topic", "client_id", "hardware_serial", "channels", "firmware")


def device_values(opts: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any] | None:
    given = {k: opts[k] for k in DEVICE_KEYS if opts.get(k) is not None}
    for k in ("variables", "channels"):
        if k in given:
            given[k] = given[k].split()
    if not given and not opts.get("device") and base is None:
        return None
    values = dict(base or {})
    values.update(given)
    if opts.get("device"):
        values["id"] = opts["device"]
    if base is None or opts.get("secondary"):
        values["primary"] = not opts.get("secondary")
    return values
