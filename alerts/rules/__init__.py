"""Stage 4, alert rules — what raises, escalates and resolves an alert: the rules file (pydantic model and the
bundled `default_rules.yaml`), the pure alert state machine, and the evaluation of every rule on the stored
averages, indices and equipment checks at `now` (I/O glue, psycopg 3 sync).

Index: `alerts.rules.model` (Rule, parse_rules, default_rules), `alerts.rules.state` (the pure state machine and
its events), `alerts.rules.evaluate` (`evaluate_alerts`), `alerts.rules.equipment` (no_data, flatline,
device_fault values).
"""

from __future__ import annotations

from alerts.rules.evaluate import evaluate_alerts
from alerts.rules.model import (
           EQUIPMENT_KINDS,
           SEVERITIES,
           Audience,
           Rule,
           RulesError,
           Severity,
           default_rules,
           parse_rules,
)
from alerts.rules.state import AlertEvent, AlertState

__all__ = ["EQUIPMENT_KINDS", "SEVERITIES", "AlertEvent", "AlertState", "Audience", "Rule", "RulesError", "Severity",
           "default_rules", "evaluate_alerts", "parse_rules"]
