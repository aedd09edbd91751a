"""Pure pieces of the HTTP listeners' defences: who the client is, HTTP basic credentials, and the per-client
limit on failed authentications. No I/O; the shells are aqnet.http.server and aqnet.http.auth.

Contracts:
- `client_address(peer, headers, trusted)`: the client is the TCP peer, unless the peer is a trusted proxy; then
  it is the right-most address of `X-Forwarded-For` / `Forwarded: for=` that is not itself a trusted proxy
  (the left-most entries are whatever the client chose to send, so they are never believed).
- `parse_basic(value)`: (username, password) of an `Authorization: Basic …` header, or None when it is absent or
  malformed. Never raises, never echoes the value.
- `FailureLimiter`: at most `limit` failed authentications per client in any `window_s`; `blocked(client, now)`
  says whether the client must be refused (429) before any credential is checked. Memory is bounded: at most
  `max_clients` clients are tracked (the stalest dropped first).
- `RequestLimiter`: at most `limit` requests per client in any `window_s` (the public listener's rate):
  `admit(client, now)` counts the request and returns 0, or refuses it (not counted) and returns the whole seconds
  until the client may ask again (`Retry-After`). Same memory bound.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence

__all__ = ["FailureLimiter", "RequestLimiter", "TrustedProxies", "client_address", "parse_basic"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose forwarding headers are believed (IP addresses or networks)."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self._networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in self._networks)


def _forwarded_for(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """Addresses of the forwarding headers, in order (left = nearest the client). `Forwarded` wins over
    `X-Forwarded-For` when both are present."""
    forwarded: list[str] = []
    xff: list[str] = []
    for name, value in headers:
        text = value.decode("latin-1")
        if name == b"forwarded":
            for element in text.split(","):
                for pair in element.split(";"):
                    key, _, v = pair.strip().partition("=")
                    if key.lower() == "for" and v:
                        v = v.strip('"')
                        if v.startswith("["):  # [2001:db8::1]:port
                            v = v[1:v.find("]")] if "]" in v else v[1:]
                        elif v.count(":") == 1:  # 192.0.2.1:port
                            v = v.split(":")[0]
                        forwarded.append(v)
        elif name == b"x-forwarded-for":
            xff += [a.strip() for a in text.split(",") if a.strip()]
    return forwarded or xff


def client_address(peer: str | None, headers: Sequence[tuple[bytes, bytes]], trusted: TrustedProxies) -> str:
    """The client's address (see the module docstring); "unknown" when there is no peer (a Unix socket)."""
    client = peer or "unknown"
    if not trusted or client not in trusted:
        return client
    for hop in reversed(_forwarded_for(headers)):
        if hop not in trusted:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return client  # "unknown", an obfuscated name: the proxy is the best we know
        client = hop
    return client


def parse_basic(value: str | None) -> tuple[str, str] | None:
    """(username, password) of a `Basic` Authorization header value, or None."""
    if not value:
        return None
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 1024:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password:
        return None
    return user, password


class FailureLimiter:
    """At most `limit` failures per client within `window_s` (a sliding window of failure times)."""

    def __init__(self, limit: int, window_s: float = 60.0, *, max_clients: int = 10_000) -> None:
        if limit < 1 or window_s <= 0 or max_clients < 1:
            raise ValueError(f"FailureLimiter: limit ({limit}), window_s ({window_s}) and max_clients "
                             f"({max_clients}) must be positive")
        self.limit, self.window_s, self.max_clients = limit, window_s, max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def blocked(self, client: str, now: float) -> bool:
        """True when `client` has used up its failures in the window: refuse it before checking anything."""
        times = self._recent(client, now)
        return times is not None and len(times) >= self.limit

    def retry_after(self, client: str, now: float) -> int:
        """Whole seconds until `client` may try again (0: now)."""
        times = self._recent(client, now)
        if times is None or len(times) < self.limit:
            return 0
        return max(1, int(times[-self.limit] + self.window_s - now + 0.999))

    def failed(self, client: str, now: float) -> None:
        """Count one failed authentication of `client`."""
        times = self._recent(client, now)
        if times is None:
            times = self._failures[client] = deque(maxlen=self.limit)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(client)
        times.append(now)

    def __len__(self) -> int:
        return len(self._failures)


class RequestLimiter:
    """At most `limit` requests per client within `window_s`: a `FailureLimiter` counting every admitted request."""

    def __init__(self, limit: int, window_s: float = 60.0, *, max_clients: int = 10_000) -> None:
        self._window = FailureLimiter(limit, window_s, max_clients=max_clients)

    def admit(self, client: str, now: float) -> int:
        """0 when `client`'s request at `now` is admitted (and counted); else the whole seconds (>= 1) to wait."""
        if self._window.blocked(client, now):
            return self._window.retry_after(client, now)
        self._window.failed(client, now)
        return 0

    def __len__(self) -> int:
        return len(self._window)
