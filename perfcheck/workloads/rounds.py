"""Warm-up, then N measured rounds; each round's histograms are the probe maps diffed
around the workload, plus the workload's own report.

The statistical unit downstream is the round, so each round must be a complete,
independent measurement: same workload, same length, probes already attached.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from perfcheck.errors import ProbeError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import RoundResult
from perfcheck.probes.base import ProbeCounters
from perfcheck.probes.session import ProbeBackend

#: Largest relative disagreement tolerated between the probe's and the workload's I/O
#: accounting before a round is declared broken (wrong target or probe).
CROSS_CHECK_TOLERANCE = 0.03


@dataclass
class WorkloadReport:
    """What a workload tool measured itself in one round."""

    histograms: dict[str, LogLinearHistogram] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)
    ios: int = 0
    io_bytes: int = 0


class Workload(Protocol):
    def run(self, seconds: float) -> WorkloadReport: ...


@dataclass(frozen=True)
class RoundPlan:
    rounds: int
    warmup: int
    seconds: float

    @property
    def total(self) -> int:
        return self.rounds + self.warmup


#: Called before each round: (round number from 1, total rounds incl. warm-up, is_warmup).
ProgressCallback = Callable[[int, int, bool], None]


#: With sampling, how many binomial standard deviations of the sampled count are
#: tolerated on top of CROSS_CHECK_TOLERANCE (a wrong target is off by far more).
SAMPLING_SIGMAS = 6.0


def cross_check(probe: ProbeCounters, report: WorkloadReport, sample: int = 1) -> None:
    """The block probe must have seen the I/O the workload says it issued.

    Requests are compared first; bytes second, because the block layer may split a
    large I/O into several requests (or merge small ones) without losing a byte. With
    1-in-``sample`` sampling the probe should have seen about 1/``sample`` of them, give
    or take the binomial spread of a random sample.
    """
    requests = sum(v for k, v in probe.counters.items() if k.startswith("block.requests."))
    nbytes = sum(v for k, v in probe.counters.items() if k.startswith("block.bytes."))
    if report.ios == 0:
        return
    share = 1.0 / sample
    spread = SAMPLING_SIGMAS * math.sqrt(report.ios * share * (1.0 - share))

    def close(seen: int, issued: int, unit: float) -> bool:
        expected = issued * share
        slack = CROSS_CHECK_TOLERANCE * max(seen, expected, 1) + spread * unit
        return abs(seen - expected) <= slack

    if close(requests, report.ios, 1.0) or close(
        nbytes, report.io_bytes, report.io_bytes / report.ios
    ):
        return
    sampled = f", sampling 1 request in {sample}" if sample > 1 else ""
    raise ProbeError(
        f"probe saw {requests} requests, fio issued {report.ios}{sampled}: wrong target or"
        f" probe ({nbytes} vs {report.io_bytes} bytes)"
    )


def run_rounds(
    plan: RoundPlan,
    workload: Workload,
    probes: ProbeBackend | None,
    *,
    check_block_counts: bool = True,
    block_sample: int = 1,
    progress: ProgressCallback | None = None,
) -> list[RoundResult]:
    """Run the plan; return only the measured rounds (warm-up rounds are discarded)."""
    results: list[RoundResult] = []
    for number in range(1, plan.total + 1):
        warmup = number <= plan.warmup
        if progress is not None:
            progress(number, plan.total, warmup)
        before = probes.snapshot() if probes is not None else None
        started = time.perf_counter()
        report = workload.run(plan.seconds)
        elapsed = time.perf_counter() - started
        seen = (
            probes.snapshot().since(before) if probes is not None and before is not None else None
        )
        if warmup:
            continue
        histograms: dict[str, LogLinearHistogram] = {}
        if seen is not None:
            if check_block_counts and any(k.startswith("block.") for k in seen.counters):
                cross_check(seen, report, block_sample)
            histograms.update({k: h for k, h in seen.histograms.items() if h.total > 0})
        histograms.update(report.histograms)
        results.append(
            RoundResult(
                index=len(results),
                duration_s=elapsed,
                histograms=histograms,
                scalars=dict(report.scalars),
            )
        )
    return results
