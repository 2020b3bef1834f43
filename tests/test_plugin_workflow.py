"""The baseline workflow of the pytest plugin, end to end, with the fake probe backend.

Record -> pass -> regress -> fail -> refresh -> pass, plus the missing-baseline,
bad-input and no-``--perfcheck`` paths. Real BPF and fio runs of the same workflow
live in ``test_regression_real.py``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FAKE_CONFTEST = textwrap.dedent(
    """
    import math
    import os
    import random
    from pathlib import Path

    from perfcheck.probes.fake import FakeProbeBackend, use_fakes


    def pytest_perfcheck_harness(config, harness):
        backend = FakeProbeBackend()
        slowdown = float(os.environ.get("FAKE_SLOWDOWN", "1.0"))
        rng = random.Random(int(os.environ.get("FAKE_SEED", "1")))
        # Only these fresh sessions (0: the run's first) are slowed down, when set.
        slow_sessions = os.environ.get("FAKE_SLOW_SESSIONS")

        def latency(round_no, i):
            slow = slow_sessions is None or str(harness.fresh_sessions) in slow_sessions.split(",")
            return int(rng.lognormvariate(math.log(10_000 * (slowdown if slow else 1.0)), 0.05))

        use_fakes(harness, latency, backend)
    """
)

SCENARIO = textwrap.dedent(
    """
    description = "fake reads"
    probes = ["block.latency"]

    [workload]
    kind = "fio"
    job = "reads.fio"

    [rounds]
    count = 5
    warmup = 1
    seconds = 0.5
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(FAKE_CONFTEST)
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "reads.fio").write_text("[reads]\nrw=randread\nbs=4k\n")
    (scenarios / "fake-reads.toml").write_text(SCENARIO)
    return pytester


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest("-p", "no:cacheprovider", "-rs", *args)


def baseline_files(p: pytest.Pytester) -> list[Path]:
    return sorted((p.path / "baselines").rglob("*.json"))


def test_record_compare_regress_refresh_cycle(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No baseline yet: skipped, never silently green, with the command that records it.
    result = run(project, "--perfcheck", "scenarios/")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no baseline for fake-reads*--perfcheck-update*"])
    assert baseline_files(project) == []

    result = run(project, "--perfcheck", "--perfcheck-missing=fail", "scenarios/")
    result.assert_outcomes(failed=1)

    # Record.
    result = run(project, "--perfcheck-update", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 RECORDED*", "*baselines written to*"])
    [path] = baseline_files(project)
    data = json.loads(path.read_text())
    assert data["scenario"] == "fake-reads"
    assert len(data["measurement"]["rounds"]) == 5

    # Same performance: passes.
    monkeypatch.setenv("FAKE_SEED", "2")
    result = run(project, "--perfcheck", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 PASS*"])

    # 50% slower: fails, naming metric, values, p-value, threshold, file, refresh command.
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    result = run(project, "--perfcheck", "scenarios/")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*fake-reads regressed*",
            "*block.latency.read.p50: * -> * (+*%, threshold +10%, p=0.004) FAIL*",
            f"*baseline: {path}*",
            "*refresh the baseline: pytest --perfcheck-update*fake-reads*",
            "*block.latency.read, all rounds merged*",
            "*baseline*current*",
            "*usecs*count*distribution*usecs*count*distribution*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    before = path.read_bytes()

    # Refresh with the new performance, then it passes again.
    result = run(project, "--perfcheck-update", "scenarios/")
    result.assert_outcomes(passed=1)
    assert path.read_bytes() != before
    result = run(project, "--perfcheck", "scenarios/")
    result.assert_outcomes(passed=1)


def test_without_perfcheck_scenarios_are_skipped_with_the_reason(project: pytest.Pytester) -> None:
    result = run(project, "-rs", "scenarios/")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*run with --perfcheck*"])


def test_corrupted_baseline_is_a_one_line_error_naming_the_file(project: pytest.Pytester) -> None:
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    [path] = baseline_files(project)
    path.write_text(path.read_text()[:200])
    result = run(project, "--perfcheck", "scenarios/")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{path}*"])
    assert "Traceback" not in result.stdout.str()


def test_bad_scenario_fails_alone_with_one_line(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "broken.toml").write_text(
        SCENARIO.replace("[rounds]", "[rounds]\nwarmups = 2")
    )
    result = run(project, "--perfcheck-update", "scenarios/")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*broken.toml*warmups*"])
    assert "Traceback" not in result.stdout.str()
    assert [p.name for p in baseline_files(project)] == ["fake-reads.json"]


def test_block_latency_fixture_hands_rounds_and_gates_with_marker_thresholds(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_reads="""
        import pytest

        @pytest.mark.perfcheck(scenario="fake-reads", thresholds={"*.p50": 0.8})
        def test_reads(block_latency):
            assert len(block_latency) == 5
            for hist in block_latency.per_round("read"):
                assert hist.total == 200
            p50 = block_latency.merged("read").percentile(50)
            assert 8_000 < p50 < 20_000
        """
    )
    run(project, "--perfcheck-update", "test_reads.py").assert_outcomes(passed=1)
    assert [p.name for p in baseline_files(project)] == ["test_reads.json"]

    # +50% is within the marker's 80% for p50, but p90/p99 keep their defaults.
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    result = run(project, "--perfcheck", "test_reads.py")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "block.latency.read.p99" in out
    assert "block.latency.read.p50" not in out.split("regressed")[1].split("baseline:")[0]

    result = run(project, "test_reads.py")
    result.assert_outcomes(skipped=1)


def test_rounds_option_overrides_the_scenario(project: pytest.Pytester) -> None:
    run(project, "--perfcheck-update", "--perfcheck-rounds", "7", "scenarios/").assert_outcomes(
        passed=1
    )
    [path] = baseline_files(project)
    assert len(json.loads(path.read_text())["measurement"]["rounds"]) == 7
    result = run(project, "--perfcheck", "--perfcheck-rounds", "2", "scenarios/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfcheck-rounds 2: give 3 to 100*"])


def test_baselines_from_another_kernel_are_named_once_at_the_top_of_the_summary(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(project, "--perfcheck-update", "scenarios/")
    result.assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_SEED", "2")
    result = run(project, "--perfcheck", "scenarios/")
    assert "another kernel" not in result.stdout.str()

    [path] = baseline_files(project)
    data = json.loads(path.read_text())
    data["measurement"]["environment"]["kernel.release"] = "6.1.0-older"
    path.write_text(json.dumps(data, indent=1, sort_keys=True))
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    result = run(project, "--perfcheck", "scenarios/")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert out.count("baselines recorded on another kernel") == 1
    result.stdout.fnmatch_lines(
        [
            "*- perfcheck -*",
            "perfcheck: baselines recorded on another kernel than this run's:",
            "  kernel.release: 6.1.0-older -> * (1 of 1 scenarios)",
            "  comparing kernels or machines? this run is the answer*",
            "  just trying perfcheck? record baselines here first*",
            "    pytest --perfcheck-update --perfcheck-baseline-dir=.perfcheck/baselines"
            " scenarios/",
            "    pytest --perfcheck --perfcheck-baseline-dir=.perfcheck/baselines scenarios/",
            "scenario*verdict*",
        ]
    )
    # The commands it shows do what they say.
    result = run(
        project, "--perfcheck-update", "--perfcheck-baseline-dir=.perfcheck/baselines", "scenarios/"
    )
    result.assert_outcomes(passed=1)
    result = run(
        project, "--perfcheck", "--perfcheck-baseline-dir=.perfcheck/baselines", "scenarios/"
    )
    assert "another kernel" not in result.stdout.str()
    result.assert_outcomes(passed=1)
