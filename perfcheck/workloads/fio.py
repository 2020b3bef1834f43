"""Running fio job files against a target and reading what fio itself measured.

Scenario job files are plain fio job files without a target: the harness
prepends a ``[global]`` section naming the target and the round's runtime, runs
``fio --output-format=json+`` and converts fio's completion-latency bins into the
project's :class:`~perfcheck.model.histogram.LogLinearHistogram` (exactly: fio's bins are
a finer member of the same log-linear family).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfcheck.errors import CapabilityError, ScenarioError, WorkloadError
from perfcheck.files import read_text_file
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.system.processes import run_tempdir

#: fio directions as they appear in its JSON, and the probe op names they match.
DIRECTIONS: tuple[str, ...] = ("read", "write", "trim")
#: Options the harness sets itself; a job file that sets them would aim fio elsewhere.
RESERVED_OPTIONS = frozenset(
    {"filename", "filename_format", "directory", "runtime", "time_based", "opendir"}
)
_WRITE_MODES = frozenset(
    {"write", "randwrite", "rw", "readwrite", "randrw", "trim", "randtrim", "trimwrite"}
)

#: Prefix of the temporary directory holding a run's job file: ``perfcheck-fio-<pid>-``.
JOB_DIR_MARKER = "perfcheck-fio-"

FIO_INSTALL_HINT = "install it with `apt-get install fio` (or `make setup`)"


def die_with_parent() -> None:
    """In a child before exec: be killed when the harness dies, even by SIGKILL, so no
    workload outlives the run that started it (Linux PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def run_in_own_group(
    cmd: list[str],
    timeout: float,
    preexec: Callable[[], None] | None = None,
    marker: str | None = None,
) -> tuple[int | None, str, str]:
    """Run a workload in a process group of its own and wait for it.

    fio forks a process per job; killing only the one we started would orphan them. On a
    time-out (returncode None) or any interruption (Ctrl-C, SIGTERM turned into
    KeyboardInterrupt) the whole group is killed before returning or re-raising, and so
    is every process whose command line holds ``marker``: fio's job processes call
    setsid(), leaving the group, and one forked just before its parent died waits
    forever for the parent's go-ahead (while holding the output pipes open).
    ``preexec`` runs in the child before exec, after it is tied to the harness's life
    (e.g. :meth:`perfcheck.system.cgroup.WorkloadCgroup.preexec_fn`, to start in a cgroup).
    """

    def child_setup() -> None:
        die_with_parent()
        if preexec is not None:
            preexec()

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=child_setup,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc, marker)
        return None, "", ""
    except BaseException:
        _kill_group(proc, marker)
        raise
    return proc.returncode, stdout, stderr


def _kill_group(proc: subprocess.Popen[str], marker: str | None) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if marker is not None:
        kill_processes_with(marker)
    proc.communicate()


def _command_lines(proc_root: Path) -> Iterator[tuple[int, str]]:
    """(pid, command line with NULs as spaces) of every process we can read, but ours."""
    for cmdline in proc_root.glob("[0-9]*/cmdline"):
        try:
            pid = int(cmdline.parent.name)
            raw = cmdline.read_bytes()
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
        if pid != os.getpid():
            yield pid, raw.replace(b"\0", b" ").decode(errors="replace")


def kill_processes_with(marker: str, proc_root: Path = Path("/proc")) -> list[int]:
    """SIGKILL every process whose command line contains ``marker`` (a path unique to one
    workload run, such as its job file's directory); returns their pids."""
    killed: list[int] = []
    for pid, text in _command_lines(proc_root):
        if marker in text:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def kill_leftover_workloads(proc_root: Path = Path("/proc")) -> list[str]:
    """Kill fio processes of runs that no longer exist (a SIGKILLed run's forked jobs)."""
    killed: list[str] = []
    pattern = re.compile(rf"{JOB_DIR_MARKER}(\d+)-")
    for pid, text in _command_lines(proc_root):
        match = pattern.search(text)
        if match is None or not text.lstrip().split(" ", 1)[0].endswith("fio"):
            continue
        owner = int(match.group(1))
        if Path(proc_root, str(owner)).exists():
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(f"killed fio process {pid} (left by process {owner})")
    return killed


def require_fio() -> str:
    path = shutil.which("fio")
    if path is None:
        raise CapabilityError(f"fio: not found on PATH; {FIO_INSTALL_HINT}")
    return path


@dataclass(frozen=True)
class FioJobFile:
    """A scenario's fio job file, checked for options the harness owns."""

    path: Path
    text: str
    rw_modes: frozenset[str]

    @property
    def writes(self) -> bool:
        """Whether any job writes or trims (which decides the target safety checks)."""
        return bool(self.rw_modes & _WRITE_MODES)


def load_job_file(path: Path) -> FioJobFile:
    text = read_text_file(
        path, noun="fio job file", fix="check the scenario's 'workload.job'", error=ScenarioError
    )
    modes: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        key = key.strip().lower()
        if key in RESERVED_OPTIONS:
            raise ScenarioError(
                f"{path}:{lineno}: fio option {key!r} is set by perfcheck (target and round"
                " length); remove it from the job file"
            )
        if key in ("rw", "readwrite"):
            modes.add(value.strip().split(":")[0].lower())
    # fio's default rw is read.
    return FioJobFile(path=path, text=text, rw_modes=frozenset(modes or {"read"}))


@dataclass(frozen=True)
class FioDirection:
    """What fio measured for one direction of one run, summed over its jobs."""

    ios: int
    io_bytes: int
    iops: float
    bw_bytes: float
    clat: LogLinearHistogram


@dataclass
class FioResult:
    version: str
    directions: dict[str, FioDirection] = field(default_factory=dict)

    def histograms(self) -> dict[str, LogLinearHistogram]:
        return {f"fio.clat.{name}": d.clat for name, d in self.directions.items() if d.ios > 0}

    def scalars(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, d in self.directions.items():
            if d.ios > 0:
                out[f"fio.iops.{name}"] = d.iops
                out[f"fio.bw_bytes.{name}"] = d.bw_bytes
        return out

    @property
    def total_ios(self) -> int:
        return sum(d.ios for d in self.directions.values())

    @property
    def total_bytes(self) -> int:
        return sum(d.io_bytes for d in self.directions.values())


def _json_start(text: str) -> int:
    """fio may print warnings before its JSON; find the line where the JSON object starts."""
    match = re.search(r"^\{", text, re.MULTILINE)
    if match is None:
        raise ValueError("no JSON object in fio's output")
    return match.start()


def parse_fio_output(text: str, source: str = "fio") -> FioResult:
    """Parse ``fio --output-format=json+`` output (text before the JSON is ignored)."""
    try:
        start = _json_start(text)
        data, _ = json.JSONDecoder().raw_decode(text, start)
        jobs = data["jobs"]
        if not isinstance(jobs, list) or not jobs:
            raise ValueError("no jobs in fio's JSON")
        result = FioResult(version=str(data.get("fio version", "unknown")))
        for direction in DIRECTIONS:
            result.directions[direction] = _sum_direction(jobs, direction)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        head = text.strip().splitlines()[:1]
        first = head[0] if head else ""
        raise WorkloadError(
            f"{source}: cannot read fio's JSON output ({exc}); first line: {first!r}"
        ) from exc
    return result


def _sum_direction(jobs: list[Mapping[str, Any]], direction: str) -> FioDirection:
    ios = io_bytes = 0
    iops = bw = 0.0
    clat = LogLinearHistogram.empty()
    for job in jobs:
        part = job[direction]  # fio always reports every direction, even unused ones
        ios += int(part["total_ios"])
        io_bytes += int(part["io_bytes"])
        iops += float(part["iops"])
        bw += float(part["bw_bytes"])
        bins = part.get("clat_ns", {}).get("bins")
        if bins:
            clat = clat.merge(LogLinearHistogram.from_fio_bins(bins))
    return FioDirection(ios=ios, io_bytes=io_bytes, iops=iops, bw_bytes=bw, clat=clat)


@dataclass
class FioRunner:
    """Runs one job file against one target path, one round at a time."""

    job: FioJobFile
    target: Path
    options: Mapping[str, str] = field(default_factory=dict)
    #: Run in each fio child before exec (e.g. joining the workload's cgroup).
    preexec: Callable[[], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for key in self.options:
            if key.lower() in RESERVED_OPTIONS or key.lower() == "output-format":
                raise ScenarioError(
                    f"{self.job.path}: fio option {key!r} in [workload.options] is set by"
                    " perfcheck (target, round length, output); remove it"
                )

    def command(self, jobfile: Path) -> list[str]:
        cmd = [require_fio(), "--output-format=json+", "--eta=never"]
        cmd += [f"--{k}={v}" for k, v in sorted(self.options.items())]
        return [*cmd, str(jobfile)]

    def job_text(self, seconds: float) -> str:
        runtime_ms = max(1, round(seconds * 1000))
        head = (
            "; written by perfcheck: the target and round length, then the scenario's job file\n"
            f"[global]\nfilename={self.target}\nruntime={runtime_ms}ms\ntime_based=1\n\n"
        )
        return head + self.job.text

    def run(self, seconds: float) -> FioResult:
        # The run's pid in the job path lets a later run find fio left by a killed one.
        with run_tempdir("fio") as tmp:
            jobfile = Path(tmp) / self.job.path.name
            jobfile.write_text(self.job_text(seconds))
            cmd = self.command(jobfile)
            returncode, stdout, stderr = run_in_own_group(
                cmd, timeout=seconds + 120, preexec=self.preexec, marker=tmp
            )
            if returncode is None:
                raise WorkloadError(
                    f"{self.job.path}: fio did not finish within {seconds + 120:.0f} s; killed"
                )
        if returncode != 0:
            err = (stderr or stdout).strip().splitlines()
            raise WorkloadError(
                f"{self.job.path}: fio exited {returncode} on {self.target}:"
                f" {err[-1] if err else 'no message'}"
            )
        return parse_fio_output(stdout, source=str(self.job.path))
