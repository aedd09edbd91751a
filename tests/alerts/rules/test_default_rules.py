"""Tests for alerts/rules/default_rules.yaml: it validates, and every threshold equals the number in the bundled
norms.json / indices.json for its pollutant, period and level (so a typo in the YAML fails here), with the
source and the verification status the domain files give; the equipment defaults say they are not a norm."""

from __future__ import annotations

from importlib import resources

import pytest

from alerts.rules.model import EQUIPMENT_KINDS, default_rules, parse_rules
from sensors.domain import load

NORMS = load("norms")
INDICES = load("indices")
RULES = default_rules()
BY_ID = {r.id: r for r in RULES}
POLLUTANT = {"pm25": "PM2.5", "pm10": "PM10", "so2": "SO2", "no2": "NO2", "o3": "O3", "co": "CO"}
NORM_AVERAGING = {"day": "24h", "24h": "24h", "8h": "8h", "1h": "1h"}  # the norm's 24 h limit → calendar day
TEXT = resources.files("alerts.rules").joinpath("default_rules.yaml").read_text(encoding="utf-8")

THRESHOLD_RULES = [r for r in RULES if r.kind == "threshold"]
LIMIT_RULES = [r for r in THRESHOLD_RULES if [lv.name for lv in r.levels] == ["limit"]]
PAE_RULES = [r for r in THRESHOLD_RULES if [lv.name for lv in r.levels] == ["prevention", "alert", "emergency"]]


def test_the_shipped_file_validates():
    assert parse_rules(TEXT, source="default_rules.yaml") == RULES
    assert len({r.id for r in RULES}) == len(RULES)


def test_every_threshold_rule_is_a_limit_rule_or_a_levels_rule():
    assert sorted(r.id for r in LIMIT_RULES + PAE_RULES) == sorted(r.id for r in THRESHOLD_RULES)


def test_the_contract_rules_are_shipped():
    limits = {(r.variable, r.period) for r in LIMIT_RULES if r.sensors == "reference"}
    assert limits == {("pm10", "day"), ("pm25", "day"), ("so2", "day"), ("so2", "1h"), ("no2", "1h"),
                      ("co", "1h"), ("o3", "8h"), ("co", "8h")}
    levels = {(r.variable, r.period) for r in PAE_RULES if r.sensors == "reference"}
    assert levels == {("pm10", "24h"), ("pm25", "24h"), ("o3", "8h"), ("co", "8h"), ("no2", "1h"), ("so2", "1h")}
    for rule_id in ("pm25-day-limit", "pm25-24h-levels", "iboca-category", "pm25-24h-levels-microsensor",
                    "iboca-category-microsensor", "station-no-data", "microsensor-no-data", "sensor-flatline",
                    "device-fault"):
        assert rule_id in BY_ID
    assert RULES[0].id == "pm25-day-limit"  # tests/test_domain_examples.py reads default_rules()[0].levels[0]


def test_the_norms_limits_are_all_covered():
    """Every Tabla 1 level except the annual ones (alerts are not annual) has its limit rule."""
    expected = {(lv["pollutant"], lv["averaging"]) for lv in NORMS["max_permissible_levels"]["levels"]
                if lv["averaging"] != "annual"}
    got = {(POLLUTANT[r.variable], NORM_AVERAGING[r.period]) for r in LIMIT_RULES}
    assert got == expected


@pytest.mark.parametrize("rule", LIMIT_RULES, ids=lambda r: r.id)
def test_limit_equals_norms_json(rule):
    (row,) = [lv for lv in NORMS["max_permissible_levels"]["levels"]
              if lv["pollutant"] == POLLUTANT[rule.variable] and lv["averaging"] == NORM_AVERAGING[rule.period]]
    (limit,) = rule.levels
    assert limit.threshold == row["value"]
    assert limit.comparison == ">"  # norms.json exceedance_rule: average > level
    assert limit.status == NORMS["max_permissible_levels"]["status"] == "verified_secondary"
    assert limit.unit == "µg/m³" and limit.severity == "warning"
    assert limit.source.startswith("Res. 2254/2017 Art. 2 Tabla 1")
    assert rule.period in ("day", "1h", "8h")  # 24-hour limits on the calendar day, never the rolling 24 h


@pytest.mark.parametrize("rule", PAE_RULES, ids=lambda r: r.id)
def test_prevention_alert_emergency_equal_norms_json(rule):
    (row,) = [lv for lv in NORMS["prevention_alert_emergency"]["levels"]
              if lv["pollutant"] == POLLUTANT[rule.variable] and lv["averaging"] == rule.period]
    prevention, alert, emergency = rule.levels
    assert (prevention.threshold, alert.threshold, emergency.threshold) == (
        row["prevention"][0], row["alert"][0], row["emergency_min"])
    assert all(lv.comparison == ">=" for lv in rule.levels)  # half-open bands (norms.json band_rule)
    assert [lv.severity for lv in rule.levels] == ["warning", "critical", "critical"]
    expected_status = "unverified" if "unverified" in row.get("status", "") else "verified_secondary"
    assert {lv.status for lv in rule.levels} == {expected_status}
    for lv in rule.levels:
        assert lv.unit == "µg/m³" and "Res. 2254/2017" in lv.source
        if expected_status == "unverified":
            assert "UNVERIFIED" in lv.source


def test_so2_levels_ship_marked_unverified():
    assert {lv.status for lv in BY_ID["so2-1h-levels"].levels} == {"unverified"}


def test_no2_prevention_is_below_its_limit_so_they_are_separate_rules():
    assert BY_ID["no2-1h-levels"].levels[0].threshold < BY_ID["no2-1h-limit"].levels[0].threshold


@pytest.mark.parametrize("rule_id", ["iboca-category", "iboca-category-microsensor"])
def test_iboca_rule_equals_indices_json(rule_id):
    rule = BY_ID[rule_id]
    assert (rule.kind, rule.index, rule.variable, rule.unit) == ("index", "iboca", "pm25", "IBOCA")
    categories = INDICES["iboca"]["categories"][1:]  # from Moderado up: Bajo raises nothing
    assert [lv.name for lv in rule.levels] == [c["name_es"] for c in categories]
    assert [lv.threshold for lv in rule.levels] == [c["i_lo"] for c in categories]
    assert [lv.action for lv in rule.levels] == [c["action_level_es"] for c in categories]
    for lv in rule.levels:
        assert lv.severity == "info" and lv.status == "secondary_single" and lv.comparison == ">="
        assert lv.source.startswith("Res. Conjunta 2840/2023 Tabla 1")
    assert rule.escalate_unacknowledged_after_min == 0  # informational


def test_microsensor_copies_are_indicative_and_equal_the_reference_rules():
    for copy, original in (("pm25-24h-levels-microsensor", "pm25-24h-levels"),
                           ("iboca-category-microsensor", "iboca-category")):
        assert BY_ID[copy].indicative and not BY_ID[original].indicative
        assert BY_ID[copy].levels == BY_ID[original].levels
        assert BY_ID[copy].clear_threshold == BY_ID[original].clear_threshold


def test_every_air_quality_number_is_accounted_for():
    """No threshold outside the limits, the bands and the IBOCA categories checked above."""
    checked = {r.id for r in LIMIT_RULES + PAE_RULES} | {"iboca-category", "iboca-category-microsensor"}
    assert {r.id for r in RULES if r.kind not in EQUIPMENT_KINDS} == checked


@pytest.mark.parametrize("rule", [r for r in RULES if r.kind in EQUIPMENT_KINDS], ids=lambda r: r.id)
def test_equipment_rules_are_operational_defaults_for_technicians(rule):
    if rule.kind == "zero_span":  # its threshold is the check's own acceptance limit (100 % of it)
        assert rule.audience == "technicians" and rule.unit == "%"
        assert [lv.threshold for lv in rule.levels] == [100] and "acceptance limit" in rule.levels[0].source
        return
    assert rule.audience == "technicians" and rule.unit == "min"
    for lv in rule.levels:
        assert "aqnet operational default, not a norm" in lv.source
        assert lv.status is None and lv.severity == "warning"


def test_technician_rules_cover_stations_microsensors_flatline_and_faults():
    kinds = {(r.kind, r.sensors) for r in RULES if r.kind in EQUIPMENT_KINDS}
    assert {("no_data", "reference"), ("no_data", "microsensor")} <= kinds
    assert {k for k, _ in kinds} == EQUIPMENT_KINDS


def test_air_quality_rules_go_to_officers_and_clear_below_their_lowest_level():
    for r in RULES:
        if r.kind not in EQUIPMENT_KINDS:
            assert r.audience == "officers"
        assert 0 < r.clear_threshold <= r.levels[0].threshold


def test_the_file_states_its_conventions():
    header = TEXT.split("rules:", 1)[0]
    assert "norms.json's conventions" in header and "until the text of Res. 2254/2017 is checked" in header
    assert "CALENDAR-DAY" in header and "24-HOUR MEAN ENDING AT THE CURRENT HOUR" in header
    assert "OPERATIONAL choices" in header and "status: unverified" in header
    assert 'declaring an "Alerta fase" is the' in " ".join(TEXT.replace("#", " ").split())
    assert "city's act" in TEXT
    assert TEXT.count("aqnet operational choice") >= len(RULES) - 1  # hysteresis documented per rule
