"""What each role may do, once for every door into aqnet: the HTTP API's bearer tokens (aqnet.api.context) and
the web console's signed-in people (aqnet.console) check a caller's role against these sets with `refusal`.
Shell (aqnet); pure.

Roles: technician (registry, maintenance, credentials, commissioning), officer (alert operations), reader
(reads), admin (the console's users; a console account only, never a token). Every role reads; technicians and
officers validate data (issue 21).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ADMIN", "OFFICER", "READERS", "TECHNICIAN", "VALIDATORS", "permits", "refusal"]

READERS: frozenset[str] = frozenset({"technician", "officer", "reader", "admin"})  #: every role reads
TECHNICIAN: frozenset[str] = frozenset({"technician"})  #: registry, maintenance, credentials, commissioning
OFFICER: frozenset[str] = frozenset({"officer"})  #: alert operations (acknowledge, resolve, annotate: issue 10)
VALIDATORS: frozenset[str] = frozenset({"technician", "officer"})  #: validation by people (issue 21)
ADMIN: frozenset[str] = frozenset({"admin"})  #: the console's user accounts


def permits(role: str, allowed: Iterable[str]) -> bool:
    """True when `role` is one of `allowed`."""
    return role in frozenset(allowed)


def refusal(who: str, role: str, allowed: Iterable[str]) -> str | None:
    """None when `role` may act; else the refusal's text, naming the caller, its role and the roles needed."""
    roles = frozenset(allowed)
    if role in roles:
        return None
    return f"{who} has role {role}; this needs {' or '.join(sorted(roles))}"
