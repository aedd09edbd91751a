"""Log set-up for every aqnet command: one format, level from the command line."""

from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging"]


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr as `time level logger: message`."""
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    # psycopg.pool warns at every reconnect attempt while the database is down; the spool metrics and the
    # forwarding sink's own log lines say it once
    for noisy in ("apscheduler", "uvicorn.access", "httpx", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pymodbus logs every timeout and refused connect at ERROR/WARNING; sensors.modbus.link and the poller log
    # each failure themselves, naming the station (first at ERROR, repeats at DEBUG, recovery at INFO)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
