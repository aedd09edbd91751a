"""Stage 4, alert rules' evidence — pure (no I/O, no clock): the sentence stored with each alert transition
(`alert_events.note`): the evaluated quantity with its period and source sensor, the value against the level's
threshold and its source, coverage, equipment detail and the indicative mark; called by `alerts.rules.evaluate`.
"""

from __future__ import annotations

from datetime import tzinfo

from alerts.rules.model import Rule
from alerts.rules.observations import Observation, local_stamp
from alerts.rules.state import AlertEvent

__all__ = ["note_for", "pct"]


def pct(coverage: float | None) -> str:
    return "n/a" if coverage is None else f"{coverage * 100:.0f} %"


def _what(rule: Rule, obs: Observation | None, tz: tzinfo) -> str:
    """The evaluated quantity, with its period and source sensor."""
    at = "" if obs is None else f" at sensor {obs.sensor_id}" + (f" ({obs.locality})" if obs.locality else "")
    if rule.scope != "sensor" and obs is not None:
        at += f", the worst of {rule.scope} {obs.locality if rule.scope == 'locality' else 'network'}"
    variable = obs.variable if obs is not None and obs.variable else rule.variable or "any variable"
    end = obs.period_end if obs is not None else None
    if rule.kind == "threshold":
        if rule.period == "day" and obs is not None and obs.period_start is not None:
            period = f"day average of {obs.period_start.astimezone(tz).date().isoformat()} (local)"
        else:
            period = f"{rule.period} mean ending {local_stamp(end, tz)}"
        return f"{variable} {period}{at}"
    if rule.kind == "index":
        detail = f", {obs.detail}" if obs is not None and obs.detail else ""
        return f"{rule.index} of {variable} (NowCast ending {local_stamp(end, tz)}{detail}){at}"
    verb = {"no_data": "minutes without data", "flatline": "minutes flat "
            f"(max - min <= {rule.flatline_tolerance or 0:g})", "device_fault": "minutes flagged invalid by "
            "the analyser (QC.DEVICE_INVALID)", "zero_span": "zero/span check error, % of its acceptance limit"
            }[rule.kind]
    return f"{variable} {verb}{at}"


def note_for(event: AlertEvent, rule: Rule, obs: Observation | None, tz: tzinfo) -> str:
    """The evidence sentence stored with a transition (alert_events.note)."""
    value = f"{event.value:g} {event.unit}"
    if event.kind == "resolved":
        comparison = f"< clear threshold {event.threshold:g} {event.unit}"
    else:
        level = rule.levels[rule.level_named(event.level)]
        comparison = f"{level.comparison} {event.threshold:g} {event.unit}"
    src = event.source
    level_status = rule.levels[rule.level_named(event.level)].status
    if level_status and event.kind != "resolved":
        src += f", {level_status}"
    evidence = f"{_what(rule, obs, tz)} = {value} {comparison} [{src}]"
    if obs is not None and rule.kind == "threshold":
        evidence += f"; coverage {pct(obs.coverage)}"
    if obs is not None and rule.kind not in ("threshold", "index") and obs.detail:
        evidence += f"; {obs.detail}"
    if rule.indicative:
        evidence += "; indicative (microsensor)"
    head = {"raised": f"raised at {event.level} ({event.severity})",
            "escalated": f"escalated from {getattr(event, 'from_level', '?')} to {event.level} ({event.severity})",
            "resolved": f"resolved at {event.level}",
            "unacknowledged": f"not acknowledged {getattr(event, 'after_min', 0):g} min after reaching "
                              f"{event.level} ({event.severity})"}.get(event.kind, event.kind)
    return f"{head}: {evidence}"
