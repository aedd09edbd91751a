"""The `zero_span` settings section: the scheduled zero/span checks of analysers without a zero/span status bit, and
the acceptance limits their responses are judged by. Pure (ingest); composed by `aqnet.config.Settings`.

Durations, times and span gas values are the network's procedure: aqnet ships none (each schedule gives its own).
Limits default to `ingest.zero_span_eval.DEFAULT_LIMITS` (EPA QA Handbook Vol. II Appendix D, unverified)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ingest.zero_span_eval import DEFAULT_LIMITS, Limits
from sensors.settings import Section
from sensors.variables import VARIABLES
from sensors.zero_span import CheckSchedule

__all__ = ["CheckSpec", "LimitSpec", "ZeroSpanSettings"]


class CheckSpec(Section):
    """One analyser's scheduled zero/span check."""

    sensor: str = Field(min_length=1, description="The sensor (station) id.")
    device: str = Field(min_length=1, description="The analyser's device id (every variable of it is excluded).")
    variable: str = Field(description="The vocabulary code whose zero and span responses are recorded (o3, so2, …).")
    at: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description=(
        "Local start time (network time zone), HH:MM."))
    every_days: Annotated[int, Field(ge=1)] = Field(default=1, description="Days between checks (1: nightly).")
    zero_min: Annotated[float, Field(gt=0)] = Field(description="Minutes on zero air.")
    span_min: Annotated[float, Field(gt=0)] = Field(description="Minutes on span gas.")
    purge_min: Annotated[float, Field(ge=0)] = Field(description=(
        "Minutes after the span phase during which readings are still excluded (the lines flush)."))
    span_value: float = Field(description="The span gas concentration the analyser should read, in `unit`.")
    zero_value: float = Field(default=0.0, description="What the analyser should read on zero air, in `unit`.")
    unit: str = Field(min_length=1, description="The unit of `span_value`, `zero_value` and the limits (ppb, ppm).")

    @field_validator("variable")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in VARIABLES:
            raise ValueError(f"expected a vocabulary code, one of {', '.join(sorted(VARIABLES))}, got {value!r}")
        return value

    def schedule(self, tz: tzinfo) -> CheckSchedule:
        """The pure schedule, its start read in `tz` (the network's time zone)."""
        hours, minutes = (int(x) for x in self.at.split(":"))
        return CheckSchedule(self.sensor, self.device, self.variable, tz, at_minute=hours * 60 + minutes,
                             zero_min=self.zero_min, span_min=self.span_min, purge_min=self.purge_min,
                             span_value=self.span_value, unit=self.unit, every_days=self.every_days,
                             zero_value=self.zero_value)


class LimitSpec(Section):
    """One pollutant's acceptance limits, from a cited source."""

    zero: Annotated[float, Field(gt=0)] = Field(description="Largest accepted |zero error|, in `unit`.")
    span_pct: Annotated[float, Field(gt=0)] = Field(description="Largest accepted |span error|, in %.")
    unit: str = Field(min_length=1, description="Unit of `zero` (ppb, ppm).")
    source: str = Field(min_length=1, description="The document or network procedure the numbers come from.")
    status: Literal["verified_primary", "verified_secondary", "secondary_single", "unverified"] = Field(
        default="unverified", description="Verification status of the numbers.")

    def limits(self) -> Limits:
        """The pure limits."""
        return Limits(self.zero, self.span_pct, self.unit, self.source, self.status)


class ZeroSpanSettings(Section):
    checks: list[CheckSpec] = Field(default=[], description=(
        "Scheduled zero/span checks of analysers that have no zero/span status bit; their readings from the "
        "check's start to the end of its purge are flagged maintenance, and each check's responses recorded."))
    limits: dict[str, LimitSpec] = Field(default={}, description=(
        "Acceptance limits per vocabulary code, replacing the defaults (EPA QA Handbook Vol. II Appendix D for "
        "o3, so2, no2, co, marked unverified)."))
    status_purge_min: dict[str, Annotated[float, Field(ge=0)]] = Field(default={}, description=(
        "Per analyser device id: minutes after its zero/span (calibration-mode) status bit clears during which its "
        "readings are still flagged maintenance (the lines flush). No default (an analyser's flush time is its "
        "manual's or the network procedure's, not aqnet's): a device not listed gets no purge."))
    stable_fraction: Annotated[float, Field(gt=0, le=1)] = Field(default=0.5, description=(
        "A phase's response is the mean of its readings in this last fraction of the phase (the analyser settles "
        "first): an aqnet choice."))
    drift_checks: Annotated[int, Field(ge=2)] = Field(default=14, description=(
        "Checks of a device the drift (least-squares slope per day) is fitted on."))

    @field_validator("limits")
    @classmethod
    def _known_codes(cls, value: dict[str, LimitSpec]) -> dict[str, LimitSpec]:
        unknown = sorted(set(value) - set(VARIABLES))
        if unknown:
            raise ValueError(f"unknown vocabulary codes {unknown}")
        return value

    def schedules(self, tz: tzinfo) -> list[CheckSchedule]:
        """Every configured schedule, read in `tz`; ValueError naming the check when it is inconsistent or has
        no limits in its unit."""
        out = []
        for i, spec in enumerate(self.checks):
            schedule = spec.schedule(tz)
            limits = self.limit_map().get(spec.variable) or DEFAULT_LIMITS.get(spec.variable)
            if limits is None:
                raise ValueError(f"zero_span.checks[{i}] ({spec.sensor}/{spec.device}): no acceptance limits for "
                                 f"{spec.variable}: give zero_span.limits.{spec.variable}")
            if limits.unit != spec.unit:
                raise ValueError(f"zero_span.checks[{i}] ({spec.sensor}/{spec.device}): unit {spec.unit!r} differs "
                                 f"from the {spec.variable} limits' unit {limits.unit!r}")
            out.append(schedule)
        return out

    def limit_map(self) -> dict[str, Limits]:
        """The configured limits (the defaults fill in the rest where they are used)."""
        return {code: spec.limits() for code, spec in self.limits.items()}
