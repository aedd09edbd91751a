"""Versioned schema migrations: apply `storage/migrations/NNNN_<what>.sql` in order, once each. I/O (sync).

Contract: each file runs in its own transaction together with its row in
`schema_migrations(version, name, checksum, applied_at)`, so a failing file leaves no trace and the next run
retries it. Running `migrate` twice is a no-op. A file whose content changed after it was applied is an error
naming the file (never re-applied, never silently ignored): add a new file instead. A session advisory lock
serialises concurrent migrators (two daemons starting at once).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

__all__ = ["MIGRATIONS_DIR", "Migration", "MigrationError", "current_version", "discover", "migrate"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: pg_advisory_lock key held while migrating: "aqnetmig" in ASCII, as a bigint
_LOCK_KEY = 0x6171_6E65_746D_6967

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """A migration file is malformed, changed after it was applied, or failed; `path` names the file."""

    def __init__(self, path: Path | str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = Path(path)


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str  #: file name, e.g. "0001_initial.sql"
    path: Path
    sql: str
    checksum: str  #: sha256 of the file's bytes, hex


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every `NNNN_<what>.sql` in `directory` by version; duplicate versions and stray .sql are errors."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise MigrationError(path, "expected a name like 0002_add_something.sql (4 digits, snake_case)")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(path, f"version {version} already used by {found[version].name}")
        data = path.read_bytes()
        found[version] = Migration(version, path.name, path, data.decode("utf-8"),
                                   hashlib.sha256(data).hexdigest())
    return [found[v] for v in sorted(found)]


def current_version(conn: psycopg.Connection) -> int:
    """The highest applied version, 0 when none (or when schema_migrations does not exist yet)."""
    with conn.transaction():  # leaves an idle connection idle (commits its own read)
        row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations in order; returns the names applied (empty when up to date)."""
    migrations = discover(directory)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise MigrationError(directory, "migrate() needs an idle connection: commit or roll back first")
    applied_names: list[str] = []
    autocommit = conn.autocommit
    conn.autocommit = True  # each file gets its own explicit transaction below
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(_CREATE_TABLE)
        applied = {int(v): (str(n), str(c)) for v, n, c in
                   conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()}
        for mig in migrations:
            if mig.version in applied:
                name, checksum = applied[mig.version]
                if checksum != mig.checksum:
                    raise MigrationError(mig.path, f"changed after it was applied as {name} (checksum "
                                         f"{checksum[:12]}…, file now {mig.checksum[:12]}…); add a new "
                                         "migration instead of editing an applied one")
                continue
            try:
                with conn.transaction():
                    conn.execute(mig.sql)
                    conn.execute("INSERT INTO schema_migrations (version, name, checksum) "
                                 "VALUES (%s, %s, %s)", (mig.version, mig.name, mig.checksum))
            except psycopg.Error as exc:
                raise MigrationError(mig.path, f"failed, rolled back: {exc}") from exc
            applied_names.append(mig.name)
        unknown = sorted(set(applied) - {m.version for m in migrations})
        if unknown:
            raise MigrationError(directory, f"database has versions {unknown} that no file provides "
                                 "(a newer aqnet migrated it?)")
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.autocommit = autocommit
    return applied_names
