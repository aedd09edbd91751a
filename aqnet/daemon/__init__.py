"""The composition root: builds every stage from the settings, starts and stops them. Shell (aqnet), I/O.

Starts the stages in dependency order and stops them in reverse order on SIGTERM/SIGINT after flushing.

Index: `aqnet.daemon.core` (the `Daemon` and its per-stage start steps, `run_daemon`), `aqnet.daemon.observer`
(the pipeline's and the spool's metrics)."""

from aqnet.daemon.core import Daemon, TaskFailedError, run_daemon

__all__ = ["Daemon", "TaskFailedError", "run_daemon"]
