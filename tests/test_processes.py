"""Stopping a process we started: SIGTERM, then SIGKILL after the grace period."""

from __future__ import annotations

import subprocess
import sys
import time

from perfcheck.processes import pid_alive, stop_process


def test_a_process_that_exits_on_sigterm_is_stopped_and_reaped() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(process, grace_s=10)
    assert process.returncode == -15
    assert not pid_alive(process.pid)


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
