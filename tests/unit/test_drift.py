"""Drift control: the control workload, its comparison, and FAIL -> INCONCLUSIVE when the
machine itself got slower (unit level and through the plugin with the fake backend)."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from perfcheck.model.control import CONTROL_WORKLOAD, ControlMeasurement, metric_name
from perfcheck.stats.drift import check_drift, downgrade_for_drift
from perfcheck.stats.verdict import Verdict, compare_metric
from perfcheck.workloads.control import measure_control
from tests.fakeproject import SCENARIO, make_project, run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def control(
    scale: float, cpus: tuple[int, ...] = (0, 1), workload: str = CONTROL_WORKLOAD
) -> ControlMeasurement:
    values = [1000.0 + 3.0 * i for i in range(7)]
    return ControlMeasurement({cpu: [v * scale for v in values] for cpu in cpus}, workload)


def test_measure_control_times_every_cpu_with_the_rounds_asked() -> None:
    cpus = sorted(os.sched_getaffinity(0))[:2]
    got = measure_control(cpus=cpus, rounds=2, passes=1)
    assert sorted(got.rounds) == cpus
    assert all(len(v) == 2 and all(x > 0 for x in v) for v in got.rounds.values())
    assert got.workload == CONTROL_WORKLOAD
    assert os.sched_getaffinity(0) >= set(cpus)  # the CPU set is put back


def test_same_machine_is_no_drift() -> None:
    drift = check_drift(control(1.0), control(1.01))
    assert drift is not None and not drift.drifted and drift.text == ""


def test_slower_control_beyond_its_noise_is_drift_named_in_percent() -> None:
    drift = check_drift(control(1.0), control(1.3))
    assert drift is not None and drift.drifted
    assert drift.slowdown == pytest.approx(0.3, abs=0.01)
    assert drift.text.startswith("machine is 30% slower than when the baseline was recorded")


def test_only_one_cpu_slower_names_that_cpu() -> None:
    current = control(1.0)
    current.rounds[1] = [v * 1.5 for v in current.rounds[1]]
    drift = check_drift(control(1.0), current)
    assert drift is not None and drift.drifted
    assert "CPU 1" in drift.text


def test_faster_machine_or_a_small_slowdown_is_not_drift() -> None:
    for scale in (0.5, 1.05):
        drift = check_drift(control(1.0), control(scale))
        assert drift is not None and not drift.drifted


def test_no_control_on_either_side_means_no_check() -> None:
    assert check_drift(None, control(1.0)) is None
    assert check_drift(control(1.0), None) is None


def test_controls_of_different_workloads_are_not_compared() -> None:
    drift = check_drift(control(1.0), control(2.0, workload="other-v9"))
    assert drift is not None and not drift.drifted and "differ" in drift.skipped


def test_drift_turns_fails_into_inconclusive_and_leaves_the_rest() -> None:
    fail = compare_metric("m.p50", [10.0] * 5, [20.0, 21, 22, 23, 24])
    passed = compare_metric("m.p99", [10.0] * 5, [10.0] * 5)
    assert (fail.verdict, passed.verdict) == (Verdict.FAIL, Verdict.PASS)
    drift = check_drift(control(1.0), control(1.4))
    out = downgrade_for_drift([fail, passed], drift)
    assert [c.verdict for c in out] == [Verdict.INCONCLUSIVE, Verdict.PASS]
    assert "machine is 40% slower" in out[0].reason
    assert downgrade_for_drift([fail], check_drift(control(1.0), control(1.0)))[0] is fail


def test_control_serialises_with_cpu_numbers_as_keys() -> None:
    got = control(1.0)
    data = json.loads(json.dumps(got.to_dict()))
    assert set(data["rounds"]) == {"0", "1"}
    assert ControlMeasurement.from_dict(data) == got
    assert list(got.metric_series()) == [metric_name(0), metric_name(1)]


# -- through the plugin --------------------------------------------------------------------------

CONFTEST = textwrap.dedent(
    """
    import math
    import os
    import random
    from pathlib import Path

    from perfcheck.stats.drift import ControlMeasurement
    from perfcheck.run.fake import FakeProbeBackend, use_fakes


    def pytest_perfcheck_harness(config, harness):
        backend = FakeProbeBackend()
        slowdown = float(os.environ.get("FAKE_SLOWDOWN", "1.0"))
        machine = float(os.environ.get("FAKE_MACHINE_SLOWDOWN", "1.0"))
        rng = random.Random(int(os.environ.get("FAKE_SEED", "1")))

        def latency(round_no, i):
            return int(rng.lognormvariate(math.log(10_000 * slowdown), 0.05))

        def control():
            harness.control_runs = getattr(harness, "control_runs", 0) + 1
            values = [machine * (1000.0 + rng.random()) for _ in range(7)]
            return ControlMeasurement({0: values, 1: list(values)})

        harness.control_factory = control
        use_fakes(harness, latency, backend)
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_project(pytester, CONFTEST, {"fake-reads": SCENARIO, "fake-reads-2": SCENARIO})


def test_control_is_stored_and_a_slower_machine_makes_a_fail_inconclusive(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project, "--perfcheck-update", "--perfcheck-control", "scenarios/").assert_outcomes(
        passed=2
    )
    for path in (project.path / "baselines").rglob("*.json"):
        stored = json.loads(path.read_text())["control"]
        assert stored["workload"] == CONTROL_WORKLOAD and set(stored["rounds"]) == {"0", "1"}

    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    monkeypatch.setenv("FAKE_MACHINE_SLOWDOWN", "1.5")
    saved = project.path / "slower.json"
    result = run(
        project, "--perfcheck", "--perfcheck-control", f"--perfcheck-save={saved}", "scenarios/"
    )
    result.assert_outcomes(passed=2)
    # The results file keeps the run's control, so `perfcheck compare` can check drift too.
    assert set(json.loads(saved.read_text())["control"]["rounds"]) == {"0", "1"}
    result.stdout.fnmatch_lines(
        [
            "*fake-reads*block.latency.read.p50*(+*%, threshold +10%, p=0.004) INCONCLUSIVE*",
            "*drift control: machine is 50% slower than when the baseline was recorded*"
            "FAILs are reported as INCONCLUSIVE*",
        ]
    )

    # Same regression on an unchanged machine: FAIL.
    monkeypatch.setenv("FAKE_MACHINE_SLOWDOWN", "1.0")
    run(project, "--perfcheck", "--perfcheck-control", "scenarios/").assert_outcomes(failed=2)

    # Without the option the control is not measured and the FAIL stands.
    monkeypatch.setenv("FAKE_MACHINE_SLOWDOWN", "1.5")
    run(project, "--perfcheck", "scenarios/").assert_outcomes(failed=2)


def test_ini_switch_turns_the_control_on(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nperfcheck_control = true\n")
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=2)
    for path in (project.path / "baselines").rglob("*.json"):
        assert json.loads(path.read_text())["control"] is not None
