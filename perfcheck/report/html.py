"""The HTML report: one self-contained file a CI engineer opens in a browser.

Per scenario it shows the verdict, a table of every gated metric (baseline,
current, change, p-value, threshold, verdict), the percentiles of all rounds
merged, a histogram overlay of baseline vs current on a log latency axis, and
one small plot per key metric with a dot per round, which shows how noisy the
rounds are and where the threshold lies; and, from the results store, a trend plot of
the scenario's last sessions with change points marked (:mod:`perfcheck.report.trend`).

The plots are SVG drawn here in Python: the page has no script, loads nothing
(a Content-Security-Policy forbids it) and reads the same with JavaScript off.
Every plot has a ``<title>`` and a ``<desc>`` that says in words what it shows,
and the two sides differ by shape and dash pattern as well as by colour.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from perfcheck.model.histogram import LogLinearHistogram, bucket_bounds
from perfcheck.model.measurement import environment_diff
from perfcheck.model.outcome import ERROR, Status
from perfcheck.report.results import (
    DISPLAY_PERCENTILES,
    Results,
    ScenarioResult,
    percentile_label,
    series_percentiles,
)
from perfcheck.stats.verdict import Direction, MetricComparison, format_value
from perfcheck.text import change_text

BASELINE_COLOUR: Final[str] = "#1f5fa8"
CURRENT_COLOUR: Final[str] = "#d2570f"
THRESHOLD_COLOUR: Final[str] = "#b00020"
AXIS_COLOUR: Final[str] = "#555555"
GRID_COLOUR: Final[str] = "#e3e3e3"

#: Display bins of the histogram overlay per power of two (the histogram has 32).
BINS_PER_OCTAVE: Final[int] = 8

_STATUS_CLASS: Final[Mapping[str, str]] = {
    "PASS": "pass",
    "FAIL": "fail",
    ERROR: "fail",
    "INCONCLUSIVE": "inconclusive",
    "RECORDED": "neutral",
    "NO BASELINE": "neutral",
}

# Sections that need attention come first.
_STATUS_ORDER: Final[Mapping[str, int]] = {
    "FAIL": 0,
    "INCONCLUSIVE": 1,
    "NO BASELINE": 2,
    "PASS": 3,
    "RECORDED": 4,
}

_CSS: Final[str] = """
.pc-report { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
  max-width: 1160px; margin: 0 auto; padding: 0 16px 48px; line-height: 1.4; }
.pc-report h1 { font-size: 1.6em; margin-bottom: 0.2em; }
.pc-report h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
.pc-report h3 { font-size: 1.05em; margin-top: 1.4em; }
.pc-report table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
.pc-report caption { text-align: left; font-size: 0.9em; color: #444; padding-bottom: 3px; }
.pc-report th, .pc-report td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: right;
  white-space: nowrap; }
.pc-report th { background: #f3f3f3; }
.pc-report td.pc-name, .pc-report th.pc-name { text-align: left; font-family: ui-monospace,
  "DejaVu Sans Mono", monospace; }
.pc-report td.pc-left, .pc-report th.pc-left { text-align: left; }
.pc-verdict { font-weight: bold; padding: 1px 6px; border-radius: 3px; white-space: nowrap; }
.pc-verdict.pass { background: #dff3e0; color: #14532d; }
.pc-verdict.fail { background: #fde0e0; color: #8b0000; }
.pc-verdict.inconclusive { background: #fff1cc; color: #6b4a00; }
.pc-verdict.neutral { background: #e8e8e8; color: #333; }
.pc-meta { color: #444; font-size: 0.92em; }
.pc-decision { font-size: 0.92em; }
.pc-plots { display: flex; flex-wrap: wrap; gap: 12px; }
.pc-plots figure { margin: 0; }
.pc-plots figcaption { font-size: 0.85em; color: #444; max-width: 640px; }
.pc-report mark { background: #fff1cc; }
.pc-report details { margin: 0.6em 0; }
.pc-trends { display: flex; flex-direction: column; gap: 12px; }
.pc-trends figure { margin: 0; }
.pc-trends figcaption { font-size: 0.85em; color: #444; }
"""


# -- numbers for people --------------------------------------------------------------------


def latency_text(ns: float) -> str:
    """``26100 -> "26.1 us"``: three significant digits in ns, us, ms or s."""
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def threshold_text(comparison: MetricComparison) -> str:
    """``+20%`` (higher is worse) or ``-10%`` (lower is worse)."""
    sign = "+" if comparison.rule.direction is Direction.HIGHER_IS_WORSE else "-"
    return f"{sign}{comparison.rule.threshold * 100.0:g}%"


def verdict_text(comparison: MetricComparison) -> str:
    text = comparison.verdict.value
    if comparison.rounds_needed is not None:
        text += f" (about {comparison.rounds_needed} rounds/side would decide)"
    return text


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _nice_step(span: float, target_ticks: int) -> float:
    raw = span / max(target_ticks, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10.0 * magnitude


def _linear_ticks(lo: float, hi: float, target_ticks: int = 4) -> list[float]:
    step = _nice_step(hi - lo, target_ticks)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


# -- the histogram overlay -----------------------------------------------------------------


@dataclass(frozen=True)
class _PlotBox:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def x0(self) -> float:
        return float(self.left)

    @property
    def x1(self) -> float:
        return float(self.width - self.right)

    @property
    def y0(self) -> float:
        return float(self.height - self.bottom)

    @property
    def y1(self) -> float:
        return float(self.top)


def _display_bins(hist: LogLinearHistogram) -> dict[int, float]:
    """Share of samples per display bin (``BINS_PER_OCTAVE`` per power of two of ns)."""
    shares: dict[int, float] = {}
    total = hist.total
    for slot, count in hist.nonzero_slots():
        lower, upper = bucket_bounds(slot)
        middle = max((lower + upper - 1) / 2.0, 1.0)
        key = math.floor(math.log2(middle) * BINS_PER_OCTAVE)
        shares[key] = shares.get(key, 0.0) + count / total
    return shares


def _decade_ticks(lo_ns: float, hi_ns: float) -> list[float]:
    ticks: list[float] = []
    first = math.floor(math.log10(max(lo_ns, 1.0)))
    last = math.ceil(math.log10(max(hi_ns, 1.0)))
    decades = [10.0**k for k in range(first, last + 1) if lo_ns <= 10.0**k <= hi_ns]
    factors = (1.0,) if len(decades) >= 3 else (1.0, 2.0, 5.0)
    for k in range(first, last + 1):
        for factor in factors:
            value = factor * 10.0**k
            if lo_ns <= value <= hi_ns:
                ticks.append(value)
    return ticks


def histogram_overlay_svg(
    series: str,
    current: LogLinearHistogram,
    baseline: LogLinearHistogram | None,
    element_id: str,
) -> str:
    """Baseline vs current share of samples per latency bucket, on a log latency axis (SVG)."""
    box = _PlotBox(width=660, height=290, left=62, right=20, top=34, bottom=48)
    sides: list[tuple[str, LogLinearHistogram, str, str]] = []
    if baseline is not None and baseline.total:
        sides.append(("baseline", baseline, BASELINE_COLOUR, "6 4"))
    sides.append(("current", current, CURRENT_COLOUR, ""))
    shares = {name: _display_bins(hist) for name, hist, _, _ in sides}
    keys = [k for side in shares.values() for k in side]
    lo_bin, hi_bin = min(keys) - 2, max(keys) + 3
    top_share = max(v for side in shares.values() for v in side.values())
    y_step = _nice_step(top_share * 1.1, 4) if top_share > 0 else 0.25
    y_max = math.ceil(top_share * 1.1 / y_step) * y_step

    def x_of_bin(edge: float) -> float:
        return box.x0 + (edge - lo_bin) / (hi_bin - lo_bin) * (box.x1 - box.x0)

    def x_of_ns(ns: float) -> float:
        return x_of_bin(math.log2(max(ns, 1.0)) * BINS_PER_OCTAVE)

    def y_of(share: float) -> float:
        return box.y0 - share / y_max * (box.y0 - box.y1)

    lo_ns, hi_ns = 2.0 ** (lo_bin / BINS_PER_OCTAVE), 2.0 ** (hi_bin / BINS_PER_OCTAVE)
    title = f"{series}: latency histogram, " + (
        "baseline vs current" if len(sides) == 2 else "current run"
    )
    descriptions = []
    for name, hist, _, _ in sides:
        pcts = hist.percentiles((50.0, 99.0))
        style = "dashed blue line" if name == "baseline" else "solid orange line"
        descriptions.append(
            f"{name} ({style}): {hist.total} samples, p50 {latency_text(pcts[50.0])},"
            f" p99 {latency_text(pcts[99.0])}"
        )
    desc = (
        f"Share of samples per latency bucket, all rounds merged, on a logarithmic latency axis"
        f" from {latency_text(lo_ns)} to {latency_text(hi_ns)}. " + "; ".join(descriptions) + "."
    )
    parts = _svg_open(box, element_id, title, desc)
    # Grid and axes.
    for tick in _linear_ticks(0.0, y_max, 4):
        y = y_of(tick)
        parts.append(
            f'<line x1="{_fmt(box.x0)}" y1="{_fmt(y)}" x2="{_fmt(box.x1)}" y2="{_fmt(y)}"'
            f' stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_fmt(box.x0 - 6)}" y="{_fmt(y + 4)}" text-anchor="end"'
            f' font-size="11" fill="{AXIS_COLOUR}">{_e(_percent_share(tick))}</text>'
        )
    for tick in _decade_ticks(lo_ns, hi_ns):
        x = x_of_ns(tick)
        parts.append(
            f'<line x1="{_fmt(x)}" y1="{_fmt(box.y1)}" x2="{_fmt(x)}" y2="{_fmt(box.y0 + 4)}"'
            f' stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_fmt(x)}" y="{_fmt(box.y0 + 17)}" text-anchor="middle" font-size="11"'
            f' fill="{AXIS_COLOUR}">{_e(latency_text(tick))}</text>'
        )
    parts.append(_axes(box))
    parts.append(
        f'<text x="{_fmt((box.x0 + box.x1) / 2)}" y="{box.height - 8}" text-anchor="middle"'
        f' font-size="12" fill="{AXIS_COLOUR}">latency (log scale)</text>'
    )
    parts.append(
        f'<text transform="translate(14 {_fmt((box.y0 + box.y1) / 2)}) rotate(-90)"'
        f' text-anchor="middle" font-size="12" fill="{AXIS_COLOUR}">share of samples</text>'
    )
    # One step line per side, the area under it lightly filled.
    for name, hist, colour, dash in sides:
        side = shares[name]
        points = [(x_of_bin(lo_bin), box.y0)]
        for key in range(lo_bin, hi_bin):
            y = y_of(side.get(key, 0.0))
            points.append((x_of_bin(key), y))
            points.append((x_of_bin(key + 1), y))
        points.append((x_of_bin(hi_bin), box.y0))
        path = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in points)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polygon class="pc-area pc-{name}" points="{path}" fill="{colour}"'
            f' fill-opacity="0.12" stroke="none"/>'
        )
        parts.append(
            f'<polyline class="pc-line pc-{name}" points="{path}" fill="none"'
            f' stroke="{colour}" stroke-width="2"{dash_attr}><title>{_e(name)}</title></polyline>'
        )
        p99 = hist.percentile(99.0)
        x = x_of_ns(p99)
        label_y = box.y1 + (22 if name == "baseline" else 10)
        # Labels near the right edge go to the left of their line.
        right_half = x > box.x0 + 0.7 * (box.x1 - box.x0)
        label_x, anchor = (x - 3, "end") if right_half else (x + 3, "start")
        parts.append(
            f'<line x1="{_fmt(x)}" y1="{_fmt(box.y1)}" x2="{_fmt(x)}" y2="{_fmt(box.y0)}"'
            f' stroke="{colour}" stroke-width="1" stroke-dasharray="2 3">'
            f"<title>{_e(name)} p99 {_e(latency_text(p99))}</title></line>"
        )
        parts.append(
            f'<text x="{_fmt(label_x)}" y="{_fmt(label_y)}" text-anchor="{anchor}"'
            f' font-size="10" fill="{colour}">{_e(name)} p99 {_e(latency_text(p99))}</text>'
        )
    parts.append(_legend(box, [(n, c, d, "line") for n, _, c, d in sides]))
    parts.append("</svg>")
    return "".join(parts)


def _percent_share(share: float) -> str:
    return f"{share * 100.0:.3g}%"


def _svg_open(box: _PlotBox, element_id: str, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{_e(element_id)}" class="pc-plot"'
        f' width="{box.width}" height="{box.height}" viewBox="0 0 {box.width} {box.height}"'
        f' role="img" aria-labelledby="{_e(element_id)}-title {_e(element_id)}-desc">',
        f'<title id="{_e(element_id)}-title">{_e(title)}</title>',
        f'<desc id="{_e(element_id)}-desc">{_e(desc)}</desc>',
        f'<rect x="0" y="0" width="{box.width}" height="{box.height}" fill="#ffffff"/>',
    ]


def _axes(box: _PlotBox) -> str:
    return (
        f'<line x1="{_fmt(box.x0)}" y1="{_fmt(box.y0)}" x2="{_fmt(box.x1)}" y2="{_fmt(box.y0)}"'
        f' stroke="{AXIS_COLOUR}" stroke-width="1"/>'
        f'<line x1="{_fmt(box.x0)}" y1="{_fmt(box.y0)}" x2="{_fmt(box.x0)}" y2="{_fmt(box.y1)}"'
        f' stroke="{AXIS_COLOUR}" stroke-width="1"/>'
    )


def _legend(box: _PlotBox, entries: Sequence[tuple[str, str, str, str]]) -> str:
    """Entries of (label, colour, dash, "line" | "circle" | "square"), top right."""
    parts = []
    x = box.x0
    for label, colour, dash, shape in entries:
        y = 12.0
        if shape == "line":
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<line x1="{_fmt(x)}" y1="{_fmt(y)}" x2="{_fmt(x + 22)}" y2="{_fmt(y)}"'
                f' stroke="{colour}" stroke-width="2"{dash_attr}/>'
            )
        else:
            parts.append(_marker(shape, x + 11, y, colour, ""))
        parts.append(
            f'<text x="{_fmt(x + 27)}" y="{_fmt(y + 4)}" font-size="11" fill="#222">'
            f"{_e(label)}</text>"
        )
        x += 96
    return "".join(parts)


# -- the per-round plot ---------------------------------------------------------------------


def _marker(shape: str, x: float, y: float, colour: str, tooltip: str) -> str:
    title = f"<title>{_e(tooltip)}</title>" if tooltip else ""
    if shape == "circle":
        return (
            f'<circle class="pc-dot" cx="{_fmt(x)}" cy="{_fmt(y)}" r="4.5" fill="{colour}"'
            f' fill-opacity="0.85">{title}</circle>'
        )
    return (
        f'<rect class="pc-dot" x="{_fmt(x - 4)}" y="{_fmt(y - 4)}" width="8" height="8"'
        f' fill="{colour}" fill-opacity="0.85">{title}</rect>'
    )


@dataclass(frozen=True)
class RoundSeries:
    """One metric's per-round values on both sides, for :func:`rounds_svg`."""

    metric: str
    current: tuple[float, ...]
    baseline: tuple[float, ...] | None = None
    #: The value past which the median would count as worse than the threshold.
    threshold_line: float | None = None

    @classmethod
    def from_comparison(cls, comparison: MetricComparison) -> RoundSeries:
        base = comparison.baseline_median
        factor = comparison.rule.threshold
        if comparison.rule.direction is Direction.HIGHER_IS_WORSE:
            line = base + abs(base) * factor
        else:
            line = base - abs(base) * factor
        return cls(comparison.metric, comparison.current, comparison.baseline, line)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2.0


def rounds_svg(series: RoundSeries, element_id: str) -> str:
    """A dot per measured round (baseline circles, current squares), medians and threshold."""
    box = _PlotBox(width=330, height=210, left=70, right=14, top=30, bottom=36)
    metric = series.metric
    sides: list[tuple[str, tuple[float, ...], str, str, str]] = []
    if series.baseline:
        sides.append(("baseline", series.baseline, BASELINE_COLOUR, "circle", "6 4"))
    sides.append(("current", series.current, CURRENT_COLOUR, "square", ""))
    values = [v for _, side, _, _, _ in sides for v in side]
    if series.threshold_line is not None:
        values.append(series.threshold_line)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.12 if hi > lo else max(abs(hi) * 0.05, 1.0)
    lo, hi = lo - pad, hi + pad
    if min(values) >= 0 > lo:
        lo = 0.0
    rounds = max(len(side) for _, side, _, _, _ in sides)

    def x_of(index: int, offset: float) -> float:
        step = (box.x1 - box.x0) / rounds
        return box.x0 + step * (index + 0.5) + offset

    def y_of(value: float) -> float:
        return box.y0 - (value - lo) / (hi - lo) * (box.y0 - box.y1)

    medians = {name: _median(side) for name, side, _, _, _ in sides}
    description = "; ".join(
        f"{name} ({'blue circles' if name == 'baseline' else 'orange squares'}): {len(side)}"
        f" rounds from {format_value(metric, min(side))} to {format_value(metric, max(side))},"
        f" median {format_value(metric, medians[name])}"
        for name, side, _, _, _ in sides
    )
    if series.threshold_line is not None:
        description += (
            f"; threshold line (red, dotted) at {format_value(metric, series.threshold_line)}"
        )
    parts = _svg_open(box, element_id, f"{metric}: value of each measured round", description + ".")
    for tick in _linear_ticks(lo, hi, 4):
        y = y_of(tick)
        parts.append(
            f'<line x1="{_fmt(box.x0)}" y1="{_fmt(y)}" x2="{_fmt(box.x1)}" y2="{_fmt(y)}"'
            f' stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_fmt(box.x0 - 5)}" y="{_fmt(y + 4)}" text-anchor="end" font-size="10"'
            f' fill="{AXIS_COLOUR}">{_e(format_value(metric, tick))}</text>'
        )
    for index in range(rounds):
        parts.append(
            f'<text x="{_fmt(x_of(index, 0))}" y="{_fmt(box.y0 + 14)}" text-anchor="middle"'
            f' font-size="10" fill="{AXIS_COLOUR}">{index + 1}</text>'
        )
    parts.append(_axes(box))
    parts.append(
        f'<text x="{_fmt((box.x0 + box.x1) / 2)}" y="{box.height - 6}" text-anchor="middle"'
        f' font-size="11" fill="{AXIS_COLOUR}">round</text>'
    )
    if series.threshold_line is not None:
        y = y_of(series.threshold_line)
        parts.append(
            f'<line class="pc-threshold" x1="{_fmt(box.x0)}" y1="{_fmt(y)}" x2="{_fmt(box.x1)}"'
            f' y2="{_fmt(y)}" stroke="{THRESHOLD_COLOUR}" stroke-width="1.2"'
            f' stroke-dasharray="1 3"><title>threshold:'
            f" {_e(format_value(metric, series.threshold_line))}</title></line>"
        )
    offsets = {"baseline": -5.0, "current": 5.0} if len(sides) == 2 else {"current": 0.0}
    for name, side, colour, shape, dash in sides:
        y = y_of(medians[name])
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line class="pc-median pc-{name}" x1="{_fmt(box.x0)}" y1="{_fmt(y)}"'
            f' x2="{_fmt(box.x1)}" y2="{_fmt(y)}" stroke="{colour}" stroke-width="1"'
            f' stroke-opacity="0.7"{dash_attr}><title>{_e(name)} median'
            f" {_e(format_value(metric, medians[name]))}</title></line>"
        )
        for index, value in enumerate(side):
            tooltip = f"{name} round {index + 1}: {format_value(metric, value)}"
            parts.append(_marker(shape, x_of(index, offsets[name]), y_of(value), colour, tooltip))
    parts.append(_legend(box, [(n, c, "", s) for n, _, c, s, _ in sides]))
    parts.append("</svg>")
    return "".join(parts)


# -- tables --------------------------------------------------------------------------------


def _verdict_badge(status: str, tooltip: str = "") -> str:
    title = f' title="{_e(tooltip)}"' if tooltip else ""
    css = _STATUS_CLASS.get(status, "neutral")
    return f'<span class="pc-verdict {css}"{title}>{_e(status)}</span>'


def _comparison_table(comparisons: Sequence[MetricComparison]) -> str:
    rows = [
        '<table class="pc-comparisons"><caption>Median of the rounds\' values per metric;'
        " the verdict needs both p &lt; alpha and a change past the threshold</caption>"
        '<thead><tr><th class="pc-name" scope="col">metric</th><th scope="col">baseline</th>'
        '<th scope="col">current</th><th scope="col">change</th><th scope="col">p-value</th>'
        '<th scope="col">threshold</th><th class="pc-left" scope="col">verdict</th></tr></thead>'
        "<tbody>"
    ]
    for c in comparisons:
        rows.append(
            f'<tr><td class="pc-name">{_e(c.metric)}</td>'
            f"<td>{_e(format_value(c.metric, c.baseline_median))}</td>"
            f"<td>{_e(format_value(c.metric, c.current_median))}</td>"
            f"<td>{_e(change_text(c.change))}</td><td>{c.p_value:.3g}</td>"
            f"<td>{_e(threshold_text(c))}</td>"
            f'<td class="pc-left">{_verdict_badge(c.verdict.value, c.reason)}'
            f"{_e(verdict_text(c)[len(c.verdict.value) :])}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _percentile_table(
    current: Mapping[str, LogLinearHistogram], baseline: Mapping[str, LogLinearHistogram]
) -> str:
    labels = [percentile_label(p) for p in DISPLAY_PERCENTILES]
    head = "".join(f'<th scope="col">{_e(label)}</th>' for label in labels)
    rows = [
        '<table class="pc-percentiles"><caption>Percentiles of all rounds merged</caption>'
        '<thead><tr><th class="pc-name" scope="col">series</th><th scope="col">side</th>'
        f'<th scope="col">samples</th>{head}</tr></thead><tbody>'
    ]
    for series in sorted(current.keys() | baseline.keys()):
        for side, hists in (("baseline", baseline), ("current", current)):
            hist = hists.get(series)
            if hist is None or not hist.total:
                continue
            values = series_percentiles(hist)
            cells = "".join(f"<td>{_e(latency_text(values[label]))}</td>" for label in labels)
            rows.append(
                f'<tr><td class="pc-name">{_e(series)}</td><td>{side}</td>'
                f"<td>{int(values['count'])}</td>{cells}</tr>"
            )
    rows.append("</tbody></table>")
    return "".join(rows)


def _environment_table(result: ScenarioResult) -> str:
    current = result.measurement.environment
    base = result.baseline.measurement.environment if result.baseline is not None else None
    keys = sorted(current.keys() | (base.keys() if base is not None else set()))
    changed = {k for k, _, _ in environment_diff(base, current)} if base is not None else set()
    head = '<th scope="col">baseline</th>' if base is not None else ""
    rows = [
        "<details><summary>Environment"
        + (f" ({len(changed)} changed since the baseline)" if changed else "")
        + '</summary><table class="pc-environment"><thead><tr>'
        f'<th class="pc-name" scope="col">key</th>{head}<th scope="col">current</th>'
        "</tr></thead><tbody>"
    ]
    for key in keys:
        now = _e(current.get(key, "-"))
        if key in changed:
            now = f"<mark>{now}</mark>"
        before = f'<td class="pc-name">{_e(base.get(key, "-"))}</td>' if base is not None else ""
        rows.append(
            f'<tr><td class="pc-name">{_e(key)}</td>{before}<td class="pc-name">{now}</td></tr>'
        )
    rows.append("</tbody></table>")
    provenance = result.measurement.provenance
    if provenance:
        rows.append("<p>Probe points:</p><ul>")
        for probe, events in sorted(provenance.items()):
            rows.append(f"<li><code>{_e(probe)}</code>: {_e(', '.join(events))}</li>")
        rows.append("</ul>")
    rows.append("</details>")
    return "".join(rows)


def _decision_list(result: ScenarioResult) -> str:
    """How the verdict was reached: rounds and sequential looks, thresholds the baseline's
    history widened, the drift control, and the environment changes (from the results
    file's ``decision``)."""
    decision = result.decision
    if not decision:
        return ""
    items = []
    looks = decision.get("looks")
    rounds = (
        f"{decision.get('current_rounds', '?')} rounds now against"
        f" {decision.get('baseline_rounds', '?')} in the baseline"
    )
    if isinstance(looks, int) and looks > 1:
        rounds += f", decided after {looks} looks (rounds were added while undecided)"
    items.append(rounds)
    for widened in decision.get("widened_thresholds") or []:
        items.append(
            f"threshold of {widened.get('metric')} widened from"
            f" {_percent(widened.get('threshold'))} to {_percent(widened.get('widened_to'))}:"
            f" the baseline's {widened.get('sessions')} past sessions differ by"
            f" {_percent(widened.get('spread'))} (robust SD)"
        )
    if decision.get("repeat"):
        items.append(f"repeated in a fresh session: {decision['repeat']}")
    drift = decision.get("drift")
    if isinstance(drift, dict) and drift.get("text"):
        prefix = "drift control moved: " if drift.get("drifted") else "drift control: "
        items.append(prefix + str(drift["text"]))
    changes = decision.get("environment_changes") or []
    if changes:
        listed = ", ".join(
            f"{c.get('key')}: {c.get('baseline')} -> {c.get('current')}" for c in changes
        )
        items.append(f"environment changed since the baseline: {listed}")
    body = "".join(f"<li>{_e(item)}</li>" for item in items)
    return f'<div class="pc-decision"><p>How this was decided:</p><ul>{body}</ul></div>'


def _percent(value: object) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "?"


# -- sections ------------------------------------------------------------------------------


def _is_key_metric(metric: str) -> bool:
    return metric.endswith((".p50", ".p99")) or ".iops." in metric


def key_round_series(result: ScenarioResult) -> list[RoundSeries]:
    """The per-round plots of a scenario: p50, p99 and IOPS of every series."""
    if result.comparisons:
        return [
            RoundSeries.from_comparison(c) for c in result.comparisons if _is_key_metric(c.metric)
        ]
    return [
        RoundSeries(metric, tuple(values))
        for metric, values in result.measurement.metric_series().items()
        if _is_key_metric(metric)
    ]


def section_id(name: str) -> str:
    return f"scenario-{name}"


def _headline(result: ScenarioResult) -> str:
    top = result.worst
    if result.status is Status.RECORDED:
        where = f" to {result.baseline_path}" if result.baseline_path is not None else ""
        return f"Recorded as the new baseline{where}."
    if result.status is Status.NO_BASELINE:
        where = f" (expected at {result.baseline_path})" if result.baseline_path else ""
        return f"No baseline to compare with{where}; this run's measurement is shown alone."
    if top is None:
        return f"All {len(result.comparisons)} metrics within their thresholds."
    return f"{top.metric}: {top.reason}."


class TrendSections(Protocol):
    """Each scenario's trend plots (:class:`perfcheck.report.trend.TrendView`)."""

    def section(self, scenario: str, element_prefix: str, heading: str) -> str: ...


def scenario_section(
    result: ScenarioResult, heading_level: int = 2, trends: TrendSections | None = None
) -> str:
    """One scenario's verdict, tables and plots as an HTML ``<section>``; with ``trends``,
    its trend plots from the results store (or the one line saying why there are none)."""
    sid = section_id(result.name)
    h, sub = f"h{heading_level}", f"h{heading_level + 1}"
    measurement = result.measurement
    parts = [
        f'<section id="{_e(sid)}" class="pc-scenario">',
        f"<{h}>{_e(result.name)} {_verdict_badge(result.status.value)}</{h}>",
        f'<p class="pc-headline">{_e(_headline(result))}</p>',
    ]
    meta = [f"{len(measurement.rounds)} measured rounds now"]
    if result.baseline is not None:
        meta.append(
            f"{len(result.baseline.measurement.rounds)} in the baseline"
            f" {result.baseline.path or ''} recorded {result.baseline.recorded_at}"
            f" on {result.baseline.machine_class}"
        )
    parts.append(f'<p class="pc-meta">{_e("; ".join(meta))}</p>')
    if result.comparisons:
        parts.append(_comparison_table(result.comparisons))
    parts.append(_decision_list(result))
    current_hists = {k: h for k, h in measurement.merged_histograms().items() if h.total}
    baseline_hists = (
        {k: h for k, h in result.baseline.measurement.merged_histograms().items() if h.total}
        if result.baseline is not None
        else {}
    )
    parts.append(_percentile_table(current_hists, baseline_hists))
    if current_hists:
        parts.append(f"<{sub}>Latency histograms</{sub}>")
        parts.append('<div class="pc-plots">')
        for index, (name, hist) in enumerate(sorted(current_hists.items())):
            element = f"{sid}-hist-{index}"
            svg = histogram_overlay_svg(name, hist, baseline_hists.get(name), element)
            parts.append(
                f"<figure>{svg}<figcaption>{_e(name)}: share of samples per latency bucket,"
                " all rounds merged; dashed blue is the baseline, solid orange this run."
                "</figcaption></figure>"
            )
        parts.append("</div>")
    round_series = key_round_series(result)
    if round_series:
        parts.append(f"<{sub}>Rounds: how noisy each key metric is</{sub}>")
        parts.append(
            '<p class="pc-meta">One mark per measured round: blue circles the baseline, orange'
            " squares this run; lines are the medians, the red dotted line the threshold.</p>"
        )
        parts.append('<div class="pc-plots">')
        verdicts = {c.metric: c for c in result.comparisons}
        for index, series in enumerate(round_series):
            element = f"{sid}-rounds-{index}"
            caption = _e(series.metric)
            judged = verdicts.get(series.metric)
            if judged is not None:
                caption += (
                    f" {_verdict_badge(judged.verdict.value, judged.reason)}"
                    f" {_e(change_text(judged.change))}"
                )
            parts.append(
                f"<figure>{rounds_svg(series, element)}<figcaption>{caption}</figcaption></figure>"
            )
        parts.append("</div>")
    if trends is not None:
        parts.append(trends.section(result.name, sid, sub))
    parts.append(_environment_table(result))
    parts.append("</section>")
    return "".join(parts)


def scenario_fragment(result: ScenarioResult) -> str:
    """A scenario's section with its own styles, to embed in another page (pytest-html)."""
    return (
        f'<div class="pc-report"><style>{_CSS}</style>'
        f"{scenario_section(result, heading_level=3)}</div>"
    )


def _summary_table(scenarios: Iterable[ScenarioResult]) -> str:
    rows = [
        '<table class="pc-summary"><thead><tr><th class="pc-name" scope="col">scenario</th>'
        '<th scope="col">verdict</th><th class="pc-name" scope="col">worst metric</th>'
        '<th scope="col">change</th><th scope="col">p-value</th></tr></thead><tbody>'
    ]
    for result in scenarios:
        moved = result.most_moved()
        metric = _e(moved.metric) if moved is not None else "-"
        change = _e(change_text(moved.change)) if moved is not None else "-"
        p_value = f"{moved.p_value:.3g}" if moved is not None else "-"
        rows.append(
            f'<tr><td class="pc-name"><a href="#{_e(section_id(result.name))}">'
            f"{_e(result.name)}</a></td><td>{_verdict_badge(result.status.value)}</td>"
            f'<td class="pc-name">{metric}</td><td>{change}</td><td>{p_value}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def render_report(
    results: Results, title: str = "perfcheck report", trends: TrendSections | None = None
) -> str:
    """The whole report as one HTML document (no scripts, no external resources); each
    scenario's trend plots come from ``trends`` (:func:`perfcheck.report.trend.load_trends`;
    None: a report without them, as ``perfcheck compare --html`` writes)."""
    scenarios = sorted(
        results.scenarios.values(), key=lambda r: (_STATUS_ORDER.get(r.status.value, 9), r.name)
    )
    counts: dict[str, int] = {}
    for result in scenarios:
        counts[result.status.value] = counts.get(result.status.value, 0) + 1
    if results.errors:
        counts[ERROR] = len(results.errors)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no scenarios"
    source = f" from {results.path}" if results.path is not None else ""
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="pc-meta">{_e(tally)}. Machine class {_e(results.machine_class)}; run of'
        f" {_e(results.created_at)}{_e(source)}; perfcheck {_e(results.perfcheck_version)};"
        f" alpha {results.alpha:g}.</p>",
    ]
    if scenarios:
        body.append(_summary_table(scenarios))
    else:
        body.append("<p>This run measured no scenario.</p>")
    if results.errors:
        # A workload that failed has no measurement: its error is all there is to show.
        body.append('<ul class="pc-errors">')
        body.extend(
            f"<li>{_verdict_badge(ERROR)} {_e(name)}: {_e(message)}</li>"
            for name, message in sorted(results.errors.items())
        )
        body.append("</ul>")
    body.extend(scenario_section(result, trends=trends) for result in scenarios)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        " style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f'<body><main class="pc-report">{"".join(body)}</main></body></html>\n'
    )


def write_report(
    path: Path,
    results: Results,
    title: str = "perfcheck report",
    trends: TrendSections | None = None,
) -> None:
    """Write the report to ``path`` (a temporary file renamed into place)."""
    text = render_report(results, title, trends)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
