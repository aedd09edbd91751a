"""The alert delivery wiring: the keys, the channels of `alerts.channels` and the `Dispatcher` over them.
Shell (reads key, password and secret files; builds `alerts.delivery.*` clients; connects nothing until used).

Contract: `load_or_create_key(path, setting=…)` returns an HMAC key, creating 32 random bytes (mode 600, parent
directories as needed) when the file is missing, so a key survives restarts. `load_alert_keys(settings)` gives
the two keys, which are never the same: `link` (`alerts.link_key_file`) signs acknowledgement links and nothing
else; `webhook` (`alerts.signing_key_file`) signs the bodies of webhook channels without a `secret_file`. A link
key equal to the webhook key or to a webhook's secret is refused (ChannelConfigError): whoever verifies webhook
signatures holds that secret and could otherwise make acknowledgement links (docs/security.md: migration).
`build_channels(settings, webhook_key)` returns one channel per
configured entry with its filter; every file problem of every channel is collected and raised at once as a
`ChannelConfigError` whose lines name the channel and the file (README: "Configuration", `alerts.channels`).
`build_dispatcher` gives the `alerts.delivery.dispatch.Dispatcher` the daemon's scheduler runs; it owns and closes the
channels (`close_channels` is for channels built but never handed to a dispatcher).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from psycopg_pool import AsyncConnectionPool

from alerts.delivery.dispatch import Dispatcher
from alerts.delivery.notice import Channel
from alerts.rules.model import Rule
from alerts.settings import AlertmanagerChannel, ChannelFilter, EmailChannel, MqttChannel, WebhookChannel
from aqnet.config import Settings
from sensors.redact import redact

__all__ = ["KEY_BYTES", "AlertKeys", "ChannelConfigError", "Channels", "build_channels", "build_dispatcher",
           "close_channels", "load_alert_keys", "load_or_create_key", "read_secret"]

KEY_BYTES = 32  #: HMAC-SHA256 key length: the hash's block-size recommendation (RFC 2104 §3: at least L = 32)
_MIN_KEY_BYTES = 16  #: a shorter key file is refused (a truncated or placeholder file, not a key)

#: channel name → (channel, its filter), as `build_channels` gives them
Channels = dict[str, tuple[Channel, ChannelFilter]]


class ChannelConfigError(ValueError):
    """A channel cannot be built; `errors` holds one line per problem, each naming the channel and the file."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class AlertKeys(NamedTuple):
    """The alert keys: `link` signs acknowledgement links only, `webhook` is the webhooks' default secret."""

    link: bytes
    webhook: bytes


def load_alert_keys(settings: Settings) -> AlertKeys:
    """Both keys (each created when missing); ChannelConfigError when the link key is a webhook's key."""
    a = settings.alerts
    link = load_or_create_key(Path(a.link_key_file), setting="alerts.link_key_file")
    webhook = load_or_create_key(Path(a.signing_key_file))
    clashes = ["alerts.signing_key_file"] if link == webhook else []
    for spec in a.channels:
        if isinstance(spec, WebhookChannel) and spec.secret_file:
            secret = read_secret(spec.secret_file, channel=spec.name, key="secret_file")
            if secret == link:
                clashes.append(f"alerts.channels[{spec.name}].secret_file")
    if clashes:
        raise ChannelConfigError([f"alerts.link_key_file: {a.link_key_file} holds the same key as {c}: links need a "
                                  f"key of their own; delete {a.link_key_file} to have a new one created (links "
                                  "already sent stop working)" for c in clashes])
    return AlertKeys(link, webhook)


def load_or_create_key(path: Path, *, setting: str = "alerts.signing_key_file") -> bytes:
    """The key in `path` (`setting` names it in errors); 32 random bytes written there (mode 600) first if the
    file does not exist."""
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        if exc.filename != str(path):  # a parent is a file, or appeared meanwhile as one
            raise ChannelConfigError([f"{setting}: cannot create {path}: {exc.strerror}"]) from None
    except OSError as exc:
        raise ChannelConfigError([f"{setting}: cannot create {path}: {exc.strerror}"]) from None
    else:
        with os.fdopen(fd, "wb") as f:  # O_EXCL: two processes starting at once cannot overwrite each other's key
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ChannelConfigError([f"{setting}: cannot read {path}: {exc.strerror}"]) from None
    if len(key) < _MIN_KEY_BYTES:
        raise ChannelConfigError([(f"{setting}: {path} holds {len(key)} bytes, expected at least "
                                  f"{_MIN_KEY_BYTES} (delete it to have a new {KEY_BYTES}-byte key created; links "
                                  "already sent stop working)")])
    return key


def read_secret(path: str, *, channel: str, key: str) -> bytes:
    """The contents of a password or secret file (one trailing newline dropped), or ChannelConfigError naming
    the channel, the key and the file."""
    where = f"alerts.channels[{channel}].{key}"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ChannelConfigError([f"{where}: {path}: no such file"]) from None
    except OSError as exc:
        raise ChannelConfigError([f"{where}: {path}: cannot read: {exc.strerror}"]) from None
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if not data:
        raise ChannelConfigError([f"{where}: {path}: the file is empty"])
    return data


def _webhook(spec: WebhookChannel, settings: Settings, webhook_key: bytes) -> Channel:
    from alerts.delivery.channels.webhook import WebhookChannel as Client

    secret = read_secret(spec.secret_file, channel=spec.name, key="secret_file") if spec.secret_file else webhook_key
    return Client(spec.name, spec.url, key=secret, timeout_s=spec.timeout_s, headers=dict(spec.headers),
                  language=spec.language or settings.alerts.language, tz=settings.network.timezone)


def _email(spec: EmailChannel, settings: Settings, webhook_key: bytes) -> Channel:
    from alerts.delivery.channels.email import EmailChannel as Client

    password = (read_secret(spec.password_file, channel=spec.name, key="password_file").decode("utf-8")
                if spec.password_file else None)
    if spec.ca_file is not None and not Path(spec.ca_file).is_file():
        raise ChannelConfigError([f"alerts.channels[{spec.name}].ca_file: {spec.ca_file}: no such file"])
    if spec.username and password is None:
        raise ChannelConfigError([(f"alerts.channels[{spec.name}].password_file: username {spec.username!r} is "
                                  "set: give the file holding its password")])
    return Client(spec.name, host=spec.host, port=spec.port, starttls=spec.starttls, ca_file=spec.ca_file,
                  username=spec.username, password=password, sender=spec.sender, to=list(spec.to),
                  timeout_s=spec.timeout_s, language=spec.language or settings.alerts.language,
                  tz=settings.network.timezone)


def _mqtt(spec: MqttChannel, settings: Settings, webhook_key: bytes) -> Channel:
    from alerts.delivery.channels.mqtt import MqttAlertChannel as Client

    if spec.url is None:  # the ingest broker, with its TLS settings
        m = settings.mqtt
        return Client(spec.name, m.url, topic_prefix=spec.topic_prefix, qos=spec.qos, timeout_s=spec.timeout_s,
                      ca_file=m.ca_file, cert_file=m.cert_file, key_file=m.key_file)
    return Client(spec.name, spec.url, topic_prefix=spec.topic_prefix, qos=spec.qos, timeout_s=spec.timeout_s)


def _alertmanager(spec: AlertmanagerChannel, settings: Settings, webhook_key: bytes) -> Channel:
    from alerts.delivery.channels.alertmanager import AlertmanagerChannel as Client

    return Client(spec.name, spec.url, timeout_s=spec.timeout_s, repost_s=settings.alerts.alertmanager_repost_s,
                  language=spec.language or settings.alerts.language, tz=settings.network.timezone)


_BUILDERS: Mapping[str, Callable[[Any, Settings, bytes], Channel]] = {
    "webhook": _webhook, "email": _email, "mqtt": _mqtt, "alertmanager": _alertmanager}


def build_channels(settings: Settings, webhook_key: bytes) -> Channels:
    """Channel name → (channel, its filter), for every entry of `alerts.channels`; every problem at once.
    `webhook_key` (AlertKeys.webhook, never the link key) signs webhooks without a `secret_file`."""
    built: dict[str, tuple[Channel, ChannelFilter]] = {}
    errors: list[str] = []
    for spec in settings.alerts.channels:
        try:
            # the channel's settings are its filter (alerts.delivery.routing reads the ChannelFilter fields; the
            # dispatcher its timeout_s)
            built[spec.name] = (_BUILDERS[spec.type](spec, settings, webhook_key), spec)
        except ChannelConfigError as exc:
            errors += exc.errors
        except (ValueError, OSError) as exc:  # the client refused its settings (a URL it cannot use, …)
            errors.append(redact(f"alerts.channels[{spec.name}] ({spec.type}): {exc}"))
    if errors:
        raise ChannelConfigError(errors)
    return built


async def close_channels(channels: Mapping[str, tuple[Channel, ChannelFilter]]) -> list[str]:
    """Close every channel (one failing does not stop the others); return the failures, one line each."""
    failures = []
    for name, (channel, _) in channels.items():
        try:
            await channel.close()
        except Exception as exc:  # shutting down: report, keep closing the rest
            failures.append(f"alert channel {name}: close failed: {exc}")
    return failures


def build_dispatcher(db: str | AsyncConnectionPool[Any], settings: Settings,
                     channels: Mapping[str, tuple[Channel, ChannelFilter]], link_key: bytes, *,
                     rules: Iterable[Rule] = (), clock: Callable[[], datetime]) -> Dispatcher:
    """The `alerts.delivery.dispatch.Dispatcher` delivering the outbox to `channels` with `settings.alerts`' retry
    policy
    and links signed with `link_key` (AlertKeys.link); it owns the channels from now on (`Dispatcher.close`
    closes them). `rules`: the rules in force (their descriptions and clear levels go into the notices)."""
    a = settings.alerts
    return Dispatcher(db, channels, max_attempts=a.max_attempts, retry_min_s=a.retry_min_s,
                      retry_max_s=a.retry_max_s, public_url=a.public_url, dashboard_url=a.dashboard_url,
                      signing_key=link_key, ack_link_ttl_h=a.ack_link_ttl_h, rules=rules, clock=clock)
