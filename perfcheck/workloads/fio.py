"""Running fio job files against a target and reading what fio itself measured.

Scenario job files are plain fio job files without a target. A scenario may come from
a pull request, so it must not be able to damage the host beyond the scratch device:
fio itself reads the job (``--showcmd``) and every option it sees must be in
:data:`ALLOWED_OPTIONS`, and fio runs with ``--readonly`` unless the target may be
written. The harness gives the target and the round's runtime as global options, runs
``fio --output-format=json+`` and converts fio's completion-latency bins into the
project's :class:`~perfcheck.model.histogram.LogLinearHistogram` (exactly: fio's bins are
a finer member of the same log-linear family).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from perfcheck.errors import CapabilityError, ScenarioError, TargetError, WorkloadError
from perfcheck.files import read_text_file
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.system.processes import run_tempdir

#: fio directions as they appear in its JSON, and the probe op names they match.
DIRECTIONS: tuple[str, ...] = ("read", "write", "trim")
#: Options the harness sets itself (``timeout`` is fio's other name for ``runtime``).
RESERVED_OPTIONS = frozenset(
    {
        "filename",
        "filename_format",
        "directory",
        "opendir",
        "runtime",
        "timeout",
        "time_based",
        "allow_file_create",
    }
)
#: The fio options a scenario may set (in its job file or ``[workload.options]``), with
#: their other names. A scenario may come from a pull request, so none of them may name
#: a file, run a command, load code, create, grow, truncate or delete anything: what
#: fio opens is the target perfcheck names, nothing else. Everything else is refused.
ALLOWED_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # the job and its direction
        "name": (),
        "description": (),
        "rw": ("readwrite",),
        "rw_sequencer": (),
        "rwmixread": (),
        "rwmixwrite": (),
        # block sizes, region and amount
        "bs": ("blocksize",),
        "ba": ("blockalign",),
        "bsrange": ("blocksize_range",),
        "bssplit": (),
        "bs_unaligned": ("blocksize_unaligned",),
        "bs_is_seq_rand": (),
        "size": (),
        "io_size": ("io_limit",),
        "offset": ("fileoffset",),
        "offset_increment": (),
        "offset_align": (),
        "number_ios": (),
        # random offsets
        "randrepeat": (),
        "allrandrepeat": (),
        "randseed": (),
        "norandommap": (),
        "softrandommap": (),
        "random_generator": (),
        "random_distribution": (),
        "percentage_random": (),
        # engine, queue and caching
        "ioengine": (),
        "iodepth": (),
        "iodepth_batch": ("iodepth_batch_submit",),
        "iodepth_batch_complete_min": ("iodepth_batch_complete",),
        "iodepth_batch_complete_max": (),
        "iodepth_low": (),
        "io_submit_mode": (),
        "serialize_overlap": (),
        "direct": (),
        "buffered": (),
        "sync": (),
        "fsync": (),
        "fdatasync": (),
        "end_fsync": (),
        "fsync_on_close": (),
        "invalidate": (),
        "fadvise_hint": (),
        # I/O buffers
        "mem": ("iomem",),
        "iomem_align": ("mem_align",),
        "zero_buffers": (),
        "refill_buffers": (),
        "scramble_buffers": (),
        "buffer_compress_percentage": (),
        "buffer_compress_chunk": (),
        "dedupe_percentage": (),
        # pacing
        "ramp_time": (),
        "startdelay": (),
        "loops": (),
        "thinktime": (),
        "thinktime_spin": (),
        "thinktime_blocks": (),
        "rate": (),
        "rate_min": ("ratemin",),
        "rate_iops": (),
        "rate_iops_min": (),
        "rate_process": (),
        "max_latency": (),
        "clocksource": (),
        # processes, CPUs and priorities
        "numjobs": (),
        "thread": (),
        "cpumask": (),
        "cpus_allowed": (),
        "cpus_allowed_policy": (),
        "numa_cpu_nodes": (),
        "numa_mem_policy": (),
        "nice": (),
        "prio": (),
        "prioclass": (),
        "stonewall": ("wait_for_previous",),
        "new_group": (),
        "wait_for": (),
        "exitall": (),
        "group_reporting": (),
        "kb_base": (),
        "unit_base": (),
        # options of the allowed engines
        "hipri": (),
        "hipri_percentage": (),
        "fixedbufs": (),
        "registerfiles": (),
        "sqthread_poll": (),
        "sqthread_poll_cpu": (),
        "nonvectored": (),
        "userspace_reap": (),
        "nowait": (),
        "force_async": (),
    }
)
#: Engines that read and write the file they are given and nothing else (no deleting,
#: no network, no passthrough commands, no code loaded from a path).
ALLOWED_IOENGINES = (
    "sync",
    "psync",
    "vsync",
    "pvsync",
    "pvsync2",
    "libaio",
    "io_uring",
    "posixaio",
)
#: I/O buffer kinds without a backing file (``mem=mmap:/path`` would write that file).
ALLOWED_MEM = ("malloc", "shm", "shmhuge", "mmap", "mmapshared")
#: ``rw`` values that only read; every other direction writes or trims.
READ_MODES = frozenset({"read", "randread"})
#: fio reads a job file line into a buffer of 8192 bytes; a longer line becomes several.
#: Far shorter than that is plenty for any option.
MAX_JOB_LINE = 4096

_CANONICAL = MappingProxyType(
    {alias: name for name, aliases in ALLOWED_OPTIONS.items() for alias in (name, *aliases)}
)
#: Blanks as fio's job file reader strips them (C isspace), and control characters.
_C_SPACE = " \t\n\v\f\r"
_CONTROL = frozenset(map(chr, (*range(32), 127)))
#: What fio reads before a scenario's job text, at the check and in the run alike:
#: ``fio --showcmd`` prints the command-line options (``[workload.options]``) only as
#: part of a ``[global]`` section.
_JOB_HEAD = "[global]\n"

#: Prefix of the temporary directory holding a run's job file: ``perfcheck-fio-<pid>-``.
JOB_DIR_MARKER = "perfcheck-fio-"

#: The size of each fio file on a filesystem target when the job gives none (a fourth of the
#: 512 MiB scratch device, so the job's files, the journal and metadata fit).
FS_FILE_SIZE_MIB = 128

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
    cwd: str | None = None,
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
    ``cwd`` is where relative paths land (the run's own temporary directory).
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
        cwd=cwd,
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


def option_problem(name: str, value: str | None) -> str | None:
    """Why a scenario may not set fio option ``name`` (to ``value``), or None if it may."""
    if name in RESERVED_OPTIONS:
        return f"fio option {name!r} is set by perfcheck (target and round length); remove it"
    canonical = _CANONICAL.get(name)
    if canonical is None:
        return (
            f"fio option {name!r} is not allowed in a scenario: only options that touch no"
            " file but the target and run no command are (README, Safety); remove it"
        )
    text = "" if value is None else value.strip()
    if canonical == "ioengine" and text not in ALLOWED_IOENGINES:
        return f"fio ioengine {text!r} is not allowed; use one of {', '.join(ALLOWED_IOENGINES)}"
    if canonical == "mem" and text not in ALLOWED_MEM:
        return f"fio option '{name}={text}' is not allowed; use one of {', '.join(ALLOWED_MEM)}"
    return None


def screen_job_text(path: Path, text: str) -> None:
    """Refuse what fio acts on while it reads a job file, before fio reads it: ``include``
    (another file), ``$`` (the environment), an ioengine that loads code from a path,
    lines longer than fio reads whole; and, with a line number, options not allowed.

    fio itself parses the job afterwards and its reading is checked again
    (:func:`load_job_file`); this pass only has to be as strict as fio's reader, which
    it is for text without control characters or over-long lines, both refused here.
    """
    for lineno, raw in enumerate(text.split("\n"), 1):
        where = f"{path}:{lineno}"
        if len(raw) > MAX_JOB_LINE:
            raise ScenarioError(
                f"{where}: line is longer than {MAX_JOB_LINE} characters, and fio reads"
                " long lines in pieces; shorten it"
            )
        bad = next((ch for ch in raw if ch in _CONTROL and ch not in "\t\r"), None)
        if bad is not None:
            raise ScenarioError(
                f"{where}: control character U+{ord(bad):04X} in the job file; remove it"
            )
        line = raw.strip(_C_SPACE)
        if not line or line[0] in ";#":
            continue
        # fio ends every line at its first ';' or '#' (inline comments).
        line = line.split(";", 1)[0].split("#", 1)[0].rstrip(_C_SPACE)
        if line.startswith("include"):
            raise ScenarioError(
                f"{where}: fio's include is not allowed: a scenario's job is one file;"
                " copy the options in"
            )
        if "$" in line:
            raise ScenarioError(
                f"{where}: fio's $ substitution is not allowed: the job would depend on"
                " the machine's environment; write the value"
            )
        if line.startswith("["):
            continue
        name, equals, value = line.partition("=")
        problem = option_problem(name.rstrip(_C_SPACE), value if equals else None)
        if problem is not None:
            raise ScenarioError(f"{where}: {problem}")


@dataclass(frozen=True)
class _FioReading:
    """The options of a job as fio read them (``fio --showcmd``), or why it could not."""

    options: tuple[tuple[str, str | None], ...] = ()
    error: str | None = None


@functools.lru_cache(maxsize=64)
def _read_with_fio(text: str, options: tuple[tuple[str, str], ...]) -> _FioReading:
    """Let fio read the job (``--showcmd``: it parses, prints each option under its own
    name and starts nothing) with the scenario's command-line options before it."""
    with run_tempdir("fio") as tmp:
        jobfile = Path(tmp) / "job.fio"
        jobfile.write_text(_JOB_HEAD + text)
        cmd = [require_fio(), "--showcmd", *(f"--{k}={v}" for k, v in options), str(jobfile)]
        returncode, stdout, stderr = run_in_own_group(cmd, timeout=60, marker=tmp, cwd=tmp)
    if returncode != 0:
        # fio's first complaint names the option; the last only says the job was dropped.
        lines = stderr.strip().splitlines()
        why = "timed out" if returncode is None else (lines[0] if lines else "no message")
        return _FioReading(error=f"fio cannot read the job ({why.strip()})")
    words = " ".join(stdout.split("\n")).strip()
    if not words:
        return _FioReading()
    if not words.startswith("fio"):
        return _FioReading(error=f"unexpected output of fio --showcmd: {words[:80]!r}")
    # Each option is printed as " --name[=value]". A value holding " --" splits into a
    # further, made-up option: that can only add a refusal, never hide an option.
    parsed: list[tuple[str, str | None]] = []
    for item in words.split(" --")[1:]:
        name, equals, value = item.strip().partition("=")
        parsed.append((name.strip(), value.strip() if equals else None))
    return _FioReading(options=tuple(parsed))


@dataclass(frozen=True)
class FioJobFile:
    """A scenario's fio job file and ``[workload.options]``, as fio reads them, checked
    against :data:`ALLOWED_OPTIONS`. Build it with :func:`load_job_file`."""

    path: Path
    text: str
    rw_modes: frozenset[str]
    #: ``[workload.options]``: passed to fio as ``--name=value`` before the job file.
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def writes(self) -> bool:
        """Whether any job writes or trims (which decides the target safety checks)."""
        return bool(self.rw_modes - READ_MODES)


def read_job_file(path: Path) -> str:
    """A job file's text, screened (:func:`screen_job_text`): all that is checked before
    fio reads it."""
    text = read_text_file(
        path, noun="fio job file", fix="check the scenario's 'workload.job'", error=ScenarioError
    )
    screen_job_text(path, text)
    return text


def load_job_file(
    path: Path, options: Mapping[str, str] | None = None, options_source: Path | None = None
) -> FioJobFile:
    """Read a scenario's job file and check it, with its ``[workload.options]`` (from
    ``options_source``, the scenario file), as fio itself reads them: every option fio
    sees must be allowed, and ``rw`` as fio sees it decides whether the job writes.

    Every problem is a one-line ``ScenarioError`` naming the file (and line) at fault.
    """
    text = read_job_file(path)
    extra = dict(options or {})
    source = f"{options_source if options_source is not None else path}: [workload.options]"
    for name, value in extra.items():
        problem = workload_option_problem(name, value)
        if problem is not None:
            raise ScenarioError(f"{source}: {problem}")
    reading = _read_with_fio(text, tuple(sorted(extra.items())))
    if reading.error is not None:
        raise ScenarioError(f"{path}: {reading.error}; fix the job file")
    modes: set[str] = set()
    for parsed_name, parsed_value in reading.options:
        problem = option_problem(parsed_name, parsed_value)
        if problem is not None:
            raise ScenarioError(f"{path}: as fio reads the job, {problem}")
        if parsed_name == "rw":
            modes.add((parsed_value or "").split(":")[0].strip().lower())
    # fio's default rw is read.
    return FioJobFile(
        path=path,
        text=text,
        rw_modes=frozenset(modes or {"read"}),
        options=MappingProxyType(extra),
    )


def workload_option_problem(name: str, value: str) -> str | None:
    """Why ``[workload.options]`` may not hold ``name = value``, or None if it may. These
    go on fio's command line, where fio also takes its own options (``output``) and
    abbreviations, so only the exact names of :data:`ALLOWED_OPTIONS` pass."""
    if any(ch in value for ch in "\0\n\r"):
        return f"{name!r} must be one line"
    if name == "name":
        return (
            "'name' would start a job of its own on fio's command line; name jobs in the job file"
        )
    return option_problem(name, value)


def fio_filename(path: Path) -> str:
    """``path`` as fio's ``filename=`` must spell it: absolute, each ':' escaped as '\\:'
    (fio splits the value at colons into several files, HOWTO "filename")."""
    text = os.path.abspath(path)
    if text.strip(_C_SPACE) != text or any(ch in ";#" or ch in _CONTROL for ch in text):
        raise TargetError(
            f"{text!r}: fio cannot name a file whose path holds ';', '#', a control character"
            " or blanks at its end; point a symlink without them at it and give that"
        )
    return text.replace(":", "\\:")


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
    """Runs one checked job file against one target path, one round at a time.

    fio runs with ``--readonly`` unless ``allow_writes``: it then opens the target for
    reading only and refuses any job that would write or trim, whatever the job file
    says. Give ``allow_writes`` only for a target that may be written (perfcheck's
    scratch device, or a user's target checked for writes, see :mod:`perfcheck.system.targets`).
    """

    job: FioJobFile
    target: Path
    allow_writes: bool = False
    #: Run in each fio child before exec (e.g. joining the workload's cgroup).
    preexec: Callable[[], None] | None = field(default=None, compare=False)
    #: The mount point of a filesystem perfcheck made on ``target``: fio's files go there
    #: (``directory=``) instead of I/O on the device itself.
    directory: Path | None = None

    def command(self, jobfile: Path, seconds: float) -> list[str]:
        runtime_ms = max(1, round(seconds * 1000))
        # --readonly first: fio checks each option against it as it reads the option.
        cmd = [require_fio(), *([] if self.allow_writes else ["--readonly"])]
        cmd += ["--output-format=json+", "--eta=never"]
        # The target and round length as global options, which the job cannot override:
        # the options that would are refused when the job is loaded.
        if self.directory is None:
            where = [f"--filename={fio_filename(self.target)}", "--allow_file_create=0"]
        else:
            # A filesystem perfcheck made: fio makes its files there, of the size the job
            # gives or else FS_FILE_SIZE_MIB (fio needs one to create a file).
            where = [
                f"--directory={fio_filename(self.directory)}",
                "--allow_file_create=1",
                f"--size={FS_FILE_SIZE_MIB}m",
            ]
        cmd += [*where, f"--runtime={runtime_ms}ms", "--time_based=1"]
        cmd += [f"--{k}={v}" for k, v in sorted(self.job.options.items())]
        return [*cmd, str(jobfile)]

    def run(self, seconds: float) -> FioResult:
        # The run's pid in the job path lets a later run find fio left by a killed one.
        with run_tempdir("fio") as tmp:
            jobfile = Path(tmp) / self.job.path.name
            jobfile.write_text(_JOB_HEAD + self.job.text)
            cmd = self.command(jobfile, seconds)
            returncode, stdout, stderr = run_in_own_group(
                cmd, timeout=seconds + 120, preexec=self.preexec, marker=tmp, cwd=tmp
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
