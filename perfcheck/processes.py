"""Processes: whether one still exists (how leftovers of killed runs are told from live
ones), and stopping one we started."""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Any


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists (a process we may not signal still exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(process: subprocess.Popen[Any], grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s`` seconds; always reaped."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
