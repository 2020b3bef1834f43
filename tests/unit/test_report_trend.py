"""The HTML report's trend plots: built from a real SQLite results store, checked as XML,
and through the plugin and ``perfcheck report``."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from perfcheck.cli import main
from perfcheck.report.html import render_report
from perfcheck.report.results import write_results
from perfcheck.report.trend import (
    TrendPlot,
    TrendView,
    is_trend_metric,
    load_trends,
    trend_svg,
)
from perfcheck.store.sessions.sqlstore import store_location
from tests.fakeproject import run
from tests.records import runs_with_a_step, store_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SVG = "{http://www.w3.org/2000/svg}"


def classes(svg: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in svg.iter() if e.get("class") == name]


@pytest.fixture(scope="module")
def stepped(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrendView, Path]:
    """30 sessions, latencies 1.5x from the 21st on; the trend of the newest as this run."""
    path = tmp_path_factory.mktemp("trend") / "store.sqlite"
    runs = runs_with_a_step(30, step_at=20, factor=1.5)
    return load_trends(runs[-1], store_of(path, runs), sessions=50), path


def test_a_plot_per_main_metric_with_a_point_per_session(
    stepped: tuple[TrendView, Path],
) -> None:
    view, _ = stepped
    plots = view.plots["randread-4k"]
    assert [p.series.metric for p in plots] == [
        "block.latency.read.p50",
        "block.latency.read.p99",
        "fio.clat.read.p50",
        "fio.clat.read.p99",
        "fio.iops.read",
    ]
    for index, plot in enumerate(plots):
        svg = ET.fromstring(trend_svg(plot, f"t-{index}"))  # well-formed XML
        assert svg.tag == f"{SVG}svg" and float(svg.get("width", 0)) > 0
        dots = classes(svg, "pc-trend-dot")
        current = classes(svg, "pc-trend-current")
        assert (len(dots), len(current)) == (29, 1)
        # This run's square is the newest session, drawn last along the axis.
        newest = max(float(d.get("cx", 0)) for d in dots)
        assert float(current[0].get("x", 0)) > newest
        # The step is found where it is, marked and labelled with the first build after it.
        assert [c.index for c in plot.changes] == [20]
        (line,) = classes(svg, "pc-change")
        (label,) = classes(svg, "pc-change-label")
        assert "build=120" in (label.text or "")
        assert dots[19].get("cx", "0") < line.get("x1", "0") < dots[20].get("cx", "0")
        desc = svg.find(f"{SVG}desc")
        assert desc is not None and "build=120" in (desc.text or "")


def test_the_marked_sessions_are_listed_as_text(stepped: tuple[TrendView, Path]) -> None:
    view, _ = stepped
    section = view.section("randread-4k", "scenario-randread-4k", "h3")
    assert section.count('<table class="pc-trend-sessions">') == 5
    rows = re.findall(r"<tr><td class=\"pc-left\">(.*?)</tr>", section)
    first_after = [r for r in rows if r.startswith("change 1: first after")]
    this_run = [r for r in rows if r.startswith("this run")]
    assert len(first_after) == len(this_run) == 5
    assert all("2026-12-01 20:00:00" in r and "build=120" in r for r in first_after)
    assert all("2026-12-02 05:00:00" in r and "build=129" in r for r in this_run)
    assert "+50" in first_after[0]


def test_at_most_the_last_n_sessions(stepped: tuple[TrendView, Path]) -> None:
    _, path = stepped
    runs = runs_with_a_step(30, step_at=20, factor=1.5)
    view = load_trends(runs[-1], store_location(str(path), path.parent), sessions=8)
    for plot in view.plots["randread-4k"]:
        assert len(plot.series.points) == 8 and plot.series.sessions == 30
        assert plot.series.points[-1].recorded_at == "2026-12-02T05:00:00Z"
        svg = ET.fromstring(trend_svg(plot, "x"))
        assert len(classes(svg, "pc-trend-dot")) + len(classes(svg, "pc-trend-current")) == 8


def test_a_series_without_change_points_or_this_run(stepped: tuple[TrendView, Path]) -> None:
    view, _ = stepped
    plot = view.plots["randread-4k"][0]
    flat = TrendPlot(plot.series, [], frozenset())
    svg = ET.fromstring(trend_svg(flat, "flat"))
    assert classes(svg, "pc-change") == [] and classes(svg, "pc-trend-current") == []
    assert len(classes(svg, "pc-trend-dot")) == 30


def test_the_first_session_alone(tmp_path: Path) -> None:
    (first,) = runs_with_a_step(1, step_at=9, factor=1.0)
    view = load_trends(first, store_of(tmp_path / "s.sqlite", [first]))
    for plot in view.plots["randread-4k"]:
        svg = ET.fromstring(trend_svg(plot, "one"))
        assert len(classes(svg, "pc-trend-current")) == 1 and plot.changes == []
        assert len(classes(svg, "pc-trend-time")) == 1


def test_no_store_no_series_unreadable_store_each_one_line(tmp_path: Path) -> None:
    runs = runs_with_a_step(3, step_at=9, factor=1.0)
    off = load_trends(runs[-1], None, off_reason="the results store is off")
    assert off.section("randread-4k", "s", "h3") == (
        '<p class="pc-meta pc-trend-none">Trend: the results store is off.</p>'
    )
    # A store that holds other scenarios only.
    other = runs_with_a_step(3, step_at=9, factor=1.0, name="other")
    location = store_of(tmp_path / "s.sqlite", other)
    empty = load_trends(runs[-1], location).section("randread-4k", "s", "h3")
    assert empty.count("<p") == 1 and "no sessions of randread-4k on test-machine in" in empty
    missing = store_location(str(tmp_path / "none.sqlite"), tmp_path)
    unread = load_trends(runs[-1], missing).section("randread-4k", "s", "h3")
    assert unread.count("<p") == 1 and "none.sqlite: no results store there" in unread
    assert not (tmp_path / "none.sqlite").exists()
    # A report given no trends (perfcheck compare --html) has no trend section.
    page = render_report(runs[-1])
    assert "<svg" in page and "-trend-" not in page and "Trend" not in page


def test_the_plugin_report_plots_the_store_it_appended_to(project: pytest.Pytester) -> None:
    store = project.path / "runs.sqlite"
    report = project.path / "report.html"
    args = ("--perfcheck", f"--perfcheck-store={store}", f"--perfcheck-report={report}")
    run(project, *args, "--perfcheck-label", "build=1").assert_outcomes(skipped=1)
    run(project, *args, "--perfcheck-label", "build=2").assert_outcomes(skipped=1)
    page = report.read_text()
    figures = re.findall(r'<figure class="pc-trend">(.*?)</figure>', page)
    db = sqlite3.connect(store)
    # This run's session: both runs may fall in one second, so found by its label.
    (newest,) = db.execute(
        "SELECT session_id FROM perfcheck_labels WHERE key = 'build' AND value = '2'"
    ).fetchone()
    metrics = {m for (m,) in db.execute("SELECT DISTINCT metric FROM perfcheck_metrics")}
    db.close()
    plotted = sorted(m for m in metrics if is_trend_metric(m))
    assert "block.latency.read.p99" in plotted and "fio.iops.read" in plotted
    assert len(figures) == len(plotted) < len(metrics)
    for figure in figures:
        assert figure.count('class="pc-trend-dot"') == 1
        assert figure.count('class="pc-trend-current"') == 1
        assert '<td class="pc-left">this run</td>' in figure and "build=2" in figure
        assert newest[:12] in figure
    # Store off: the section says so, once per scenario.
    run(project, "--perfcheck", "--perfcheck-store=none", f"--perfcheck-report={report}")
    page = report.read_text()
    assert "pc-trend-dot" not in page
    assert page.count("Trend: the results store is off (--perfcheck-store=none)") == 1


def test_perfcheck_report_reads_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = runs_with_a_step(12, step_at=6, factor=1.5)
    store_of(tmp_path / "s.sqlite", runs)
    results = tmp_path / "run.json"
    write_results(results, runs[-1])
    out = tmp_path / "r.html"
    args = ["report", str(results), "-o", str(out), "--store", str(tmp_path / "s.sqlite")]
    assert main([*args, "--trend-sessions", "10"]) == 0
    page = out.read_text()
    assert page.count('class="pc-trend-current"') == 5
    assert page.count('class="pc-trend-dot"') == 5 * 9
    assert main([*args, "--trend-sessions", "1"]) == 2
    assert "--trend-sessions 1: give 2 to 10000" in capsys.readouterr().err
    assert main(["report", str(results), "-o", str(out), "--store", "none"]) == 0
    assert "Trend: --store none: no history to plot." in out.read_text()
