"""`aqnet db`: the local stack's URL, schema migrations, and what an administrator runs once to prepare the production
database (storage.db_init). Shell (click); I/O.

`aqnet db init --admin-url postgresql://postgres@db.internal/postgres --role aqnet --database aqnet
[--password-file F]` creates, or checks, the daemon's non-superuser login role, the `aqnet_readonly` group role,
the database owned by the daemon's role, and the timescaledb and btree_gist extensions in it. Safe to run again.
Then `aqnet db migrate --config /etc/aqnet/aqnet.yaml` (systemd's ExecStartPre) applies the schema as that role.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from aqnet.cli.options import VAR_HELP, database_target, running_stack_state
from sensors.redact import redact
from storage.db_init import DbInitError, init_database

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database commands."""


@db.command("url")
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var"),
              help=VAR_HELP)
def db_url(var_dir: Path) -> None:
    """Print the running local stack's database URL."""
    click.echo(running_stack_state(var_dir)["database_url"])


@db.command("migrate")
@click.option("--url", default=None, help="database URL (default: the configuration's, or the local stack's)")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--var", "var_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("var"),
              help=VAR_HELP)
def db_migrate(url: str | None, config_path: Path | None, var_dir: Path) -> None:
    """Apply the schema migrations that are not applied yet (safe to run twice)."""
    import psycopg

    from storage.migrate import migrate

    url = database_target(url, config_path, var_dir).url
    try:
        with psycopg.connect(url) as conn:
            applied = migrate(conn)
    except psycopg.OperationalError as exc:
        raise click.ClickException(redact(f"cannot connect to {url}: {exc}")) from None
    click.echo("applied: " + ", ".join(applied) if applied else "schema is up to date")


@db.command("init")
@click.option("--admin-url", required=True, help="a superuser's URL (any database of the cluster, e.g. postgres)")
@click.option("--role", default="aqnet", show_default=True, help="the daemon's login role (database.url's user)")
@click.option("--database", default="aqnet", show_default=True, help="the database the daemon uses")
@click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="file whose first line becomes the role's password (default: leave the password as it is)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def db_init(admin_url: str, role: str, database: str, password_file: Path | None, as_json: bool) -> None:
    """Create the daemon's role (not a superuser), its database and the TimescaleDB extension, idempotently."""
    password = None
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise click.BadParameter(f"{password_file}: cannot read: {exc.strerror}",
                                     param_hint="--password-file") from None
        password = lines[0].strip() if lines else ""
        if not password:
            raise click.BadParameter(f"{password_file}: the file is empty", param_hint="--password-file")
    try:
        report = init_database(admin_url, role=role, database=database, password=password)
    except DbInitError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"created": report.created, "updated": report.updated, "present": report.present},
                              indent=2))
        return
    for what, items in (("created", report.created), ("updated", report.updated), ("present", report.present)):
        for item in items:
            click.echo(f"{what:8} {item}")
    click.echo(f"next: aqnet db migrate --url postgresql://{role}@HOST/{database} (as {role}, not a superuser)")
