"""block.latency for real: a bcc program on the block tracepoints around real fio."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from perfcheck.probes import BlockLatencyProbe
from perfcheck.probes.session import ProbeSession
from perfcheck.run.measure import FioWorkload, measure
from perfcheck.system.targets import ScratchLoopDevice
from perfcheck.workloads.fio import FioRunner, load_job_file
from perfcheck.workloads.rounds import RoundPlan, run_rounds
from perfcheck.workloads.scenario import load_scenario
from tests.blockcounts import merged_requests, probe_saw_requests
from tests.realcaps import REAL_BPF_AND_FIO

pytestmark = [*REAL_BPF_AND_FIO, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def scratch() -> Iterator[ScratchLoopDevice]:
    with ScratchLoopDevice.create(256) as target:
        yield target


@pytest.fixture(scope="module")
def probes() -> Iterator[ProbeSession]:
    session = ProbeSession([BlockLatencyProbe()])
    session.start()
    yield session
    session.close()


def test_probe_and_fio_report_the_same_round_side_by_side(
    scratch: ScratchLoopDevice, probes: ProbeSession, capsys: pytest.CaptureFixture[str]
) -> None:
    probes.configure({"dev": scratch.probe_dev})
    job = load_job_file(SCENARIOS / "randread-4k.fio")
    plan = RoundPlan(rounds=3, warmup=1, seconds=0.5)
    before = merged_requests(scratch.disk)
    rounds = run_rounds(plan, FioWorkload(FioRunner(job, scratch.path, scratch.writable)), probes)
    assert len(rounds) == 3
    # Random 4 KiB reads at depth 1 never sit in the queue together, so none merge.
    assert merged_requests(scratch.disk) == before
    with capsys.disabled():
        print("\nround  probe n  fio n    probe p50  fio p50    probe p99  fio p99   (us)")
    for rnd in rounds:
        probe = rnd.histograms["block.latency.read"]
        fio = rnd.histograms["fio.clat.read"]
        # Every fio I/O is one 4 KiB request: the probe sees fio's count.
        assert fio.total > 1000
        assert probe_saw_requests(probe.total, fio.total)
        # The block layer sits inside fio's completion latency.
        assert probe.percentile(50) < fio.percentile(50)
        assert 500 < probe.percentile(50) < 5_000_000
        with capsys.disabled():
            print(
                f"{rnd.index:5d}  {probe.total:7d}  {fio.total:7d}  "
                f"{probe.percentile(50) / 1e3:9.1f}  {fio.percentile(50) / 1e3:8.1f}  "
                f"{probe.percentile(99) / 1e3:9.1f}  {fio.percentile(99) / 1e3:8.1f}"
            )
    assert "block.latency.write" not in rounds[0].histograms


def test_writes_are_split_by_operation(scratch: ScratchLoopDevice, probes: ProbeSession) -> None:
    probes.configure({"dev": scratch.probe_dev})
    job = load_job_file(SCENARIOS / "randrw-70-30.fio")
    before = merged_requests(scratch.disk)
    [rnd] = run_rounds(
        RoundPlan(rounds=1, warmup=0, seconds=0.5),
        FioWorkload(FioRunner(job, scratch.path, scratch.writable)),
        probes,
    )
    after = merged_requests(scratch.disk)
    reads, writes = rnd.histograms["block.latency.read"], rnd.histograms["block.latency.write"]
    for op, probe, fio in (
        ("read", reads, rnd.histograms["fio.clat.read"]),
        ("write", writes, rnd.histograms["fio.clat.write"]),
    ):
        # Four in flight: now and then two random I/Os land next to each other and the
        # block layer merges them into one request, which the probe rightly counts once.
        merged = after[op] - before[op]
        assert merged <= fio.total // 1_000
        assert probe_saw_requests(probe.total, fio.total, merged)
    assert 0.6 < reads.total / (reads.total + writes.total) < 0.8


def test_a_sampled_scenario_times_one_request_in_n_and_says_so(
    scratch: ScratchLoopDevice, probes: ProbeSession
) -> None:
    # The shipped randread scenario with block_sample = 8, through the runner.
    scenario = replace(load_scenario(SCENARIOS / "randread-4k.toml"), block_sample=8)
    measurement = measure(scenario, scratch, probes, rounds=2, seconds=0.5)
    assert measurement.provenance["block.latency"][-1] == "sample:1/8"
    for rnd in measurement.rounds:
        timed, fio = rnd.histograms["block.latency.read"].total, rnd.histograms["fio.clat.read"]
        # The runner's cross-check passed; the share is an eighth, give or take.
        assert fio.total > 1000
        assert 0.6 < timed * 8 / fio.total < 1.4, (timed, fio.total)
    # Back to every request for the next scenario.
    measurement = measure(replace(scenario, block_sample=1), scratch, probes, rounds=1, seconds=0.3)
    assert "sample:1/8" not in measurement.provenance["block.latency"]
    rnd = measurement.rounds[0]
    assert probe_saw_requests(
        rnd.histograms["block.latency.read"].total, rnd.histograms["fio.clat.read"].total
    )


def test_other_disks_are_filtered_out_in_the_kernel(
    scratch: ScratchLoopDevice, probes: ProbeSession
) -> None:
    with ScratchLoopDevice.create(64) as other:
        probes.configure({"dev": other.probe_dev})
        before = probes.snapshot()
        FioRunner(load_job_file(SCENARIOS / "randread-4k.fio"), scratch.path, scratch.writable).run(
            0.3
        )
        seen = probes.snapshot().since(before)
    assert sum(h.total for h in seen.histograms.values()) == 0


def test_compile_and_attach_once_then_rounds_reuse_the_program(scratch: ScratchLoopDevice) -> None:
    session = ProbeSession([BlockLatencyProbe()])
    started = time.perf_counter()
    session.start()
    try:
        assert session.compile_seconds is not None
        assert session.compile_seconds <= time.perf_counter() - started
        program = session._bpf
        session.configure({"dev": scratch.probe_dev})
        job = load_job_file(SCENARIOS / "randread-4k.fio")
        run_rounds(
            RoundPlan(rounds=2, warmup=0, seconds=0.2),
            FioWorkload(FioRunner(job, scratch.path, scratch.writable)),
            session,
        )
        assert session._bpf is program
    finally:
        session.close()
    assert session._bpf is None


def test_the_generated_program_contains_the_shared_bucket_function() -> None:
    text = ProbeSession([BlockLatencyProbe()]).program_text
    assert "perfcheck_bucket(" in text
    for _, event in BlockLatencyProbe.tracepoints:
        assert f"({event})" in text or f"(block, {event})" in text
