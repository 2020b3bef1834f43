"""How ``perfcheck history`` shows series: a table with a sparkline per series, or JSON.

On a terminal, session ids and commits are cut to 12 characters to fit; when stdout is
not a terminal (a pipe, a CI log), every identifier is printed whole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from rich.table import Table

    from perfcheck.stats.changes import ChangePoint
    from perfcheck.store.sessions.sqlstore import Series

SPARK_BARS: Final[str] = "▁▂▃▄▅▆▇█"
SHORT_ID: Final[int] = 12


# perfcheck.stats.verdict.format_value shows values the same way, but importing it imports scipy:
# a second of start-up for a command that only reads a table.
_NS_UNITS: Final = ((1e9, "s"), (1e6, "ms"), (1e3, "us"), (1.0, "ns"))
_IOPS_UNITS: Final = ((1e6, "M IOPS"), (1e3, "k IOPS"), (1.0, " IOPS"))
_BYTES_UNITS: Final = ((1024.0**3, "GiB/s"), (1024.0**2, "MiB/s"), (1024.0, "KiB/s"), (1.0, "B/s"))
_BITS_UNITS: Final = ((1e9, "Gbit/s"), (1e6, "Mbit/s"), (1e3, "kbit/s"), (1.0, "bit/s"))


def _scaled(value: float, units: tuple[tuple[float, str], ...], space: str) -> str:
    for scale, unit in units:
        if abs(value) >= scale * 0.9995 or scale == 1.0:
            number = value / scale
            digits = 0 if scale == 1.0 or abs(number) >= 99.95 else 1 if abs(number) >= 9.995 else 2
            return f"{number:.{digits}f}{space}{unit}"
    raise AssertionError("unreachable: the last unit has scale 1")


def format_value(metric: str, value: float) -> str:
    """Percentiles (``.pNN``) are nanoseconds: ns/us/ms/s; IOPS as ``12.3k IOPS``; fio's
    ``bw_bytes`` in bytes per second, ``bits_per_second`` in bit/s; else %.4g."""
    if re.search(r"\.p[0-9][0-9_]*$", metric):
        return _scaled(value, _NS_UNITS, " ")
    if metric.endswith("bw_bytes"):
        return _scaled(value, _BYTES_UNITS, " ")
    if metric.endswith("bits_per_second"):
        return _scaled(value, _BITS_UNITS, " ")
    if ".iops." in metric or metric.endswith("iops"):
        return _scaled(value, _IOPS_UNITS, "")
    return f"{value:.4g}"


def sparkline(values: Sequence[float]) -> str:
    """One bar per value, scaled between the smallest and largest; flat when all equal."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return SPARK_BARS[len(SPARK_BARS) // 2 - 1] * len(values)
    top = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[round((v - low) / (high - low) * top)] for v in values)


def _change_text(before: float, after: float) -> str:
    if before == 0:
        return "-" if after == 0 else "new"
    return f"{(after - before) / abs(before) * 100.0:+.1f}%"


def _short(text: str | None, whole: bool) -> str:
    if not text:
        return "-"
    return text if whole or len(text) <= SHORT_ID else text[:SHORT_ID]


def _labels_text(labels: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def history_table(series: Sequence[Series], whole_ids: bool, title: str) -> Table:
    """Per series: sessions, the newest's time, median and change from the one before, a
    sparkline of the sessions shown (oldest to newest), and the newest's id, commit, labels."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for name in ("scenario", "metric", "machine class"):
        table.add_column(name, overflow="fold")
    table.add_column("sessions", justify="right")
    table.add_column("newest (UTC)", no_wrap=True)
    table.add_column("median", justify="right", no_wrap=True)
    table.add_column("vs previous", justify="right", no_wrap=True)
    table.add_column("trend (oldest -> newest)", no_wrap=True)
    table.add_column("newest session", overflow="fold")
    table.add_column("kernel", overflow="fold")
    table.add_column("commit", overflow="fold")
    table.add_column("labels", overflow="fold")
    for item in series:
        newest = item.points[-1]
        previous = item.points[-2] if len(item.points) > 1 else None
        table.add_row(
            Text(item.scenario),
            Text(item.metric),
            Text(item.machine_class),
            str(item.sessions),
            newest.recorded_at.replace("T", " ").removesuffix("Z"),
            format_value(item.metric, newest.median),
            "-" if previous is None else _change_text(previous.median, newest.median),
            sparkline([p.median for p in item.points]),
            Text(_short(newest.session_id, whole_ids)),
            Text(newest.kernel_release),
            Text(_short(newest.git_commit, whole_ids)),
            Text(_labels_text(newest.labels)),
        )
    return _unwrapped(table) if whole_ids else table


def history_json(series: Sequence[Series], store: str) -> dict[str, Any]:
    """Everything shown, with whole identifiers and raw values (metric units: ns, IOPS...)."""
    return {
        "store": store,
        "series": [
            {
                "scenario": item.scenario,
                "metric": item.metric,
                "machine_class": item.machine_class,
                "sessions": item.sessions,
                "points": [
                    {
                        "session_id": p.session_id,
                        "recorded_at": p.recorded_at,
                        "median": p.median,
                        "status": p.status,
                        "kernel_release": p.kernel_release,
                        "host": p.host,
                        "git_commit": p.git_commit,
                        "labels": p.labels,
                    }
                    for p in item.points
                ],
            }
            for item in series
        ],
    }


def changes_table(
    found: Sequence[tuple[Series, ChangePoint]], whole_ids: bool, title: str
) -> Table:
    """Per change point: its series, the first session after it (time, id, kernel, commit,
    labels), the medians either side with the relative change, and its p-value."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for name in ("scenario", "metric", "machine class"):
        table.add_column(name, overflow="fold")
    table.add_column("first session after (UTC)", no_wrap=True)
    table.add_column("before -> after (medians)", no_wrap=True)
    table.add_column("change", justify="right", no_wrap=True)
    table.add_column("p-value", justify="right", no_wrap=True)
    table.add_column("sessions", justify="right", no_wrap=True)
    table.add_column("session", overflow="fold")
    table.add_column("kernel", overflow="fold")
    table.add_column("commit", overflow="fold")
    table.add_column("labels", overflow="fold")
    for item, point in found:
        first = item.points[point.index]
        table.add_row(
            Text(item.scenario),
            Text(item.metric),
            Text(item.machine_class),
            first.recorded_at.replace("T", " ").removesuffix("Z"),
            f"{format_value(item.metric, point.before_median)} -> "
            f"{format_value(item.metric, point.after_median)}",
            _relative(point.change),
            f"{point.p_value:.2g}",
            f"{point.before_sessions} | {point.after_sessions}",
            Text(_short(first.session_id, whole_ids)),
            Text(first.kernel_release),
            Text(_short(first.git_commit, whole_ids)),
            Text(_labels_text(first.labels)),
        )
    return _unwrapped(table) if whole_ids else table


def _unwrapped(table: Table) -> Table:
    """Every cell on one line (piped output: whole identifiers; and folding cells takes
    rich half its rendering time)."""
    for column in table.columns:
        column.no_wrap = True
    return table


def _relative(change: float) -> str:
    if math.isinf(change):
        return "+inf%" if change > 0 else "-inf%"
    return f"{change * 100.0:+.1f}%"


def changes_json(found: Sequence[tuple[Series, ChangePoint]], store: str) -> dict[str, Any]:
    """Every change point with its series and the first session after it, whole ids."""
    changes = []
    for item, point in found:
        first = item.points[point.index]
        changes.append(
            {
                "scenario": item.scenario,
                "metric": item.metric,
                "machine_class": item.machine_class,
                "first_session_after": {
                    "session_id": first.session_id,
                    "recorded_at": first.recorded_at,
                    "kernel_release": first.kernel_release,
                    "host": first.host,
                    "git_commit": first.git_commit,
                    "labels": first.labels,
                },
                "before_median": point.before_median,
                "after_median": point.after_median,
                "change": None if math.isinf(point.change) else point.change,
                "p_value": point.p_value,
                "sessions_before": point.before_sessions,
                "sessions_after": point.after_sessions,
            }
        )
    return {"store": store, "changes": changes}
