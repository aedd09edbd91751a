"""Validation by people — what a decision is and what it makes of a value (ingest stage). Pure: no I/O, no clock.

Every stored value has three levels: **raw** (as received: `raw_value`, `raw_unit`), **automatically checked**
(the QC flags `ingest.qc` and the pipeline set; `ingest.reading.EXCLUDED` bits keep it out of averages) and
**validated by a person**: a technician or an officer marks a period of a series as validated, or as invalid
with a reason from `REASONS`, and may undo either. A decision covers a `Scope` (a whole sensor, one device of it,
one variable of one device, or one variable over all the sensor's devices) over a half-open `Period`.

How a set of decisions resolves per value (`in_force`, `resolve`): an undo removes the decision it names (it
can be undone only once, and an undo is never undone: a new decision is taken instead); of the decisions left
that cover the value, the **latest** (highest id) decides. So a later, narrower validation inside an invalid
period re-validates that part, and undoing it restores the invalidation. The SQL twin of `resolve` is
`storage.validation.DECIDING_SQL`; both are tested against each other.

The verification state follows the EU air-quality e-Reporting vocabularies (Commission Implementing Decision
2011/850/EU; code lists of the Eionet Data Dictionary, `VERIFICATION_URI`, `VALIDITY_URI`) — `state_of`:

| levels of the value | verification | validity |
|---|---|---|
| a person validated it | 1 verified | 1 valid |
| a person invalidated it (maintenance; calibration or zero/span check) | 1 verified | -99 not valid (maint./cal.) |
| a person invalidated it (any other reason) | 1 verified | -1 not valid |
| no decision; QC excluded it for MAINTENANCE | 3 not verified | -99 not valid (maint./cal.) |
| no decision; QC excluded it (out of range, analyser-invalid, clock skew) | 3 not verified | -1 not valid |
| no decision; QC kept it (suspect flags included) | 3 not verified | 1 valid |

"Not verified" (3) is the vocabulary's state for data that went through no or minimal checks ("some basic
screening criteria to exclude clearly faulty data", observationverification/3): aqnet's automatic QC is that.
"Preliminary verified" (2) is not produced: aqnet has no intermediate human step. A person's decision is final
until undone ("verified", 1). Validity -99 is the vocabulary's "not valid due to station maintenance or
calibration in progress"; its exact label could not be read from the Eionet page here (unverified wording, the
code is the one the e-Reporting flat files use).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Literal, get_args

from ingest.reading import EXCLUDED, QC

__all__ = ["ACTIONS", "REASONS", "VALIDATOR_ROLES", "VALIDITY_URI", "VERIFICATION_URI", "Action", "Decision",
           "DecisionError", "Period", "Reason", "Scope", "Validity", "ValueState", "Verification", "check_request",
           "in_force", "resolve", "state_of"]

Action = Literal["validate", "invalidate", "undo"]
ACTIONS: tuple[Action, ...] = get_args(Action)

Reason = Literal["analyser_fault", "calibration", "maintenance", "local_source", "other"]
#: why a period is invalid: code → what it means (the list the issue fixes; "other" needs a text)
REASONS: dict[Reason, str] = {
    "analyser_fault": "analyser fault",
    "calibration": "calibration, or a zero/span check",
    "maintenance": "maintenance",
    "local_source": "a local source (construction, a fire, a vehicle idling by the inlet, ...)",
    "other": "other (the text says what)",
}
#: reasons whose invalid values are e-Reporting validity -99 (maintenance or calibration in progress)
_MAINTENANCE_REASONS: frozenset[str] = frozenset({"maintenance", "calibration"})

#: API token roles that may take decisions (storage.tokens.Role; readers may only read them)
VALIDATOR_ROLES: frozenset[str] = frozenset({"technician", "officer"})

#: Eionet Data Dictionary code lists of the e-Reporting scheme (Decision 2011/850/EU)
VERIFICATION_URI = "http://dd.eionet.europa.eu/vocabulary/aq/observationverification/"
VALIDITY_URI = "http://dd.eionet.europa.eu/vocabulary/aq/observationvalidity/"

#: the longest text kept with a decision (an audit note, not a document)
MAX_TEXT = 2000


class Verification(IntEnum):
    """e-Reporting verification flag (observationverification: notation → label)."""

    VERIFIED = 1
    PRELIMINARY_VERIFIED = 2
    NOT_VERIFIED = 3

    @property
    def label(self) -> str:
        """The vocabulary's label."""
        return self.name.replace("_", " ").lower()


class Validity(IntEnum):
    """e-Reporting validity flag (observationvalidity), the codes aqnet produces."""

    VALID = 1
    NOT_VALID = -1
    NOT_VALID_MAINTENANCE = -99  #: not valid due to station maintenance or calibration in progress

    @property
    def label(self) -> str:
        """The vocabulary's label (-99's wording unverified, see the module docstring)."""
        return {1: "valid", -1: "not valid",
                -99: "not valid due to station maintenance or calibration in progress"}[int(self)]


class DecisionError(ValueError):
    """A decision that cannot be taken: `field` names the offending input, the message what was expected."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _name(value: str | None, field: str, *, optional: bool) -> str | None:
    if value is None:
        if optional:
            return None
        raise DecisionError(field, "required")
    if not isinstance(value, str) or not value.strip() or value != value.strip() or len(value) > 200:
        raise DecisionError(field, f"expected a non-empty name without surrounding spaces, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Scope:
    """What a decision covers: a sensor; one of its devices; one variable of one device; or one variable over
    all the sensor's devices (device None)."""

    sensor_id: str
    device_id: str | None = None
    variable: str | None = None

    def __post_init__(self) -> None:
        _name(self.sensor_id, "sensor", optional=False)
        _name(self.device_id, "device", optional=True)
        _name(self.variable, "variable", optional=True)

    @property
    def level(self) -> Literal["sensor", "device", "variable"]:
        """How wide the scope is: the whole sensor, one device, or one variable."""
        if self.variable is not None:
            return "variable"
        return "sensor" if self.device_id is None else "device"

    def covers(self, sensor_id: str, device_id: str, variable: str) -> bool:
        """Whether a value of (sensor, device, variable) is in this scope."""
        return (sensor_id == self.sensor_id and self.device_id in (None, device_id)
                and self.variable in (None, variable))

    def describe(self) -> str:
        """For people: 'sensor KEN', 'device KEN-pm of sensor KEN', 'pm25 of device KEN-pm (sensor KEN)'."""
        if self.variable is not None and self.device_id is not None:
            return f"{self.variable} of device {self.device_id} (sensor {self.sensor_id})"
        if self.variable is not None:
            return f"{self.variable} of sensor {self.sensor_id}"
        if self.device_id is not None:
            return f"device {self.device_id} of sensor {self.sensor_id}"
        return f"sensor {self.sensor_id}"


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open time span [start, end), both aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise DecisionError("period", "--from and --to must carry a UTC offset (e.g. 2026-03-02T00:00-05:00)")
        if not self.start < self.end:
            raise DecisionError("period", f"from {self.start.isoformat()} must be before to {self.end.isoformat()}")

    def covers(self, t: datetime) -> bool:
        """Whether instant `t` is in [start, end)."""
        return self.start <= t < self.end

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) meets this period."""
        return start < self.end and self.start < end


@dataclass(frozen=True, slots=True)
class Decision:
    """One stored decision (a row of `validation_decisions`): validate or invalidate a scope over a period, or
    undo decision `undoes` (whose scope and period it repeats)."""

    id: int
    action: Action
    scope: Scope
    period: Period
    reason: Reason | None = None
    text: str = ""
    undoes: int | None = None

    def __post_init__(self) -> None:
        check_request(self.action, self.reason, self.text, self.undoes)


def check_request(action: str, reason: str | None, text: str, undoes: int | None) -> None:
    """Raise `DecisionError` unless (action, reason, text, undoes) make a decision: invalidate needs a reason
    from `REASONS` ("other" needs a text), validate takes none, undo names the decision it undoes."""
    if action not in ACTIONS:
        raise DecisionError("action", f"expected one of {', '.join(ACTIONS)}, got {action!r}")
    if len(text) > MAX_TEXT:
        raise DecisionError("text", f"at most {MAX_TEXT} characters, got {len(text)}")
    if action == "invalidate":
        if reason not in REASONS:
            raise DecisionError("reason", f"expected one of {', '.join(REASONS)}, got {reason!r}")
        if reason == "other" and not text.strip():
            raise DecisionError("text", "reason 'other' needs a text saying why")
    elif reason is not None:
        raise DecisionError("reason", f"only an invalidation takes a reason; {action} got {reason!r}")
    if (action == "undo") != (undoes is not None):
        raise DecisionError("undoes", "an undo names the decision it undoes, and only an undo does")
    if undoes is not None and undoes <= 0:
        raise DecisionError("undoes", f"expected a decision id, got {undoes}")


def in_force(decisions: Iterable[Decision]) -> list[Decision]:
    """The validations and invalidations no undo removed, in id order."""
    decisions = list(decisions)
    undone = {d.undoes for d in decisions if d.action == "undo"}
    return sorted((d for d in decisions if d.action != "undo" and d.id not in undone), key=lambda d: d.id)


def resolve(decisions: Sequence[Decision], sensor_id: str, device_id: str, variable: str, time: datetime
            ) -> Decision | None:
    """The decision that decides a value of (sensor, device, variable) at `time`: the latest in force that covers
    it; None when a person has not decided."""
    best: Decision | None = None
    for d in in_force(decisions):
        if d.scope.covers(sensor_id, device_id, variable) and d.period.covers(time):
            best = d
    return best


@dataclass(frozen=True, slots=True)
class ValueState:
    """A value's verification and validity flags and whether it counts in averages, indices and alerts."""

    verification: Verification
    validity: Validity
    human: Literal["validated", "invalidated"] | None  #: the person's verdict, None if none
    counts: bool  #: used by averages (valid QC, not invalidated, finite value)


def state_of(flags: int, value: float | None, decision: Decision | None) -> ValueState:
    """The three levels of a value resolved into its e-Reporting state (table in the module docstring). A person's
    validation does not make a missing or non-finite value count, nor one QC excluded: validating confirms what
    the automatic checks kept; to keep an excluded value out is the default."""
    finite = value is not None and math.isfinite(value)
    qc_ok = not (QC(flags) & EXCLUDED)
    if decision is not None and decision.action == "invalidate":
        validity = Validity.NOT_VALID_MAINTENANCE if decision.reason in _MAINTENANCE_REASONS else Validity.NOT_VALID
        return ValueState(Verification.VERIFIED, validity, "invalidated", counts=False)
    if qc_ok:
        validity = Validity.VALID
    elif QC(flags) & QC.MAINTENANCE:
        validity = Validity.NOT_VALID_MAINTENANCE
    else:
        validity = Validity.NOT_VALID
    if decision is not None:
        return ValueState(Verification.VERIFIED, validity, "validated", counts=qc_ok and finite)
    return ValueState(Verification.NOT_VERIFIED, validity, None, counts=qc_ok and finite)
