"""The web console's pure pieces, without a server: both languages have every word, the SVG chart (limit drawn at
its value, gaps break the line, text escaped), the inbox order, the sign-in redirect guard, and the role table
the API and the console share."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aqnet.console.access import _next
from aqnet.console.charts import line_chart
from aqnet.console.i18n import LANGUAGES, words
from aqnet.console.officers import inbox_order
from aqnet.http.roles import ADMIN, OFFICER, READERS, TECHNICIAN, VALIDATORS, permits, refusal
from storage.alerts_store import AlertRecord
from storage.tokens import ROLES
from storage.users import USER_ROLES, LockoutPolicy, hash_password, verify_password

T0 = datetime(2026, 3, 10, tzinfo=UTC)
BOGOTA = ZoneInfo("America/Bogota")


def test_both_languages_have_every_word() -> None:
    es, en = words("es"), words("en")
    assert set(es) == set(en)
    assert all(v.strip() for v in (*es.values(), *en.values()))
    with pytest.raises(ValueError, match="expected es or en, got 'fr'"):
        words("fr")
    assert LANGUAGES == ("es", "en")


def test_every_word_a_template_uses_exists() -> None:
    from importlib.resources import files

    used = set()
    for page in files("aqnet.console").joinpath("templates").iterdir():
        used |= set(re.findall(r"\bt\.([a-z_0-9]+)", page.read_text(encoding="utf-8")))
    assert used and not used - set(words("en"))


def _y(svg: str, cls: str) -> float:
    found = re.search(rf'<line class="{cls}" x1="[^"]+" y1="([0-9.]+)"', svg)
    assert found, svg
    return float(found.group(1))


def test_the_limit_is_drawn_at_its_value_between_the_points_above_and_below() -> None:
    points = [(T0 + timedelta(hours=h), v) for h, v in enumerate([10.0, 20.0, 60.0])]
    svg = line_chart(points, title="pm25 24h", unit="µg/m³", tz=BOGOTA, limit=37.0, limit_label="limit")
    limit_y = _y(svg, "limit")
    ys = [float(y) for y in re.findall(r'<circle class="point" cx="[^"]+" cy="([0-9.]+)"', svg)]
    assert ys[1] > limit_y > ys[2]  # 20 below the limit (lower on screen = larger y), 60 above
    assert "limit 37 µg/m³" in svg
    assert 'role="img"' in svg and "<title" in svg


def test_a_gap_breaks_the_line() -> None:
    values = [1.0, 2.0, None, 3.0, 4.0]
    svg = line_chart([(T0 + timedelta(hours=h), v) for h, v in enumerate(values)], title="x", unit="u", tz=UTC)
    assert svg.count("<polyline") == 2
    assert svg.count('<circle class="point"') == 4
    assert 'data-local="2026-03-10T00:00"' in svg


def test_chart_text_is_escaped() -> None:
    svg = line_chart([(T0, 1.0)], title='<script>alert("x")</script>', unit="<b>", tz=UTC, limit=2.0,
                     limit_label="<i>")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<b>" not in svg and "<i>" not in svg


@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=40),
       st.one_of(st.none(), st.floats(-1e6, 1e6)))
def test_any_series_draws_inside_the_chart(values: list[float | None], limit: float | None) -> None:
    svg = line_chart([(T0 + timedelta(minutes=m), v) for m, v in enumerate(values)], title="t", unit="u", tz=UTC,
                     limit=limit)
    for x, y in re.findall(r'cx="([-0-9.]+)" cy="([-0-9.]+)"', svg):
        assert 0 <= float(x) <= 640 and 0 <= float(y) <= 240
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def _alert(alert_id: int, state: str, severity: str, hours_ago: int) -> AlertRecord:
    return AlertRecord(id=alert_id, rule="r", kind="threshold", audience="officers", scope="sensor", scope_key="K",
                       sensor_id="K", sensor_name=None, locality=None, variable="pm25", indicative=False,
                       severity=severity, level="l", state=state,  # type: ignore[arg-type]
                       value=1.0, threshold=1.0, unit="u", source=None, period="24h", period_start=None,
                       period_end=None, coverage=None, started_at=T0 - timedelta(hours=hours_ago), updated_at=T0,
                       acknowledged_by=None, acknowledged_at=None, resolved_at=None, resolved_by=None,
                       escalated_at=None, details={})


def test_inbox_lists_open_alerts_first_then_by_severity_then_newest() -> None:
    alerts = [_alert(1, "resolved", "critical", 1), _alert(2, "firing", "info", 0),
              _alert(3, "acknowledged", "critical", 5), _alert(4, "firing", "critical", 2),
              _alert(5, "firing", "warning", 9)]
    assert [a.id for a in sorted(alerts, key=inbox_order)] == [4, 3, 5, 2, 1]


@pytest.mark.parametrize(("target", "expected"), [
    ("/console/alerts/3", "/console/alerts/3"), ("/console/series?sensor=KEN", "/console/series?sensor=KEN"),
    ("https://evil.example/console/", "/console/"), ("//evil.example/console/", "/console/"),
    ("/console/\\evil", "/console/"), ("/api/v1/alerts", "/console/"), ("", "/console/")])
def test_next_only_follows_console_paths(target: str, expected: str) -> None:
    assert _next(target) == expected


def test_one_role_table_for_tokens_and_people() -> None:
    assert set(ROLES) < set(USER_ROLES) and set(USER_ROLES) == READERS
    assert refusal("user 'r'", "reader", OFFICER) == "user 'r' has role reader; this needs officer"
    assert refusal("token 't'", "officer", VALIDATORS) is None
    assert not permits("admin", OFFICER) and not permits("admin", TECHNICIAN) and permits("admin", ADMIN)
    assert not any(permits(role, ADMIN) for role in ROLES)  # no token may manage the console's users


def test_api_role_checks_use_the_shared_table() -> None:
    from aqnet.api import context

    assert context.OFFICER is OFFICER and context.TECHNICIAN is TECHNICIAN and context.READERS is READERS
    assert context.VALIDATORS is VALIDATORS


def test_argon2_hashes_verify_only_their_password() -> None:
    stored = hash_password("a long enough passphrase")
    assert stored.startswith("$argon2id$")
    assert verify_password("a long enough passphrase", stored)
    assert not verify_password("a long enough passphrasE", stored)
    assert not verify_password("anything", "not a hash")


def test_lockout_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_failures expected >= 1, got 0"):
        LockoutPolicy(0, 10)
    with pytest.raises(ValueError, match="lockout_s expected >= 0, got -1"):
        LockoutPolicy(5, -1)
