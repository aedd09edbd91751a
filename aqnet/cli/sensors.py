"""`aqnet sensors …`: the group of a technician's commands (the registry's, aqnet.cli.registry; testing and
credentials on site, aqnet.cli.field) and `probe`, run against a device on site. Shell (click): parses, calls
sensors, renders.

`aqnet sensors probe HOST[:PORT] --unit N --register R` reads registers once over Modbus TCP (or RTU framed over
TCP with `--rtu-over-tcp`, or RTU on a serial line with `--serial PORT --baud B --parity P`) and prints every
interpretation of them (sensors.modbus.probe), as a table or `--json`. Exit status 1 if the read fails.
"""

from __future__ import annotations

import asyncio
import json

import click

from aqnet.cli.field import credentials_command, test_command
from aqnet.cli.health import health_command
from aqnet.cli.registry import REGISTRY_COMMANDS
from sensors.modbus.link import ModbusLink, ModbusLinkBase, ModbusReadError, RtuOverTcpLink, SerialLink
from sensors.modbus.probe import PROBE_TABLES, Probe, as_json, parse_endpoint, probe, render_table

__all__ = ["sensors"]


@click.group()
def sensors() -> None:
    """Commands for sensors and the devices behind them."""


@sensors.command("probe")
@click.argument("endpoint", required=False, metavar="HOST[:PORT]")
@click.option("--unit", "unit_id", type=click.IntRange(0, 255), required=True, help="Modbus unit (device) id")
@click.option("--register", "register", type=click.IntRange(0, 65535), required=True,
              help="first register's address (0-based PDU address unless --one-based)")
@click.option("--count", type=click.IntRange(1, 125), default=2, show_default=True, help="registers to read")
@click.option("--table", type=click.Choice(PROBE_TABLES), default="holding", show_default=True)
@click.option("--one-based", is_flag=True, help="--register is 1-based, as many manuals number registers")
@click.option("--serial", "serial_port", default=None, metavar="PORT",
              help="read Modbus RTU on this serial port (e.g. /dev/ttyUSB0) instead of HOST[:PORT]")
@click.option("--baud", type=int, default=19200, show_default=True, help="serial: bit rate")
@click.option("--parity", type=click.Choice(["N", "E", "O"]), default="E", show_default=True,
              help="serial: parity (the Modbus serial line default is even)")
@click.option("--stopbits", type=click.Choice(["1", "2"]), default="1", show_default=True, help="serial")
@click.option("--bytesize", type=click.Choice(["7", "8"]), default="8", show_default=True, help="serial")
@click.option("--rtu-over-tcp", is_flag=True, help="HOST[:PORT] is a serial converter carrying RTU frames")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.01), default=2.0, show_default=True,
              help="response timeout, s")
@click.option("--json", "as_json_flag", is_flag=True, help="print JSON instead of a table")
def probe_command(endpoint: str | None, unit_id: int, register: int, count: int, table: str, one_based: bool,
                  serial_port: str | None, baud: int, parity: str, stopbits: str, bytesize: str,
                  rtu_over_tcp: bool, timeout_s: float, as_json_flag: bool) -> None:
    """Read registers once and print every interpretation (int/uint/float in every byte and word order)."""
    if (endpoint is None) == (serial_port is None):
        raise click.UsageError("give either HOST[:PORT] or --serial PORT")
    if one_based:
        if register == 0:
            raise click.BadParameter("with --one-based the first register is 1", param_hint="--register")
        register -= 1
    link: ModbusLinkBase
    if serial_port is not None:
        if rtu_over_tcp:
            raise click.UsageError("--rtu-over-tcp applies to HOST[:PORT], not --serial")
        try:
            link = SerialLink(serial_port, baudrate=baud, parity=parity, stopbits=int(stopbits),
                              bytesize=int(bytesize), timeout_s=timeout_s, backoff_initial_s=0.0)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    else:
        assert endpoint is not None
        try:
            host, port = parse_endpoint(endpoint)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="HOST[:PORT]") from None
        cls = RtuOverTcpLink if rtu_over_tcp else ModbusLink
        link = cls(host, port, timeout_s=timeout_s, backoff_initial_s=0.0)
    try:
        result = asyncio.run(_probe_once(link, unit_id, table, register, count))
    except ModbusReadError as exc:
        raise click.ClickException(f"{exc}; check the address, unit id, table and line settings") from None
    if as_json_flag:
        click.echo(json.dumps(as_json(result), ensure_ascii=False, indent=2))
    else:
        click.echo(render_table(result))


async def _probe_once(link: ModbusLinkBase, unit_id: int, table: str, address: int, count: int) -> Probe:
    try:
        return await probe(link, unit_id=unit_id, table=table, address=address, count=count)
    finally:
        await link.close()


for _command in (*REGISTRY_COMMANDS, test_command, credentials_command, health_command):
    sensors.add_command(_command)
