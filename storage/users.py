"""The `console_users` table: the web console's people, each with one role, their argon2id password hashes and
the lockout after repeated failures. I/O (psycopg 3 async), with pure hashing helpers.

Contract:
- `hash_password` / `verify_password` use argon2-cffi's `PasswordHasher` (argon2id, the library's default
  parameters); `verify_password` never raises for a wrong password or a malformed hash (it is then just wrong).
- `sign_in(conn, username, password, policy, now)` is the only way a password is checked. An unknown user, a
  disabled one and a wrong password all answer `SignIn(user=None, refusal="wrong")` after the same argon2 work
  (an unknown name is checked against a dummy hash). A wrong password of a known user counts a failure; at
  `policy.max_failures` consecutive failures the account is locked for `policy.lockout_s` (0: until a reset),
  and a locked account answers `refusal="locked"` whatever the password, without counting. A right password
  clears the count and stamps `last_login_at`.
- `disable_user` and `reset_password` end the user's sessions (`console_sessions`); `reset_password` unlocks.
- Errors are `UserError(code, message)`: invalid (bad name, role or password), not_found, duplicate.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from psycopg import AsyncConnection
from psycopg.rows import dict_row

__all__ = ["MIN_PASSWORD_LENGTH", "USER_ROLES", "LockoutPolicy", "SignIn", "User", "UserError", "UserRole",
           "add_user", "disable_user", "get_user", "hash_password", "list_users", "reset_password", "sign_in",
           "verify_password"]

UserRole = Literal["technician", "officer", "reader", "admin"]
#: technician, officer and reader as for API tokens (storage.tokens); admin manages the console's users
USER_ROLES: tuple[UserRole, ...] = get_args(UserRole)
#: the project's own policy for passwords people choose (not from a norm); long passphrases are welcome
MIN_PASSWORD_LENGTH = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_COLUMNS = ("id, username, role, created_at, created_by, password_changed_at, disabled_at, failed_logins, "
            "locked_until, last_login_at")

_hasher = PasswordHasher()  # argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile)


class UserError(Exception):
    """A user operation was refused; `code` is invalid | not_found | duplicate, `message` says which user."""

    def __init__(self, code: Literal["invalid", "not_found", "duplicate"], message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class User:
    """One console account, without its password hash."""

    id: int
    username: str
    role: UserRole
    created_at: datetime
    created_by: str
    password_changed_at: datetime
    disabled_at: datetime | None
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None

    def locked(self, now: datetime) -> bool:
        """True while the account is locked out at `now`."""
        return self.locked_until is not None and self.locked_until > now

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times ISO 8601)."""
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {"id": self.id, "username": self.username, "role": self.role, "created_at": iso(self.created_at),
                "created_by": self.created_by, "password_changed_at": iso(self.password_changed_at),
                "disabled_at": iso(self.disabled_at), "failed_logins": self.failed_logins,
                "locked_until": iso(self.locked_until), "last_login_at": iso(self.last_login_at)}


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """When repeated wrong passwords lock an account (`console.lockout_failures`, `console.lockout_s`)."""

    max_failures: int = 5  #: consecutive wrong passwords that lock the account (the issue's acceptance: five)
    lockout_s: float = 900.0  #: how long it stays locked; 0: until `aqnet users reset-password`

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError(f"lockout policy: max_failures expected >= 1, got {self.max_failures}")
        if self.lockout_s < 0:
            raise ValueError(f"lockout policy: lockout_s expected >= 0, got {self.lockout_s}")


@dataclass(frozen=True, slots=True)
class SignIn:
    """The outcome of a sign-in: the user, or why not (`wrong` covers unknown and disabled users too)."""

    user: User | None
    refusal: Literal["wrong", "locked"] | None = None


def hash_password(password: str) -> str:
    """The stored form of `password`: an argon2id PHC string."""
    return _hasher.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the argon2 hash `stored`; False when wrong or `stored` is malformed."""
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


#: checked against when no such user exists, so the answer costs what a wrong password costs
_DUMMY_HASH = hash_password(secrets.token_urlsafe(24))


def _check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError("invalid", f"user {username!r}: the password must have at least {MIN_PASSWORD_LENGTH} "
                                   f"characters, got {len(password)}")
    if "\x00" in password:
        raise UserError("invalid", f"user {username!r}: the password must not contain a NUL character")


def _user(row: dict[str, Any]) -> User:
    return User(**{k: row[k] for k in User.__slots__})


async def add_user(conn: AsyncConnection[Any], *, username: str, role: str, password: str,
                   created_by: str) -> User:
    """Create an account; UserError(invalid) for a bad name, role or password, (duplicate) for a taken name."""
    if not _USERNAME.match(username):
        raise UserError("invalid", f"new user {username!r}: a name is 1-64 characters of a-z, 0-9 and . _ @ -, "
                                   "starting with a letter or digit")
    if role not in USER_ROLES:
        raise UserError("invalid", f"new user {username!r}: role {role!r} is not one of {', '.join(USER_ROLES)}")
    _check_password(password, username)
    hashed = await asyncio.to_thread(hash_password, password)
    try:
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"INSERT INTO console_users (username, role, password_hash, created_by) "
                              f"VALUES (%s, %s, %s, %s) RETURNING {_COLUMNS}", (username, role, hashed, created_by))
            row = await cur.fetchone()
    except psycopg.errors.UniqueViolation:
        raise UserError("duplicate", f"new user {username!r}: that name is taken (see `aqnet users list`)") from None
    assert row is not None
    return _user(row)


async def list_users(conn: AsyncConnection[Any]) -> list[User]:
    """Every account (disabled ones too), by name."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM console_users ORDER BY username")
        return [_user(r) for r in await cur.fetchall()]


async def get_user(conn: AsyncConnection[Any], user_id: int) -> User | None:
    """The account with this id, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM console_users WHERE id = %s", (user_id,))
        row = await cur.fetchone()
    return None if row is None else _user(row)


async def _update(conn: AsyncConnection[Any], username: str, assignments: str, params: tuple[Any, ...]) -> User:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"UPDATE console_users SET {assignments} WHERE username = %s RETURNING {_COLUMNS}",
                          (*params, username))
        row = await cur.fetchone()
        if row is None:
            raise UserError("not_found", f"user {username!r}: no such user (see `aqnet users list`)")
        await cur.execute("DELETE FROM console_sessions WHERE user_id = %s", (row["id"],))
    return _user(row)


async def disable_user(conn: AsyncConnection[Any], username: str) -> User:
    """Disable an account at once (kept, its sessions ended); UserError(not_found) if there is none."""
    return await _update(conn, username, "disabled_at = coalesce(disabled_at, now())", ())


async def reset_password(conn: AsyncConnection[Any], username: str, password: str) -> User:
    """Set a new password, clear the failures and the lockout, end the sessions (a disabled user stays so)."""
    _check_password(password, username)
    hashed = await asyncio.to_thread(hash_password, password)
    return await _update(conn, username, "password_hash = %s, password_changed_at = now(), failed_logins = 0, "
                                         "locked_until = NULL", (hashed,))


async def sign_in(conn: AsyncConnection[Any], username: str, password: str, policy: LockoutPolicy,
                  now: datetime) -> SignIn:
    """Check a password with the lockout rules (module docstring); commits the count or the stamp."""
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS}, password_hash FROM console_users WHERE username = %s FOR UPDATE",
                          (username,))
        row = await cur.fetchone()
        if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
            return SignIn(None, "locked")
        ok = await asyncio.to_thread(verify_password, password, row["password_hash"] if row else _DUMMY_HASH)
        if row is None or row["disabled_at"] is not None:
            return SignIn(None, "wrong")
        if not ok:
            failures = int(row["failed_logins"]) + 1
            lock = failures >= policy.max_failures
            until = (now + timedelta(seconds=policy.lockout_s)) if policy.lockout_s > 0 else datetime.max.replace(
                tzinfo=now.tzinfo)
            await cur.execute("UPDATE console_users SET failed_logins = %s, locked_until = %s WHERE id = %s",
                              (0 if lock else failures, until if lock else row["locked_until"], row["id"]))
            return SignIn(None, "locked" if lock else "wrong")
        await cur.execute(f"UPDATE console_users SET failed_logins = 0, locked_until = NULL, last_login_at = %s "
                          f"WHERE id = %s RETURNING {_COLUMNS}", (now, row["id"]))
        done = await cur.fetchone()
    assert done is not None
    return SignIn(_user(done))
