"""Log set-up for every aqnet command: one format, level from the command line, and no secrets: every line
(message, arguments and traceback) goes through `sensors.redact.redact`, so a URL password or a `password=`
keyword quoted by aqnet or by a library is printed as `***`."""

from __future__ import annotations

import logging
import sys

from sensors.redact import redact

__all__ = ["RedactingFormatter", "setup_logging"]


class RedactingFormatter(logging.Formatter):
    """A Formatter whose whole output (message, arguments, exception text) has its secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO", *, process: str | None = None) -> None:
    """Log to stderr as `time level logger: message` (`time level [process] logger: message` in an intake
    process of a daemon with several), secrets masked."""
    tag = f"[{process}] " if process else ""
    fmt = f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO), format=fmt,
                        force=True)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(fmt))
    # psycopg.pool warns at every reconnect attempt while the database is down; the spool metrics and the
    # forwarding sink's own log lines say it once
    for noisy in ("apscheduler", "uvicorn.access", "httpx", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pymodbus logs every timeout and refused connect at ERROR/WARNING; sensors.modbus.link and the poller log
    # each failure themselves, naming the station (first at ERROR, repeats at DEBUG, recovery at INFO)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
