"""A stacked bar chart (one bar a day, one colour a series) laid out as SVG shapes, for the usage
page in the admin (`usage.admin`). The template draws what `stacked_bars` returns.

Hand-written rather than a chart library: the page needs a few dozen rectangles, an axis and a
legend; a JavaScript library would have to be vendored (the admin loads nothing from a CDN) and
kept up to date for that, while SVG made on the server shows without any script, prints, and
can be tested by reading the HTML."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

#: Colours told apart by most colour-blind readers (Okabe-Ito), then grey for "other".
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442"]
OTHER_COLOUR = "#999999"
OTHER = "other"

WIDTH, HEIGHT = 960, 280
LEFT, RIGHT, TOP, BOTTOM = 70, 10, 10, 40


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_bottom: int
    bars: list[Bar]
    ticks: list[Tick]
    day_labels: list[DayLabel]
    legend: list[tuple[str, str]]


def nice_step(top: float, *, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts 0..top into about `ticks` steps."""
    if top <= 0:
        return 1.0
    rough = top / ticks
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def stacked_bars(
    *,
    days: list[date],
    values: dict[tuple[date, str], float | Decimal],
    format_value=str,
    max_series: int = len(PALETTE),
) -> Chart:
    """Bars for `days` (left to right), each stacking its series' `values[(day, series)]`. The
    series with the largest totals get a colour each; the rest are summed as "other"."""
    totals: dict[str, float] = {}
    for (_, series), value in values.items():
        totals[series] = totals.get(series, 0.0) + float(value or 0)
    ranked = sorted(totals, key=lambda s: (-totals[s], s))
    kept = ranked if len(ranked) <= max_series else ranked[: max_series - 1]
    colours = {series: PALETTE[i] for i, series in enumerate(kept)}
    if len(kept) < len(ranked):
        colours[OTHER] = OTHER_COLOUR

    stacks: dict[date, list[tuple[str, float]]] = {day: [] for day in days}
    for day in days:
        by_series: dict[str, float] = {}
        for series in ranked:
            value = float(values.get((day, series)) or 0)
            if value:
                name = series if series in kept else OTHER
                by_series[name] = by_series.get(name, 0.0) + value
        stacks[day] = [(s, by_series[s]) for s in colours if s in by_series]

    top = max((sum(v for _, v in stack) for stack in stacks.values()), default=0.0)
    step = nice_step(top)
    axis_top = step * max(1, math.ceil(top / step)) if top else step
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot = plot_width / max(1, len(days))
    bar_width = max(1.0, slot * 0.8)

    def y_of(value: float) -> float:
        return TOP + plot_height * (1 - value / axis_top)

    bars = []
    for i, day in enumerate(days):
        base = 0.0
        x = LEFT + i * slot + (slot - bar_width) / 2
        for series, value in stacks[day]:
            y = y_of(base + value)
            bars.append(
                Bar(
                    x=round(x, 1),
                    y=round(y, 1),
                    width=round(bar_width, 1),
                    height=round(y_of(base) - y, 1),
                    colour=colours[series],
                    title=f"{day:%Y-%m-%d} {series}: {format_value(value)}",
                )
            )
            base += value
    ticks = [
        Tick(y=round(y_of(step * n), 1), label=format_value(step * n))
        for n in range(round(axis_top / step) + 1)
    ]
    every = max(1, math.ceil(len(days) / 10))  # at most about ten dates under the axis
    day_labels = [
        DayLabel(x=round(LEFT + (i + 0.5) * slot, 1), label=f"{day:%m-%d}")
        for i, day in enumerate(days)
        if i % every == 0
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_bottom=HEIGHT - BOTTOM,
        bars=bars,
        ticks=ticks,
        day_labels=day_labels,
        legend=list(colours.items()),
    )
