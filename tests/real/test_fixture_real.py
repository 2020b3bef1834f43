"""``perfcheck_probes`` on the real kernel: real bcc programs around a test's own I/O.

The collect form counts exactly the test's reads, and not another process's on the same
device while a child the test starts does count; the gated form FAILs on a real
slow-down the running kernel offers and does not FAIL without it.
"""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from perfcheck.run.around import collect_around_test, probed_device
from perfcheck.run.resources import RunResources
from perfcheck.run.settings import HarnessSettings
from perfcheck.system.kernel_config import scratch_io_schedulers
from perfcheck.system.slowdowns import QueueSlowdown, choose_slowdown
from perfcheck.system.targets import ScratchLoopDevice
from tests.realcaps import requires_bpf, sigint_as_a_terminal_would

pytestmark = [pytest.mark.realbpf, requires_bpf]

BLOCK = 4096


def direct_reads(path: Path, count: int, first_block: int = 0) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buffer = mmap.mmap(-1, BLOCK)
    try:
        for i in range(count):
            os.preadv(fd, [buffer], (first_block + i * 13) % 16384 * BLOCK)
    finally:
        buffer.close()
        os.close(fd)


def reads_completed(disk: str) -> int:
    return int((Path("/sys/block") / disk / "stat").read_text().split()[0])


@pytest.fixture
def resources(tmp_path: Path) -> Iterator[RunResources]:
    run = RunResources(HarnessSettings(baseline_dir=tmp_path, tune=False))
    yield run
    run.close()


@pytest.fixture
def scratch(resources: RunResources) -> Iterator[ScratchLoopDevice]:
    with resources.own_scratch(64) as device:
        yield device


def test_collect_counts_each_direct_read_of_the_test(
    resources: RunResources, scratch: ScratchLoopDevice
) -> None:
    device = probed_device("t", scratch)
    for count in (1, 300):
        with collect_around_test(resources, "t", ("block.latency",), device) as seen:
            direct_reads(scratch.path, count)
        assert seen["block.latency.read"].total == count
        assert seen.counters["block.requests.read"] == count
        assert seen.counters["block.bytes.read"] == count * BLOCK


def test_collect_leaves_out_another_process_and_counts_the_tests_children(
    resources: RunResources, scratch: ScratchLoopDevice
) -> None:
    device = probed_device("t", scratch)
    # Started before the test's process moves into its cgroup: not the test's.
    other = subprocess.Popen(
        ["dd", f"if={scratch.path}", "of=/dev/null", "bs=4k", "iflag=direct", "count=400000"],
        stderr=subprocess.DEVNULL,
    )
    try:
        before = reads_completed(scratch.disk)
        probes = ("block.latency", "block.bio_latency", "syscall.latency")
        with collect_around_test(resources, "t", probes, device) as seen:
            direct_reads(scratch.path, 500)
            # A child the test starts is the test's: 200 reads of its own.
            subprocess.run(
                ["dd", f"if={scratch.path}", "of=/dev/null", "bs=4k", "iflag=direct", "count=200"],
                check=True,
                stderr=subprocess.DEVNULL,
            )
            direct_reads(scratch.path, 500, first_block=7)
        during = reads_completed(scratch.disk) - before
    finally:
        other.kill()
        other.wait()
    assert during > 5_000, "the other process did not read meanwhile: nothing was filtered"
    assert seen["block.latency.read"].total == 1200
    assert seen["block.bio_latency.read"].total == 1200
    # Each dd read is a read() call: the child's 200 count (and a few of the process
    # start), the other dd's thousands meanwhile do not.
    assert 200 <= seen.counters["syscall.calls.read"] < 300


def test_unknown_probe_and_a_device_that_is_no_block_device_are_one_line_errors(
    resources: RunResources,
) -> None:
    from perfcheck.errors import PerfcheckError
    from perfcheck.run.around import checked_probes

    with pytest.raises(PerfcheckError, match=r"^t\.py::t: unknown probe 'block\.latncy'; the"):
        checked_probes("t.py::t", ["block.latncy"], None, resources.probe_availability)
    with pytest.raises(PerfcheckError, match=r"^t\.py::t: device='/dev/shm' is on device .*"):
        probed_device("t.py::t", "/dev/shm")
    with pytest.raises(PerfcheckError, match=r"block\.latency times one disk.*pass device="):
        checked_probes("t.py::t", ["block.latency"], None, resources.probe_availability)


# -- the gated form against a real slow-down, through pytest -------------------------------

TEST_FILE = """
import mmap, os, random, threading

import pytest

QD = {qd}


def reads(path, per_thread):
    # QD threads of O_DIRECT 4 KiB reads: QD requests in flight.
    def worker(seed):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buffer = mmap.mmap(-1, 4096)
        offsets = random.Random(seed)
        blocks = os.lseek(fd, 0, os.SEEK_END) // 4096
        try:
            for _ in range(per_thread):
                os.preadv(fd, [buffer], offsets.randrange(blocks) * 4096)
        finally:
            buffer.close()
            os.close(fd)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(QD)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return QD * per_thread


@pytest.mark.perfcheck(thresholds={thresholds!r})
def test_my_reads(perfcheck_probes, perfcheck_scratch):
    done = perfcheck_probes(
        reads, perfcheck_scratch.path, 16000 // QD, probes=["block.bio_latency"],
        device=perfcheck_scratch, rounds=10,
    )
    assert done == 16000 // QD * QD
"""

#: A bio's latency includes its wait for a request tag and the time a scheduler holds
#: its request: what every offered slow-down lengthens. Measured here with 16,000 reads
#: a round (mq-deadline, nr_requests=4, 16 threads; 12 rounds each, two runs apart):
#: block.bio_latency.read p90 112-153 us -> 386-532 us, p99 155-246 us -> 619-1017 us,
#: the code's own time +30%. The p50 lands in either of two modes (8-17 us or ~83 us)
#: from round to round at this depth, with or without the slow-down: not gated.
THRESHOLDS = {"*.p90": 0.5, "*.p99": 0.5, "*.p50": 50.0}


def test_gated_fixture_fails_under_a_real_slowdown_and_not_without(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    slowdown: QueueSlowdown | None = choose_slowdown(scratch_io_schedulers())
    if slowdown is None:
        pytest.skip("no blk-mq loop device here: no queue setting can slow one down")
    qd = int(slowdown.job.get("iodepth", "1"))
    pytester.makepyfile(test_code=textwrap.dedent(TEST_FILE).format(qd=qd, thresholds=THRESHOLDS))
    baselines = tmp_path / "baselines"
    common = (
        f"--perfcheck-baseline-dir={baselines}",
        "--perfcheck-store=none",
        "-p",
        "no:cacheprovider",
    )

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(*common, *args, "-rA", timeout=300)

    recorded = run("--perfcheck-update")
    assert recorded.ret == pytest.ExitCode.OK, recorded.stdout.str()
    assert list(baselines.rglob("test_code.py-test_my_reads.json"))

    slowed = run("--perfcheck", *slowdown.pytest_args())
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED, slowed.stdout.str()
    slowed.stdout.fnmatch_lines(["*block.bio_latency.read.p9?*FAIL*"])

    plain = run("--perfcheck")
    assert plain.ret == pytest.ExitCode.OK, plain.stdout.str()


# -- a run killed while the test's process is in its cgroup --------------------------------

HANGING_TEST = """
import time
from pathlib import Path


def test_hangs(perfcheck_probes, perfcheck_scratch):
    with perfcheck_probes.collect(probes=["block.latency"], device=perfcheck_scratch):
        Path("{ready}").write_text(str(perfcheck_scratch.path))
        time.sleep(120)
"""


def perfcheck_leftovers(pid: int) -> list[str]:
    """Cgroups and scratch loop devices a run with this pid made and did not remove."""
    from perfcheck.system.cgroup import CGROUP_MARKER, cgroup2_root
    from perfcheck.system.targets import SCRATCH_DIR, SCRATCH_MARKER

    root = cgroup2_root()
    cgroups = sorted(str(p) for p in root.glob(f"{CGROUP_MARKER}{pid}-*")) if root else []
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    scratch = [line for line in loops.splitlines() if f"{SCRATCH_MARKER}{pid}-" in line]
    return cgroups + scratch + sorted(str(p) for p in SCRATCH_DIR.glob(f"{SCRATCH_MARKER}{pid}-*"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_run_killed_inside_the_fixture_leaves_no_cgroup_or_device(
    pytester: pytest.Pytester, tmp_path: Path, signum: int
) -> None:
    ready = tmp_path / "ready"
    pytester.makepyfile(test_hang=textwrap.dedent(HANGING_TEST).format(ready=ready))
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--perfcheck", "--perfcheck-store=none", "-p",
         "no:cacheprovider", "test_hang.py"],
        cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=sigint_as_a_terminal_would,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # another run may hold the host lock
        while not ready.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists(), "the test never reached its collect block"
        assert perfcheck_leftovers(run.pid), "nothing to clean: the test checks nothing"
        run.send_signal(signum)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    if signum == signal.SIGKILL:
        # The next run that needs a device removes what the killed one left.
        pytester.makepyfile(test_next="def test_next(perfcheck_scratch):\n    pass\n")
        result = pytester.runpytest_subprocess(
            "--perfcheck", "--perfcheck-store=none", "-p", "no:cacheprovider", "test_next.py",
            timeout=600,
        )  # fmt: skip
        result.assert_outcomes(passed=1)
    assert perfcheck_leftovers(run.pid) == []
