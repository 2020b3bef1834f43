"""What ``perfcheck_probes`` costs per round, beside the scenario harness, in one run.

    .venv/bin/python bench/fixture_cost.py [--blocks 4] [--rounds 10] [--seconds 0.5]

Both sides use one probe session (``block.latency``) on one scratch loop device, in
alternating blocks of rounds. The scenario side is ``bench/harness_cost.py``'s: a fio
round's time minus fio's own run (map snapshots, diffing, cross-check, bookkeeping). The
fixture side times a test's code (``--reads`` direct 4 KiB reads per call) the way the
fixture does, probes attached once per call: a round's time minus the code's own. Also
timed: the fixture's once-per-call set-up (the test's process into its cgroup and back,
the probes configured and detached), and the per-round cost with ``syscall.latency`` too
(its per-syscall map is a hash). Needs root, bcc and fio. Prints medians, min..max, n.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from bench.harness_cost import ROOT, TimedWorkload, spread
from perfcheck.run.around import CodeRounds, probed_device, probes_around_test
from perfcheck.run.measure import FioWorkload
from perfcheck.run.resources import RunResources
from perfcheck.run.settings import HarnessSettings
from perfcheck.workloads.fio import FioRunner, load_job_file
from perfcheck.workloads.rounds import RoundPlan, run_rounds

BLOCK = 4096


def direct_reads(path: Path, count: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buffer = mmap.mmap(-1, BLOCK)
    try:
        for i in range(count):
            os.preadv(fd, [buffer], (i * 7919) % 16384 * BLOCK)
    finally:
        buffer.close()
        os.close(fd)


def fixture_rounds(
    resources: RunResources, device: Path, probes: tuple[str, ...], rounds: int, reads: int
) -> tuple[list[float], float]:
    """Per-round costs of one fixture call of ``rounds`` rounds, and its set-up time."""
    code = TimedWorkload(CodeRounds(direct_reads, (device, reads)))
    where = probed_device("bench", device)
    started = time.perf_counter()
    round_times: list[float] = []
    with probes_around_test(resources, "bench", probes, where) as backend:
        set_up = time.perf_counter() - started
        plan = RoundPlan(rounds=1, warmup=0, seconds=0.0)
        for _ in range(rounds):
            begun = time.perf_counter()
            run_rounds(plan, code, backend, check_block_counts=False)
            round_times.append(time.perf_counter() - begun)
        leaving = time.perf_counter()
    set_up += time.perf_counter() - leaving
    costs = [r - c for r, c in zip(round_times, code.durations, strict=True)]
    return costs, set_up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks per side")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per block")
    parser.add_argument("--seconds", type=float, default=0.5, help="fio runtime per round")
    parser.add_argument("--reads", type=int, default=200, help="direct reads per fixture call")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    with tempfile.TemporaryDirectory() as tmp:
        resources = RunResources(HarnessSettings(baseline_dir=Path(tmp), tune=False))
        try:
            # Both probe sets compiled up front, so neither side pays a compile.
            resources.want_probes(("block.latency", "syscall.latency"))
            with resources.own_scratch(256) as target:
                job = load_job_file(ROOT / "scenarios" / "randread-4k.fio")
                fio = TimedWorkload(FioWorkload(FioRunner(job, target.path, target.writable)))
                scenario: list[float] = []
                fixture: list[float] = []
                with_syscalls: list[float] = []
                set_ups: list[float] = []
                for _ in range(args.blocks):
                    backend = resources.probes(("block.latency",))
                    assert backend is not None, resources.probes_unavailable
                    backend.configure({"dev": target.probe_dev})
                    plan = RoundPlan(rounds=1, warmup=0, seconds=args.seconds)
                    for _ in range(args.rounds):
                        begun = time.perf_counter()
                        run_rounds(plan, fio, backend)
                        scenario.append(time.perf_counter() - begun - fio.durations[-1])
                    costs, set_up = fixture_rounds(
                        resources, target.path, ("block.latency",), args.rounds, args.reads
                    )
                    fixture += costs
                    set_ups.append(set_up)
                    costs, _ = fixture_rounds(
                        resources,
                        target.path,
                        ("block.latency", "syscall.latency"),
                        args.rounds,
                        args.reads,
                    )
                    with_syscalls += costs
        finally:
            resources.close()
    ratio = statistics.median(fixture) / statistics.median(scenario)
    print(f"scenario harness per round (round - fio's own run): {spread(scenario, 'ms', 1e3)}")
    print(f"fixture per round (round - the code's own run):     {spread(fixture, 'ms', 1e3)}")
    print(f"  ratio fixture / scenario harness (medians): {ratio:.3f}")
    print(f"  with syscall.latency too: {spread(with_syscalls, 'ms', 1e3)}")
    print(
        f"fixture set-up once per call (cgroup in and out, configure): {spread(set_ups, 'ms', 1e3)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
