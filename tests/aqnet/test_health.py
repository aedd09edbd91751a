"""aqnet.health (liveness kept apart from readiness) and aqnet.scheduler_watch (what "down" means for the
scheduler), pure parts exhaustively and the shells with fakes; the HTTP answers through the real app."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from aqnet.health import CountedSink, HealthMonitor, ProgressState, Verdict, liveness, step_progress
from aqnet.http import create_internal_app
from aqnet.scheduler_watch import JobRecord, SchedulerWatch, job_event, scheduler_problems
from aqnet.tasks import TaskDown

# ------------------------------------------------------------------------------------------------ progress


def test_stall_clock_runs_only_while_work_is_pending_and_nothing_moves() -> None:
    s = step_progress(None, pending=5, advanced=0, now=0.0)
    s = step_progress(s, pending=5, advanced=0, now=100.0)
    assert s.stalled_s(100.0) == 100.0
    s = step_progress(s, pending=5, advanced=1, now=110.0)  # a step forward
    assert s.stalled_s(110.0) == 0.0 and s.stalled_s(130.0) == 20.0
    s = step_progress(s, pending=0, advanced=1, now=200.0)  # idle is not stalled
    assert s.stalled_s(200.0) == 0.0
    s = step_progress(s, pending=3, advanced=1, now=250.0)  # work arrives: counted from the last idle sample
    assert s.stalled_s(250.0) == 50.0
    s = step_progress(s, pending=3, advanced=1, now=300.0, blocked=True)  # waiting on the next stage
    assert s.stalled_s(300.0) == 0.0


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans(), st.floats(0, 50)), min_size=1))
def test_stalled_time_never_exceeds_the_time_since_the_last_idle_move_or_block(
        samples: list[tuple[int, bool, bool, float]]) -> None:
    state: ProgressState | None = None
    now, count, last_reset = 0.0, 0, 0.0
    for pending, moved, blocked, dt in samples:
        now += dt
        count += moved
        before = state
        state = step_progress(state, pending=pending, advanced=count, now=now, blocked=blocked)
        if before is None or pending == 0 or blocked or moved:
            last_reset = now
        assert state.stalled_s(now) == pytest.approx(now - last_reset)


def test_liveness_names_every_task_down_and_every_stage_stalled_too_long() -> None:
    v = liveness({"mqtt": "RuntimeError: x"}, {"pipeline": 130.0, "mqtt-intake": 10.0}, 120.0)
    assert not v.ok
    assert v.reasons == {"task mqtt": "RuntimeError: x",
                         "stage pipeline": "work pending and no progress for 130 s "
                                           "(limit supervision.intake_stall_s = 120 s)"}
    assert v.body()["status"] == "fail"
    assert liveness({}, {"pipeline": 119.9}, 120.0) == Verdict(True)
    assert Verdict(True).body() == {"status": "ok", "reasons": {}}


async def test_monitor_samples_its_stages_and_probes_the_database() -> None:
    now = [0.0]
    queue = {"n": 4, "done": 0}
    down: dict[str, str] = {}

    async def probe() -> None:
        raise psycopg.OperationalError("connection refused")

    m = HealthMonitor(lambda: down, probe, intake_stall_s=60.0, readiness_timeout_s=1.0, monotonic=lambda: now[0])
    m.watch("pipeline", pending=lambda: queue["n"], advanced=lambda: queue["done"])
    assert m.liveness().ok
    now[0] = 61.0
    assert list(m.liveness().reasons) == ["stage pipeline"]
    queue["done"] += 1  # the pipeline spooled a batch: progress
    assert m.liveness().ok
    down["http"] = "OSError: address in use"
    assert m.liveness().reasons == {"task http": "OSError: address in use"}
    ready = await m.readiness()
    assert not ready.ok and ready.reasons == {"database": "OperationalError: connection refused"}

    async def slow() -> None:
        await asyncio.sleep(30)

    m2 = HealthMonitor(dict, slow, intake_stall_s=1.0, readiness_timeout_s=0.05)
    assert (await m2.readiness()).reasons == {"database": "TimeoutError"}


async def test_counted_sink_counts_every_finished_attempt_stored_or_failed() -> None:
    class Sink:
        fail = False

        async def write(self, batch: object, letters: object = ()) -> object:
            if self.fail:
                raise OSError("spool full")
            return "ok"

    inner = Sink()
    sink = CountedSink(inner)
    assert await sink.write([1]) == "ok" and sink.attempts == 1
    inner.fail = True
    with pytest.raises(OSError, match="spool full"):
        await sink.write([1])
    assert sink.attempts == 2


def test_healthz_and_readyz_answer_503_with_the_reasons() -> None:
    live = [Verdict(True)]
    ready = [Verdict(False, {"database": "OperationalError: down"})]

    async def readiness() -> Verdict:
        return ready[0]

    app = create_internal_app(CollectorRegistry(), dict, liveness=lambda: live[0], readiness=readiness)
    with TestClient(app) as client:
        r = client.get("/healthz")
        assert (r.status_code, r.json()) == (200, {"status": "ok", "reasons": {}})
        r = client.get("/readyz")  # the database is away: not ready, but alive (spooling is designed behaviour)
        assert (r.status_code, r.json()) == (503, {"status": "fail",
                                                   "reasons": {"database": "OperationalError: down"}})
        live[0] = Verdict(False, {"task mqtt": "RuntimeError: boom"})
        r = client.get("/healthz")
        assert (r.status_code, r.json()["reasons"]) == (503, {"task mqtt": "RuntimeError: boom"})


# ------------------------------------------------------------------------------------------------ scheduler

def test_job_records_follow_runs_and_errors() -> None:
    r = job_event(JobRecord(), "submitted", 10.0)
    assert r == JobRecord(1, 10.0, 0, None)
    r = job_event(r, "error", 11.0, "KeyError: x")
    assert r == JobRecord(0, None, 1, "KeyError: x")
    r = job_event(job_event(r, "submitted", 12.0), "transient", 13.0, "OperationalError")
    assert r.consecutive_errors == 1 and r.running_since is None  # a database outage is not counted
    r = job_event(job_event(r, "submitted", 14.0), "executed", 15.0)
    assert r == JobRecord(0, None, 0, "KeyError: x")
    r = job_event(job_event(JobRecord(), "submitted", 1.0), "submitted", 2.0)  # overlapping runs: the oldest
    assert r.running_since == 1.0 and job_event(r, "executed", 3.0).running_since == 1.0
    assert job_event(JobRecord(), "executed", 1.0).in_flight == 0  # a finish seen first never goes negative
    with pytest.raises(ValueError, match="kind: expected"):
        job_event(JobRecord(), "missed", 1.0)


def test_scheduler_problems_name_what_is_down() -> None:
    ok = {"averages": JobRecord(), "deliveries": JobRecord(1, 100.0, 0, None)}
    kw = {"now": 200.0, "stuck_s": 300.0, "error_limit": 3}
    assert scheduler_problems(running=True, present=ok, required=ok, jobs=ok, **kw) == []
    assert scheduler_problems(running=False, present=ok, required=ok, jobs=ok, **kw) == [
        "the scheduler is not running"]
    assert scheduler_problems(running=True, present=["averages"], required=ok, jobs=ok, **kw) == [
        "job deliveries is missing"]
    stuck = {**ok, "deliveries": JobRecord(1, 0.0, 0, None)}
    assert scheduler_problems(running=True, present=ok, required=ok, jobs=stuck, **kw) == []  # 200 s < 300 s
    assert scheduler_problems(running=True, present=ok, required=ok, jobs=stuck,
                              **{**kw, "now": 400.0}) == [
        "job deliveries has been running for 400 s (limit supervision.job_stuck_s = 300 s)"]
    failing = {**ok, "averages": JobRecord(0, None, 3, "KeyError: 'pm25'")}
    assert scheduler_problems(running=True, present=ok, required=ok, jobs=failing, **kw) == [
        "job averages failed 3 times in a row (limit supervision.job_error_limit = 3); last: KeyError: 'pm25'"]


async def test_scheduler_watch_raises_once_the_scheduler_is_down() -> None:
    scheduler = AsyncIOScheduler()

    async def job() -> None:
        return None

    scheduler.add_job(job, "interval", seconds=3600, id="deliveries")
    scheduler.start(paused=True)
    now = [0.0]
    watch = SchedulerWatch(scheduler, job_stuck_s=100.0, job_error_limit=2, check_s=0.01, monotonic=lambda: now[0])
    assert watch.problems() == []
    # events as APScheduler sends them: a database outage is not counted, other errors are
    for exc in (psycopg.OperationalError("down"), psycopg.OperationalError("down"), KeyError("x")):
        scheduler._dispatch_event(JobExecutionEvent(EVENT_JOB_ERROR, "deliveries", None, None, exception=exc))
    assert watch.problems() == []
    scheduler._dispatch_event(JobExecutionEvent(EVENT_JOB_ERROR, "deliveries", None, None,
                                                      exception=KeyError("y")))
    assert watch.problems() == [("job deliveries failed 2 times in a row (limit supervision.job_error_limit = 2); "
                                "last: KeyError: 'y'")]
    scheduler._dispatch_event(JobExecutionEvent(EVENT_JOB_EXECUTED, "deliveries", None, None))
    scheduler._dispatch_event(JobSubmissionEvent(EVENT_JOB_SUBMITTED, "deliveries", None, []))
    now[0] = 150.0
    assert watch.problems() == [("job deliveries has been running for 150 s (limit supervision.job_stuck_s = "
                                "100 s)")]
    scheduler._dispatch_event(JobExecutionEvent(EVENT_JOB_EXECUTED, "deliveries", None, None))
    assert watch.problems() == []
    scheduler.remove_job("deliveries")
    with pytest.raises(TaskDown, match="job deliveries is missing"):
        await asyncio.wait_for(watch.run(), 10)
    scheduler.shutdown(wait=False)  # AsyncIOScheduler: done at the loop's next turn
    await asyncio.sleep(0.01)
    assert watch.problems() == ["the scheduler is not running"]
