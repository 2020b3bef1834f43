"""Which control workload follows the machine's drift of the disk path?

The drift control (``perfcheck.stats.drift``) is only useful if it slows down when the machine
makes the scenarios slower, and not otherwise. This runs, in a loop for ``--minutes``,
one short QD1 fio run on a fresh scratch loop device (4 KiB random reads, ``psync``, the
``randread-4k`` kind of load) next to each candidate control, and reports how each
candidate's value goes with fio's IOPS over the cycles: Spearman's rank correlation per
cycle (seconds apart) and over medians of blocks of eight cycles (about a minute; the
scale at which a baseline and a check differ). A good control correlates strongly at both
scales: with IOPS positively if it is a rate, negatively if it is a time.

Candidates:

- ``CPU + memory walk``: the shipped control (``measure_control`` with fewer rounds), a
  strided walk and a CRC over 4 MiB in user space, ns per pass;
- ``page-cache read``: 4 KiB reads at fixed pseudo-random offsets of a 16 MiB file in
  ``/dev/shm`` (unlinked once open), ns per read, pinned to each CPU in turn;
- ``pipe across CPUs``: ``perf bench sched pipe`` (two tasks waking each other through a
  pipe), us per round trip, when ``perf`` is installed.

    .venv/bin/python bench/control_tracking.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.overhead import FIO_SETTINGS, run_fio  # noqa: E402
from perfcheck.system.knobs import WORKQUEUE_AFFINITY_SCOPE, sysfs_setting  # noqa: E402
from perfcheck.system.targets import ScratchLoopDevice, fill_with_data  # noqa: E402
from perfcheck.workloads.control import _pinned, measure_control  # noqa: E402

#: Cycles per block for the slow-scale correlation.
BLOCK = 8


#: The QD1 setting of the overhead benchmark: 4 KiB random reads, psync.
QD1 = FIO_SETTINGS["QD1 (4k randread, psync)"]


def cpu_memory_walk_ns() -> float:
    rounds = measure_control(rounds=3).rounds
    return statistics.fmean(statistics.median(v) for v in rounds.values())


PAGE = 4096
FILE_BYTES = 16 * 1024 * 1024


@contextlib.contextmanager
def page_cache_file() -> Iterator[int]:
    """An unlinked, written :data:`FILE_BYTES` file in /dev/shm, open for the whole run."""
    fd, path = tempfile.mkstemp(prefix="perfcheck-tracking-", dir="/dev/shm")
    try:
        os.unlink(path)
        fill_with_data(fd, FILE_BYTES)
        yield fd
    finally:
        os.close(fd)


def page_cache_read_ns(fd: int, reads: int = 8192, rounds: int = 3) -> float:
    """ns per 4 KiB read at fixed pseudo-random offsets of ``fd``, each CPU in turn."""
    chooser = random.Random(1)
    offsets = [chooser.randrange(FILE_BYTES // PAGE) * PAGE for _ in range(reads)]
    buffers = [bytearray(PAGE)]
    values = []
    for _ in range(rounds):
        for cpu in sorted(os.sched_getaffinity(0)):
            with _pinned(cpu):
                started = time.perf_counter_ns()
                for offset in offsets:
                    os.preadv(fd, buffers, offset)
                values.append((time.perf_counter_ns() - started) / reads)
    return statistics.median(values)


def pipe_round_trip_us() -> float:
    out = subprocess.run(
        ["perf", "bench", "sched", "pipe", "-l", "20000"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    found = re.search(r"([\d.]+) usecs/op", out)
    if not found:
        raise RuntimeError(f"perf bench sched pipe printed no usecs/op: {out.strip()[:200]}")
    return float(found.group(1))


def candidates(page_cache_fd: int) -> dict[str, Callable[[], float]]:
    found: dict[str, Callable[[], float]] = {
        "CPU + memory walk (ns, the drift control)": cpu_memory_walk_ns,
        "page-cache read (ns)": lambda: page_cache_read_ns(page_cache_fd),
    }
    if shutil.which("perf"):
        found["pipe across CPUs (us)"] = pipe_round_trip_us
    return found


def blocks(values: Sequence[float]) -> list[float]:
    return [
        statistics.median(values[i : i + BLOCK]) for i in range(0, len(values) - BLOCK + 1, BLOCK)
    ]


def main(argv: Sequence[str]) -> int:
    from scipy.stats import spearmanr

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    iops: list[float] = []
    values: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        if WORKQUEUE_AFFINITY_SCOPE.exists():
            stack.enter_context(sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"))
        # A scratch device is written all over when created (no tmpfs holes to read).
        target = stack.enter_context(ScratchLoopDevice.create(256))
        measures = candidates(stack.enter_context(page_cache_file()))
        values = {name: [] for name in measures}
        deadline = time.monotonic() + args.minutes * 60
        while time.monotonic() < deadline:
            iops.append(run_fio(target.path, 2.0, QD1).iops)
            for name, measure in measures.items():
                values[name].append(measure())
    print(
        f"{len(iops)} cycles; QD1 fio IOPS {min(iops):,.0f}..{max(iops):,.0f};"
        f" medians of {BLOCK}-cycle blocks {min(blocks(iops)):,.0f}..{max(blocks(iops)):,.0f}"
    )
    print("| candidate | range | Spearman vs IOPS, per cycle | per block of 8 cycles |")
    print("|---|---|---|---|")
    for name, series in values.items():
        per_cycle = spearmanr(series, iops)[0]
        # Fewer than three blocks say nothing about the slow scale.
        per_block = (
            f"{spearmanr(blocks(series), blocks(iops))[0]:+.2f}" if len(iops) >= 3 * BLOCK else "-"
        )
        print(f"| {name} | {min(series):.4g}..{max(series):.4g} | {per_cycle:+.2f} | {per_block} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
