"""INCONCLUSIVE is shown, counted and explained (environment diff, probe provenance), fails
only under --perfcheck-strict; a baseline from other probe points is refused in one line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from perfcheck.errors import BaselineError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.stats.gate import check_provenance, judge
from perfcheck.store.baseline import Baseline
from tests.fakeproject import make_project, record_then_slow_down, run, scenario_text

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFTEST = textwrap.dedent(
    """
    import math
    import os
    import random
    from pathlib import Path

    from perfcheck.run.fake import FakeProbeBackend, use_fakes


    def pytest_perfcheck_harness(config, harness):
        events = os.environ.get("FAKE_EVENTS", "fake:block_rq_issue,fake:block_rq_complete")
        backend = FakeProbeBackend({"block.latency": events.split(",")})
        slowdown = float(os.environ.get("FAKE_SLOWDOWN", "1.0"))
        rng = random.Random(int(os.environ.get("FAKE_SEED", "1")))

        def latency(round_no, i):
            return int(rng.lognormvariate(math.log(10_000 * slowdown), 0.05))

        use_fakes(harness, latency, backend)
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_project(pytester, CONFTEST, {"fake-reads": scenario_text(rounds=3)})


# 3 rounds against 3 can never reach p < 0.01: a 50% slowdown is INCONCLUSIVE.
UNDECIDABLE = ("--perfcheck-max-rounds", "3", "--perfcheck-seconds", "0.25")


def test_inconclusive_passes_and_is_explained_with_the_environment_diff(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = record_then_slow_down(project, monkeypatch, 1.5)
    result = run(project, "--perfcheck", *UNDECIDABLE, f"--perfcheck-save={saved}", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "perfcheck: 1 measured on *: 1 INCONCLUSIVE",
            "  fake-reads: block.latency.read.p50: * INCONCLUSIVE (needs about * rounds per side)",
            "    baseline: *fake-reads.json (recorded *, 3 rounds vs 3 now)",
            "    environment changed since the baseline:",
            "      round.seconds: 0.5 -> 0.25",
            "perfcheck: INCONCLUSIVE does not fail the run; --perfcheck-strict makes it fail",
        ]
    )
    scenario = json.loads(saved.read_text())["scenarios"]["fake-reads"]
    assert scenario["status"] == "INCONCLUSIVE"
    assert {"key": "round.seconds", "baseline": 0.5, "current": 0.25} in scenario["decision"][
        "environment_changes"
    ]


def test_strict_makes_inconclusive_fail_the_test_with_the_full_explanation(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    result = run(project, "--perfcheck", "--perfcheck-strict", *UNDECIDABLE, "scenarios/")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*perfcheck: fake-reads is inconclusive: * of * metrics INCONCLUSIVE*",
            "*block.latency.read.p50*INCONCLUSIVE*",
            "*environment changed since the baseline:*",
            "*round.seconds: 0.5 -> 0.25*",
            "*refresh the baseline: pytest --perfcheck-update*",
            "*INCONCLUSIVE fails the test under --perfcheck-strict*",
        ]
    )
    # A clean PASS stays a pass under --perfcheck-strict.
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.0")
    run(project, "--perfcheck", "--perfcheck-strict", "scenarios/").assert_outcomes(passed=1)


def test_other_probe_points_than_the_baselines_are_refused_in_one_line(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_EVENTS", "fake:block_rq_insert,fake:block_rq_complete")
    result = run(project, "--perfcheck", "scenarios/")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*fake-reads: probe block.latency measured fake:block_rq_issue,"
            " fake:block_rq_complete in *fake-reads.json but fake:block_rq_insert,"
            " fake:block_rq_complete now; these histograms are not comparable*"
        ]
    )
    assert "Traceback" not in result.stdout.str()


def measurement(events: list[str]) -> Measurement:
    rounds = [
        RoundResult(i, 1.0, {"block.latency.read": LogLinearHistogram.from_values([10_000] * 9)})
        for i in range(3)
    ]
    return Measurement("reads", rounds, {"kernel.release": "k"}, {"block.latency": events})


def test_provenance_check_compares_only_probes_both_sides_have(tmp_path: Path) -> None:
    base = Baseline.record(measurement(["tp:a", "tp:b"]), "m")
    base.path = tmp_path / "reads.json"
    check_provenance("reads", measurement(["tp:a", "tp:b"]), base)
    more = measurement(["tp:a", "tp:b"])
    more.provenance["sched.runqlat"] = ["tp:sched_wakeup"]
    verdict = judge("reads", more, base)  # a probe only now: compared, and shown in the diff
    assert ("probes.sched.runqlat", None, "tp:sched_wakeup") in verdict.environment_changes()
    with pytest.raises(BaselineError) as info:
        check_provenance("reads", measurement(["raw:a", "raw:b"]), base)
    message = str(info.value)
    assert "\n" not in message
    assert str(base.path) in message and "tp:a, tp:b" in message and "raw:a, raw:b" in message
