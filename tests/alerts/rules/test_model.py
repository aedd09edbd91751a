"""Tests for alerts.rules.model: the rules file model (kinds, audiences, units, scopes), its errors naming rule and key,
and the norms' examples on the bundled rules (every number is checked in test_default_rules.py)."""

from __future__ import annotations

import pytest

from alerts.rules.model import EQUIPMENT_KINDS, RulesError, default_rules, index_categories, parse_rules
from sensors.domain import load

EXAMPLES = load("examples")["examples"]
BY_ID = {r.id: r for r in default_rules()}


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e["kind"] == "norm_check"], ids=lambda e: e["id"])
def test_norm_check_examples_limit_is_strictly_greater(ex):
    (limit,) = BY_ID["pm25-day-limit"].levels
    assert limit.met_by(ex["input"]["c_ref_ugm3"]) is ex["expected"]["exceeds"]


@pytest.mark.parametrize(
    "ex", [e for e in EXAMPLES if e["kind"] == "prevention_alert_emergency"], ids=lambda e: e["id"])
def test_prevention_alert_emergency_examples_half_open_bands(ex):
    code = {"PM2.5": "pm25", "PM10": "pm10", "O3": "o3", "CO": "co", "NO2": "no2", "SO2": "so2"}
    (rule,) = [r for r in default_rules() if r.id.startswith(code[ex["input"]["pollutant"]] + "-")
               and r.id.endswith("-levels")]
    idx = rule.level_index(ex["input"]["c_ref_ugm3"])
    assert (None if idx is None else rule.levels[idx].name) == ex["expected"]["level"]


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e["kind"] == "iboca"], ids=lambda e: e["id"])
def test_iboca_examples_name_the_category(ex):
    rule = BY_ID["iboca-category"]
    idx = rule.level_index(ex["expected"]["iboca"])
    category = "Bajo" if idx is None else rule.levels[idx].name  # Bajo raises nothing
    assert category == ex["expected"]["category"]
    if idx is not None:
        assert rule.levels[idx].action == ex["expected"]["action_level"]


def test_level_index_below_everything_is_none():
    limit = BY_ID["pm25-day-limit"]
    assert limit.level_index(37.0) is None and limit.level_index(37.0001) == 0


def test_defaults_of_kinds():
    assert BY_ID["pm25-day-limit"].audience == "officers" and not BY_ID["pm25-day-limit"].indicative
    assert BY_ID["pm25-24h-levels-microsensor"].indicative
    for r in default_rules():
        assert r.equipment is (r.kind in EQUIPMENT_KINDS)
        assert (r.audience == "technicians") is r.equipment


def test_clear_threshold_from_fraction_or_explicit():
    assert BY_ID["pm25-day-limit"].clear_threshold == pytest.approx(0.9 * 37)
    explicit = GOOD.replace("clear_fraction: 0.8", "clear_below: {threshold: 8, unit: µg/m³, source: ops}")
    (r,) = parse_rules(explicit, source="t.yaml")
    assert r.clear_threshold == 8


GOOD = """
rules:
  - id: r1
    variable: pm25
    period: 1h
    min_duration: 2
    clear_fraction: 0.8
    levels:
      - {name: low, threshold: 10, unit: µg/m³, source: test}
      - {name: high, threshold: 20, unit: µg/m³, source: test, severity: critical}
"""

INDEX = """
rules:
  - id: i1
    kind: index
    index: iboca
    variable: pm25
    clear_fraction: 0.9
    levels:
      - {name: Regular, threshold: 101, unit: IBOCA, source: test, severity: info, action: Alerta fase 1}
"""

EQUIPMENT = """
rules:
  - id: e1
    kind: flatline
    sensors: all
    flatline_tolerance: 0.1
    clear_fraction: 0.5
    levels:
      - {name: flat, threshold: 60, unit: min, source: aqnet operational default}
"""


def test_parse_good_rules():
    (r,) = parse_rules(GOOD, source="t.yaml")
    assert r.id == "r1" and r.min_duration == 2 and r.unit == "µg/m³" and r.levels[1].comparison == ">="
    assert (r.kind, r.audience, r.sensors, r.scope) == ("threshold", "officers", "reference", "sensor")
    assert [lv.severity for lv in r.levels] == ["warning", "critical"]
    assert r.escalate_unacknowledged_after_min is None


def test_parse_index_and_equipment_rules():
    (i,) = parse_rules(INDEX, source="t.yaml")
    assert (i.kind, i.index, i.unit, i.levels[0].action, i.period) == ("index", "iboca", "IBOCA", "Alerta fase 1",
                                                                        None)
    (e,) = parse_rules(EQUIPMENT, source="t.yaml")
    assert (e.audience, e.variable, e.unit, e.flatline_tolerance, e.sensors) == ("technicians", None, "min", 0.1,
                                                                                  "all")


def test_index_categories_come_from_indices_json():
    assert index_categories("iboca") == ("Bajo", "Moderado", "Regular", "Alto", "Peligroso")
    assert index_categories("us_aqi")[0] == "Good"
    with pytest.raises(ValueError, match="unknown index"):
        index_categories("ica")


@pytest.mark.parametrize(
    ("text", "old", "new", "message"),
    [
        (GOOD, "variable: pm25", "variable: pm2.5", "rule 'r1': variable: expected one of"),
        (GOOD, "variable: pm25", "kind: threshold", "rule 'r1': variable: required for kind 'threshold'"),
        (GOOD, "period: 1h", "scope: locality", "rule 'r1': period: required"),
        (GOOD, "unit: µg/m³, source: test}\n      - {name: high", "unit: ppb, source: test}\n      - {name: high",
         "rule 'r1': levels[0].unit: expected 'µg/m³'"),
        (GOOD, "threshold: 20", "threshold: 5", "rule 'r1': levels[1].threshold: expected above"),
        (GOOD, "name: high", "name: low", "names must be unique"),
        (GOOD, "clear_fraction: 0.8",
         "clear_fraction: 0.8\n    clear_below: {threshold: 1, unit: µg/m³, source: x}", "exactly one"),
        (GOOD, "period: 1h", "period: 2h", "rules[0].period (rule 'r1'): Input should be"),
        (GOOD, "min_duration: 2", "min_duration: 2\n    colour: red", "rules[0].colour (rule 'r1'): Extra inputs"),
        (GOOD, "source: test, severity", "source: '', severity", "rules[0].levels[1].source (rule 'r1')"),
        (GOOD, "severity: critical", "severity: urgent", "rules[0].levels[1].severity (rule 'r1')"),
        (GOOD, "min_duration: 2", "min_duration: 2\n    sensors: all", "rule 'r1': sensors: 'all' only for"),
        (GOOD, "min_duration: 2", "min_duration: 2\n    index: iboca", "rule 'r1': index: only for kind 'index'"),
        (GOOD, "min_duration: 2", "min_duration: 2\n    flatline_tolerance: 1", "flatline_tolerance: only for"),
        (GOOD, "min_duration: 2", "min_duration: 2\n    scope: city", "rules[0].scope (rule 'r1')"),
        (GOOD, "min_duration: 2", "min_duration: 2\n    escalate_unacknowledged_after_min: -1",
         "rules[0].escalate_unacknowledged_after_min (rule 'r1')"),
        (INDEX, "name: Regular", "name: Orange", "rule 'i1': levels[0].name: expected a iboca category"),
        (INDEX, "unit: IBOCA", "unit: AQI", "rule 'i1': levels[0].unit: expected 'IBOCA'"),
        (INDEX, "    index: iboca\n", "", "rule 'i1': index: required for kind 'index'"),
        (INDEX, "variable: pm25", "variable: pm10", "rule 'i1': variable: IBOCA is defined for pm25 only"),
        (INDEX, "variable: pm25", "period: 1h", "rule 'i1': period: only for kind 'threshold'"),
        (EQUIPMENT, "sensors: all", "audience: officers", "rule 'e1': audience: kind 'flatline' is an equipment"),
        (EQUIPMENT, "unit: min", "unit: h", "rule 'e1': levels[0].unit: expected 'min'"),
        (EQUIPMENT, "threshold: 60", "threshold: 0", "rule 'e1': levels[0].threshold: expected > 0 minutes"),
        (EQUIPMENT, "kind: flatline", "kind: no_data", "rule 'e1': flatline_tolerance: only for kind 'flatline'"),
        (EQUIPMENT, "kind: flatline", "kind: broken", "rules[0].kind (rule 'e1')"),
    ],
)
def test_bad_rules_say_where_and_what(text, old, new, message):
    assert old in text
    with pytest.raises(RulesError) as info:
        parse_rules(text.replace(old, new), source="t.yaml")
    assert str(info.value).startswith("t.yaml: ")
    assert message in str(info.value), str(info.value)


def test_every_problem_is_listed_on_its_own_line():
    bad = GOOD.replace("variable: pm25", "variable: nope").replace("threshold: 20", "threshold: 5")
    with pytest.raises(RulesError) as info:
        parse_rules(bad, source="t.yaml")
    assert len(info.value.problems) == 2
    assert all(p.startswith("rules[0]: rule 'r1': ") for p in info.value.problems)


def test_duplicate_rule_ids_are_rejected():
    twice = GOOD + GOOD.split("rules:\n", 1)[1]
    with pytest.raises(RulesError, match="duplicate ids"):
        parse_rules(twice, source="t.yaml")


def test_not_yaml():
    with pytest.raises(RulesError, match=r"t\.yaml: not valid YAML"):
        parse_rules("rules: [", source="t.yaml")
