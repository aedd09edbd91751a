"""The pipe between process 0 and an intake process: length-prefixed pickle frames over asyncio streams. Shell, I/O.

A frame is a 4-byte big-endian length and a pickled tuple `(kind, *fields)`. Pickle is safe here: both ends are
the same aqnet installation, the pipes are the worker's stdin and stdout (never a socket anyone else can reach).
Messages (process 0 → worker, worker → process 0):

- `("start", settings, role)` →: the first frame, what the worker runs;
- `("observe", [(variable, sensor_id, time, value), …])` ↔: site conditions observed elsewhere / here;
- `("scrape", n)` → and `("scraped", n, metrics_text, status)` ←: one `/metrics` and `/status` request.

End of file on its stdin tells a worker that process 0 is gone: it stops (flushing) by itself.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

__all__ = ["MAX_FRAME", "Channel", "FrameError", "decode_length", "encode_frame"]

_LENGTH = struct.Struct(">I")
#: a frame larger than this is refused (a metrics text of a very large network is a few MB)
MAX_FRAME = 256 << 20


class FrameError(ValueError):
    """A frame that cannot be read (too large, or not a tuple)."""


def encode_frame(message: tuple[Any, ...]) -> bytes:
    """The bytes of one frame."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame {message[0]!r}: {len(body)} bytes is more than the {MAX_FRAME} allowed")
    return _LENGTH.pack(len(body)) + body


def decode_length(header: bytes) -> int:
    """The body length a frame header announces."""
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes announced: more than the {MAX_FRAME} allowed")
    return int(length)


class Channel:
    """Frames over a reader and a writer; `receive()` returns None at end of file."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None) -> None:
        self._reader = reader
        self._writer = writer

    async def receive(self) -> tuple[Any, ...] | None:
        """The next message, or None when the other end closed."""
        try:
            header = await self._reader.readexactly(_LENGTH.size)
            body = await self._reader.readexactly(decode_length(header))
        except asyncio.IncompleteReadError:
            return None
        message = pickle.loads(body)  # noqa: S301 (the other end is this installation's own process: module doc)
        if not isinstance(message, tuple) or not message:
            raise FrameError(f"expected a message tuple, got {type(message).__name__}")
        return message

    async def send(self, *message: Any) -> None:
        """Send one message (waits while the pipe is full)."""
        if self._writer is None or self._writer.is_closing():
            raise ConnectionResetError("the other process's pipe is closed")
        self._writer.write(encode_frame(message))
        await self._writer.drain()

    def buffered(self) -> int:
        """Bytes written and not yet taken by the other process (0 once closed)."""
        if self._writer is None or self._writer.is_closing():
            return 0
        return int(self._writer.transport.get_write_buffer_size())

    def send_nowait(self, *message: Any) -> None:
        """Queue one message without waiting for the pipe (the caller bounds what it queues)."""
        if self._writer is None or self._writer.is_closing():
            return
        self._writer.write(encode_frame(message))

    def close(self) -> None:
        """Close the writing end (the other process sees end of file)."""
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
