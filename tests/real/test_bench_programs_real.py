"""The overhead benchmarks' reference programs, loaded for real: they must load, and the
clock-read pair (the floor a timer is compared with) must time real requests."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import pytest

from bench.toggle import CLOCK_PAIR_C, EMPTY_PAIR_C, IDLE_C
from perfcheck.system.targets import BlockTarget, ScratchLoopDevice
from tests.blockcounts import run_fio
from tests.realcaps import requires_bpf, requires_fio

pytestmark = [pytest.mark.realbpf, requires_bpf]


@pytest.fixture(scope="module")
def scratch() -> Iterator[BlockTarget]:
    with ScratchLoopDevice.create(256) as target:
        yield target


@pytest.mark.parametrize("text", [EMPTY_PAIR_C, IDLE_C], ids=["empty pair", "idle"])
def test_the_reference_programs_load(text: str) -> None:
    from bcc import BPF

    bpf = BPF(text=text.encode())
    try:
        assert bpf.raw_tracepoint_fds, "bcc attached no raw tracepoint"
    finally:
        bpf.cleanup()


@requires_fio
def test_the_clock_read_pair_times_each_request(scratch: BlockTarget) -> None:
    from bcc import BPF

    bpf = BPF(text=CLOCK_PAIR_C.encode())
    try:
        fio = run_fio(scratch.path, "--rw=randread", "--bs=4k", "--ioengine=psync", "--iodepth=1")
        total = bpf[b"pc_clock_pair"][ctypes.c_int(1)].value
    finally:
        bpf.cleanup()
    ios = fio.directions["read"].ios
    assert ios > 100
    # At QD1 every completion follows its own issue: the sum is the time the requests
    # spent between the two tracepoints, a few microseconds each on a loop device.
    mean_ns = total / ios
    assert 500 < mean_ns < 5_000_000, mean_ns
