"""Does the loop-device noise control still make rounds steadier on this kernel?

perfcheck sets the workqueue module's ``default_affinity_scope`` to ``cpu`` while a loop
device is its target (perfcheck.knobs), because on one kernel build that kept the loop
worker on fio's CPU and made per-round p50 agree within about 10%. Kernel builds differ
between machines of this kind, so this measures it again, side by side: sets of rounds
under ``cache`` (the kernel's default) and ``cpu``, interleaved in ABBA order so drift
falls on both alike. Each set is what a scenario measures: ``--rounds`` fio runs of
``--seconds`` each of ``scenarios/randread-4k.fio`` (4 KiB psync reads, QD1, CPU 1) on a
filled scratch loop device. Reported per scope: the median over sets of the set's p50
and IOPS, the median within-set round spread of p50 (max/min - 1, what the gate sees as
noise), and the range of the set medians (the drift between sets).

    .venv/bin/python bench/affinity_scope.py [--pairs 12] [--rounds 5] [--seconds 1] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from perfcheck.knobs import WORKQUEUE_AFFINITY_SCOPE, sysfs_setting  # noqa: E402
from perfcheck.targets import ScratchLoopDevice, io_scheduler  # noqa: E402

JOB = HERE.parent / "scenarios" / "randread-4k.fio"
SCOPES = ("cache", "cpu")


@dataclass
class RoundSet:
    scope: str
    started: float
    p50_us: list[float]
    iops: list[float]

    @property
    def median_p50(self) -> float:
        return statistics.median(self.p50_us)

    @property
    def median_iops(self) -> float:
        return statistics.median(self.iops)

    @property
    def spread(self) -> float:
        """Round-to-round spread of p50 within the set: max/min - 1."""
        return max(self.p50_us) / min(self.p50_us) - 1


def fio_round(device: Path, seconds: float) -> tuple[float, float]:
    """One round: (clat p50 in us, IOPS) of the scenario's job for ``seconds``."""
    out = subprocess.run(
        [
            "fio",
            str(JOB),
            f"--filename={device}",
            f"--runtime={seconds}",
            "--time_based",
            "--output-format=json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60 + seconds,
    ).stdout
    read = json.loads(out)["jobs"][0]["read"]
    return read["clat_ns"]["percentile"]["50.000000"] / 1000, float(read["iops"])


def measure_set(scope: str, device: Path, rounds: int, seconds: float) -> RoundSet:
    with sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, scope):
        fio_round(device, min(seconds, 0.5))  # warm-up, as a scenario's
        results = [fio_round(device, seconds) for _ in range(rounds)]
    return RoundSet(scope, time.time(), [r[0] for r in results], [r[1] for r in results])


def summary(sets: Sequence[RoundSet], scope: str) -> dict[str, float]:
    mine = [s for s in sets if s.scope == scope]
    medians = [s.median_p50 for s in mine]
    return {
        "sets": len(mine),
        "p50_us_median": statistics.median(medians),
        "p50_us_set_min": min(medians),
        "p50_us_set_max": max(medians),
        "iops_median": statistics.median(s.median_iops for s in mine),
        "round_spread_median": statistics.median(s.spread for s in mine),
        "round_spread_max": max(s.spread for s in mine),
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12, help="pairs of sets (>= 10)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per set")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per round")
    parser.add_argument("--json", type=Path, help="write every set's rounds here")
    args = parser.parse_args(argv)
    if not WORKQUEUE_AFFINITY_SCOPE.exists():
        print(f"affinity_scope: {WORKQUEUE_AFFINITY_SCOPE} absent on this kernel; nothing to do")
        return 0
    sets: list[RoundSet] = []
    with ScratchLoopDevice.create(512) as scratch, io_scheduler(scratch.disk, "none"):
        for pair in range(args.pairs):
            order = SCOPES if pair % 2 == 0 else SCOPES[::-1]
            for scope in order:
                found = measure_set(scope, scratch.path, args.rounds, args.seconds)
                sets.append(found)
                print(
                    f"pair {pair:2d} {scope:5s}: p50 {found.median_p50:6.1f} us"
                    f" (rounds {min(found.p50_us):.1f}..{max(found.p50_us):.1f}),"
                    f" IOPS {found.median_iops:8.0f}, spread {found.spread:6.1%}",
                    flush=True,
                )
    print()
    for scope in SCOPES:
        s = summary(sets, scope)
        print(
            f"{scope:5s}: {s['sets']} sets; set p50 median {s['p50_us_median']:.1f} us"
            f" ({s['p50_us_set_min']:.1f}..{s['p50_us_set_max']:.1f}); IOPS median"
            f" {s['iops_median']:.0f}; within-set round spread median"
            f" {s['round_spread_median']:.1%} (max {s['round_spread_max']:.1%})"
        )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(s) for s in sets], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
