"""The daemon's start steps for what it answers: health and the HTTP listeners. Shell (aqnet), I/O.

Liveness and readiness (`aqnet.health`), and the HTTP listeners (device intake, API, internal), one supervised
uvicorn server each (`aqnet.http`; the open-data listener's app is `aqnet.public`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import uvicorn
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from aqnet.api import api_router
from aqnet.console import console_router
from aqnet.daemon.wiring import Wiring
from aqnet.daemon.workers import IntakeProcesses, refreshing
from aqnet.health import CountedSink, HealthMonitor
from aqnet.health_job import health_policy
from aqnet.http import LISTENERS, Authenticator, create_api_app, create_intake_app, create_internal_app, server_config
from aqnet.http.limits import TrustedProxies
from aqnet.metrics import ProcessesCollector
from aqnet.public import compliance, create_public_app
from ingest.intake import IntakeSubmitter
from ingest.pipeline import Pipeline
from sensors.modbus.supervisor import PollerSupervisor
from storage.users import LockoutPolicy

__all__ = ["IntakeProgress", "serve_http", "watch_health"]

log = logging.getLogger(__name__)


class IntakeProgress(Protocol):
    """What liveness reads of the MQTT intake: the subscriber, or a node's partitions (`aqnet.daemon.nodes`)."""

    @property
    def pending(self) -> int: ...

    @property
    def handled(self) -> int: ...


def watch_health(w: Wiring, pool: AsyncConnectionPool[Any], subscriber: IntakeProgress, pipeline: Pipeline,
                 written: CountedSink, pollers: PollerSupervisor, *,
                 others: Callable[[], Mapping[str, str]] | None = None,
                 ) -> tuple[HealthMonitor, Callable[[], dict[str, Any]]]:
    """The health monitor of the daemon's stages, and the `health` part of `/status`; `others` adds what is
    wrong in the other processes (process 0 of several: `IntakeProcesses.down`)."""
    s = w.settings
    sv = s.supervision

    async def probe_database() -> None:
        async with pool.connection(timeout=sv.readiness_timeout_s) as conn:
            await conn.execute("SELECT 1")

    # pollers are left out of liveness: one station's crash loop must not restart the whole daemon
    # (they show in aqnet_task_up and /status)
    def down() -> dict[str, str]:
        return {**w.tasks.down(), **(others() if others else {})}

    monitor = HealthMonitor(down, probe_database, intake_stall_s=sv.intake_stall_s,
                            readiness_timeout_s=sv.readiness_timeout_s)
    monitor.watch("mqtt-intake", pending=lambda: subscriber.pending, advanced=lambda: subscriber.handled,
                  blocked=lambda: pipeline.queue_length >= s.ingest.queue_max)
    monitor.watch("pipeline", pending=lambda: pipeline.queue_length, advanced=lambda: written.attempts)
    return monitor, lambda: {**monitor.liveness().body(), "pollers_down": pollers.down()}


async def serve_http(w: Wiring, pool: AsyncConnectionPool[Any], submitter: IntakeSubmitter, monitor: HealthMonitor,
                     *, signing_key: bytes, status: Callable[[], dict[str, Any]],
                     servers: dict[str, uvicorn.Server], workers: IntakeProcesses | None = None) -> dict[str, Any]:
    """Start one supervised server per listener (`servers` holds each listener's server now); returns the
    listeners' settings. With intake processes (`workers`), `/metrics` and `/status` show them too."""
    s = w.settings
    # credentials are looked up on their own small pool: a flood of made-up ones never starves ingest
    auth_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        s.database.url, min_size=1, max_size=s.http.auth_pool_size, timeout=s.database.pool_timeout_s, open=False,
        kwargs={"application_name": "aqnet-auth"}, reconnect_timeout=s.storage.unreachable_after_s)
    await auth_pool.open(wait=False)
    w.stack.push_async_callback(auth_pool.close)
    auth = Authenticator(auth_pool, trusted_proxies=TrustedProxies(s.http.trusted_proxies),
                         auth_failures_per_minute=s.http.auth_failures_per_minute, auth_cache_s=s.http.auth_cache_s)
    console = None
    if s.console.enabled:
        console = console_router(pool, s.database.url, clock=w.clock, language=s.console.language or s.alerts.language,
                                 tz_name=s.network.timezone, session_ttl_s=s.console.session_ttl_s,
                                 cookie_secure=s.console.cookie_secure, health_policy=health_policy(s.health),
                                 policy=LockoutPolicy(s.console.lockout_failures, s.console.lockout_s), auth=auth)
    api_app = create_api_app(api_router(pool, clock=w.clock, signing_key=signing_key,
                                        tz_name=s.network.timezone, language=s.alerts.language, auth=auth), console)
    registry = w.metrics.registry
    if workers is not None:  # one /metrics for every process, each sample labelled `process`
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ProcessesCollector(w.metrics.registry, "main", workers.other_families))
    internal: Any = create_internal_app(registry, status, api_app=api_app, liveness=monitor.liveness,
                                        readiness=monitor.readiness)
    if workers is not None:
        internal = refreshing(internal, workers.refresh)
    # the open-data API reads on a small read-only pool of its own: public traffic never takes ingest's connections
    public_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        s.database.url, min_size=1, max_size=s.public.pool_size, timeout=s.database.pool_timeout_s, open=False,
        kwargs={"application_name": "aqnet-public",
                "options": "-c default_transaction_read_only=on "
                           f"-c statement_timeout={round(s.public.statement_timeout_s * 1000)}"},
        reconnect_timeout=s.storage.unreachable_after_s)
    await public_pool.open(wait=False)
    w.stack.push_async_callback(public_pool.close)
    public = create_public_app(public_pool, public=s.public, open_data=s.open_data, tz_name=s.network.timezone,
                               trusted_proxies=TrustedProxies(s.http.trusted_proxies), clock=w.clock,
                               routers=[compliance.router], language=s.public.language or s.alerts.language)
    public.state.compliance_source = compliance.database_report_source(s.database.url, s.network.timezone, w.clock)
    apps = {"intake": create_intake_app(submitter.airrohr_post, auth), "api": api_app, "internal": internal,
            "public": public}
    listeners = s.http.listeners()
    assert set(listeners) == set(apps) == set(LISTENERS), "every listener needs its app (aqnet.http)"

    def serve(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:  # a fresh server per (re)start: a uvicorn.Server is not reusable
            server = servers[name] = uvicorn.Server(server_config(apps[name], listeners[name]))
            await server.serve()
        return run

    for name in LISTENERS:  # one supervised task per listener
        w.start(f"http-{name}", serve(name))
    return listeners
