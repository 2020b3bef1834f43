"""The HTML report's trend plots: each scenario's recent sessions from the results store.

Per scenario and main metric (p50, p99, IOPS, bit rate) a plot of the median of each of
the newest sessions of its series (same scenario, same machine class), oldest to newest,
with this run's sessions drawn apart, the change points ``perfcheck changes`` finds marked,
and, as text under the plot, the sessions marked (time, labels, kernel, commit). Drawn as
SVG in Python like the report's other plots: no script, nothing loaded.

:func:`load_trends` reads the store once per scenario; a store that is off, missing or
unreadable gives a :class:`TrendView` that says so in one line per scenario.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

# Labels, ids and changes shown as the history table shows them.
from perfcheck.report.history import _labels_text, _relative, _short
from perfcheck.report.html import (
    AXIS_COLOUR,
    CURRENT_COLOUR,
    GRID_COLOUR,
    THRESHOLD_COLOUR,
    _axes,
    _e,
    _fmt,
    _linear_ticks,
    _PlotBox,
    _svg_open,
)
from perfcheck.stats.verdict import format_value
from perfcheck.store.sessions.records import measurement_id

if TYPE_CHECKING:
    from perfcheck.report.results import Results
    from perfcheck.stats.changes import ChangePoint
    from perfcheck.store.sessions.sqlstore import Series, SeriesPoint, StoreLocation

#: Sessions per plot unless told (--perfcheck-trend-sessions, perfcheck report --trend-sessions).
DEFAULT_TREND_SESSIONS: Final[int] = 50
#: As ``perfcheck changes``' default significance level.
TREND_ALPHA: Final[float] = 0.01
#: The metrics plotted: the main gated ones.
TREND_METRICS: Final[tuple[str, ...]] = ("*.p50", "*.p99", "fio.iops.*", "iperf3.bits_per_second")
SERIES_COLOUR: Final[str] = "#4a5d7e"
CHANGE_COLOUR: Final[str] = THRESHOLD_COLOUR


def is_trend_metric(metric: str) -> bool:
    return any(fnmatch.fnmatchcase(metric, pattern) for pattern in TREND_METRICS)


@dataclass(frozen=True)
class TrendPlot:
    """One series' newest sessions, its change points, and which sessions are this run's."""

    series: Series
    changes: Sequence[ChangePoint]
    current: Collection[str] = frozenset()


@dataclass
class TrendView:
    """What the report shows of the store: plots per scenario, or why there are none."""

    sessions: int = DEFAULT_TREND_SESSIONS
    store: str | None = None
    #: Why nothing can be plotted at all (the store is off or unreadable), one line.
    unavailable: str | None = None
    machine_class: str = ""
    plots: dict[str, list[TrendPlot]] = field(default_factory=dict)

    def section(self, scenario: str, element_prefix: str, heading: str) -> str:
        """The scenario's trend plots with their tables, or one line saying why none."""
        if self.unavailable is not None:
            return _one_line(f"Trend: {self.unavailable}.")
        plots = self.plots.get(scenario, [])
        if not plots:
            return _one_line(
                f"Trend: no sessions of {scenario} on {self.machine_class} in {self.store} yet."
            )
        figures = "".join(
            f'<figure class="pc-trend">{trend_svg(plot, f"{element_prefix}-trend-{index}")}'
            f"<figcaption>{_e(plot.series.metric)}: median of each session, oldest to newest"
            f"</figcaption>{trend_table(plot)}</figure>"
            for index, plot in enumerate(plots)
        )
        return (
            f"<{heading}>Trend: the last sessions in the results store</{heading}>"
            f'<p class="pc-meta">{_e(_trend_meta(plots[0].series, self.store))}</p>'
            f'<div class="pc-trends">{figures}</div>'
        )


def _one_line(text: str) -> str:
    return f'<p class="pc-meta pc-trend-none">{_e(text)}</p>'


def _trend_meta(series: Series, store: str | None) -> str:
    return (
        f"{len(series.points)} of the {series.sessions} sessions of {series.scenario} on"
        f" {series.machine_class} in {store}. Orange squares are this run's sessions; red"
        " dashed lines are change points (as perfcheck changes finds them, alpha"
        f" {TREND_ALPHA:g}), each labelled with the first session after it."
    )


# -- reading the store ------------------------------------------------------------------------


def current_session_ids(results: Results) -> dict[str, frozenset[str]]:
    """Scenario -> the store ids of this run's sessions (a recording's others included)."""
    return {
        name: frozenset(
            measurement_id(results.machine_class, results.created_at, measurement)
            for measurement, _ in result.measured_sessions()
        )
        for name, result in results.scenarios.items()
    }


def load_trends(
    results: Results,
    location: StoreLocation | None,
    sessions: int = DEFAULT_TREND_SESSIONS,
    off_reason: str = "the results store is off, so there is no history to plot",
) -> TrendView:
    """Each scenario's trend plots from the store at ``location`` (None: switched off)."""
    from perfcheck.stats.changes import change_points
    from perfcheck.store.sessions import StoreError
    from perfcheck.store.sessions.sqlstore import open_store

    view = TrendView(sessions=sessions, machine_class=results.machine_class)
    if location is None:
        view.unavailable = off_reason
        return view
    view.store = location.display
    current = current_session_ids(results)
    try:
        with open_store(location, create=False) as store:
            for name in sorted(results.scenarios):
                found = store.series(
                    scenario=name, machine_class=results.machine_class, last=sessions
                )
                view.plots[name] = [
                    TrendPlot(
                        item,
                        change_points([p.median for p in item.points], alpha=TREND_ALPHA),
                        current.get(name, frozenset()),
                    )
                    for item in found
                    if item.points and is_trend_metric(item.metric)
                ]
    except StoreError as exc:
        view.unavailable = f"the results store cannot be read ({exc})"
    return view


# -- drawing ----------------------------------------------------------------------------------


def _time_text(recorded_at: str) -> str:
    return recorded_at.replace("T", " ").removesuffix("Z")


def _change_text(change: ChangePoint) -> str:
    return _relative(change.change)


def _annotation(point: SeriesPoint) -> str:
    """What a change point's mark says: the first session after it, by its labels, else
    its commit, else its kernel."""
    if point.labels:
        return _labels_text(point.labels)
    if point.git_commit:
        return f"commit {_short(point.git_commit, whole=False)}"
    return point.kernel_release


def trend_svg(plot: TrendPlot, element_id: str) -> str:
    """The session medians of one series (a line with a dot per session), this run's
    sessions as orange squares, change points as red dashed lines labelled with the
    first session after them, and the segments' medians between them."""
    series, points = plot.series, plot.series.points
    metric = series.metric
    box = _PlotBox(width=660, height=260, left=74, right=16, top=44, bottom=44)
    values = [p.median for p in points]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.12 if hi > lo else max(abs(hi) * 0.05, 1.0)
    lo, hi = lo - pad, hi + pad
    if min(values) >= 0 > lo:
        lo = 0.0
    count = len(points)

    def x_of(index: float) -> float:
        return box.x0 + (box.x1 - box.x0) * (index + 0.5) / count

    def y_of(value: float) -> float:
        return box.y0 - (value - lo) / (hi - lo) * (box.y0 - box.y1)

    current = [i for i, p in enumerate(points) if p.session_id in plot.current]
    desc = (
        f"Median of {metric} in each of {count} sessions of {series.scenario} on"
        f" {series.machine_class}, oldest ({_time_text(points[0].recorded_at)}) to newest"
        f" ({_time_text(points[-1].recorded_at)}), from {format_value(metric, min(values))}"
        f" to {format_value(metric, max(values))}; "
        + (
            f"this run's {len(current)} session(s) are orange squares; "
            if current
            else "this run's session is not among them; "
        )
        + (
            "change points (red dashed lines) before sessions "
            + ", ".join(
                f"{c.index + 1} ({_change_text(c)}, {_annotation(points[c.index])})"
                for c in plot.changes
            )
            if plot.changes
            else "no change points"
        )
        + "."
    )
    parts = _svg_open(box, element_id, f"{metric}: trend over the last {count} sessions", desc)
    for tick in _linear_ticks(lo, hi, 4):
        y = y_of(tick)
        parts.append(
            f'<line x1="{_fmt(box.x0)}" y1="{_fmt(y)}" x2="{_fmt(box.x1)}" y2="{_fmt(y)}"'
            f' stroke="{GRID_COLOUR}" stroke-width="1"/>'
            f'<text x="{_fmt(box.x0 - 5)}" y="{_fmt(y + 4)}" text-anchor="end" font-size="10"'
            f' fill="{AXIS_COLOUR}">{_e(format_value(metric, tick))}</text>'
        )
    parts.append(_axes(box))
    ends = ((0, "start"), (count - 1, "end")) if count > 1 else ((0, "middle"),)
    for index, anchor in ends:
        parts.append(
            f'<text class="pc-trend-time" x="{_fmt(x_of(index))}" y="{_fmt(box.y0 + 14)}"'
            f' text-anchor="{anchor}" font-size="10" fill="{AXIS_COLOUR}">'
            f"{_e(_time_text(points[index].recorded_at))}</text>"
        )
    parts.append(
        f'<text x="{_fmt((box.x0 + box.x1) / 2)}" y="{box.height - 6}" text-anchor="middle"'
        f' font-size="11" fill="{AXIS_COLOUR}">session (oldest to newest, UTC)</text>'
    )
    # The segments' medians between change points.
    bounds = [0, *(c.index for c in plot.changes), count]
    medians = [plot.changes[0].before_median] if plot.changes else []
    medians += [c.after_median for c in plot.changes]
    for start, end, median in zip(bounds, bounds[1:], medians, strict=False):
        y = y_of(median)
        parts.append(
            f'<line class="pc-segment" x1="{_fmt(x_of(start - 0.5))}" y1="{_fmt(y)}"'
            f' x2="{_fmt(x_of(end - 0.5))}" y2="{_fmt(y)}" stroke="{CHANGE_COLOUR}"'
            f' stroke-width="1" stroke-opacity="0.6"/>'
        )
    path = " ".join(f"{_fmt(x_of(i))},{_fmt(y_of(v))}" for i, v in enumerate(values))
    parts.append(
        f'<polyline class="pc-trend-line" points="{path}" fill="none" stroke="{SERIES_COLOUR}"'
        ' stroke-width="1.2" stroke-opacity="0.7"/>'
    )
    for index, point in enumerate(points):
        if index in current:
            continue
        parts.append(
            f'<circle class="pc-trend-dot" cx="{_fmt(x_of(index))}" cy="{_fmt(y_of(point.median))}"'
            f' r="3" fill="{SERIES_COLOUR}"><title>{_e(_time_text(point.recorded_at))}:'
            f" {_e(format_value(metric, point.median))}</title></circle>"
        )
    for index in current:
        x, y = x_of(index), y_of(values[index])
        parts.append(
            f'<rect class="pc-trend-current" x="{_fmt(x - 5)}" y="{_fmt(y - 5)}" width="10"'
            f' height="10" fill="{CURRENT_COLOUR}" stroke="#000000" stroke-width="0.8">'
            f"<title>this run: {_e(format_value(metric, values[index]))}</title></rect>"
        )
    for number, change in enumerate(plot.changes, start=1):
        x = x_of(change.index - 0.5)
        # Labels alternate between two rows so neighbouring ones do not overlap.
        label_y = box.y1 - (22 if number % 2 == 0 else 8)
        right_half = x > box.x0 + 0.6 * (box.x1 - box.x0)
        label_x, anchor = (x - 3, "end") if right_half else (x + 3, "start")
        label = f"{number}: {_change_text(change)} {_annotation(points[change.index])}"
        parts.append(
            f'<line class="pc-change" x1="{_fmt(x)}" y1="{_fmt(box.y1 - 4)}" x2="{_fmt(x)}"'
            f' y2="{_fmt(box.y0)}" stroke="{CHANGE_COLOUR}" stroke-width="1.5"'
            f' stroke-dasharray="5 3"/>'
            f'<text class="pc-change-label" x="{_fmt(label_x)}" y="{_fmt(label_y)}"'
            f' text-anchor="{anchor}" font-size="10" fill="{CHANGE_COLOUR}">{_e(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def trend_table(plot: TrendPlot) -> str:
    """The sessions the plot marks, as text: the first session after each change point,
    and this run's sessions, with time, median, labels, kernel, commit and id."""
    points, metric = plot.series.points, plot.series.metric
    rows: list[tuple[str, SeriesPoint, str]] = []
    for number, change in enumerate(plot.changes, start=1):
        what = (
            f"{format_value(metric, change.before_median)} -> "
            f"{format_value(metric, change.after_median)} ({_change_text(change)},"
            f" p={change.p_value:.2g})"
        )
        rows.append((f"change {number}: first after", points[change.index], what))
    for point in points:
        if point.session_id in plot.current:
            rows.append(("this run", point, format_value(metric, point.median)))
    if not rows:
        return (
            '<p class="pc-meta">No change points, and this run\'s session is not in the store.</p>'
        )
    body = [
        '<table class="pc-trend-sessions"><caption>Sessions marked in the plot</caption>'
        '<thead><tr><th class="pc-left" scope="col">mark</th><th scope="col">session (UTC)'
        '</th><th scope="col">median</th><th class="pc-left" scope="col">labels</th>'
        '<th class="pc-name" scope="col">kernel</th><th class="pc-name" scope="col">commit</th>'
        '<th class="pc-name" scope="col">session id</th></tr></thead><tbody>'
    ]
    for mark, point, what in rows:
        body.append(
            f'<tr><td class="pc-left">{_e(mark)}</td><td>{_e(_time_text(point.recorded_at))}</td>'
            f'<td>{_e(what)}</td><td class="pc-left">{_e(_labels_text(point.labels))}</td>'
            f'<td class="pc-name">{_e(point.kernel_release)}</td>'
            f'<td class="pc-name">{_e(_short(point.git_commit, whole=False))}</td>'
            f'<td class="pc-name">{_e(_short(point.session_id, whole=False))}</td></tr>'
        )
    body.append("</tbody></table>")
    return "".join(body)
