"""The drift control workload: a fixed CPU and memory walk, timed on each CPU.

Its timings say whether the machine itself got slower since the baseline was recorded
(see :mod:`perfcheck.stats.drift` for the judgement). Nothing here knows pytest or bcc.
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from collections.abc import Iterator, Sequence

from perfcheck.model.control import ControlMeasurement

#: Measured rounds per CPU (after one warm-up pass on each).
CONTROL_ROUNDS = 7
#: Passes over the buffer per round (about 20-40 ms per round on a 2020s x86 core).
CONTROL_PASSES = 8
CONTROL_BUFFER_BYTES = 4 * 1024 * 1024


def _one_pass(buffer: bytes) -> int:
    # A strided slice touches one byte per cache line (memory), the CRC reads it all (CPU).
    return sum(buffer[::64]) ^ zlib.crc32(buffer)


@contextlib.contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    """Run the calling thread on ``cpu`` only, then put its old CPU set back."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def _round_ns(buffer: bytes, passes: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(passes):
        _one_pass(buffer)
    return (time.perf_counter_ns() - started) / passes


def measure_control(
    cpus: Sequence[int] | None = None,
    rounds: int = CONTROL_ROUNDS,
    passes: int = CONTROL_PASSES,
) -> ControlMeasurement:
    """Time the control workload on each CPU (default: every CPU this process may use).

    Rounds are interleaved across CPUs (cpu0, cpu1, cpu0, ...) so that a short burst of
    noise spreads over every CPU instead of biasing one.
    """
    chosen = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    buffer = bytes(range(256)) * (CONTROL_BUFFER_BYTES // 256)
    values: dict[int, list[float]] = {cpu: [] for cpu in chosen}
    for number in range(rounds + 1):
        for cpu in chosen:
            with _pinned(cpu):
                ns = _round_ns(buffer, passes)
            if number > 0:  # the first pass on each CPU warms caches and clocks
                values[cpu].append(ns)
    return ControlMeasurement(values)
