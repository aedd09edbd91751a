"""alerts.delivery.routing: a channel's filter (aqnet's ChannelFilter settings, as they are) against one notice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.delivery.notice import Notice
from alerts.delivery.routing import accepts, accepts_alert
from alerts.settings import ChannelFilter

T = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NOTICE = Notice(
    alert_id=1, event_id=2, transition="raised", state="firing", rule_id="pm25-24h-levels", rule_description="",
    kind="threshold", audience="officers", severity="warning", indicative=False, scope="sensor", scope_key="KEN",
    sensor_id="KEN", sensor_name="Kennedy", locality="Kennedy", variable="pm25", level="prevention",
    from_level=None, value=40.0, unit="µg/m³", threshold=38.0, comparison=">=", source="Res. 2254/2017",
    period="24h", period_start=None, period_end=T, coverage=0.9, started_at=T, time=T)


def f(**kw: Any) -> ChannelFilter:
    return ChannelFilter(**kw)


def test_defaults_take_every_officer_transition_but_no_equipment() -> None:
    assert accepts(f(), NOTICE)
    assert accepts(f(), replace(NOTICE, indicative=True))
    assert not accepts(f(), replace(NOTICE, audience="technicians", kind="no_data"))
    assert accepts(f(audience=["technicians"]), replace(NOTICE, audience="technicians"))
    assert accepts(f(audience=["officers", "technicians"]), replace(NOTICE, audience="technicians"))


@pytest.mark.parametrize(("mode", "reference", "microsensor"), [("include", True, True), ("exclude", True, False),
                                                                 ("only", False, True)])
def test_indicative(mode: str, reference: bool, microsensor: bool) -> None:
    assert accepts(f(indicative=mode), NOTICE) is reference
    assert accepts(f(indicative=mode), replace(NOTICE, indicative=True)) is microsensor


@pytest.mark.parametrize(("minimum", "taken"), [("info", {"info", "warning", "critical"}),
                                                ("warning", {"warning", "critical"}), ("critical", {"critical"})])
def test_min_severity(minimum: str, taken: set[str]) -> None:
    for severity in ("info", "warning", "critical"):
        assert accepts(f(min_severity=minimum), replace(NOTICE, severity=severity)) is (severity in taken)


def test_transitions_and_accepts_alert_ignoring_them() -> None:
    only_raised = f(transitions=["raised", "escalated"])
    assert accepts(only_raised, NOTICE)
    assert not accepts(only_raised, replace(NOTICE, transition="acknowledged", state="acknowledged"))
    assert accepts_alert(only_raised, replace(NOTICE, transition="acknowledged", state="acknowledged"))


def test_localities_case_insensitive_and_network_scope() -> None:
    assert accepts(f(localities=["kennedy", "Usme"]), NOTICE)
    assert not accepts(f(localities=["Usme"]), NOTICE)
    network = replace(NOTICE, scope="network", scope_key="network", locality=None)
    assert not accepts(f(localities=["Kennedy"]), network)
    assert accepts(f(), network)


def test_plain_objects_work_too() -> None:
    class Mine:
        audience = ("officers",)
        indicative = "sometimes"
        min_severity = "info"
        transitions = ("raised",)
        localities = ()

    with pytest.raises(ValueError, match="include|exclude|only"):
        accepts(Mine(), NOTICE)
