"""Which notices a channel receives: its filter (audience, indicative, minimum severity, transitions, localities)
against one `Notice`. Pure (no I/O). Every condition must hold. The filter is any object with those attributes
(`ChannelFilterLike`), so `aqnet.config`'s channel settings work as they are.

- audience: the notice's audience is one of the filter's (air quality → officers, equipment → technicians);
- indicative: include (all), exclude (no microsensor alerts), only (microsensor alerts only);
- min_severity: the notice's severity is at least this (info < warning < critical);
- transitions: the notice's transition is one of these;
- localities: empty (all), or the notice's locality is one of them (case-insensitive); a notice without a
  locality (network scope) passes only an empty list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from alerts.delivery.notice import Notice
from alerts.rules.model import SEVERITIES

__all__ = ["ChannelFilterLike", "accepts", "accepts_alert"]


class ChannelFilterLike(Protocol):
    """What a channel filter has (aqnet.config.ChannelFilter and its channel models satisfy it)."""

    @property
    def audience(self) -> Sequence[str]: ...

    @property
    def indicative(self) -> str: ...  #: include | exclude | only

    @property
    def min_severity(self) -> str: ...

    @property
    def transitions(self) -> Sequence[str]: ...

    @property
    def localities(self) -> Sequence[str]: ...


def accepts_alert(f: ChannelFilterLike, notice: Notice) -> bool:
    """True when the channel takes this alert at all (every condition but the transition)."""
    if notice.audience not in f.audience:
        return False
    if f.indicative == "exclude" and notice.indicative:
        return False
    if f.indicative == "only" and not notice.indicative:
        return False
    if f.indicative not in ("include", "exclude", "only"):
        raise ValueError(f"channel filter indicative: expected include|exclude|only, got {f.indicative!r}")
    if SEVERITIES.index(notice.severity) < SEVERITIES.index(f.min_severity):
        return False
    if f.localities:
        wanted = {loc.casefold() for loc in f.localities}
        return notice.locality is not None and notice.locality.casefold() in wanted
    return True


def accepts(f: ChannelFilterLike, notice: Notice) -> bool:
    """True when the channel described by filter `f` receives this notice (see the module docstring)."""
    return notice.transition in f.transitions and accepts_alert(f, notice)
