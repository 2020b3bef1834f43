"""Processes: running a set-up command, whether one still exists (how leftovers of killed
runs are told from live ones), stopping one we started, and the temporary directories a
run owns."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from perfcheck.errors import TargetError, WorkloadError

#: What a run keeps in temporary directories, each named ``perfcheck-<kind>-<pid>-<random>``
#: after the process that made it, so that a later run can remove those of a killed one.
TEMP_KINDS: tuple[str, ...] = (
    "fio",  # a fio run's job file (the name also marks its fio processes)
    "iperf3-server",  # a network server's log
    "sockperf-server",
    "sockperf",  # sockperf's full log of one round
    "refresh",  # `perfcheck refresh`'s results file
    "command",  # where a command scenario's command runs, unless it names a directory
)
_TEMP_NAME = re.compile(rf"perfcheck-({'|'.join(map(re.escape, TEMP_KINDS))})-(\d+)-[^/]+")


#: The kernel's PID_MAX_LIMIT on 64-bit: no process id is larger.
PID_MAX_LIMIT = 1 << 22


def run_tool(cmd: list[str], what: str, timeout_s: float = 60.0) -> str:
    """Run a set-up command (``losetup``, ``ip``, ``tc``) and return its standard output.

    Failing or hanging, it raises a one-line ``TargetError``: the command, its last line of
    output (or exit status) and what could not be done, e.g. ``cannot attach a loop device``.
    """
    shown = " ".join(cmd)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"`{shown}` hung for {timeout_s:.0f} s: cannot {what}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit {proc.returncode}"
        raise TargetError(f"`{shown}` failed ({last}): cannot {what}")
    return proc.stdout


def run_within(
    cmd: list[str], timeout_s: float, too_slow: str, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to completion, output captured as text, whatever its exit status.

    Past ``timeout_s`` it is killed and ``too_slow`` becomes a one-line ``WorkloadError``;
    an interrupted caller (Ctrl-C, SIGTERM) kills it too.
    """
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, check=False, **popen
        )
    except subprocess.TimeoutExpired as exc:
        raise WorkloadError(too_slow) from exc


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists (a process we may not signal still exists)."""
    if not 0 < pid <= PID_MAX_LIMIT:  # 0 and negatives name process groups, not a process
        return False
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


def run_tempdir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory of this process for ``kind`` (one of :data:`TEMP_KINDS`),
    removed when it is cleaned up, or by the next run if this one is killed first."""
    if kind not in TEMP_KINDS:
        raise ValueError(f"unknown temporary directory kind {kind!r}; add it to TEMP_KINDS")
    return tempfile.TemporaryDirectory(prefix=f"perfcheck-{kind}-{os.getpid()}-")


def remove_leftover_tempdirs(directory: Path | None = None) -> list[str]:
    """Remove the temporary directories of runs that no longer exist (SIGKILL, power loss).

    Only directories named by :func:`run_tempdir` and owned by this user are touched; one
    whose process still exists is kept. Returns one line per directory removed.
    """
    root = Path(tempfile.gettempdir()) if directory is None else directory
    removed: list[str] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return removed
    for path in entries:
        match = _TEMP_NAME.fullmatch(path.name)
        if match is None:
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or st.st_uid != os.geteuid():
            continue
        pid = int(match.group(2))
        if pid_alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(f"removed {path} (left by process {pid})")
    return removed
