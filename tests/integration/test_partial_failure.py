"""A scenario whose workload or probe breaks errors with the cause; the others still run,
and the broken one records no baseline."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.fakeproject import SCENARIO, make_project

CONFTEST = textwrap.dedent(
    """
    import os
    from pathlib import Path

    from perfcheck.errors import ProbeError, WorkloadError
    from perfcheck.run.fake import FakeBlockWorkload, FakeProbeBackend, fake_target


    class CrashingWorkload(FakeBlockWorkload):
        def run(self, seconds):
            if self.rounds_run == 2:
                raise WorkloadError("scenarios/crash.fio: fio exited 1 on /dev/fake: killed")
            return super().run(seconds)


    class UnattachableProbes(FakeProbeBackend):
        def start(self):
            raise ProbeError("probes block.latency: failed to compile or attach (EPERM)")


    def pytest_perfcheck_harness(config, harness):
        backend = UnattachableProbes() if os.environ.get("FAKE_NO_PROBES") else FakeProbeBackend()
        harness.probe_factory = lambda names: backend
        harness.target_factory = lambda writes: fake_target()

        def workload(scenario, target):
            kind = CrashingWorkload if scenario.name == "crash" else FakeBlockWorkload
            return kind(backend, lambda r, i: 10_000 + i)

        harness.workload_factory = workload
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_project(pytester, CONFTEST, {"crash": SCENARIO, "fine": SCENARIO})


def written(p: pytest.Pytester) -> list[str]:
    return sorted(path.name for path in Path(p.path, "baselines").rglob("*.json"))


def test_a_crashing_workload_errors_its_scenario_only(project: pytest.Pytester) -> None:
    result = project.runpytest(
        "-p", "no:cacheprovider", "--perfcheck-update", "--perfcheck-save=out.json", "scenarios/"
    )
    # A broken workload is an error of the run, not a regression: pytest's ERROR.
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*crash*fio exited 1 on /dev/fake: killed*",
            "perfcheck: 1 measured on *: 1 RECORDED, 1 ERROR",
            "perfcheck: ERROR crash: scenarios/crash.fio: fio exited 1 on /dev/fake: killed",
            "ERROR scenarios/crash.toml::crash*",
        ]
    )
    saved = json.loads(Path(project.path, "out.json").read_text())
    assert saved["errors"] == {"crash": "scenarios/crash.fio: fio exited 1 on /dev/fake: killed"}
    assert list(saved["scenarios"]) == ["fine"]
    assert "Traceback" not in result.stdout.str()
    assert written(project) == ["fine.json"]


def test_a_probe_that_cannot_attach_errors_every_scenario_and_records_nothing(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NO_PROBES", "1")
    result = project.runpytest("-p", "no:cacheprovider", "--perfcheck-update", "scenarios/")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*failed to compile or attach (EPERM)*"])
    assert written(project) == []


NO_BPF_CONFTEST = CONFTEST.replace(
    'raise ProbeError("probes block.latency: failed to compile or attach (EPERM)")',
    'raise CapabilityError("BPF probes need root (CAP_BPF and CAP_PERFMON): run as root")',
).replace("from perfcheck.errors import", "from perfcheck.errors import CapabilityError,")


def test_without_bpf_the_workloads_own_metrics_are_still_compared(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project.path / "scenarios" / "crash.toml").unlink()
    run = ("-p", "no:cacheprovider", "-rs")
    project.runpytest(*run, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    project.makeconftest(NO_BPF_CONFTEST)
    monkeypatch.setenv("FAKE_NO_PROBES", "1")
    result = project.runpytest(*run, "--perfcheck", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*BPF probes skipped, only the workloads' own metrics were compared:"
            " BPF probes need root*"
        ]
    )

    strict = project.runpytest(*run, "--perfcheck", "--perfcheck-require=bpf", "scenarios/")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*BPF probes need root*"])
