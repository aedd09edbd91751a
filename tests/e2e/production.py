"""The shipped production files, rewritten only where a test machine must differ: host names, ports and paths.

`deploy/aqnet.production.yaml` and `deploy/mosquitto/aqnet.conf` are what tests/e2e/test_production.py runs. A
production host has `db.internal`, `mqtt.internal`, `smtp.internal`, `/etc/aqnet/…`; the test has free ports on
127.0.0.1 and a temporary directory. Every key the rewrite may touch is listed here (`YAML_KEYS`,
`CONF_DIRECTIVES`), each with why; `yaml_changes` / `conf_changes` say which keys really differ, so the test can
assert that nothing else does: what runs is the shipped file.

Values that hold a URL are rewritten in place: only the host, the port and the path of a file named in the query
(`sslrootcert`) change; scheme, user, password, database, path and every other query parameter are kept, which
`url_changes` checks part by part.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_YAML = ROOT / "deploy" / "aqnet.production.yaml"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "aqnet.conf"

Key = tuple[str | int, ...]

#: the keys of aqnet.production.yaml a test may rewrite, and why (channels by their index in the shipped file)
YAML_KEYS: dict[Key, str] = {
    ("database", "url"): "host db.internal:5432 → the test cluster; sslrootcert /etc/aqnet/db-ca.pem → the test CA",
    ("mqtt", "url"): "host mqtt.internal:8884 → the test broker's services TLS listener (user and password kept)",
    ("mqtt", "ca_file"): "path /etc/aqnet/mqtt-ca.pem → the test CA",
    ("storage", "spool_dir"): "path /var/lib/aqnet/spool → the test's directory",
    ("http", "intake", "host"): "0.0.0.0 → 127.0.0.1: tests listen on loopback only",
    ("http", "intake", "port"): "9110 → a free port",
    ("http", "intake", "tls_cert_file"): "path /etc/aqnet/tls/intake.crt → the test PKI's server certificate",
    ("http", "intake", "tls_key_file"): "path /etc/aqnet/tls/intake.key → its key",
    ("http", "api", "host"): "0.0.0.0 → 127.0.0.1: tests listen on loopback only",
    ("http", "api", "port"): "9109 → a free port",
    ("http", "api", "tls_cert_file"): "path /etc/aqnet/tls/api.crt → the test PKI's server certificate",
    ("http", "api", "tls_key_file"): "path /etc/aqnet/tls/api.key → its key",
    ("http", "internal", "port"): "9108 → a free port",
    ("http", "public", "port"): "9111 → a free port",
    ("alerts", "signing_key_file"): "path /var/lib/aqnet/alert-signing.key → the test's directory",
    ("alerts", "link_key_file"): "path /var/lib/aqnet/alert-link.key → the test's directory",
    ("alerts", "channels", 0, "host"): "smtp.internal → the test SMTP server (STARTTLS, AUTH)",
    ("alerts", "channels", 0, "port"): "587 → its free port",
    ("alerts", "channels", 0, "password_file"): "path /etc/aqnet/smtp.password → the test's directory",
    ("alerts", "channels", 1, "url"): "host city-systems.internal → the test's HTTPS receiver (path kept)",
    ("alerts", "channels", 2, "url"): "host alertmanager.internal:9093 → the test's Alertmanager",
    ("alerts", "channels", 4, "host"): "smtp.internal → the test SMTP server",
    # absent in the shipped file (587 by default): added, since the test server cannot listen on 587
    ("alerts", "channels", 4, "port"): "(587 by default) → the test SMTP server's free port",
    ("alerts", "channels", 4, "password_file"): "path /etc/aqnet/smtp.password → the test's directory",
}

#: the directives of deploy/mosquitto/aqnet.conf a test may rewrite, and why (a directive may stand in several
#: places, e.g. one per listener: the test maps each shipped argument to its replacement)
CONF_DIRECTIVES: dict[str, str] = {
    "password_file": "paths /etc/mosquitto/aqnet/passwd, passwd-services → the test's broker directory",
    "acl_file": "path /etc/mosquitto/aqnet/acl → the test's broker directory",
    "listener": "ports 8883 (sensors), 8884 (aqnet's services) → free ports, bound to 127.0.0.1 (loopback only)",
    "cafile": "path /etc/mosquitto/certs/ca.pem → the test CA",
    "certfile": "path /etc/mosquitto/certs/server.pem → the test PKI's server certificate",
    "keyfile": "path /etc/mosquitto/certs/server.key → its key",
    "persistence_location": "path /var/lib/mosquitto/ → the test's directory",
    "log_dest": "syslog → a file in the test's directory (the test shows it when something fails)",
    # appended when the test runs as root: Mosquitto would drop to the `mosquitto` user, which cannot enter
    # pytest's 0700 temporary directory (in production the files are the mosquitto user's own)
    "user": "(mosquitto, when started as root) → root",
}


# ------------------------------------------------------------------------------------------------- YAML

def _get(doc: Any, key: Key) -> Any:
    for part in key:
        doc = doc[part]
    return doc


def _leaves(doc: Any, prefix: Key = ()) -> Iterator[tuple[Key, Any]]:
    if isinstance(doc, Mapping):
        for k, v in doc.items():
            yield from _leaves(v, (*prefix, k))
    elif isinstance(doc, list) and doc and all(isinstance(x, Mapping) for x in doc):
        for i, v in enumerate(doc):
            yield from _leaves(v, (*prefix, i))
    else:
        yield prefix, doc


def shipped_settings() -> dict[str, Any]:
    """deploy/aqnet.production.yaml as shipped (parsed)."""
    data: dict[str, Any] = yaml.safe_load(PRODUCTION_YAML.read_text(encoding="utf-8"))
    return data


def with_url(url: str, *, host: str, port: int, query_paths: Mapping[str, str] | None = None) -> str:
    """`url` with its host and port replaced (and the query parameters in `query_paths`, which name files)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    query = parts.query
    if query_paths:
        pairs = [(k, query_paths.get(k, v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        query = urlencode(pairs, safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_changes(shipped: str, rewritten: str) -> set[str]:
    """Which parts of a URL differ: a subset of {"host", "port", "query:<name>", "scheme", "user", "password",
    "path", "query"} (the last ones never expected)."""
    a, b = urlsplit(shipped), urlsplit(rewritten)
    changed = {name for name in ("scheme", "username", "password", "hostname", "port", "path", "fragment")
               if getattr(a, name) != getattr(b, name)}
    qa, qb = dict(parse_qsl(a.query)), dict(parse_qsl(b.query))
    if qa.keys() != qb.keys():
        changed.add("query")
    changed |= {f"query:{k}" for k in qa.keys() & qb.keys() if qa[k] != qb[k]}
    return changed


def rewrite_settings(shipped: Mapping[str, Any], values: Mapping[Key, Any]) -> dict[str, Any]:
    """A deep copy of `shipped` with `values` set; a key outside `YAML_KEYS` is a KeyError (add it there, with
    why, if a test really must change it)."""
    unknown = [k for k in values if k not in YAML_KEYS]
    if unknown:
        raise KeyError(f"not a host, port or path key of the production configuration: {unknown}")
    doc = copy.deepcopy(dict(shipped))
    for key, value in values.items():
        *parents, last = key
        _get(doc, tuple(parents))[last] = value
    return doc


def yaml_changes(shipped: Mapping[str, Any], rewritten: Mapping[str, Any]) -> set[Key]:
    """The leaf keys whose value differs, or that only one of the documents has."""
    a, b = dict(_leaves(shipped)), dict(_leaves(rewritten))
    return {k for k in a.keys() | b.keys() if a.get(k, KeyError) != b.get(k, KeyError)}


# ----------------------------------------------------------------------------------------------- Mosquitto

def _directives(text: str) -> list[tuple[str, str]]:
    """(directive, arguments) of every setting line, in order (comments and blank lines left out)."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            name, _, args = stripped.partition(" ")
            out.append((name, args.strip()))
    return out


def rewrite_mosquitto_conf(text: str, values: Mapping[str, Mapping[str, str] | str]) -> str:
    """The shipped configuration with directives' arguments replaced: `values[name]` maps each shipped argument of
    `name` to its replacement (every occurrence of `name` must be mapped, and every mapping used), or is one string
    for a directive absent from the file (`user`: appended). A directive outside `CONF_DIRECTIVES` is a KeyError."""
    unknown = [k for k in values if k not in CONF_DIRECTIVES]
    if unknown:
        raise KeyError(f"not a host, port or path directive of the Mosquitto configuration: {unknown}")
    used: set[tuple[str, str]] = set()
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        name, _, arg = stripped.partition(" ")
        if stripped and not stripped.startswith("#") and name in values:
            mapping = values[name]
            if isinstance(mapping, str) or arg.strip() not in mapping:
                raise ValueError(f"{name} {arg.strip()}: no replacement given for this shipped argument")
            used.add((name, arg.strip()))
            lines.append(f"{name} {mapping[arg.strip()]}")
            continue
        lines.append(line)
    for name, mapping in values.items():
        if isinstance(mapping, str):
            if name != "user":
                raise ValueError(f"{name} is not in the shipped file")
            lines.append(f"user {mapping}")
            continue
        unused = [old for old in mapping if (name, old) not in used]
        if unused:
            raise ValueError(f"{name} {unused}: not in the shipped file")
    return "\n".join(lines) + "\n"


def conf_changes(shipped: str, rewritten: str) -> set[str]:
    """The directives whose arguments differ, or that one file has and the other lacks, comparing the setting lines
    in order (the order of the directives must be the same: an AssertionError otherwise)."""
    a, b = _directives(shipped), _directives(rewritten)
    names_a, names_b = [n for n, _ in a], [n for n, _ in b]
    changed = set(names_a).symmetric_difference(names_b)
    common_a = [d for d in a if d[0] not in changed]
    common_b = [d for d in b if d[0] not in changed]
    assert [n for n, _ in common_a] == [n for n, _ in common_b], "the settings' order differs"
    changed |= {na for (na, va), (_, vb) in zip(common_a, common_b, strict=True) if va != vb}
    return changed


def runs_as_root() -> bool:
    return os.geteuid() == 0
