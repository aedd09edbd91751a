"""The production database, made once by an administrator (`aqnet db init`), so the daemon runs as a role that
is not a superuser. Stage 3 (storage); I/O (psycopg, sync).

Contract (`init_database`; every step idempotent, so running it again changes nothing and reports so):
- the daemon's login role `role` exists with LOGIN and none of SUPERUSER, CREATEDB, CREATEROLE, REPLICATION,
  BYPASSRLS (an existing role with one of those is an error naming it: aqnet never strips a role's attributes
  silently). With a password, its SCRAM-SHA-256 verifier is computed client-side (libpq), so the clear password
  never reaches the server's log (`log_statement = ddl` would print an ALTER ROLE … PASSWORD);
- the group role `aqnet_readonly` (NOLOGIN) exists: migration 0001 creates it only when missing, so with it made
  here the daemon's role needs no CREATEROLE; migrations grant it SELECT on what they create, as owner;
- the database `database` exists and is owned by `role` (so the role owns the `public` schema, PostgreSQL 15's
  pg_database_owner, and every object its migrations create: it can create, alter and drop its own tables,
  hypertables and chunks, and nothing in other databases);
- in that database the extensions `timescaledb` (which only a superuser may create) and `btree_gist` (0002)
  exist. The daemon then applies the migrations itself (`aqnet db migrate`, systemd's ExecStartPre) as `role`.
The administrator's URL names any database of the cluster (e.g. `postgres`); its role must be a superuser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["READONLY_ROLE", "DbInitError", "InitReport", "init_database"]

READONLY_ROLE = "aqnet_readonly"
_FORBIDDEN = ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")
_ATTRIBUTE = {"rolsuper": "SUPERUSER", "rolcreatedb": "CREATEDB", "rolcreaterole": "CREATEROLE",
              "rolreplication": "REPLICATION", "rolbypassrls": "BYPASSRLS"}
EXTENSIONS = ("timescaledb", "btree_gist")


class DbInitError(RuntimeError):
    """The database could not be prepared; the message names the role, database or step."""


@dataclass
class InitReport:
    """What `init_database` did (`created` / `updated`) and found already in place (`present`)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


def _ensure_role(conn: psycopg.Connection, role: str, password: str | None, report: InitReport) -> None:
    row = conn.execute(f"SELECT {', '.join(_FORBIDDEN)}, rolcanlogin FROM pg_roles WHERE rolname = %s",
                       (role,)).fetchone()
    if row is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
                     .format(sql.Identifier(role)))
        report.created.append(f"role {role}")
    else:
        extra = [_ATTRIBUTE[name] for name, on in zip(_FORBIDDEN, row[:-1], strict=True) if on]
        if extra:
            fix = " ".join("NO" + a for a in extra)
            raise DbInitError(f"role {role} exists with {', '.join(extra)}: the daemon's role must not have them; "
                              f"pick another role name, or ALTER ROLE {role} {fix} yourself")
        if not row[-1]:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
            report.updated.append(f"role {role}: LOGIN")
        else:
            report.present.append(f"role {role}")
    if password is not None:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
        report.updated.append(f"role {role}: password")
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READONLY_ROLE,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(READONLY_ROLE)))
        report.created.append(f"role {READONLY_ROLE}")
    else:
        report.present.append(f"role {READONLY_ROLE}")


def _ensure_database(conn: psycopg.Connection, database: str, role: str, report: InitReport) -> None:
    row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (database,)).fetchone()
    if row is None:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role)))
        report.created.append(f"database {database} (owner {role})")
    elif row[0] != role:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database), sql.Identifier(role)))
        report.updated.append(f"database {database}: owner {row[0]} → {role}")
    else:
        report.present.append(f"database {database} (owner {role})")


def init_database(admin_url: str, *, role: str, database: str, password: str | None = None) -> InitReport:
    """Create (or check) the daemon's role, the read-only group role, the database and its extensions."""
    report = InitReport()
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            if superuser is None or not superuser[0]:
                raise DbInitError(f"{conn.info.user}: --admin-url must name a superuser (it creates the "
                                  "timescaledb extension and the roles)")
            _ensure_role(conn, role, password, report)
            _ensure_database(conn, database, role, report)
        target = make_conninfo(admin_url, dbname=database)
        with psycopg.connect(target, autocommit=True) as conn:
            for ext in EXTENSIONS:
                if conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (ext,)).fetchone():
                    report.present.append(f"extension {ext}")
                else:
                    conn.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(ext)))
                    report.created.append(f"extension {ext} in {database}")
    except psycopg.Error as exc:
        where = conninfo_to_dict(admin_url).get("host", "")
        raise DbInitError(f"database init on {where or 'the admin URL'} failed: {exc}".strip()) from None
    return report
