"""A fio scenario naming scheduler or syscall probes runs fio in a cgroup of its own, and
those probes time fio's tasks only: real fio, real BPF, a busy process beside it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perfcheck.probes import BlockLatencyProbe, SchedRunqLatencyProbe, SyscallLatencyProbe
from perfcheck.probes.session import ProbeSession
from perfcheck.run.measure import measure
from perfcheck.system.cgroup import CGROUP_MARKER, cgroup2_root
from perfcheck.system.targets import ScratchLoopDevice
from perfcheck.workloads.scenario import load_scenario
from tests.realcaps import REAL_BPF_AND_FIO

pytestmark = [*REAL_BPF_AND_FIO, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

JOB = Path(__file__).resolve().parents[2] / "scenarios" / "randread-4k.fio"

SCENARIO = textwrap.dedent(
    f"""
    description = "reads, with fio's syscalls and run-queue latency"
    probes = ["block.latency", "syscall.latency", "sched.runqlat"]

    [workload]
    kind = "fio"
    job = "{JOB}"

    [rounds]
    count = 3
    warmup = 0
    seconds = 0.5
    """
)

#: A neighbour calling getppid(2) as fast as it can: a syscall fio never makes.
BUSY = "import os\nwhile True:\n    os.getppid()\n"


def perfcheck_cgroups() -> list[Path]:
    root = cgroup2_root()
    return sorted(root.glob(f"{CGROUP_MARKER}*")) if root is not None else []


def test_syscall_and_sched_probes_see_fio_and_not_its_neighbour(tmp_path: Path) -> None:
    if cgroup2_root() is None:
        pytest.skip("cgroup v2 is not mounted")
    path = tmp_path / "reads.toml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    before = perfcheck_cgroups()
    session = ProbeSession([BlockLatencyProbe(), SyscallLatencyProbe(), SchedRunqLatencyProbe()])
    session.start()
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        with ScratchLoopDevice.create(64) as target:
            measurement = measure(scenario, target, session)
            # The neighbour really was busy with getppid meanwhile: unfiltered, it shows.
            session.configure({"dev": target.probe_dev})
            first = session.snapshot()
            time.sleep(0.3)
            unfiltered = session.snapshot().since(first)
    finally:
        neighbour.kill()
        neighbour.wait()
        session.close()
    assert len(measurement.rounds) == 3
    for rnd in measurement.rounds:
        reads = rnd.histograms["fio.clat.read"].total
        assert reads > 1000
        # psync: one pread64 per I/O, from fio's job process inside the cgroup.
        preads = rnd.histograms["syscall.latency.pread64"].total
        assert reads <= preads <= reads + 10
        assert "syscall.latency.getppid" not in rnd.histograms
        # Each read sleeps until the loop device completes it: a wake-up per I/O.
        assert rnd.histograms["sched.runqlat"].total >= reads // 2
    assert unfiltered.counters.get("syscall.calls.getppid", 0) > 10_000
    assert measurement.environment.get("probes.filter") == "workload cgroup"
    # The cgroup is gone with the measurement.
    assert perfcheck_cgroups() == before
