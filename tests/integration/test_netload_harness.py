"""Network scenarios through the harness and the plugin, with a fake network set-up: one
namespace and server per scenario, kept for its extra rounds and stopped when another
scenario starts; probe filters and series; throughput down and latency up FAIL."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.probes.base import ProbeCounters
from perfcheck.run import resources as resources_module
from perfcheck.run.fake import FakeBlockWorkload, FakeProbeBackend
from perfcheck.run.harness import Harness
from perfcheck.run.measure import MIN_PROBE_SAMPLES_PER_ROUND
from perfcheck.run.settings import HarnessSettings
from perfcheck.system.targets import BlockTarget
from perfcheck.workloads.netload import NetworkSpec
from perfcheck.workloads.rounds import WorkloadReport
from perfcheck.workloads.scenario import Scenario, load_scenario

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class FakeNetProbes(FakeProbeBackend):
    """Probe maps that grow by what the fake workload says the kernel saw."""

    def add(self, histograms: dict[str, LogLinearHistogram]) -> None:
        self._state = self._state.merged(ProbeCounters(histograms=histograms))


@dataclass
class FakeRoundTrips:
    probes: FakeNetProbes | None
    rtt_ns: int = 20_000
    runs: list[float] = field(default_factory=list)

    def run(self, seconds: float) -> WorkloadReport:
        self.runs.append(seconds)
        if self.probes is not None:
            self.probes.add(
                {
                    "tcp.srtt": LogLinearHistogram.from_values([self.rtt_ns] * 500),
                    "syscall.latency.recvfrom": LogLinearHistogram.from_values([9_000] * 500),
                    # A client's start-up syscalls: too few to be a percentile.
                    "syscall.latency.execve": LogLinearHistogram.from_values([400_000] * 2),
                }
            )
        return WorkloadReport(
            histograms={"sockperf.rtt": LogLinearHistogram.from_values([self.rtt_ns] * 1000)},
            scalars={"sockperf.round_trips_per_second": 1e9 / self.rtt_ns},
        )


@dataclass
class FakeNetworkSetup:
    spec: NetworkSpec
    workload: FakeRoundTrips
    closes: int = 0

    def probe_settings(self) -> dict[str, int]:
        return {"port": 24242, "cgroup_id": 77}

    def facts(self) -> dict[str, Any]:
        return {"target.kind": "netns", "target.qdisc": "none", "workload.tool": self.spec.kind}

    def provenance(self) -> dict[str, list[str]]:
        return {self.spec.kind: ["fake round trips"]}

    def command_environment(self) -> dict[str, str]:
        return {"PERFCHECK_NETNS": "fake-netns"}

    def close(self) -> None:
        self.closes += 1


RR = """\
description = "fake ping-pong"
probes = ["tcp.srtt", "syscall.latency"]

[workload]
kind = "sockperf"
server_cpu = 0
client_cpu = 0

[rounds]
count = 5
warmup = 1
seconds = 1.0
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def probes() -> FakeNetProbes:
    return FakeNetProbes(provenance={"tcp.srtt": ["fake:tcp_probe"], "syscall.latency": ["x"]})


@pytest.fixture
def started(probes: FakeNetProbes) -> list[FakeNetworkSetup]:
    return []


@pytest.fixture
def harness(
    tmp_path: Path,
    probes: FakeNetProbes,
    started: list[FakeNetworkSetup],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Harness]:
    monkeypatch.setattr(resources_module, "remove_leftover_network", lambda: [])

    def network(scenario: Scenario) -> FakeNetworkSetup:
        assert scenario.workload.network is not None
        setup = FakeNetworkSetup(scenario.workload.network, FakeRoundTrips(probes))
        started.append(setup)
        return setup

    h = Harness(
        HarnessSettings(baseline_dir=tmp_path / "baselines"),
        probe_factory=lambda names: probes,
        network_factory=network,
        target_factory=lambda writes: BlockTarget(Path("/dev/null"), "fake0", 1, True, 0, "fake"),
        workload_factory=lambda scenario, target: FakeBlockWorkload(probes, lambda r, i: 9000),
    )
    yield h
    h.close()


def test_a_network_scenario_runs_its_rounds_on_its_own_setup(
    harness: Harness, probes: FakeNetProbes, started: list[FakeNetworkSetup], tmp_path: Path
) -> None:
    scenario = load_scenario(write(tmp_path / "scenarios", "net-rr", RR))
    measurement = harness.measure(scenario)
    [setup] = started
    assert setup.workload.runs == [1.0] * 6  # one warm-up and five measured rounds
    assert len(measurement.rounds) == 5
    assert probes.settings == {"port": 24242, "cgroup_id": 77}
    assert measurement.environment["target.qdisc"] == "none"
    assert measurement.environment["round.seconds"] == 1.0
    assert measurement.provenance == {
        "sockperf": ["fake round trips"],
        "tcp.srtt": ["fake:tcp_probe"],
        "syscall.latency": ["x"],
    }
    kept = set(measurement.rounds[0].histograms)
    # A probe's own series (tcp.srtt) and its sub-series are kept; one with fewer than
    # MIN_PROBE_SAMPLES_PER_ROUND samples is not, nor another probe's (block.latency).
    assert kept == {"sockperf.rtt", "tcp.srtt", "syscall.latency.recvfrom"}
    assert MIN_PROBE_SAMPLES_PER_ROUND > 2
    assert "tcp.srtt.p99" in measurement.metric_series()


def test_extra_rounds_reuse_the_setup_and_another_scenario_stops_it(
    harness: Harness, started: list[FakeNetworkSetup], tmp_path: Path
) -> None:
    first = load_scenario(write(tmp_path / "scenarios", "net-a", RR))
    second = load_scenario(write(tmp_path / "scenarios", "net-b", RR))
    measurement = harness.measure(first)
    harness.measure_more(first, measurement, 3)
    assert len(measurement.rounds) == 8
    assert [r.index for r in measurement.rounds] == list(range(8))
    assert len(started) == 1
    assert started[0].workload.runs == [1.0] * 9  # no warm-up for the extra rounds

    harness.measure(second)
    assert len(started) == 2
    assert started[0].closes == 1 and started[1].closes == 0

    fio = write(tmp_path / "scenarios", "disk", '[workload]\nkind = "fio"\njob = "j.fio"\n')
    (fio.parent / "j.fio").write_text("[j]\nrw=randread\n")
    harness.measure(load_scenario(fio))  # no idle server around while disks are measured
    assert started[1].closes == 1

    harness.close()
    assert all(s.closes >= 1 for s in started)


def test_close_stops_the_running_network_scenario(
    harness: Harness, started: list[FakeNetworkSetup], tmp_path: Path
) -> None:
    harness.measure(load_scenario(write(tmp_path / "scenarios", "net-rr", RR)))
    harness.close()
    assert started[0].closes >= 1


def test_leftovers_of_killed_runs_are_cleaned_once_and_reported(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def leftovers() -> list[str]:
        calls.append(1)
        return ["deleted network namespace perfcheck-net-1-ab (left by process 1)"]

    monkeypatch.setattr(resources_module, "remove_leftover_network", leftovers)
    monkeypatch.setattr(resources_module, "restore_leftover_knobs", lambda: [])
    monkeypatch.setattr(resources_module, "remove_leftover_scratch", lambda: [])
    scenario = load_scenario(write(tmp_path / "scenarios", "net-rr", RR))
    harness.measure(scenario)
    harness.measure(scenario)
    assert calls == [1]
    line = "deleted network namespace perfcheck-net-1-ab (left by process 1)"
    assert [n for n in harness.notices if n.endswith(line)] == harness.notices
    assert len(harness.notices) == 1


def test_a_skipped_leftover_is_reported_as_skipped_not_as_cleaned(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skipped = "skipped /dev/shm/perfcheck-scratch-7-0123abcd.img: not a regular file, not a"
    monkeypatch.setattr(resources_module, "remove_leftover_network", lambda: [])
    monkeypatch.setattr(resources_module, "restore_leftover_knobs", lambda: [])
    monkeypatch.setattr(resources_module, "remove_leftover_scratch", lambda: [skipped])
    harness.measure(load_scenario(write(tmp_path / "scenarios", "net-rr", RR)))
    assert harness.notices == [skipped]


# -- the whole cycle through the plugin: record, pass, regress, fail ------------------------

PLUGIN_CONFTEST = textwrap.dedent(
    """
    import os
    from dataclasses import dataclass

    from perfcheck.run import resources as resources_module
    from perfcheck.model.histogram import LogLinearHistogram
    from perfcheck.workloads.rounds import WorkloadReport

    @dataclass
    class Setup:
        spec: object
        workload: object

        def probe_settings(self):
            return {"port": 1, "cgroup_id": 0}

        def facts(self):
            return {"target.kind": "netns", "target.qdisc": os.environ.get("FAKE_QDISC", "none")}

        def provenance(self):
            return {"iperf3": ["fake"], "sockperf": ["fake"]}

        def command_environment(self):
            return {"PERFCHECK_NETNS": "fake-netns"}

        def close(self):
            pass

    class Load:
        def __init__(self, kind):
            self.kind = kind
            self.round = 0

        def run(self, seconds):
            self.round += 1
            wobble = 1.0 + 0.002 * (self.round % 5)
            if self.kind == "iperf3":
                bits = 10e9 * wobble * float(os.environ.get("FAKE_THROUGHPUT", "1.0"))
                return WorkloadReport(scalars={"iperf3.bits_per_second": bits})
            rtt = int(20_000 * wobble * float(os.environ.get("FAKE_RTT", "1.0")))
            return WorkloadReport(
                histograms={"sockperf.rtt": LogLinearHistogram.from_values([rtt] * 1000)}
            )

    def pytest_perfcheck_harness(config, harness):
        harness.network_factory = lambda scenario: Setup(
            scenario.workload.network, Load(scenario.workload.kind)
        )
    """
)


def stream_and_rr(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PLUGIN_CONFTEST)
    scenarios = pytester.path / "scenarios"
    rounds = "[rounds]\ncount = 5\nwarmup = 0\nseconds = 1.0\n"
    write(scenarios, "net-stream", f'[workload]\nkind = "iperf3"\nstreams = 2\n\n{rounds}')
    write(scenarios, "net-rr", f'[workload]\nkind = "sockperf"\n\n{rounds}')


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "--perfcheck", "--perfcheck-baseline-dir=baselines", "-p", "no:cacheprovider", *args,
        "scenarios/",
    )  # fmt: skip


def test_throughput_down_and_latency_up_fail_against_the_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream_and_rr(pytester)
    recorded = run(pytester, "--perfcheck-update")
    assert recorded.ret == 0, recorded.stdout.str()
    assert run(pytester).ret == 0

    monkeypatch.setenv("FAKE_THROUGHPUT", "0.5")
    monkeypatch.setenv("FAKE_RTT", "1.5")
    monkeypatch.setenv("FAKE_QDISC", "tbf rate 5gbit burst 1mb latency 10ms")
    slower = run(pytester)
    assert slower.ret == pytest.ExitCode.TESTS_FAILED
    slower.stdout.fnmatch_lines_random(
        [
            "*net-stream regressed*",
            "*iperf3.bits_per_second: 10.0 Gbit/s -> 5.0* Gbit/s (-50.0%, threshold -10%, p=*)"
            " FAIL*",
            "*target.qdisc: none -> tbf rate 5gbit burst 1mb latency 10ms*",
            "*net-rr regressed*",
            "*sockperf.rtt.p50: * us -> * us (+4*%, threshold +10%, p=*) FAIL*",
        ]
    )

    monkeypatch.setenv("FAKE_THROUGHPUT", "2.0")  # faster is never a regression
    monkeypatch.setenv("FAKE_RTT", "0.5")
    assert run(pytester).ret == 0


def test_each_scenario_is_measured_with_only_its_own_probes_attached(
    harness: Harness, probes: FakeNetProbes, tmp_path: Path
) -> None:
    # One program holds every probe the run declared, but a disk scenario measured after
    # a network one must not pay for the network probes' handlers (or the other way).
    net = load_scenario(write(tmp_path / "scenarios", "net-rr", RR))
    disk_file = write(
        tmp_path / "scenarios",
        "disk",
        'probes = ["block.latency"]\n[workload]\nkind = "fio"\njob = "j.fio"\n',
    )
    (disk_file.parent / "j.fio").write_text("[j]\nrw=randread\n")
    bare_file = write(
        tmp_path / "scenarios", "bare", 'probes = []\n[workload]\nkind = "fio"\njob = "j.fio"\n'
    )
    disk, bare = load_scenario(disk_file), load_scenario(bare_file)
    harness.want_probes({*net.probes, *disk.probes})

    harness.measure(net)
    assert probes.activations[-1] == ("tcp.srtt", "syscall.latency")
    harness.measure(disk)
    assert probes.activations[-1] == ("block.latency",)
    harness.measure(bare)
    assert probes.activations[-1] == ()
    harness.measure_more(net, harness.measure(net), 2)
    assert probes.activations[-2:] == [("tcp.srtt", "syscall.latency")] * 2
