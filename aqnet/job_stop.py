"""The scheduler's coroutine jobs when the daemon stops during a run. Shell (aqnet).

A job's blocking work runs in a thread (`asyncio.to_thread`); a stop cancels the job's coroutine while the thread
goes on — its transaction commits or rolls back by itself, the interpreter waits for it, and the next start
catches up. `quiet_on_stop(what)` wraps such a job so that the cancel ends it with one INFO line instead of
propagating: APScheduler logs a job that raises (a cancel included) as an error with its traceback. `quiet_jobs`
wraps every coroutine job of a scheduler, so no job of the daemon's is left out.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from apscheduler.schedulers.base import BaseScheduler

__all__ = ["quiet_jobs", "quiet_on_stop"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def quiet_on_stop(what: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T | None]]]:
    """Wrap a coroutine job: a cancel (the daemon stopping) logs "`what`: the daemon stopped during a run" and
    returns None."""
    def wrap(job: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T | None]]:
        @functools.wraps(job)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T | None:
            try:
                return await job(*args, **kwargs)
            except asyncio.CancelledError:
                log.info("%s: the daemon stopped during a run; work already in its thread ends by itself and the "
                         "next start catches up", what)
                return None
        run.quiet_on_stop = True  # type: ignore[attr-defined]  # `quiet_jobs` wraps a job once
        return run
    return wrap


def quiet_jobs(scheduler: BaseScheduler) -> None:
    """Wrap every coroutine job of `scheduler` not wrapped yet with `quiet_on_stop`, named by its id (call after
    adding jobs, before or after the scheduler starts)."""
    for job in scheduler.get_jobs():
        if inspect.iscoroutinefunction(job.func) and not getattr(job.func, "quiet_on_stop", False):
            job.modify(func=quiet_on_stop(job.id)(job.func))
