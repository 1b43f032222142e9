"""The DMARC chart's geometry: per day, messages aligned (bottom) and failing (top), with the
aligned rate above each bar. Pure; templates/includes/dmarc_chart.html draws it as SVG."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: int
    label: str
    aligned_y: int
    aligned_h: int
    failing_y: int
    failing_h: int
    aligned: int
    failing: int
    rate: str  # "98.7 %" or "" on a day without reports


def dmarc_chart(days, *, end: dt.date, count: int = 14, height: int = 90, bar: int = 22,
                gap: int = 8) -> dict:
    """`days`: reports.figures.Day rows; one bar for each of the `count` days up to `end`."""
    by_day = {d.day: d for d in days}
    dates = [end - dt.timedelta(days=offset) for offset in range(count - 1, -1, -1)]
    top = max((by_day[d].messages for d in dates if d in by_day), default=0) or 1
    bars = []
    for index, date in enumerate(dates):
        day = by_day.get(date)
        messages, aligned = (day.messages, day.aligned) if day else (0, 0)
        aligned_h = _height(aligned, top, height)
        failing_h = _height(messages - aligned, top, height)
        bars.append(Bar(
            x=index * (bar + gap), label=date.strftime("%d"),
            aligned_y=height - aligned_h, aligned_h=aligned_h,
            failing_y=height - aligned_h - failing_h, failing_h=failing_h,
            aligned=aligned, failing=messages - aligned,
            rate=f"{100 * aligned / messages:.0f}" if messages else "",
        ))
    return {"bars": bars, "width": count * (bar + gap), "height": height, "bar": bar,
            "middle": bar // 2}


def _height(value: int, top: int, height: int) -> int:
    h = round(value * height / top)
    return 1 if value and h == 0 else h
