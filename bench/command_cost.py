"""What running a command scenario's command costs beyond the command itself, beside what
fio's runner costs beyond its I/O.

    .venv/bin/python bench/command_cost.py [--runs 30]

Per run of ``true`` (a command that does nothing): plain ``subprocess.run`` against the
command runner (its own cgroup, PR_SET_PDEATHSIG, a new session, the cgroup emptied
after each run), and a whole round of ``true`` through ``run_rounds`` with the
block.latency probe attached. Beside it, fio's run of a 0.5 s job minus the 0.5 s (fio's
start, job set-up and exit, which every fio round pays). Needs root (cgroup v2, a loop
device) and fio; the round figure also bcc. Medians with min..max and the number of runs,
measured side by side in one run.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from bench.harness_cost import spread
from perfcheck.probes import BlockLatencyProbe
from perfcheck.probes.session import ProbeSession
from perfcheck.system.cgroup import WorkloadCgroup
from perfcheck.system.targets import ScratchLoopDevice
from perfcheck.workloads.command import CommandRunner, CommandSpec, CommandWorkload
from perfcheck.workloads.fio import FioRunner, load_job_file
from perfcheck.workloads.rounds import RoundPlan, run_rounds

ROOT = Path(__file__).resolve().parent.parent


def timed(action: object, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs of each kind")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    spec = CommandSpec(argv=("true",))
    with (
        ScratchLoopDevice.create(256) as target,
        WorkloadCgroup.create() as cgroup,
        tempfile.TemporaryDirectory() as tmp,
    ):
        runner = CommandRunner(spec, Path("bench.toml"), cgroup, Path(tmp), device=target.path)
        plain: list[float] = []
        ours: list[float] = []
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            plain += timed(lambda: subprocess.run(["true"], check=True), 1)
            ours += timed(runner.run, 1)
        extra = [o - p for o, p in zip(ours, plain, strict=True)]
        print(f"`true` with subprocess.run: {spread(plain, 'ms', 1e3)}")
        print(f"`true` with the command runner: {spread(ours, 'ms', 1e3)}")
        print(f"  the runner's own cost per run: {spread(extra, 'ms', 1e3)}")

        plan = RoundPlan(rounds=1, warmup=0, seconds=0.5)
        bare = timed(lambda: run_rounds(plan, CommandWorkload(runner), None), args.runs)
        print(f"a round of `true` (one run), no probes: {spread(bare, 'ms', 1e3)}")
        session = ProbeSession([BlockLatencyProbe()])
        session.start()
        try:
            session.configure({"dev": target.probe_dev})
            rounds = timed(lambda: run_rounds(plan, CommandWorkload(runner), session), args.runs)
            print(f"a round of `true` (one run) under block.latency: {spread(rounds, 'ms', 1e3)}")
            snaps = timed(session.snapshot, args.runs)
            print(f"  of which one map snapshot: {spread(snaps, 'ms', 1e3)} (two per round)")
        finally:
            session.close()

        job = load_job_file(ROOT / "scenarios" / "randread-4k.fio")
        fio = FioRunner(job, target.path, target.writable)
        fio_runs = timed(lambda: fio.run(0.5), min(args.runs, 10))
        beyond = [t - 0.5 for t in fio_runs]
        print(f"fio's run of 0.5 s of I/O, beyond the 0.5 s: {spread(beyond, 'ms', 1e3)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
