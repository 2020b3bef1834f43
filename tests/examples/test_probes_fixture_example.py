"""BPF probes around your own test code: a file to copy.

``perfcheck_probes`` times what the kernel does for the test's own process tree on the
device it names; ``perfcheck_scratch`` is a RAM-backed loop device the test may write.
As root, with bcc (see docs/fixtures.md)::

    pytest --perfcheck-update tests/examples/   # record the gated test's baseline
    pytest --perfcheck tests/examples/          # measure again and gate on it

Without ``--perfcheck`` both tests are skipped. The gated test's baseline for the
machine class perfcheck was developed on is in ``baselines/``; on another, record yours.
"""

from __future__ import annotations

import mmap
import os
import random
from pathlib import Path

import pytest

BLOCK = 4096
READS_PER_ROUND = 2000


def read_direct(path: Path, count: int, seed: int = 1) -> int:
    """``count`` 4 KiB reads at random offsets of ``path``, bypassing the page cache
    (``O_DIRECT``), one at a time: each one is a request of the disk."""
    offsets = random.Random(seed)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buffer = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT needs
    try:
        blocks = os.lseek(fd, 0, os.SEEK_END) // BLOCK
        for _ in range(count):
            os.preadv(fd, [buffer], offsets.randrange(blocks) * BLOCK)
    finally:
        buffer.close()
        os.close(fd)
    return count


# The median gates (15%); the tails only catch gross changes, as in the shipped scenarios.
@pytest.mark.perfcheck(thresholds={"*.p50": 0.15, "*.p90": 1.0, "*.p99": 2.0})
def test_direct_reads_do_not_regress(perfcheck_probes, perfcheck_scratch):  # type: ignore[no-untyped-def]
    # Each call of read_direct is a round; the rounds are gated against the baseline
    # recorded for this test (baselines/<machine class>/<this test's id>.json).
    done = perfcheck_probes(
        read_direct,
        perfcheck_scratch.path,
        READS_PER_ROUND,
        probes=["block.latency"],
        device=perfcheck_scratch,
        rounds=10,
    )
    assert done == READS_PER_ROUND  # read_direct's return value, as pytest-benchmark's


def test_direct_reads_p99(perfcheck_probes, perfcheck_scratch):  # type: ignore[no-untyped-def]
    # No rounds, no baseline: the histograms of what the block ran, for assertions.
    with perfcheck_probes.collect(
        probes=["block.latency", "syscall.latency"], device=perfcheck_scratch
    ) as seen:
        read_direct(perfcheck_scratch.path, 1000)
    reads = seen["block.latency.read"]
    assert reads.total == 1000  # only this test's reads of this device
    assert reads.percentile(99) < 10_000_000  # ns: 10 ms, for a RAM-backed device
    calls = [h.total for name, h in seen.items() if name.startswith("syscall.latency.preadv")]
    assert sum(calls) == 1000  # preadv or preadv2, as the C library makes the call
