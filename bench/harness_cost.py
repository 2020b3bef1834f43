"""What the harness itself costs: probe compile+attach per session, and per-round time
beyond the workload's own runtime (map snapshots, diffing, cross-check, bookkeeping).

    .venv/bin/python bench/harness_cost.py [--sessions 5] [--rounds 20] [--seconds 0.5]

Needs root, bcc and fio. Prints medians with min..max and the number of runs; the
figures are ratios or differences measured side by side in one run, because absolute
times on shared machines drift.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from perfcheck.probes import BlockLatencyProbe
from perfcheck.probes.session import ProbeSession
from perfcheck.run.measure import FioWorkload
from perfcheck.system.targets import ScratchLoopDevice
from perfcheck.workloads.fio import FioRunner, load_job_file
from perfcheck.workloads.rounds import RoundPlan, Workload, WorkloadReport, run_rounds

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TimedWorkload:
    """Wraps a workload and remembers how long each of its runs took."""

    inner: Workload
    durations: list[float] = field(default_factory=list)

    def run(self, seconds: float) -> WorkloadReport:
        started = time.perf_counter()
        try:
            return self.inner.run(seconds)
        finally:
            self.durations.append(time.perf_counter() - started)


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    vals = [v * scale for v in values]
    return (
        f"median {statistics.median(vals):.1f} {unit} (min {min(vals):.1f}, max {max(vals):.1f},"
        f" n={len(vals)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5, help="compile+attach repetitions")
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds")
    parser.add_argument("--seconds", type=float, default=0.5, help="fio runtime per round")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    compile_times = []
    for _ in range(args.sessions):
        session = ProbeSession([BlockLatencyProbe()])
        started = time.perf_counter()
        session.start()
        compile_times.append(time.perf_counter() - started)
        session.close()
    print(f"compile+attach block.latency: {spread(compile_times, 'ms', 1e3)}  [goal <= 1000 ms]")

    with ScratchLoopDevice.create(256) as target:
        session = ProbeSession([BlockLatencyProbe()])
        session.start()
        try:
            session.configure({"dev": target.probe_dev})
            job = load_job_file(ROOT / "scenarios" / "randread-4k.fio")
            workload = TimedWorkload(FioWorkload(FioRunner(job, target.path, target.writable)))
            round_times: list[float] = []
            plan = RoundPlan(rounds=1, warmup=0, seconds=args.seconds)
            for _ in range(args.rounds):
                started = time.perf_counter()
                run_rounds(plan, workload, session)
                round_times.append(time.perf_counter() - started)
            costs = [r - w for r, w in zip(round_times, workload.durations, strict=True)]
            snaps = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                session.snapshot()
                snaps.append(time.perf_counter() - started)
        finally:
            session.close()
    print(
        f"harness cost per round (round - fio's own run): {spread(costs, 'ms', 1e3)}"
        "  [goal <= 100 ms]"
    )
    print(f"  of which one map snapshot: {spread(snaps, 'ms', 1e3)} (two per round)")
    print(
        f"  fio's own run for {args.seconds} s of I/O: "
        f"{spread(workload.durations, 'ms', 1e3)} (process start, job set-up, exit)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
