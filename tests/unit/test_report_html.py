"""The HTML report's structure and plot geometry, checked by parsing the page.

The same pages rendered in a real browser are checked in ``test_report_browser.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.outcome import Status
from perfcheck.report.html import (
    BASELINE_COLOUR,
    CURRENT_COLOUR,
    RoundSeries,
    change_text,
    histogram_overlay_svg,
    latency_text,
    render_report,
    rounds_svg,
    scenario_fragment,
    write_report,
)
from perfcheck.report.results import Results
from perfcheck.stats.gate import ScenarioOutcome
from tests.records import make_measurement, make_results


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text: str = ""

    def iter(self, tag: str | None = None) -> Iterator[Element]:
        if tag is None or self.tag == tag:
            yield self
        for child in self.children:
            yield from child.iter(tag)

    def all_text(self) -> str:
        return self.text + "".join(child.all_text() for child in self.children)


_VOID = {"meta", "br", "img", "input", "link", "hr"}


class TreeBuilder(HTMLParser):
    """A small DOM: enough to walk the report's elements and SVG."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].text += data


def parse(page: str) -> Element:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


@pytest.fixture
def results(tmp_path: Path) -> Results:
    return make_results(tmp_path)


@pytest.fixture
def document(results: Results) -> Element:
    return parse(render_report(results))


def section(document: Element, name: str) -> Element:
    [found] = [s for s in document.iter("section") if s.attrs.get("id") == f"scenario-{name}"]
    return found


def points(polyline: Element) -> list[tuple[float, float]]:
    pairs = polyline.attrs["points"].split()
    return [(float(x), float(y)) for x, y in (p.split(",") for p in pairs)]


# -- the page as a whole -------------------------------------------------------------------


def test_page_is_self_contained(results: Results) -> None:
    page = render_report(results)
    document = parse(page)
    assert not list(document.iter("script"))
    assert not list(document.iter("link"))
    assert not list(document.iter("img"))
    for element in document.iter():
        for name, value in element.attrs.items():
            if name in ("src", "href", "xlink:href", "action"):
                assert value.startswith("#"), f"{element.tag} {name}={value}"
    assert "url(" not in page and "@import" not in page
    [csp] = [m for m in document.iter("meta") if m.attrs.get("http-equiv")]
    assert "default-src 'none'" in csp.attrs["content"]
    [html] = list(document.iter("html"))
    assert html.attrs["lang"] == "en"
    [title] = list(document.iter("title"))[:1]
    assert title.all_text() == "perfcheck report"


def test_every_plot_is_labelled_for_screen_readers(document: Element) -> None:
    ids = [e.attrs["id"] for e in document.iter() if "id" in e.attrs]
    assert len(ids) == len(set(ids)), "duplicate ids"
    by_id = {e.attrs["id"]: e for e in document.iter() if "id" in e.attrs}
    plots = list(document.iter("svg"))
    assert plots
    for svg in plots:
        assert svg.attrs["role"] == "img"
        title_id, desc_id = svg.attrs["aria-labelledby"].split()
        assert by_id[title_id].tag == "title" and by_id[title_id].all_text()
        assert by_id[desc_id].tag == "desc" and len(by_id[desc_id].all_text()) > 40


def test_sections_needing_attention_come_first_and_are_linked(document: Element) -> None:
    order = [s.attrs["id"] for s in document.iter("section")]
    assert order == [
        "scenario-slower",
        "scenario-missing",
        "scenario-same",
        "scenario-recorded",
    ]
    [summary] = [t for t in document.iter("table") if t.attrs.get("class") == "pc-summary"]
    links = [a.attrs["href"] for a in summary.iter("a")]
    assert links == [f"#{sid}" for sid in order]


def test_failing_section_has_verdict_table_and_both_sides(document: Element) -> None:
    slower = section(document, "slower")
    heading = next(slower.iter("h2"))
    assert "FAIL" in heading.all_text()
    [table] = [t for t in slower.iter("table") if t.attrs.get("class") == "pc-comparisons"]
    headers = [th.all_text() for th in table.iter("th")]
    assert headers == ["metric", "baseline", "current", "change", "p-value", "threshold", "verdict"]
    rows = {
        cells[0]: cells
        for cells in ([td.all_text() for td in tr.iter("td")] for tr in table.iter("tr"))
        if cells
    }
    p99 = rows["block.latency.read.p99"]
    assert p99[1].endswith(" us") and p99[2].endswith(" us")
    assert p99[3].startswith("+") and p99[3].endswith("%")
    assert float(p99[4]) < 0.01
    assert p99[5] == "+20%"
    assert p99[6].startswith("FAIL")
    assert rows["fio.iops.read"][5] == "-10%"


def test_histogram_overlay_shows_the_slower_run_to_the_right(document: Element) -> None:
    slower = section(document, "slower")
    overlay = next(s for s in slower.iter("svg") if "-hist-" in s.attrs["id"])
    lines = {p.attrs["class"].split()[1]: p for p in overlay.iter("polyline")}
    assert set(lines) == {"pc-baseline", "pc-current"}
    assert lines["pc-baseline"].attrs["stroke"] == BASELINE_COLOUR
    assert lines["pc-current"].attrs["stroke"] == CURRENT_COLOUR
    assert "stroke-dasharray" in lines["pc-baseline"].attrs

    def peak_x(line: Element) -> float:
        return min(points(line), key=lambda p: p[1])[0]  # highest point: smallest y

    # 1.6x slower is 0.68 of an octave: the peak moves right by several display bins.
    assert peak_x(lines["pc-current"]) > peak_x(lines["pc-baseline"]) + 20
    width, height = (float(v) for v in overlay.attrs["viewbox"].split()[2:])
    for line in lines.values():
        assert all(0 <= x <= width and 0 <= y <= height for x, y in points(line))


def test_rounds_plot_has_one_mark_per_round_and_the_threshold(document: Element) -> None:
    slower = section(document, "slower")
    plots = [s for s in slower.iter("svg") if "-rounds-" in s.attrs["id"]]
    titles = [next(p.iter("title")).all_text() for p in plots]
    assert "block.latency.read.p50: value of each measured round" in titles
    assert "fio.iops.read: value of each measured round" in titles
    assert not any(".p90" in t for t in titles)
    p50 = plots[titles.index("block.latency.read.p50: value of each measured round")]
    circles = list(p50.iter("circle"))
    squares = [r for r in p50.iter("rect") if r.attrs.get("class") == "pc-dot"]
    assert len(circles) == 5 + 1 and len(squares) == 5 + 1  # rounds plus the legend's mark
    tooltips = [next(c.iter("title")).all_text() for c in circles if list(c.iter("title"))]
    assert tooltips[0].startswith("baseline round 1: ")
    current_y = [float(r.attrs["y"]) + 4 for r in squares if list(r.iter("title"))]
    baseline_y = [float(c.attrs["cy"]) for c in circles if list(c.iter("title"))]
    # Slower rounds are higher up, i.e. at smaller y.
    assert max(current_y) < min(baseline_y)
    [threshold] = [line for line in p50.iter("line") if line.attrs.get("class") == "pc-threshold"]
    threshold_y = float(threshold.attrs["y1"])
    assert max(current_y) < threshold_y < min(baseline_y)


def test_section_without_baseline_shows_the_current_run_alone(document: Element) -> None:
    missing = section(document, "missing")
    assert "No baseline to compare with" in missing.all_text()
    assert not [t for t in missing.iter("table") if t.attrs.get("class") == "pc-comparisons"]
    overlay = next(s for s in missing.iter("svg") if "-hist-" in s.attrs["id"])
    assert [p.attrs["class"] for p in overlay.iter("polyline")] == ["pc-line pc-current"]
    rounds = [s for s in missing.iter("svg") if "-rounds-" in s.attrs["id"]]
    assert rounds
    assert not any(line.attrs.get("class") == "pc-threshold" for r in rounds for line in r.iter())


def test_environment_changes_are_marked_and_values_escaped(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    hostile = "<script>alert(1)</script>"
    results.scenarios["slower"].measurement.environment["device.model"] = hostile
    page = render_report(results)
    document = parse(page)
    assert not list(document.iter("script"))
    assert hostile not in page
    slower = section(document, "slower")
    summary = next(slower.iter("summary")).all_text()
    assert re.search(r"\((\d+) changed since the baseline\)", summary)
    marked = [m.all_text() for m in slower.iter("mark")]
    assert "6.2.0" in marked and hostile in marked


def test_empty_results_render(tmp_path: Path) -> None:
    page = render_report(Results({}, "m"))
    assert "This run measured no scenario" in page
    parse(page)


def test_fragment_for_pytest_html_is_one_section(results: Results) -> None:
    fragment = parse(scenario_fragment(results.scenarios["slower"]))
    assert [s.attrs["id"] for s in fragment.iter("section")] == ["scenario-slower"]
    assert list(fragment.iter("style"))
    assert list(fragment.iter("svg"))


def test_write_report_replaces_the_file_whole(tmp_path: Path, results: Results) -> None:
    path = tmp_path / "sub" / "report.html"
    write_report(path, results)
    first = path.read_text()
    write_report(path, Results({}, "m"))
    assert path.read_text() != first
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


# -- single plots and numbers --------------------------------------------------------------


def test_overlay_of_a_single_value_histogram_is_finite() -> None:
    hist = LogLinearHistogram.from_values([0] * 10)
    svg = parse(histogram_overlay_svg("x", hist, hist, "one"))
    for line in svg.iter("polyline"):
        assert all(math.isfinite(x) and math.isfinite(y) for x, y in points(line))


def test_rounds_plot_of_constant_values_is_finite() -> None:
    svg = parse(
        rounds_svg(RoundSeries("fio.iops.read", (5.0, 5.0, 5.0), (5.0, 5.0, 5.0), 4.5), "c")
    )
    for element in svg.iter("circle"):
        assert math.isfinite(float(element.attrs["cy"]))


def test_latency_and_change_text() -> None:
    assert latency_text(850) == "850 ns"
    assert latency_text(26_100) == "26.1 us"
    assert latency_text(1_500_000) == "1.5 ms"
    assert latency_text(2e9) == "2 s"
    assert change_text(0.123) == "+12.3%"
    assert change_text(-0.5) == "-50.0%"
    assert change_text(math.inf) == "+inf%"


def test_recorded_section_names_where_it_was_written(tmp_path: Path) -> None:
    outcome = ScenarioOutcome(
        "fresh", Status.RECORDED, make_measurement("fresh"), None, tmp_path / "b" / "fresh.json"
    )
    page = render_report(Results.from_outcomes([outcome], "m"))
    assert f"Recorded as the new baseline to {tmp_path / 'b' / 'fresh.json'}" in page


def test_decision_says_how_the_verdict_was_reached(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    slower = results.scenarios["slower"]
    slower.decision = {
        "looks": 3,
        "baseline_rounds": 10,
        "current_rounds": 20,
        "environment_changes": [
            {"key": "target.scheduler", "baseline": "none", "current": "<bfq>"}
        ],
        "widened_thresholds": [
            {
                "metric": "fio.clat.read.p99",
                "threshold": 0.2,
                "widened_to": 0.412,
                "spread": 0.137,
                "sessions": 6,
            }
        ],
        "drift": {"drifted": True, "slowdown": 0.18, "text": "machine is 18% slower"},
    }
    page = render_report(results)
    [block] = [
        d
        for d in section(parse(page), "slower").iter("div")
        if "pc-decision" in d.attrs.get("class", "")
    ]
    items = [li.all_text() for li in block.iter("li")]
    assert (
        items[0] == "20 rounds now against 10 in the baseline, decided after 3 looks"
        " (rounds were added while undecided)"
    )
    assert "fio.clat.read.p99 widened from 20.0% to 41.2%" in items[1]
    assert "6 past sessions differ by 13.7%" in items[1]
    assert items[2] == "drift control moved: machine is 18% slower"
    assert items[3] == "environment changed since the baseline: target.scheduler: none -> <bfq>"
    assert "<bfq>" not in page  # escaped
    # Scenarios without a verdict (recorded, no baseline) have no such block.
    for name in ("recorded", "missing"):
        divs = section(parse(page), name).iter("div")
        assert not any("pc-decision" in d.attrs.get("class", "") for d in divs)
    same = [
        d
        for d in section(parse(page), "same").iter("div")
        if "pc-decision" in d.attrs.get("class", "")
    ]
    assert same
