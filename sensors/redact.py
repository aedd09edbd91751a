"""Secrets out of what aqnet prints: the password of a URL (`mqtt://user:pw@host`, `postgresql://user:pw@host/db`,
`https://user:pw@host`) and of a libpq keyword string (`password=pw`), masked in any text. Pure (no I/O).

Contract: `redact_url(url)` returns `url` with its password replaced by `***` (user, host, port, path and query
kept; a query parameter named like a secret, e.g. `password=` or `token=`, masked too); a URL without one comes
back unchanged. `redact(text)` does the same to every URL and every `password=…` keyword found anywhere in
`text` (an exception's message, a log line), so an error that quotes the URL it failed on shows no password.
`redact_doc(doc)` applies it to every string (keys and values) of a JSON-like document (the daemon's `/status`).
Used wherever a URL or a library's error is put in a log line, an error message or a status document; it is
the last line of defence, not a licence to print URLs carelessly.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact", "redact_doc", "redact_url"]

MASK = "***"
#: scheme://user:password@ — the password runs to the last '@' before the host (a password may hold '@' or ':')
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)(?P<secret>[^\s'\"/]*)@"
                           r"(?=[^\s@'\"]*(?:[\s'\"]|$))")
#: password=… or token=… (libpq keywords, query parameters), quoted or not
_KEYWORD = re.compile(r"(?P<head>\b(?:password|passwd|pass|secret|token|sslpassword)\s*=\s*)"
                      r"(?P<secret>'(?:[^'\\]|\\.)*'|\"[^\"]*\"|[^\s&'\"]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with every URL password and every `password=`/`token=`-like value replaced by `***`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _KEYWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def redact_url(url: str) -> str:
    """`url` with its password (and secret-named query parameters) replaced by `***`."""
    return redact(url)


def redact_doc(doc: object) -> object:
    """`doc` (dicts, lists, tuples, strings, numbers) with `redact` applied to every string in it."""
    if isinstance(doc, str):
        return redact(doc)
    if isinstance(doc, dict):
        return {redact_doc(k): redact_doc(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [redact_doc(v) for v in doc]
    return doc
