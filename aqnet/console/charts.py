"""Plain SVG line charts for the web console (an alert's averages with its limit, a series for validation): no
chart library, nothing fetched. Shell (aqnet.console); pure.

Contract of `line_chart(points, ...)`: one polyline per run of values (a None breaks the line), a dot per value
carrying its time (`data-t`, ISO 8601; `data-local`, the network's zone to the minute) and value for the page's
script and a `<title>` for screen readers and hover; the limit, when given, as a dashed horizontal line
labelled with its value; a shaded band for `selected` (start, end). The y axis starts at 0 unless a value is
negative; the SVG scales to its container's width (viewBox). Text is escaped; the answer is markup to insert as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from html import escape

__all__ = ["line_chart"]

_W, _H = 640, 240  #: viewBox size; the CSS makes it 100% wide
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 12, 28


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def line_chart(points: Sequence[tuple[datetime, float | None]], *, title: str, unit: str, tz: tzinfo,
               limit: float | None = None, limit_label: str = "limit",
               selected: tuple[datetime, datetime] | None = None, chart_id: str = "chart") -> str:
    """The SVG markup of `points` (time, value) with an optional limit line and selected band (module doc)."""
    values = [v for _, v in points if v is not None]
    times = [t for t, _ in points]
    lo = min([0.0, *values, *([limit] if limit is not None else [])])
    hi = max([*values, *([limit] if limit is not None else []), lo + 1.0])
    hi += (hi - lo) * 0.08
    t0 = min(times).timestamp() if times else 0.0
    t1 = max(times).timestamp() if times else 1.0
    if t1 <= t0:
        t1 = t0 + 1.0

    def x(t: datetime) -> float:
        return _LEFT + (t.timestamp() - t0) / (t1 - t0) * (_W - _LEFT - _RIGHT)

    def y(v: float) -> float:
        return _TOP + (hi - v) / (hi - lo) * (_H - _TOP - _BOTTOM)

    out = [(f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {_W} {_H}" role="img" '
           f'aria-labelledby="{escape(chart_id)}-title" data-t0="{t0}" data-t1="{t1}" data-left="{_LEFT}" '
           f'data-right="{_W - _RIGHT}" xmlns="http://www.w3.org/2000/svg">'),
           f'<title id="{escape(chart_id)}-title">{escape(title)} ({escape(unit)})</title>']
    if selected is not None:
        a, b = (max(_LEFT, min(_W - _RIGHT, x(s))) for s in selected)
        out.append(f'<rect class="selected" x="{a:.1f}" y="{_TOP}" width="{max(b - a, 1):.1f}" '
                   f'height="{_H - _TOP - _BOTTOM}"/>')
    out.append(f'<line class="axis" x1="{_LEFT}" y1="{_H - _BOTTOM}" x2="{_W - _RIGHT}" y2="{_H - _BOTTOM}"/>')
    out.append(f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_H - _BOTTOM}"/>')
    for tick in (lo, (lo + hi) / 2, hi):
        out.append(f'<text class="tick" x="{_LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    if times:
        for t, anchor in ((min(times), "start"), (max(times), "end")):
            out.append(f'<text class="tick" x="{x(t):.1f}" y="{_H - 8}" text-anchor="{anchor}">'
                       f'{escape(t.astimezone(tz).strftime("%Y-%m-%d %H:%M"))}</text>')
    if limit is not None:
        out.append(f'<line class="limit" x1="{_LEFT}" y1="{y(limit):.1f}" x2="{_W - _RIGHT}" y2="{y(limit):.1f}"/>')
        out.append(f'<text class="limit-label" x="{_W - _RIGHT - 2}" y="{y(limit) - 4:.1f}" text-anchor="end">'
                   f'{escape(limit_label)} {_fmt(limit)} {escape(unit)}</text>')
    run: list[str] = []
    lines: list[list[str]] = [run]
    for t, v in points:
        if v is None:
            run = []
            lines.append(run)
            continue
        run.append(f"{x(t):.1f},{y(v):.1f}")
    for r in lines:
        if len(r) > 1:
            out.append(f'<polyline class="series" points="{" ".join(r)}"/>')
    for t, v in points:
        if v is not None:
            stamp = t.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            out.append(f'<circle class="point" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" data-t="{t.isoformat()}" '
                       f'data-local="{stamp.replace(" ", "T")}" data-v="{_fmt(v)}">'
                       f'<title>{escape(stamp)}: {_fmt(v)} {escape(unit)}</title></circle>')
    out.append("</svg>")
    return "".join(out)
