"""The HTTP listeners' edge: a uvicorn server per listener, with its bounds. I/O (asyncio, uvicorn, h11).

Contracts:
- `BodyLimit` (ASGI middleware): a request whose `Content-Length` exceeds `max_bytes` is answered 413 at once,
  before any of its body is read, and the connection is closed (`Connection: close`), so the rest of the body is
  never read. A body without a length (chunked) is counted while it streams: at `max_bytes + 1` the middleware
  answers 413 and closes, and the app sees a disconnect. A part of the body that does not arrive within
  `body_timeout_s` is answered 408 (a slow-loris body). Answers are JSON: `{"error": …, "detail": …}`.
- `GuardedH11Protocol`: uvicorn's h11 protocol, plus a header timeout (uvicorn 0.55 has none): a connection
  whose request line and headers are not complete `header_timeout_s` after its first byte (or after it opened)
  is closed. The header size is bounded by h11 (`max_header_bytes`: 400 beyond).
- `server_config(app, listener, …)`: the uvicorn configuration of one listener: its host and port, TLS files,
  `limit_concurrency` (503 beyond), `timeout_keep_alive`, no proxy-header rewriting (the client address is
  aqnet.http.limits.client_address's business, believing only configured proxies), no server header.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from aqnet.config import ListenerSettings

__all__ = ["BodyLimit", "GuardedH11Protocol", "server_config"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware bounding request bodies by size and by time (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, body_timeout_s: float) -> None:
        self.app, self.max_bytes, self.body_timeout_s = app, max_bytes, body_timeout_s

    @staticmethod
    async def _answer(send: Send, status: int, error: str, detail: str) -> None:
        body = json.dumps({"error": error, "detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = ("body_too_large", f"request bodies on this listener are at most {self.max_bytes} bytes")
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._answer(send, 413, *too_large)
            return
        received = 0
        started = answered = False

        async def bounded_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                if not started:
                    answered = True
                    await self._answer(send, 408, "body_timeout",
                                       f"the request body did not arrive within {self.body_timeout_s:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started:
                        answered = True
                        await self._answer(send, 413, *too_large)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's answer to the disconnect we made up: the client has ours
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracked_send)
        except Exception:
            if not answered:
                raise


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout (see the module docstring)."""

    header_timeout_s: float = 10.0  #: set per listener by `server_config` (a subclass per listener)

    def _arm(self) -> None:
        if getattr(self, "_header_timer", None) is None:
            self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout_s,
                                                                                  self._headers_late)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()  # the request line and headers did not arrive in time

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a (next) request has begun and its headers are incomplete
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_config(app: ASGIApp, listener: ListenerSettings, *, log_level: str = "warning") -> uvicorn.Config:
    """The uvicorn configuration of `listener` serving `app` (wrapped in `BodyLimit`)."""
    protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": listener.header_timeout_s})
    return uvicorn.Config(
        BodyLimit(app, max_bytes=listener.max_body_bytes, body_timeout_s=listener.body_timeout_s),
        host=listener.host, port=listener.port, log_level=log_level, lifespan="off", http=protocol,
        ssl_certfile=listener.tls_cert_file, ssl_keyfile=listener.tls_key_file,
        limit_concurrency=listener.limit_concurrency, timeout_keep_alive=listener.timeout_keep_alive_s,
        h11_max_incomplete_event_size=listener.max_header_bytes, proxy_headers=False, server_header=False,
        access_log=False)
