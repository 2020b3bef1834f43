"""Stopping a process we started (SIGTERM, then SIGKILL after the grace period), and the
temporary directories a run owns, removed by a later run when it was killed."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from perfcheck.system.processes import (
    TEMP_KINDS,
    pid_alive,
    remove_leftover_tempdirs,
    run_tempdir,
    stop_process,
)


def test_a_process_that_exits_on_sigterm_is_stopped_and_reaped() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(process, grace_s=10)
    assert process.returncode == -15
    assert not pid_alive(process.pid)


def test_numbers_no_process_can_have_are_not_alive() -> None:
    """A 20-digit pid in a planted file name raised OverflowError; 0 and negative numbers
    name process groups (ours among them), not a process."""
    for pid in (10**20, 2**22 + 1, 0, -1):
        assert not pid_alive(pid)
    assert pid_alive(os.getpid())


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    ignores = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    ignores += " print('ready', flush=True); time.sleep(60)"
    process = subprocess.Popen([sys.executable, "-c", ignores], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    began = time.monotonic()
    stop_process(process, grace_s=0.5)
    assert process.returncode == -9
    assert 0.4 < time.monotonic() - began < 10


def test_a_process_already_gone_is_left_alone() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    stop_process(process, grace_s=1)
    assert process.returncode == 0


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_run_tempdir_is_named_after_its_process_and_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with run_tempdir("iperf3-server") as made:
        name = Path(made).name
        assert name.startswith(f"perfcheck-iperf3-server-{os.getpid()}-")
        assert remove_leftover_tempdirs(tmp_path) == []  # this process is alive: kept
        assert Path(made).is_dir()
    assert not Path(made).exists()


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="TEMP_KINDS"):
        run_tempdir("fuzz")


def test_only_the_temporary_directories_of_ended_runs_are_removed(tmp_path: Path) -> None:
    gone, alive = dead_pid(), os.getpid()
    leftovers = [tmp_path / f"perfcheck-{kind}-{gone}-x1y2" for kind in TEMP_KINDS]
    for path in leftovers:
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "job.fio").write_text("[j]\n")
    kept = [
        tmp_path / f"perfcheck-fio-{alive}-live",  # a run still going
        tmp_path / f"perfcheck-fuzz-{gone}-x",  # not a kind perfcheck makes
        tmp_path / f"perfcheck-fio-test-{gone}",  # no pid where the pid goes
        tmp_path / f"other-fio-{gone}-x",
    ]
    for path in kept:
        path.mkdir()
    not_a_dir = tmp_path / f"perfcheck-sockperf-{gone}-file"
    not_a_dir.write_text("")
    link = tmp_path / f"perfcheck-refresh-{gone}-link"
    link.symlink_to(kept[0])

    removed = remove_leftover_tempdirs(tmp_path)

    assert removed == [f"removed {p} (left by process {gone})" for p in sorted(leftovers)]
    assert not any(p.exists() for p in leftovers)
    assert all(p.is_dir() for p in kept) and not_a_dir.exists() and link.is_symlink()
    assert remove_leftover_tempdirs(tmp_path) == []


def test_a_missing_temporary_root_removes_nothing(tmp_path: Path) -> None:
    assert remove_leftover_tempdirs(tmp_path / "absent") == []
