"""The HTML report in a real headless Chromium: it loads without console messages, the
plots are in the rendered DOM (with JavaScript on and off), and the screenshot shows
them drawn in their colours.

Each check has a control page that must fail it, so a browser that renders nothing
or a log format that changed cannot make these tests pass vacuously.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from perfcheck.report.html import BASELINE_COLOUR, CURRENT_COLOUR, write_report
from perfcheck.report.results import Results
from tests.records import make_results

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="chromium not installed (Debian package chromium; run scripts/setup-machine.sh)",
)

_CONSOLE_LINE = re.compile(r":CONSOLE[(:]")


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``page``, offline, logging console messages to stderr."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if _CONSOLE_LINE.search(line)]


# -- a tiny PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium writes) ------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and the RGB pixels of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    assert header is not None
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, up, upper_left)) & 0xFF
        pixels.extend((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels


def _rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def pixels_near(pixels: list[tuple[int, int, int]], colour: str, tolerance: int = 12) -> int:
    r, g, b = _rgb(colour)
    return sum(
        1
        for pr, pg, pb in pixels
        if abs(pr - r) <= tolerance and abs(pg - g) <= tolerance and abs(pb - b) <= tolerance
    )


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, Results]:
    results = make_results(tmp_path)
    path = tmp_path / "report.html"
    write_report(path, results)
    return path, results


def expected_plot_count(results: Results) -> int:
    from perfcheck.report.html import key_round_series

    count = 0
    for scenario in results.scenarios.values():
        count += sum(1 for h in scenario.measurement.merged_histograms().values() if h.total)
        count += len(key_round_series(scenario))
    return count


# -- the checks ----------------------------------------------------------------------------


def test_console_check_catches_an_error(tmp_path: Path) -> None:
    control = tmp_path / "broken.html"
    control.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>x</title></head>'
        "<body><script>undefinedFunction();</script></body></html>"
    )
    done = chromium(control, tmp_path / "profile", "--dump-dom")
    assert any("undefinedFunction" in line for line in console_messages(done.stderr))


def test_report_loads_without_console_messages_and_plots_are_in_the_dom(
    tmp_path: Path, report: tuple[Path, Results]
) -> None:
    path, results = report
    done = chromium(path, tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr) == []
    dom = done.stdout
    expected = expected_plot_count(results)
    assert expected >= 8
    assert len(re.findall(r"<svg\b", dom)) == expected
    series = {n: len(s.measurement.merged_histograms()) for n, s in results.scenarios.items()}
    with_baseline = sum(series[n] for n, s in results.scenarios.items() if s.baseline)
    assert len(re.findall(r'<polyline class="pc-line pc-current"', dom)) == sum(series.values())
    assert len(re.findall(r'<polyline class="pc-line pc-baseline"', dom)) == with_baseline
    assert len(re.findall(r'<circle class="pc-dot"', dom)) > 20
    assert 'id="scenario-slower"' in dom
    # Each judged scenario says how it was decided, in the rendered page too.
    decided = sum(1 for s in results.scenarios.values() if s.decision)
    assert decided >= 2
    assert dom.count('<div class="pc-decision"><p>How this was decided:</p>') == decided


def test_screenshot_shows_the_plots_drawn(tmp_path: Path, report: tuple[Path, Results]) -> None:
    path, _ = report
    shot = tmp_path / "report.png"
    chromium(path, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1800")
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1800)
    assert len(Counter(pixels)) > 200, "a near-blank page"
    # The top of the page is the failing scenario: both sides of its plots are drawn.
    assert pixels_near(pixels, BASELINE_COLOUR) > 300
    assert pixels_near(pixels, CURRENT_COLOUR) > 300


def test_scripts_cannot_run_in_the_report(tmp_path: Path, report: tuple[Path, Results]) -> None:
    """The page's own Content-Security-Policy forbids scripts, so what the browser shows is
    what a reader without JavaScript sees: a script slipped into it must neither run nor
    be needed for the plots."""
    path, results = report
    tampered = tmp_path / "tampered.html"
    wipe = "<script>document.body.textContent = 'wiped';</script>"
    tampered.write_text(path.read_text().replace("</main>", f"</main>{wipe}"))
    done = chromium(tampered, tmp_path / "profile", "--dump-dom")
    assert any("Content Security Policy" in line for line in console_messages(done.stderr))
    assert len(re.findall(r"<svg\b", done.stdout)) == expected_plot_count(results)
    assert "wiped</body>" not in done.stdout


def test_screenshot_check_fails_on_a_blank_page(tmp_path: Path) -> None:
    blank = tmp_path / "blank.html"
    blank.write_text('<!DOCTYPE html><html lang="en"><head><title>x</title></head></html>')
    shot = tmp_path / "blank.png"
    chromium(blank, tmp_path / "profile", f"--screenshot={shot}", "--window-size=400,300")
    _, _, pixels = png_pixels(shot.read_bytes())
    assert len(Counter(pixels)) < 5
    assert pixels_near(pixels, BASELINE_COLOUR) == 0
    assert pixels_near(pixels, CURRENT_COLOUR) == 0


# -- the trend plots ---------------------------------------------------------------------------

_TREND_PLOTS = 5  # block and fio latency p50 and p99, fio IOPS
_SESSIONS = 30

# Measures, in the rendered page, each trend plot and its marks and writes what it found
# into the DOM. The report forbids scripts, so the probe runs in a copy without that policy.
_LAYOUT_PROBE = """
<script>
function box(e) {
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  const shown = s.display !== "none" && s.visibility !== "hidden" && s.opacity !== "0";
  return shown ? [Math.round(r.width), Math.round(r.height)] : [0, 0];
}
const figures = [...document.querySelectorAll("figure.pc-trend")].map(f => ({
  svg: box(f.querySelector("svg")),
  dots: [...f.querySelectorAll(".pc-trend-dot")].map(box),
  current: [...f.querySelectorAll(".pc-trend-current")].map(box),
  changes: [...f.querySelectorAll(".pc-change")].map(box),
  labels: [...f.querySelectorAll(".pc-change-label")].map(e => [box(e), e.textContent]),
  text: f.innerText,
}));
const out = document.createElement("pre");
out.id = "layout";
out.textContent = JSON.stringify(figures);
document.body.appendChild(out);
</script>
"""


@pytest.fixture
def trend_report(tmp_path: Path) -> Path:
    """A report whose scenario has 30 sessions in the store, latencies 1.5x from the 21st."""
    from perfcheck.report.trend import load_trends
    from tests.records import runs_with_a_step, store_of

    runs = runs_with_a_step(_SESSIONS, step_at=20, factor=1.5)
    trends = load_trends(runs[-1], store_of(tmp_path / "store.sqlite", runs))
    path = tmp_path / "trend.html"
    write_report(path, runs[-1], trends=trends)
    return path


def _probed(report: Path, tmp_path: Path, extra_style: str = "") -> list[dict[str, Any]]:
    page = report.read_text()
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    page = page.replace("</head>", f"<style>{extra_style}</style></head>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", f"{_LAYOUT_PROBE}</body>"))
    done = chromium(probed, tmp_path / "profile", "--dump-dom", "--window-size=1200,900")
    found = re.search(r'<pre id="layout">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, "the layout probe did not run"
    figures: list[dict[str, Any]] = json.loads(html.unescape(found.group(1)))
    return figures


def test_trend_plots_are_in_the_dom(tmp_path: Path, trend_report: Path) -> None:
    done = chromium(trend_report, tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr) == []
    dom = done.stdout
    assert len(re.findall(r'<svg\b[^>]*id="scenario-randread-4k-trend-', dom)) == _TREND_PLOTS
    assert dom.count('class="pc-trend-dot"') == _TREND_PLOTS * (_SESSIONS - 1)
    assert dom.count('class="pc-trend-current"') == _TREND_PLOTS
    assert dom.count('class="pc-change"') == _TREND_PLOTS


def test_trend_plots_are_laid_out_with_marks_and_labels_visible(
    tmp_path: Path, trend_report: Path
) -> None:
    figures = _probed(trend_report, tmp_path)
    assert len(figures) == _TREND_PLOTS
    for figure in figures:
        width, height = figure["svg"]
        assert width >= 600 and height >= 240
        assert len(figure["dots"]) == _SESSIONS - 1
        assert all(w > 0 and h > 0 for w, h in figure["dots"])
        assert [w > 0 and h > 0 for w, h in figure["current"]] == [True]
        (change,) = figure["changes"]
        assert change[1] > 100  # the dashed line spans the plot's height
        ((label_box, label_text),) = figure["labels"]
        assert label_box[0] > 0 and "build=120" in label_text
        # The marked sessions, as text a reader sees (not in a tooltip).
        assert "build=120" in figure["text"] and "this run" in figure["text"]
        assert "2026-12-01 20:00:00" in figure["text"]


def test_trend_layout_check_fails_on_hidden_plots(tmp_path: Path, trend_report: Path) -> None:
    figures = _probed(trend_report, tmp_path, ".pc-trends svg { display: none; }")
    assert len(figures) == _TREND_PLOTS
    assert all(f["svg"] == [0, 0] for f in figures)


def test_screenshot_shows_the_trend_drawn(tmp_path: Path, trend_report: Path) -> None:
    from perfcheck.report.trend import CHANGE_COLOUR, SERIES_COLOUR

    # Everything but the trend plots hidden, so they are at the top of the screenshot.
    page = trend_report.read_text().replace(
        "</head>",
        "<style>.pc-report > *, .pc-scenario > :not(.pc-trends) { display: none; }"
        " .pc-scenario { display: block !important; }</style></head>",
    )
    only = tmp_path / "only-trend.html"
    only.write_text(page)
    shot = tmp_path / "trend.png"
    chromium(only, tmp_path / "profile", f"--screenshot={shot}", "--window-size=800,600")
    _, _, pixels = png_pixels(shot.read_bytes())
    assert pixels_near(pixels, SERIES_COLOUR, tolerance=30) > 300  # the line and its dots
    assert pixels_near(pixels, CURRENT_COLOUR) > 40  # this run's square
    assert pixels_near(pixels, CHANGE_COLOUR, tolerance=30) > 80  # the change point
