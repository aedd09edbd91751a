"""What "down" means for the daemon's APScheduler (aqnet.schedule's jobs, the alert dispatcher's `deliveries`
among them), and a watchdog that says so. Pure verdict + a thin shell (aqnet).

The scheduler is down when:
- it is not running (shut down or never started) while the daemon runs;
- a job it was started with is missing (removed, or never re-added after an error);
- a job run has been going for `stuck_s` or more (a hung delivery round, a stuck query): with `max_instances=1`
  every later tick of that job is skipped, so nothing it does happens any more;
- a job raised `error_limit` times in a row. Errors that say the database is unreachable
  (`psycopg.OperationalError`, which includes the pool's `PoolTimeout`) are not counted: that is readiness, and
  the job catches up at its next tick once the database answers.
An APScheduler job cannot be restarted from outside (its task is the executor's), so the watchdog
(`SchedulerWatch.run`, supervised as not restartable) raises `aqnet.tasks.TaskDown`: the daemon exits non-zero
and is started afresh by systemd or the container.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import psycopg
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
)
from apscheduler.schedulers.base import BaseScheduler

from aqnet.tasks import TaskDown

__all__ = ["JobRecord", "SchedulerWatch", "job_event", "scheduler_problems"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ pure part

@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job's runs as the watchdog saw them."""

    in_flight: int = 0  #: runs submitted and not finished
    running_since: float | None = None  #: monotonic s when the oldest unfinished run was submitted
    consecutive_errors: int = 0  #: runs in a row that raised (database-unreachable errors not counted)
    last_error: str | None = None


def job_event(record: JobRecord, kind: str, now: float, error: str | None = None) -> JobRecord:
    """The record after a job event: kind "submitted", "executed", "error" (counted) or "transient" (an error
    that is not counted: the database is unreachable)."""
    if kind == "submitted":
        since = record.running_since if record.in_flight > 0 else now
        return replace(record, in_flight=record.in_flight + 1, running_since=since)
    if kind not in ("executed", "error", "transient"):
        raise ValueError(f"job_event: kind: expected submitted|executed|error|transient, got {kind!r}")
    in_flight = max(0, record.in_flight - 1)
    since = record.running_since if in_flight > 0 else None
    if kind == "error":
        return JobRecord(in_flight, since, record.consecutive_errors + 1, error)
    return JobRecord(in_flight, since, 0 if kind == "executed" else record.consecutive_errors, record.last_error)


def scheduler_problems(*, running: bool, present: Iterable[str], required: Iterable[str],
                       jobs: Mapping[str, JobRecord], now: float, stuck_s: float,
                       error_limit: int) -> list[str]:
    """Why the scheduler is down (empty: it is up)."""
    if not running:
        return ["the scheduler is not running"]
    problems = []
    present = set(present)
    for job_id in sorted(set(required) - present):
        problems.append(f"job {job_id} is missing")
    for job_id, rec in sorted(jobs.items()):
        if rec.running_since is not None and now - rec.running_since >= stuck_s:
            problems.append(f"job {job_id} has been running for {now - rec.running_since:.0f} s "
                            f"(limit supervision.job_stuck_s = {stuck_s:g} s)")
        if rec.consecutive_errors >= error_limit:
            problems.append(f"job {job_id} failed {rec.consecutive_errors} times in a row "
                            f"(limit supervision.job_error_limit = {error_limit}); last: {rec.last_error}")
    return problems


# ---------------------------------------------------------------------------------------------- the shell

def _transient(exc: BaseException | None) -> bool:
    return isinstance(exc, psycopg.OperationalError)


class SchedulerWatch:
    """Follows a started scheduler's job events; `run()` raises TaskDown once it is down (see module docstring).

    Args:
        scheduler: the scheduler, with every job added (those present now are required from now on).
        job_stuck_s: a job run this long is stuck.
        job_error_limit: a job raising this many times in a row is failing.
        check_s: how often `run()` checks.
    """

    def __init__(self, scheduler: BaseScheduler, *, job_stuck_s: float, job_error_limit: int, check_s: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic,
                 transient: Callable[[BaseException | None], bool] = _transient) -> None:
        self._scheduler = scheduler
        self._stuck_s = job_stuck_s
        self._error_limit = job_error_limit
        self._check_s = check_s
        self._monotonic = monotonic
        self._transient = transient
        self._required = {job.id for job in scheduler.get_jobs()}
        self._jobs: dict[str, JobRecord] = {job_id: JobRecord() for job_id in self._required}
        scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            kind, error = "submitted", None
        elif event.code == EVENT_JOB_EXECUTED:
            kind, error = "executed", None
        else:
            exc = event.exception if isinstance(event, JobExecutionEvent) else None
            kind = "transient" if self._transient(exc) else "error"
            error = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
        self._jobs[event.job_id] = job_event(self._jobs.get(event.job_id, JobRecord()), kind, self._monotonic(),
                                             error)

    def problems(self) -> list[str]:
        """Why the scheduler is down now (empty: up)."""
        return scheduler_problems(running=self._scheduler.running, present=(j.id for j in self._scheduler.get_jobs()),
                                  required=self._required, jobs=self._jobs, now=self._monotonic(),
                                  stuck_s=self._stuck_s, error_limit=self._error_limit)

    async def run(self) -> None:
        """Check every `check_s`; raise TaskDown naming every problem once the scheduler is down."""
        while True:
            await asyncio.sleep(self._check_s)
            problems = self.problems()
            if problems:
                raise TaskDown("; ".join(problems))
