"""The ``perfcheck_probes`` fixture's workflow with the fake probe backend: record, gate,
regress, results file, JUnit properties, the collect form, skips and one-line errors.
The real kernel's side is ``tests/real/test_fixture_real.py``."""

from __future__ import annotations

import importlib.util
import json
import textwrap
import xml.etree.ElementTree as ET

import pytest

from perfcheck.plugin.fixtures import baseline_name
from tests.fakeproject import run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFTEST = """
import fakecode
from perfcheck.probes.features import Unavailable
from perfcheck.run.fake import use_fakes

# As on a kernel without kprobes.
NO_KPROBES = Unavailable("kprobes are absent on this kernel", "boot one with CONFIG_KPROBES=y")


def pytest_perfcheck_harness(config, harness):
    use_fakes(harness, lambda round_no, i: 10_000, fakecode.BACKEND)
    harness.probe_availability = lambda names: {
        name: NO_KPROBES for name in names if name == "func.latency"
    }
"""

# The test's "code": it makes the fake kernel see 200 reads around 10 us (times the
# slow-down), as a real probe would see its direct reads.
FAKE_CODE = """
import math
import os
import random

from perfcheck.run.fake import FakeProbeBackend

BACKEND = FakeProbeBackend()
RNG = random.Random(int(os.environ.get("FAKE_SEED", "1")))


def reads(count):
    factor = float(os.environ.get("FAKE_SLOWDOWN", "1.0"))
    BACKEND.observe(
        "read", [int(RNG.lognormvariate(math.log(10_000 * factor), 0.05)) for _ in range(count)]
    )
    return f"{count} reads"
"""

TESTS = """
import pytest

import fakecode
from perfcheck.run.fake import fake_target


@pytest.mark.perfcheck(thresholds={"*.p50": 0.1})
def test_code(perfcheck_probes):
    result = perfcheck_probes(
        fakecode.reads, 200, probes=["block.latency"], device=fake_target(), rounds=6
    )
    assert result == "200 reads"
    settings = fakecode.BACKEND.settings
    assert settings["cgroup_id"] == settings["submitter_cgroup_id"] != 0


def test_collect(perfcheck_probes):
    with perfcheck_probes.collect(probes=["block.latency"], device=fake_target()) as seen:
        fakecode.reads(50)
    assert seen["block.latency.read"].total == 50
    assert seen.counters["block.requests.read"] == 50
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(fakecode=FAKE_CODE, test_mine=TESTS)
    return pytester


def test_record_gate_regress_with_results_file_and_junit(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(project, "--perfcheck", "--perfcheck-store=none")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*no baseline for test_mine.py-test_code*--perfcheck-update*"])

    result = run(project, "--perfcheck-update", "--perfcheck-store=none")
    result.assert_outcomes(passed=2)
    [path] = (project.path / "baselines").rglob("*.json")
    assert path.name == "test_mine.py-test_code.json"
    assert len(json.loads(path.read_text())["measurement"]["rounds"]) == 6

    monkeypatch.setenv("FAKE_SEED", "2")
    saved = project.path / "results.json"
    junit = project.path / "junit.xml"
    result = run(
        project, "--perfcheck", "--perfcheck-store=none", f"--perfcheck-save={saved}",
        f"--junitxml={junit}",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    scenarios = json.loads(saved.read_text())["scenarios"]
    assert list(scenarios) == ["test_mine.py-test_code"]
    assert scenarios["test_mine.py-test_code"]["status"] == "PASS"
    assert scenarios["test_mine.py-test_code"]["decision"]["current_rounds"] == 6
    case = next(c for c in ET.parse(junit).iter("testcase") if c.get("name") == "test_code")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["perfcheck.status"] == "PASS"
    assert "perfcheck.block.latency.read.p50" in props

    monkeypatch.setenv("FAKE_SLOWDOWN", "1.6")
    html = "--html=ph.html" if importlib.util.find_spec("pytest_html") else "-q"
    result = run(
        project, "--perfcheck", "--perfcheck-store=none", "--perfcheck-no-repeat",
        "--perfcheck-report=r.html", html,
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    assert "test_mine.py-test_code" in (project.path / "r.html").read_text()
    if html != "-q":  # pytest-html's page holds the test's table and plots
        page = (project.path / "ph.html").read_text()
        assert "pc-scenario" in page
        assert "latency histogram" in page
    result.stdout.fnmatch_lines(
        ["*block.latency.read.p50*FAIL*", "*pytest --perfcheck-update*test_mine.py::test_code*"]
    )


def test_without_perfcheck_the_tests_are_skipped_and_their_code_not_run(
    project: pytest.Pytester,
) -> None:
    result = run(project)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*run with --perfcheck*"])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            'perfcheck_probes(print, probes=["block.latncy"])',
            "test_bad.py::test_bad: unknown probe 'block.latncy'; the catalog has *",
        ),
        (
            'perfcheck_probes(print, probes=["block.latency"])',
            "test_bad.py::test_bad: probe block.latency times one disk's requests: pass device=*",
        ),
        (
            'perfcheck_probes(print, probes=["func.latency"])',
            "test_bad.py::test_bad: probe func.latency cannot load on this kernel: kprobes are"
            " absent on this kernel; fix: boot one with CONFIG_KPROBES=y",
        ),
        (
            'perfcheck_probes(print, probes=["block.latency"], device="/proc/self/status")',
            "test_bad.py::test_bad: device='/proc/self/status' is on device 0:*, which is no block"
            " device*perfcheck_scratch fixture",
        ),
    ],
)
def test_bad_input_is_a_one_line_failure_naming_the_test(
    project: pytest.Pytester, call: str, message: str
) -> None:
    project.makepyfile(
        test_bad=textwrap.dedent(
            f"""
            def test_bad(perfcheck_probes):
                {call}
            """
        )
    )
    result = run(project, "--perfcheck", "--perfcheck-store=none", "test_bad.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])
    assert "During handling" not in result.stdout.str()


def test_baseline_names_are_file_safe_and_distinct_when_clipped() -> None:
    assert baseline_name("tests/test_io.py::test_reads[4k]") == "tests-test_io.py-test_reads-4k"
    long_a, long_b = "t.py::test_" + "a" * 200 + "[1]", "t.py::test_" + "a" * 200 + "[2]"
    assert baseline_name(long_a) != baseline_name(long_b)
    assert len(baseline_name(long_a)) <= 128
