"""A real run killed at a random moment leaves nothing behind: SIGTERM and SIGINT unwind
cleanly; after SIGKILL the next run finds the leftovers (processes, devices, settings,
temporary files) by their marker and removes them."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from perfcheck.system.kernel_config import scratch_io_schedulers
from perfcheck.system.knobs import (
    WORKQUEUE_AFFINITY_SCOPE,
    current_value,
    journal_path,
    restore_leftover_knobs,
)
from perfcheck.system.processes import remove_leftover_tempdirs
from perfcheck.system.slowdowns import holding_scheduler
from perfcheck.system.targets import SCRATCH_DIR, SCRATCH_MARKER, remove_leftover_scratch
from perfcheck.workloads.fio import JOB_DIR_MARKER, kill_leftover_workloads
from tests.realcaps import requires_bpf, requires_fio, sigint_as_a_terminal_would

pytestmark = [pytest.mark.realbpf, pytest.mark.realfio, requires_bpf, requires_fio]

ROOT = Path(__file__).resolve().parents[2]
# Trials per signal; PERFCHECK_KILL_TRIALS=20 for the full hygiene check.
TRIALS = int(os.environ.get("PERFCHECK_KILL_TRIALS", "3"))


def scratch_files_of(pid: int) -> list[Path]:
    return sorted(SCRATCH_DIR.glob(f"{SCRATCH_MARKER}{pid}-*/*.img"))


def loop_backings() -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout


def loop_device_of(backing: Path) -> str:
    out = subprocess.run(
        ["losetup", "--associated", str(backing), "--noheadings", "--output", "NAME"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def fio_of(run_pid: int) -> list[int]:
    """fio processes started by the run with this pid (its job files carry the pid)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"{JOB_DIR_MARKER}{run_pid}-".encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def job_dirs_of(run_pid: int) -> list[Path]:
    """The temporary directories holding the fio job files of the run with this pid."""
    return sorted(Path(tempfile.gettempdir()).glob(f"{JOB_DIR_MARKER}{run_pid}-*"))


def processes_using(device: str) -> list[int]:
    """Processes with ``device`` open (fio keeps its target open while it runs)."""
    users = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == device for fd in fd_dir.iterdir()):
                users.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return users


def start_run(tmp_path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--perfcheck",
            "--perfcheck-update",
            f"--perfcheck-baseline-dir={tmp_path / 'b'}",
            "--perfcheck-rounds=3",
            "--perfcheck-seconds=0.5",
            # A setting the run must journal and the next run restore: a scheduler this
            # kernel offers, and a queue depth.
            f"--perfcheck-scheduler={holding_scheduler(scratch_io_schedulers()) or 'none'}",
            "--perfcheck-queue=nr_requests=4",
            str(ROOT / "scenarios" / "randread-4k.toml"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=sigint_as_a_terminal_would,
    )


def wait_for_scratch(proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    # Generous: the run may first wait for another run on this host to release the lock.
    deadline = time.monotonic() + timeout
    while not scratch_files_of(proc.pid):
        assert proc.poll() is None, "the run ended before it created its scratch device"
        assert time.monotonic() < deadline, "no scratch device appeared"
        time.sleep(0.05)


def run_until_measuring(
    tmp_path: Path, rng: random.Random, at_most_s: float
) -> tuple[subprocess.Popen[bytes], Path, str]:
    """A run started, its scratch file and loop device, some random time into measuring."""
    proc = start_run(tmp_path)
    wait_for_scratch(proc)
    [backing] = scratch_files_of(proc.pid)
    device = loop_device_of(backing)
    time.sleep(rng.uniform(0.0, at_most_s))
    return proc, backing, device


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_terminated_runs_clean_up_after_themselves(tmp_path: Path, signum: int) -> None:
    rng = random.Random(signum)
    scope_before = current_value(WORKQUEUE_AFFINITY_SCOPE)
    for _ in range(TRIALS):
        proc, backing, device = run_until_measuring(tmp_path, rng, 3.0)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) != 0
        assert not backing.parent.exists()
        assert str(backing) not in loop_backings()
        assert processes_using(device) == [], "a workload outlived its run"
        assert fio_of(proc.pid) == [], "fio outlived its run"
        assert job_dirs_of(proc.pid) == [], "an interrupted run left its fio job file"
        assert current_value(WORKQUEUE_AFFINITY_SCOPE) == scope_before
        assert not journal_path(proc.pid).exists()
        assert not list((tmp_path / "b").rglob("*.json")), "an interrupted run wrote a baseline"


def test_after_sigkill_the_next_run_removes_the_leftovers(tmp_path: Path) -> None:
    rng = random.Random(9)
    scope_before = current_value(WORKQUEUE_AFFINITY_SCOPE)
    for _ in range(TRIALS):
        proc, backing, device = run_until_measuring(tmp_path, rng, 2.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(0.2)  # fio children die with their parent (PR_SET_PDEATHSIG)
        assert processes_using(device) == [], "a workload outlived its killed run"
        cleaned = kill_leftover_workloads()
        deadline = time.monotonic() + 5  # killed processes leave /proc once reaped
        while fio_of(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fio_of(proc.pid) == [], f"fio outlived its killed run ({cleaned})"
        # Killed before losetup attached it, the backing file has no device yet.
        attached = str(backing) in loop_backings()
        job_dirs = job_dirs_of(proc.pid)
        cleaned = restore_leftover_knobs() + remove_leftover_scratch()
        cleaned += remove_leftover_tempdirs()
        assert current_value(WORKQUEUE_AFFINITY_SCOPE) == scope_before
        if cleaned:  # else another perfcheck run on this host got there first
            assert f"removed {backing}" in cleaned
            if attached:
                assert any(line.startswith("detached /dev/loop") for line in cleaned)
            for job_dir in job_dirs:
                assert f"removed {job_dir} (left by process {proc.pid})" in cleaned
        assert not backing.parent.exists()
        assert job_dirs_of(proc.pid) == [], "a killed run's fio job file was left behind"
        # A device still open somewhere is detached when its last user closes it.
        deadline = time.monotonic() + 10
        while str(backing) in loop_backings() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert str(backing) not in loop_backings()
