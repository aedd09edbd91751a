"""The broker's access rules for aqnet, as text: who may publish or read what, the roles and sensor-formats files.
Stage 1 (the broker the MQTT sensors publish to); pure.

Its files, the hashing and the reload are sensors.mqtt.broker.credentials.

Contract:
- Every user of the password file is either a **service user** (one of aqnet's own clients: its name starts with
  `aqnet`, `SERVICE_PREFIX`; a role from the roles file, or a built-in user) or a **sensor** (username = sensor id).
- A sensor may publish only to its own topic **of its own payload format** (`SENSOR_TOPICS`: `aqnet/<id>/readings`,
  `airrohr/<id>/data` or `purpleair/<id>/data`) and read nothing. Its formats are recorded when its credentials
  are issued (`aqnet sensors credentials` reads them from the registry: the `profile` of its MQTT devices) in the
  sensor-formats file beside the password file (`render_sensor_formats`; Mosquitto never reads it). A sensor
  without a record (credentials issued before this file existed) keeps the three topics until its credentials
  are issued again; its ACL section says so. The grants are per-user `user`/`topic` sections, not `pattern` lines
  (Mosquitto applies pattern lines to every user, so a pattern cannot differ by format).
- The topic names the login: the broker lets user X publish only under `<format>/X/...`, so the topic's identity
  level is the login's identity; the daemon checks that a self-identifying payload (airrohr `esp8266id`,
  PurpleAir `SensorId`) names a device of that same sensor (sensors.mqtt.directory, `identity_mismatch`).
- A `daemon` service user reads every sensor topic, publishes (and reads back) under its alert prefix, and may
  publish to the sensor topics named after itself (`aqnet/<its name>/readings`, …: the read-access probes of
  sensors.mqtt.client; no sensor has that id, so such a message is dead-lettered as an unknown sensor).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "DAEMON_USER",
    "DEFAULT_ALERT_PREFIX",
    "RESERVED_USERS",
    "ROLES",
    "SENSOR_FORMATS",
    "SENSOR_TOPICS",
    "SENSOR_TOPIC_PATTERNS",
    "SERVICE_PREFIX",
    "SIMULATOR_USER",
    "CredentialsError",
    "ServiceRole",
    "allowed_topics",
    "check_sensor_username",
    "check_username",
    "is_service_name",
    "parse_roles",
    "parse_sensor_formats",
    "render_acl",
    "render_roles",
    "render_sensor_formats",
]

#: the daemon's MQTT user: reads every sensor's readings (and publishes, for the alert channel)
DAEMON_USER = "aqnet"
#: the simulated network's MQTT user (`aqnet simulate` under `aqnet up --secure`): publishes for every microsensor
SIMULATOR_USER = "aqnet-simulators"
RESERVED_USERS: frozenset[str] = frozenset({DAEMON_USER, SIMULATOR_USER})
#: every MQTT username starting with this (any case) is reserved for aqnet's own clients, never a sensor's
SERVICE_PREFIX = "aqnet"
#: the roles a service user may have in the roles file
ROLES: tuple[str, ...] = ("daemon",)
#: the alert channel's default state topic prefix (alerts.delivery.channels.mqtt)
DEFAULT_ALERT_PREFIX = "aqnet/alerts"
#: topics a sensor may publish to, `%u` being its username (= sensor id); the templates of
#: sensors.mqtt.payloads.TOPICS with the sensor id in the place of `{sensor_id}` or of the wildcard
SENSOR_TOPICS: Mapping[str, str] = {"aqnet-json": "aqnet/%u/readings", "airrohr": "airrohr/%u/data",
                                     "purpleair": "purpleair/%u/data"}
#: the payload formats a sensor may publish (a device's `profile`)
SENSOR_FORMATS: tuple[str, ...] = tuple(SENSOR_TOPICS)
SENSOR_TOPIC_PATTERNS: tuple[str, ...] = tuple(SENSOR_TOPICS.values())
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CredentialsError(RuntimeError):
    """Credentials could not be issued or the broker not reloaded; the message says what, where and why."""


@dataclass(frozen=True, slots=True)
class ServiceRole:
    """One line of the roles file: service user `username` has `role`; a daemon publishes alert state topics
    under `alert_prefix` (None: it publishes nothing)."""

    username: str
    role: str = "daemon"
    alert_prefix: str | None = DEFAULT_ALERT_PREFIX

    def __post_init__(self) -> None:
        where = f"service user {self.username!r}"
        if not is_service_name(self.username) or not _USERNAME.match(self.username):
            raise CredentialsError(f"{where}: expected a name starting with {SERVICE_PREFIX!r} (1–64 letters, "
                                   "digits, '.', '_' or '-'): aqnet's own logins are told from sensors by name")
        if self.role not in ROLES:
            raise CredentialsError(f"{where}: role: expected one of {', '.join(ROLES)}, got {self.role!r}")
        prefix = self.alert_prefix
        if prefix is not None and (not prefix or prefix != prefix.strip("/") or any(c in prefix for c in "+# \0")):
            raise CredentialsError(f"{where}: alert prefix: expected a topic without wildcards, spaces or "
                                   f"leading/trailing '/', got {prefix!r}")

    def grants(self) -> tuple[str, ...]:
        """The ACL `topic` lines of this user (what it needs and nothing more)."""
        reads = tuple(f"topic read {p.replace('%u', '+')}" for p in SENSOR_TOPIC_PATTERNS)
        probes = tuple(f"topic write {p.replace('%u', self.username)}" for p in SENSOR_TOPIC_PATTERNS)
        writes = (f"topic readwrite {self.alert_prefix}/#",) if self.alert_prefix else ()
        return reads + probes + writes



def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise CredentialsError(f"MQTT username {username!r}: expected 1–64 letters, digits, '.', '_' or '-' "
                               "starting with a letter or digit (a sensor id)")
    return username


def is_service_name(username: str) -> bool:
    """True when `username` is reserved for aqnet's own clients (starts with `aqnet`, any case)."""
    return username.lower().startswith(SERVICE_PREFIX)


def check_sensor_username(sensor_id: str, roles: Iterable[str] = ()) -> str:
    """`sensor_id` if a sensor may log in with it; CredentialsError when it is malformed, or a service name
    (reserved: it starts with `aqnet`, or the roles file names it)."""
    check_username(sensor_id)
    if sensor_id in RESERVED_USERS or is_service_name(sensor_id) or sensor_id in set(roles):
        raise CredentialsError(f"sensor {sensor_id}: the MQTT username {sensor_id!r} is reserved for aqnet's own "
                               f"clients (names starting with {SERVICE_PREFIX!r}); rename the sensor")
    return sensor_id


def parse_roles(text: str, *, where: str = "roles file") -> dict[str, ServiceRole]:
    """username → ServiceRole of a roles file: `username role [alerts=PREFIX|alerts=-]` lines; blank lines and
    `#` comments skipped. A malformed line is an error naming it."""
    roles: dict[str, ServiceRole] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        options = dict(f.partition("=")[::2] for f in fields[2:])
        if len(fields) < 2 or set(options) - {"alerts"} or any("=" not in f for f in fields[2:]):
            raise CredentialsError(f"{where}: line {n}: expected `username role [alerts=PREFIX]`, got {line[:60]!r}")
        prefix = options.get("alerts", DEFAULT_ALERT_PREFIX)
        try:
            roles[fields[0]] = ServiceRole(fields[0], fields[1], None if prefix == "-" else prefix)
        except CredentialsError as exc:
            raise CredentialsError(f"{where}: line {n}: {exc}") from None
    return roles


def render_roles(roles: Mapping[str, ServiceRole]) -> str:
    """The roles file for `roles`, sorted by username (`parse_roles` reads it back)."""
    head = ["# aqnet service users of this broker and their roles, written by `aqnet broker daemon-user`",
            ("# (sensors/mqtt/broker/credentials.py); the ACL file is regenerated from it. "
            "username role [alerts=PREFIX|-]")]
    return "\n".join([*head, *(f"{r.username} {r.role} alerts={r.alert_prefix or '-'}"
                                for r in (roles[u] for u in sorted(roles)))]) + "\n"


def allowed_topics(username: str, formats: Iterable[str] | None = None) -> tuple[str, ...]:
    """The topics sensor `username` may publish to: one per payload format in `formats` (None: every format, the
    grant of a sensor whose formats were never recorded). CredentialsError for an unknown format."""
    chosen = SENSOR_FORMATS if formats is None else tuple(dict.fromkeys(formats))
    unknown = [f for f in chosen if f not in SENSOR_TOPICS]
    if unknown:
        raise CredentialsError(f"sensor {username}: payload format {unknown[0]!r}: expected one of "
                               f"{', '.join(SENSOR_FORMATS)}")
    return tuple(SENSOR_TOPICS[f].replace("%u", username) for f in SENSOR_FORMATS if f in chosen)


def parse_sensor_formats(text: str, *, where: str = "sensor-formats file") -> dict[str, tuple[str, ...]]:
    """sensor id → payload formats of a sensor-formats file (`sensor_id format[,format...]` lines; blank lines and
    `#` comments skipped). A malformed line or an unknown format is an error naming the line."""
    out: dict[str, tuple[str, ...]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not _USERNAME.match(fields[0]):
            raise CredentialsError(f"{where}: line {n}: expected `sensor_id format[,format]`, got {line[:60]!r}")
        formats = tuple(fields[1].split(","))
        try:
            allowed_topics(fields[0], formats)
        except CredentialsError as exc:
            raise CredentialsError(f"{where}: line {n}: {exc}") from None
        out[fields[0]] = formats
    return out


def render_sensor_formats(formats: Mapping[str, Iterable[str]]) -> str:
    """The sensor-formats file for sensor id → formats, sorted (`parse_sensor_formats` reads it back)."""
    head = ["# aqnet: the payload formats each sensor login may publish, recorded by `aqnet sensors credentials`",
            "# (sensors/mqtt/broker/acl.py); the ACL file is regenerated from it. sensor_id format[,format]"]
    return "\n".join([*head, *(f"{sid} {','.join(formats[sid])}" for sid in sorted(formats))]) + "\n"


def render_acl(users: Iterable[str], roles: Mapping[str, ServiceRole] | None = None,
               formats: Mapping[str, Iterable[str]] | None = None) -> str:
    """The ACL file for the users of the password file, their roles and the sensors' recorded payload formats
    (see the module docstring)."""
    present = set(users)
    roles = roles or {}
    formats = formats or {}
    lines = ["# written by aqnet (sensors/mqtt/broker/acl.py) from the password file's users, the roles file and the",
             "# sensor-formats file; edits are overwritten by `aqnet sensors credentials` and `aqnet broker",
             "# daemon-user`. A user may do only what a line here grants it.", ""]
    for user in sorted(present & set(roles)):
        role = roles[user]
        lines += [f"# aqnet service user ({role.role}): reads every sensor's topics"
                  + (f", publishes alert states under {role.alert_prefix}/" if role.alert_prefix else "")
                  + "; its own probe topics", f"user {user}", *role.grants(), ""]
    present -= set(roles)
    if DAEMON_USER in present:
        lines += ["# the aqnet daemon reads every sensor's readings (and publishes alerts)",
                  f"user {DAEMON_USER}", "topic readwrite #", ""]
    if SIMULATOR_USER in present:
        lines += ["# the simulated network publishes for every simulated microsensor",
                  f"user {SIMULATOR_USER}",
                  *(f"topic write {p.replace('%u', '+')}" for p in SENSOR_TOPIC_PATTERNS), ""]
    sensors = sorted(u for u in present if not is_service_name(u))
    if sensors:
        lines += ["# every other user is a microsensor (username = sensor id): it may publish its own topic of its",
                  "# own payload format only, and read nothing", ""]
    for user in sensors:
        recorded = formats.get(user)
        note = (f"# sensor {user}: {', '.join(recorded)}" if recorded is not None else
                f"# sensor {user}: formats not recorded (credentials issued before aqnet recorded them): every "
                "format's topic until they are issued again")
        lines += [note, f"user {user}",
                  *(f"topic write {t}" for t in allowed_topics(user, None if recorded is None else recorded)), ""]
    return "\n".join(lines)
