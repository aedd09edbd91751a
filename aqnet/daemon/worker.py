"""`python -m aqnet.daemon.worker`: an intake process of a daemon with several (`ingest.processes`). Shell, I/O.

Started by process 0 (`aqnet.daemon.workers`), never by hand. Its stdin and stdout are the pipe to process 0
(`aqnet.daemon.ipc`): they are moved to other file descriptors at once, and fd 0 and 1 become /dev/null and
stderr, so nothing a library prints can corrupt a frame. The first frame says what to run: the settings and this
process's `Role`. The process then runs the daemon's intake part (`aqnet.daemon.core.Daemon` with that role) until
SIGTERM, SIGINT, or end of file on the pipe (process 0 is gone), and exits with the daemon's exit status.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any

from aqnet.daemon.ipc import Channel
from aqnet.logs import setup_logging

__all__ = ["main"]

log = logging.getLogger(__name__)


async def _open_pipe(read_fd: int, write_fd: int) -> Channel:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(write_fd, "wb", 0))
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return Channel(reader, writer)


async def _run(read_fd: int, write_fd: int) -> int:
    from aqnet.daemon.core import run_worker

    channel = await _open_pipe(read_fd, write_fd)
    start: tuple[Any, ...] | None = await channel.receive()
    if start is None or start[0] != "start":
        sys.stderr.write("aqnet.daemon.worker: started without its start frame (it is run by aqnet run, "
                         "not by hand)\n")
        return 2
    _, settings, role, log_level = start
    setup_logging(logging.getLevelName(log_level), process=role.name)
    loop = asyncio.get_running_loop()
    return await run_worker(settings, role, channel, add_signal_handler=loop.add_signal_handler,
                            signals=(signal.SIGTERM, signal.SIGINT))


def main() -> None:
    """Run one intake process (see the module docstring)."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # print() and libraries writing to stdout end up in the log, never in the pipe
    sys.exit(asyncio.run(_run(read_fd, write_fd)))


if __name__ == "__main__":
    main()
