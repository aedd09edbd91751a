"""A flood: messages published much faster than the daemon stores them. Every acknowledged message must be
stored without waiting for a reconnect (the broker's in-flight window, not aqnet, holds the rest back)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aqnet.localstack import MosquittoBroker
from tests.e2e.test_mqtt_durability import (
    DaemonRunner,
    LedgerPublisher,
    _assert_database_equals_ledger,
    _wait_for_ledger,
    runner_factory,  # noqa: F401 (the fixture)
)

pytestmark = pytest.mark.integration


def test_a_flood_is_stored_whole_without_a_reconnect(
        mosquitto_factory: Callable[..., MosquittoBroker], runner_factory: Callable[..., DaemonRunner],
        database_url: str) -> None:
    broker = mosquitto_factory()
    runner = runner_factory(broker, batch_max_age_s=0.5, batch_max=200)
    publisher = LedgerPublisher(broker.port, rate_per_s=1)
    try:
        runner.start()
        runner.wait_connected()
        publisher.publish(20_000)  # as fast as paho sends them
        ledger = publisher.ledger(timeout_s=120)
        assert len(ledger) == 2 * 20_000, "the broker acknowledged every message"
        _wait_for_ledger(database_url, ledger, runner, timeout_s=180)
        _assert_database_equals_ledger(database_url, ledger)
        assert runner.metric("aqnet_mqtt_connection_attempts") == 1.0, "no reconnect was needed"
        runner.terminate()
    finally:
        publisher.close()
    assert "messages already wait" not in runner.log_tail()
