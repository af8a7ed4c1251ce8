"""Bar charts as plain geometry; the template draws them as inline SVG (no script, no library)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 760
HEIGHT = 230
_LEFT = 60  # room for the value axis
_BOTTOM = 36  # room for the labels (drawn larger on a phone, where the chart is shrunk)
_TOP = 10


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    show_label: bool


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    baseline: float
    label_y: float
    bars: list[Bar]
    ticks: list[Tick]
    total: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10^k that is at least `value` (and at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(points: list[tuple[str, int]], *, label_every: int = 1) -> BarChart:
    """`points` are (label, value) in order; every `label_every`-th label is written under its bar."""
    top = nice_ceiling(max((value for _, value in points), default=0))
    plot_height = HEIGHT - _BOTTOM - _TOP
    baseline = float(HEIGHT - _BOTTOM)
    slot = (WIDTH - _LEFT) / max(len(points), 1)
    gap = min(slot * 0.2, 6.0)
    bars = []
    for index, (label, value) in enumerate(points):
        height = plot_height * value / top
        bars.append(
            Bar(
                x=round(_LEFT + index * slot + gap / 2, 2),
                y=round(baseline - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                label=label,
                value=value,
                show_label=index % label_every == 0,
            )
        )
    # A middle line only where it falls on a whole number of uses.
    steps = (0, top // 2, top) if top % 2 == 0 else (0, top)
    ticks = [Tick(y=round(baseline - plot_height * value / top, 2), value=value) for value in steps]
    total = sum(value for _, value in points)
    return BarChart(WIDTH, HEIGHT, _LEFT, baseline, baseline + _BOTTOM - 8, bars, ticks, total)
