"""What the plugin reports: results file, HTML report, JUnit properties, summary table,
progress while a scenario runs, pytest-html extras; all with the fake probe backend.

A real BPF + fio run of --perfcheck-save/--perfcheck-report is at the end.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from perfcheck import cli
from perfcheck.model.outcome import Status
from perfcheck.report.results import load_results
from tests.fakeproject import run
from tests.realcaps import requires_bpf, requires_fio

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def record(p: pytest.Pytester) -> None:
    run(p, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)


def test_save_and_report_after_recording(project: pytest.Pytester) -> None:
    result = run(
        project,
        "--perfcheck-update",
        "--perfcheck-save",
        "out/r.json",
        "--perfcheck-report",
        "out/r.html",
        "scenarios/",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*results saved to*r.json*", "*HTML report written to*r.html*"])
    results = load_results(project.path / "out" / "r.json")
    scenario = results.scenarios["fake-reads"]
    assert results.update is True
    assert scenario.status is Status.RECORDED
    assert scenario.baseline is None
    # Written after the baselines were flushed: the file it names exists.
    assert scenario.baseline_path is not None and scenario.baseline_path.is_file()
    assert len(scenario.measurement.rounds) == 5
    assert "block.latency" in scenario.measurement.provenance
    page = (project.path / "out" / "r.html").read_text()
    assert 'id="scenario-fake-reads"' in page
    assert page.count("<svg") >= 2


def test_regression_in_results_file_junit_and_summary_table(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(project)
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    result = run(
        project, "--perfcheck", "--perfcheck-save", "r.json", "--junitxml", "j.xml", "scenarios/"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*perfcheck*",
            "scenario*verdict*worst metric*change*p-value",
            "fake-reads*FAIL*block.latency.read.p*+*%*0.004",
            "perfcheck: 1 measured on*1 FAIL*",
        ]
    )

    results = load_results(project.path / "r.json")
    scenario = results.scenarios["fake-reads"]
    assert scenario.status is Status.FAIL
    assert scenario.baseline is not None
    assert len(scenario.baseline.measurement.rounds) == 5
    failing = [c.metric for c in scenario.comparisons if c.verdict.value == "FAIL"]
    assert "block.latency.read.p50" in failing

    tree = ET.parse(project.path / "j.xml")
    properties = {prop.attrib["name"]: prop.attrib["value"] for prop in tree.iter("property")}
    assert properties["perfcheck.status"] == "FAIL"
    assert "FAIL" in properties["perfcheck.block.latency.read.p50"]
    assert int(properties["perfcheck.merged.block.latency.read.count"]) == 5 * 200
    p50 = float(properties["perfcheck.merged.block.latency.read.p50_ns"])
    p99 = float(properties["perfcheck.merged.block.latency.read.p99_ns"])
    assert 12_000 < p50 < p99 < 25_000  # 1.5 x the fake's 10 us median
    assert "perfcheck.merged.fio.clat.read.p99_9_ns" in properties


def test_saved_results_compare_with_the_cli(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run(project, "--perfcheck-update", "--perfcheck-save", "before.json", "scenarios/")
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    run(project, "--perfcheck", "--perfcheck-save", "after.json", "scenarios/")
    capsys.readouterr()
    before, after = str(project.path / "before.json"), str(project.path / "after.json")
    assert cli.main(["compare", before, after]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert cli.main(["compare", before, before]) == 0


def test_quiet_run_has_no_table_but_the_count_line(project: pytest.Pytester) -> None:
    record(project)
    result = run(project, "-q", "--perfcheck", "scenarios/")
    result.assert_outcomes(passed=1)
    assert "worst metric" not in result.stdout.str()
    result.stdout.fnmatch_lines(["perfcheck: 1 measured on*1 PASS*"])


def test_progress_on_a_terminal(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TTY", "1")
    result = run(project, "--perfcheck-update", "scenarios/")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "fake-reads: warm-up round 1/6, about" in out
    assert "fake-reads: round 6/6, about" in out
    # The final line stays, and the result letter follows on the test's own line.
    result.stdout.fnmatch_lines(
        ["*fake-reads: 5 rounds + 1 warm-up in * s*", "scenarios/*.toml .*"]
    )

    verbose = run(project, "-v", "--perfcheck", "scenarios/")
    verbose.stdout.fnmatch_lines(["*fake-reads: 5 rounds + 1 warm-up in*", "*fake-reads PASSED*"])

    quiet = run(project, "-q", "--perfcheck", "scenarios/")
    assert "round 1/6" not in quiet.stdout.str()


def test_no_progress_lines_when_not_a_terminal(project: pytest.Pytester) -> None:
    result = run(project, "--perfcheck-update", "scenarios/")
    assert "round 1/6" not in result.stdout.str()


def test_unwritable_save_path_is_refused_before_measuring(project: pytest.Pytester) -> None:
    (project.path / "adir").mkdir()
    result = run(project, "--perfcheck-update", "--perfcheck-save", "adir", "scenarios/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfcheck-save*adir*is a directory*"])
    assert not (project.path / "baselines").exists()


def test_save_without_perfcheck_writes_nothing(project: pytest.Pytester) -> None:
    result = run(project, "--perfcheck-save", "r.json", "scenarios/")
    result.assert_outcomes(skipped=1)
    assert not (project.path / "r.json").exists()


def test_pytest_html_gets_the_scenario_table_and_plots(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pytest_html")
    record(project)
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    result = run(project, "--perfcheck", "--html", "ph.html", "scenarios/")
    result.assert_outcomes(failed=1)
    page = (project.path / "ph.html").read_text()
    # pytest-html keeps extras in an escaped JSON blob; the fragment's markers survive.
    assert "pc-scenario" in page
    assert "latency histogram" in page


@requires_bpf
@requires_fio
@pytest.mark.realbpf
@pytest.mark.realfio
def test_real_run_saves_results_and_report(tmp_path: Path) -> None:
    """Record, then compare, on the real randread-4k scenario with BPF and fio."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    base = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        str(root / "scenarios" / "randread-4k.toml"),
        "--perfcheck-rounds",
        "3",
        "--perfcheck-max-rounds",  # no sequential rounds: 3 stay 3
        "3",
        "--perfcheck-seconds",
        "0.5",
        "--perfcheck-baseline-dir",
        str(tmp_path / "baselines"),
    ]
    env = {**os.environ, "PERFCHECK_MACHINE_CLASS": "test-machine"}

    def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
        )

    recorded = pytest_run("--perfcheck", "--perfcheck-update")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    results_path, report_path = tmp_path / "r.json", tmp_path / "r.html"
    compared = pytest_run(
        "--perfcheck", "--perfcheck-save", str(results_path), "--perfcheck-report", str(report_path)
    )
    # Same machine, same scenario: anything but a crash (a noisy box may even FAIL).
    assert compared.returncode in (0, 1), compared.stdout + compared.stderr
    results = load_results(results_path)
    scenario = results.scenarios["randread-4k"]
    assert scenario.status in (Status.PASS, Status.FAIL, Status.INCONCLUSIVE)
    assert scenario.baseline is not None
    assert len(scenario.measurement.rounds) == 3
    assert scenario.measurement.merged_histograms()["block.latency.read"].total > 0
    metrics = {c.metric for c in scenario.comparisons}
    assert {"block.latency.read.p50", "block.latency.read.p99", "fio.iops.read"} <= metrics
    # tracepoint:block:... or raw_tracepoint:block:..., whichever the probe attached to.
    events = scenario.measurement.provenance["block.latency"]
    assert any(":block:block_rq_" in event for event in events), events
    data = json.loads(results_path.read_text())
    assert data["kind"] == "perfcheck-results"
    page = report_path.read_text()
    assert 'id="scenario-randread-4k"' in page
    assert "block.latency.read: latency histogram, baseline vs current" in page


# -- progress, without pytest ------------------------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.final: list[str] = []

    def show(self, text: str) -> None:
        self.shown.append(text)

    def done(self, text: str) -> None:
        self.final.append(text)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_estimates_time_left_from_the_rounds_so_far() -> None:
    from perfcheck.plugin.progress import ScenarioProgress

    sink, clock = RecordingSink(), FakeClock()
    progress = ScenarioProgress("randread-4k", round_seconds=5.0, sink=sink, clock=clock)
    with progress.running():
        progress(1, 6, True)  # nothing measured yet: 6 rounds of 5 s
        clock.now += 10.0  # the warm-up took 10 s
        progress(2, 6, False)  # 5 rounds left at 10 s each
        clock.now += 10.0
        progress(3, 6, False)
        clock.now += 40.0
    assert sink.shown == [
        "randread-4k: warm-up round 1/6, about 30 s left",
        "randread-4k: round 2/6, about 50 s left",
        "randread-4k: round 3/6, about 40 s left",
    ]
    assert sink.final == ["randread-4k: 5 rounds + 1 warm-up in 1 min 00 s"]


def test_progress_says_where_a_failed_run_stopped() -> None:
    from perfcheck.plugin.progress import ScenarioProgress

    sink, clock = RecordingSink(), FakeClock()
    progress = ScenarioProgress("x", 1.0, sink, clock)
    with pytest.raises(RuntimeError), progress.running():
        progress(1, 4, False)
        clock.now += 2.0
        progress(2, 4, False)
        raise RuntimeError("fio died")
    assert sink.final == ["x: stopped in round 2/4 after 2 s"]


def test_progress_that_never_started_leaves_nothing() -> None:
    from perfcheck.plugin.progress import ScenarioProgress

    sink = RecordingSink()
    with ScenarioProgress("x", 1.0, sink).running():
        pass
    assert sink.shown == sink.final == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.2, "1 s"), (59.5, "1 min 00 s"), (125, "2 min 05 s"), (3725, "1 h 02 min")],
)
def test_format_duration(seconds: float, text: str) -> None:
    from perfcheck.plugin.progress import format_duration

    assert format_duration(seconds) == text


class FakeReporter:
    def __init__(self, verbosity: int) -> None:
        self.verbosity = verbosity
        self.calls: list[tuple[str, str]] = []
        self.currentfspath: object = "somewhere"

    def ensure_newline(self) -> None:
        self.calls.append(("newline", ""))

    def rewrite(self, line: str, erase: bool = False) -> None:
        self.calls.append(("rewrite", line))

    def write_fspath_result(self, nodeid: str, res: str) -> None:
        self.calls.append(("fspath", nodeid))

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("verbosity", [0, 1])
def test_terminal_sink_rewrites_one_line_then_hands_back_to_pytest(verbosity: int) -> None:
    from perfcheck.plugin.progress import TerminalProgressSink

    reporter = FakeReporter(verbosity)
    sink = TerminalProgressSink(reporter, None, "scenarios/a.toml::a")
    sink.show("a: round 1/2")
    sink.show("a: round 2/2")
    sink.done("a: 2 rounds in 1 s")
    assert reporter.calls[:3] == [
        ("newline", ""),
        ("rewrite", "  a: round 1/2"),
        ("rewrite", "  a: round 2/2"),
    ]
    assert reporter.calls[3] == ("rewrite", "  a: 2 rounds in 1 s")
    if verbosity <= 0:
        assert reporter.calls[4:] == [("fspath", "scenarios/a.toml::a")]
    else:
        assert reporter.calls[4:] == [] and reporter.currentfspath is None
