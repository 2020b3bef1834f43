"""A scenario naming a probe this machine cannot load: the probe is left out with its
reason and fix, the scenario's other probes and the workload's metrics are still
compared; only an optional probe is left out under ``--perfcheck-require=bpf``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from perfcheck.probes import CATALOG
from perfcheck.probes.features import bpf_prerequisites_missing
from perfcheck.probes.func import FuncLatencyProbe
from perfcheck.run.resources import catalog_unavailable
from tests.fakeproject import SCENARIO, make_project
from tests.realcaps import requires_bpf, requires_fio

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFTEST = textwrap.dedent(
    """
    import json
    import os
    from pathlib import Path

    from perfcheck.run.fake import FakeProbeBackend, use_fakes
    from perfcheck.probes.features import Unavailable

    MISSING = os.environ.get("FAKE_MISSING_PROBE", "func.latency")


    def pytest_perfcheck_harness(config, harness):
        backend = FakeProbeBackend()

        def factory(names):
            Path("started-probes.json").write_text(json.dumps(names))
            return backend

        harness.probe_availability = lambda names: {
            name: Unavailable("kprobes are absent on this kernel", "boot a kernel with kprobes")
            for name in names
            if name == MISSING
        }
        use_fakes(harness, lambda r, i: 10_000 + i, backend)
        harness.probe_factory = factory
    """
)

RUN = ("-p", "no:cacheprovider")
SKIP_LINE = (
    "perfcheck: probe func.latency skipped, its metrics were not compared:"
    " kprobes are absent on this kernel; fix: boot a kernel with kprobes"
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    both = SCENARIO.replace(
        'probes = ["block.latency"]', 'probes = ["block.latency", "func.latency"]'
    )
    assert both != SCENARIO
    return make_project(pytester, CONFTEST, {"reads": both})


def started(p: pytest.Pytester) -> list[str]:
    names: list[str] = json.loads(Path(p.path, "started-probes.json").read_text())
    return names


def test_an_unloadable_probe_is_left_out_with_its_reason(project: pytest.Pytester) -> None:
    project.runpytest(*RUN, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    result = project.runpytest(*RUN, "--perfcheck", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([SKIP_LINE])
    # The session compiled only what loads; the block probe's metrics were still judged.
    assert started(project) == ["block.latency"]
    result.stdout.fnmatch_lines(["*block.latency.read*"])


def test_an_optional_probe_is_left_out_even_when_bpf_is_required(
    project: pytest.Pytester,
) -> None:
    assert FuncLatencyProbe.optional
    project.runpytest(*RUN, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    result = project.runpytest(*RUN, "--perfcheck", "--perfcheck-require=bpf", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([SKIP_LINE])


def test_a_required_probe_that_cannot_load_is_an_error_when_bpf_is_required(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_MISSING_PROBE", "block.latency")
    project.runpytest(*RUN, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    lenient = project.runpytest(*RUN, "--perfcheck", "scenarios/")
    lenient.assert_outcomes(passed=1)
    lenient.stdout.fnmatch_lines(["*probe block.latency skipped*kprobes are absent*"])
    strict = project.runpytest(*RUN, "--perfcheck", "--perfcheck-require=bpf", "scenarios/")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*probe block.latency cannot load here: kprobes are absent*"])


def test_a_scenario_whose_only_probe_cannot_load_compares_the_workload_alone(
    project: pytest.Pytester,
) -> None:
    only = SCENARIO.replace('probes = ["block.latency"]', 'probes = ["func.latency"]')
    (project.path / "scenarios" / "reads.toml").write_text(only)
    project.runpytest(*RUN, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    result = project.runpytest(*RUN, "--perfcheck", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([SKIP_LINE])
    assert not Path(project.path, "started-probes.json").exists()


@pytest.mark.skipif(
    bpf_prerequisites_missing() is not None, reason="BPF prerequisites missing (see doctor)"
)
def test_the_catalog_check_names_exactly_the_probes_this_kernel_lacks() -> None:
    skipped = catalog_unavailable(sorted(CATALOG))
    for name, probe in CATALOG.items():
        check = getattr(probe, "unavailable", None)
        assert (name in skipped) == (check is not None and check() is not None)
    for reason in skipped.values():
        assert reason.reason and reason.fix and "\n" not in str(reason)


REAL_SCENARIO = textwrap.dedent(
    """
    description = "reads, with a kernel-function probe that may be absent"
    probes = ["block.latency", "func.latency"]

    [workload]
    kind = "fio"
    job = "{job}"

    [rounds]
    count = 4
    warmup = 1
    seconds = 0.5
    """
)


@pytest.mark.realbpf
@pytest.mark.realfio
@requires_bpf
@requires_fio
def test_on_this_kernel_for_real(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Real bcc, real fio: func.latency loads where kprobes exist and is skipped with the
    kernel's own reason where they do not; block.latency is measured either way."""
    job = Path(__file__).resolve().parents[2] / "scenarios" / "randread-4k.fio"
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "reads.toml").write_text(REAL_SCENARIO.format(job=job))
    baselines = tmp_path / "baselines"
    args = (*RUN, f"--perfcheck-baseline-dir={baselines}", "--perfcheck-require=bpf")
    result = pytester.runpytest_subprocess(*args, "--perfcheck-update", "scenarios/", timeout=300)
    assert result.ret == 0, result.stdout.str()
    [written] = baselines.rglob("reads.json")
    series = json.loads(written.read_text())["measurement"]["rounds"][0]["histograms"]
    assert any(name.startswith("block.latency.read") for name in series)
    reason = FuncLatencyProbe.unavailable()
    if reason is None:
        assert "func.latency" in series
        assert "probe func.latency skipped" not in result.stdout.str()
    else:
        assert "func.latency" not in series
        result.stdout.fnmatch_lines([f"perfcheck: probe func.latency skipped*{reason.fix}*"])
