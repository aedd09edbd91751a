"""Tests for alerts.rules: the rules file model, the bundled Res. 2254/2017 rules and the norms' examples."""

from __future__ import annotations

import pytest

from alerts.rules import RulesError, default_rules, parse_rules
from sensors.domain import load

NORMS = load("norms")
EXAMPLES = load("examples")["examples"]
POLLUTANT = {"pm25": "PM2.5", "pm10": "PM10"}


def rule_for(variable):
    (rule,) = [r for r in default_rules() if r.variable == variable]
    return rule


@pytest.mark.parametrize("variable", ["pm25", "pm10"])
def test_default_rules_take_every_number_from_norms_json(variable):
    rule = rule_for(variable)
    assert rule.period == "24h" and rule.scope == "sensor"
    (limit,) = [lv for lv in NORMS["max_permissible_levels"]["levels"]
                if lv["pollutant"] == POLLUTANT[variable] and lv["averaging"] == "24h"]
    (pae,) = [lv for lv in NORMS["prevention_alert_emergency"]["levels"]
              if lv["pollutant"] == POLLUTANT[variable] and lv["averaging"] == "24h"]
    by_name = {lv.name: lv for lv in rule.levels}
    assert [lv.name for lv in rule.levels] == ["limit", "prevention", "alert", "emergency"]
    assert by_name["limit"].threshold == limit["value"] and by_name["limit"].comparison == ">"
    assert by_name["prevention"].threshold == pae["prevention"][0]
    assert by_name["alert"].threshold == pae["alert"][0]
    assert by_name["emergency"].threshold == pae["emergency_min"]
    for lv in rule.levels:
        assert lv.unit == "µg/m³"
        assert "Res. 2254/2017" in lv.source
        assert lv.status == "verified_secondary"


@pytest.mark.parametrize("ex", [e for e in EXAMPLES if e["kind"] == "norm_check"], ids=lambda e: e["id"])
def test_norm_check_examples_limit_is_strictly_greater(ex):
    limit = rule_for("pm25").levels[0]
    assert limit.met_by(ex["input"]["c_ref_ugm3"]) is ex["expected"]["exceeds"]


@pytest.mark.parametrize(
    "ex",
    [e for e in EXAMPLES if e["kind"] == "prevention_alert_emergency" and e["input"]["pollutant"] == "PM2.5"],
    ids=lambda e: e["id"],
)
def test_prevention_alert_emergency_examples_half_open_bands(ex):
    rule = rule_for("pm25")
    idx = rule.level_index(ex["input"]["c_ref_ugm3"])
    name = None if idx is None else rule.levels[idx].name
    # the 'limit' level (> 37) is below every prevention/alert/emergency band
    assert (None if name == "limit" else name) == ex["expected"]["level"]


def test_level_index_below_everything_is_none():
    assert rule_for("pm25").level_index(37.0) is None
    assert rule_for("pm25").level_index(37.0001) == 0


def test_clear_threshold_from_fraction_or_explicit():
    assert rule_for("pm25").clear_threshold == pytest.approx(0.9 * 37)
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
      - {name: high, threshold: 20, unit: µg/m³, source: test}
"""


def test_parse_good_rules():
    (r,) = parse_rules(GOOD, source="t.yaml")
    assert r.id == "r1" and r.min_duration == 2 and r.unit == "µg/m³" and r.levels[1].comparison == ">="


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("variable: pm25", "variable: pm2.5", "variable: expected one of"),
        ("unit: µg/m³, source: test}\n      - {name: high", "unit: ppb, source: test}\n      - {name: high",
         "levels[0].unit: expected 'µg/m³'"),
        ("threshold: 20", "threshold: 5", "levels[1].threshold: expected above"),
        ("name: high", "name: low", "names must be unique"),
        ("clear_fraction: 0.8",
         "clear_fraction: 0.8\n    clear_below: {threshold: 1, unit: µg/m³, source: x}",
         "exactly one"),
        ("period: 1h", "period: 2h", "rules[0].period"),
        ("min_duration: 2", "min_duration: 2\n    colour: red", "rules[0].colour: Extra inputs"),
        ("source: test}\n", "source: ''}\n", "rules[0].levels[1].source"),
    ],
)
def test_bad_rules_say_where_and_what(old, new, message):
    assert old in GOOD
    with pytest.raises(RulesError) as info:
        parse_rules(GOOD.replace(old, new), source="t.yaml")
    assert str(info.value).startswith("t.yaml: ")
    assert message in str(info.value)


def test_duplicate_rule_ids_are_rejected():
    twice = GOOD + GOOD.split("rules:\n", 1)[1]
    with pytest.raises(RulesError, match="duplicate ids"):
        parse_rules(twice, source="t.yaml")


def test_not_yaml():
    with pytest.raises(RulesError, match=r"t\.yaml: not valid YAML"):
        parse_rules("rules: [", source="t.yaml")
