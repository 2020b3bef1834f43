"""Which command shows the block-queue slow-down this kernel offers: the wall time of a few
candidate commands on the scratch loop device under ``none`` and under the slow-down.

    .venv/bin/python bench/command_slowdown.py [--repeats 3] [--runs 5]

Needs root. Takes the host lock, so it measures alone among perfcheck runs. For each
candidate: ``repeats`` times, under each setting in turn, one discarded run then ``runs``
timed runs. Prints medians with min..max and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import time

from perfcheck.system.kernel_config import scratch_io_schedulers
from perfcheck.system.lock import HostLock
from perfcheck.system.slowdowns import choose_slowdown
from perfcheck.system.targets import ScratchLoopDevice, io_scheduler, queue_setting

#: name -> (shell command reading $D, max_sectors_kb to set on the device or None).
CANDIDATES: dict[str, tuple[str, str | None]] = {
    "dd 4k QD1": ("dd if=$D of=/dev/null bs=4k count=4000 iflag=direct", None),
    "dd 1M, 64k requests": ("dd if=$D of=/dev/null bs=1M count=200 iflag=direct", "64"),
    "dd 64k, 4k requests": ("dd if=$D of=/dev/null bs=64k count=2000 iflag=direct", "4"),
    "16 dd 4k at once": (
        "for i in $(seq 0 15); do dd if=$D of=/dev/null bs=4k count=500 skip=$((i*1000))"
        " iflag=direct 2>/dev/null & done; wait",
        None,
    ),
    "fio QD16 libaio": (
        "fio --name=j --filename=$D --rw=randread --bs=4k --direct=1 --ioengine=libaio"
        " --iodepth=16 --number_ios=20000 --size=256m --readonly --output=/dev/null",
        None,
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    slowdown = choose_slowdown(scratch_io_schedulers())
    if slowdown is None:
        print("no slow-down offered here")
        return 1
    print(f"slow-down: {slowdown.name} ({slowdown.description})")
    lock = HostLock()
    lock.acquire(600)
    times: dict[tuple[str, str], list[float]] = {}
    try:
        with ScratchLoopDevice.create(512) as target:
            env = dict(os.environ, D=str(target.path))

            def run(command: str) -> float:
                started = time.monotonic()
                subprocess.run(command, shell=True, env=env, check=True, stderr=subprocess.DEVNULL)
                return time.monotonic() - started

            for _ in range(args.repeats):
                for mode in ("none", "slowed"):
                    for name, (command, sectors) in CANDIDATES.items():
                        with contextlib.ExitStack() as stack:
                            stack.enter_context(io_scheduler(target.disk, "none"))
                            if mode == "slowed":
                                stack.enter_context(slowdown.applied(target.disk))
                            if sectors is not None:
                                stack.enter_context(
                                    queue_setting(target.disk, "max_sectors_kb", sectors)
                                )
                            run(command)
                            times.setdefault((name, mode), []).extend(
                                run(command) for _ in range(args.runs)
                            )
    finally:
        lock.release()
    for name in CANDIDATES:
        none, slowed = times[(name, "none")], times[(name, "slowed")]
        ratio = statistics.median(slowed) / statistics.median(none)
        print(
            f"{name:22s} none {statistics.median(none) * 1e3:7.1f} ms"
            f" ({min(none) * 1e3:.1f}..{max(none) * 1e3:.1f}), slowed"
            f" {statistics.median(slowed) * 1e3:7.1f} ms"
            f" ({min(slowed) * 1e3:.1f}..{max(slowed) * 1e3:.1f}), x{ratio:.2f},"
            f" n={len(none)} each"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
