"""Rounds: warm-up discarded, maps diffed per round, the probe cross-checked against fio."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfcheck.errors import ProbeError
from perfcheck.model.histogram import LogLinearHistogram, bucket_bounds, bucket_index
from perfcheck.probes.base import ProbeCounters
from perfcheck.run.fake import FakeBlockWorkload, FakeProbeBackend
from perfcheck.workloads.rounds import RoundPlan, WorkloadReport, cross_check, run_rounds


def test_warmup_is_discarded_and_each_round_sees_only_its_own_requests() -> None:
    backend = FakeProbeBackend()
    workload = FakeBlockWorkload(backend, lambda r, i: 1000 * r + i, requests=50)
    progress: list[tuple[int, int, bool]] = []
    rounds = run_rounds(
        RoundPlan(rounds=3, warmup=2, seconds=0.1),
        workload,
        backend,
        progress=lambda n, total, warm: progress.append((n, total, warm)),
    )
    assert workload.rounds_run == 5
    assert [r.index for r in rounds] == [0, 1, 2]
    assert progress == [(1, 5, True), (2, 5, True), (3, 5, False), (4, 5, False), (5, 5, False)]
    for number, rnd in zip((3, 4, 5), rounds, strict=True):
        hist = rnd.histograms["block.latency.read"]
        assert hist.total == 50
        # Round n's latencies are 1000*n .. 1000*n+49: nothing from other rounds leaks in.
        low = bucket_bounds(bucket_index(1000 * number))[0]
        high = bucket_bounds(bucket_index(1000 * number + 49))[1]
        assert low <= hist.percentile(1) and hist.percentile(100) <= high
        assert rnd.scalars["fio.iops.read"] == 500.0


def test_without_probes_only_the_workload_report_is_kept() -> None:
    backend = FakeProbeBackend()
    workload = FakeBlockWorkload(backend, lambda r, i: 5000, requests=10)
    [rnd] = run_rounds(RoundPlan(rounds=1, warmup=0, seconds=1.0), workload, None)
    assert set(rnd.histograms) == {"fio.clat.read"}


def counters(requests: int, nbytes: int) -> ProbeCounters:
    return ProbeCounters(
        histograms={"block.latency.read": LogLinearHistogram.empty()},
        counters={"block.requests.read": requests, "block.bytes.read": nbytes},
    )


def test_cross_check_accepts_split_requests_when_bytes_agree() -> None:
    cross_check(counters(2000, 1000 << 20), WorkloadReport(ios=1000, io_bytes=1000 << 20))


def test_cross_check_accepts_a_small_disagreement() -> None:
    cross_check(counters(990, 0), WorkloadReport(ios=1000, io_bytes=4096000))


def test_cross_check_rejects_a_wrong_target() -> None:
    with pytest.raises(ProbeError) as info:
        cross_check(counters(12, 12 * 4096), WorkloadReport(ios=1000, io_bytes=1000 * 4096))
    assert str(info.value).startswith(
        "probe saw 12 requests, fio issued 1000: wrong target or probe"
    )


def test_cross_check_with_sampling_expects_one_request_in_n() -> None:
    report = WorkloadReport(ios=40_000, io_bytes=40_000 * 4096)
    cross_check(counters(5_000, 5_000 * 4096), report, sample=8)
    # Six binomial standard deviations (6 * 66) and 3% on top of 5,000 expected.
    cross_check(counters(5_500, 5_500 * 4096), report, sample=8)
    with pytest.raises(ProbeError, match="sampling 1 request in 8: wrong target or probe"):
        cross_check(counters(6_000, 6_000 * 4096), report, sample=8)
    with pytest.raises(ProbeError, match="sampling 1 request in 8"):
        cross_check(counters(40_000, 40_000 * 4096), report, sample=8)


@settings(max_examples=200, deadline=None)
@given(
    ios=st.integers(200, 2_000_000),
    sample=st.integers(2, 1024),
    z=st.floats(-5.0, 5.0),
)
def test_a_random_sample_within_five_deviations_always_passes(
    ios: int, sample: int, z: float
) -> None:
    share = 1 / sample
    seen = max(0, round(ios * share + z * (ios * share * (1 - share)) ** 0.5))
    cross_check(counters(seen, seen * 4096), WorkloadReport(ios=ios, io_bytes=ios * 4096), sample)


def test_a_round_whose_probe_saw_nothing_is_an_error_not_a_regression() -> None:
    backend = FakeProbeBackend()

    class Blind(FakeBlockWorkload):
        def run(self, seconds: float) -> WorkloadReport:
            # fio did I/O, but the probe was told nothing (wrong device, broken probe).
            return WorkloadReport(ios=self.requests, io_bytes=self.requests * self.size)

    with pytest.raises(ProbeError, match="probe saw 0 requests, fio issued 20"):
        run_rounds(
            RoundPlan(rounds=3, warmup=0, seconds=1.0),
            Blind(backend, lambda r, i: 1000, requests=20),
            backend,
        )
