"""What machine and software a measurement was taken on.

The environment is stored with every baseline and shown when a verdict is not
PASS: a changed kernel, scheduler or tool version is the first thing a user looks
for. The *machine class* keys baselines; it deliberately leaves out the kernel
version, because comparing kernels is the point.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from perfcheck import __version__
from perfcheck.text import ANSI_ESCAPE_RE

#: Environment variable that overrides the detected machine class.
MACHINE_CLASS_ENV = "PERFCHECK_MACHINE_CLASS"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_class(override: str | None = None) -> str:
    """Key of the baselines recorded on this kind of machine.

    ``<arch>-<cores>cpu-<cpu model>``, e.g. ``x86_64-2cpu-amd-epyc``. An explicit
    override (option, ini key or ``PERFCHECK_MACHINE_CLASS``) wins.
    """
    chosen = override or os.environ.get(MACHINE_CLASS_ENV)
    if chosen:
        return chosen
    return f"{platform.machine()}-{os.cpu_count() or 0}cpu-{_slug(cpu_model())}"


def tool_version(name: str) -> str:
    """First line of ``<name> --version``, colours removed (``absent`` when not installed,
    ``unknown`` when it says nothing or does not run)."""
    path = shutil.which(name)
    if path is None:
        return "absent"
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = ANSI_ESCAPE_RE.sub("", proc.stdout + proc.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def bcc_version() -> str:
    """bcc's version without importing it (importing bcc loads libbcc, which is slow)."""
    from importlib import metadata

    for dist in ("bcc", "bpfcc"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "python3-bpfcc"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "absent"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def active_scheduler(text: str) -> str:
    """``"none [mq-deadline] kyber"`` -> ``"mq-deadline"``."""
    match = re.search(r"\[([^\]]+)\]", text)
    return match.group(1) if match else text.strip()


def block_device_facts(disk: str, sysfs: Path = Path("/sys/block")) -> dict[str, Any]:
    """Model and queue settings of a whole disk (``loop0``, ``vda``)."""
    base = sysfs / disk
    facts: dict[str, Any] = {"target.disk": disk}
    model = _read(base / "device" / "model")
    backing = _read(base / "loop" / "backing_file")
    if backing is not None:
        # The scratch file's name is unique per run; keep only what describes the device
        # (every page of it written: see perfcheck.system.targets.fill_with_data).
        # It lives in a directory of its own (perfcheck-scratch-<pid>-<token>/).
        model = "loop over " + (
            f"a perfcheck scratch file in {Path(backing).parent.parent}, every page written"
            if Path(backing).parent.name.startswith("perfcheck-scratch-")
            else backing
        )
    facts["target.model"] = model or "unknown"
    sched = _read(base / "queue" / "scheduler")
    if sched is not None:
        facts["target.scheduler"] = active_scheduler(sched)
    for knob in ("nr_requests", "rotational", "max_sectors_kb", "read_ahead_kb", "nomerges"):
        value = _read(base / "queue" / knob)
        if value is not None:
            facts[f"target.queue.{knob}"] = value
    return facts


def capture(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The environment of this run, flat and JSON-friendly."""
    uname = platform.uname()
    env: dict[str, Any] = {
        "kernel.release": uname.release,
        "kernel.version": uname.version,
        "machine.arch": uname.machine,
        "cpu.model": cpu_model(),
        "cpu.count": os.cpu_count() or 0,
        "tool.fio": tool_version("fio"),
        "tool.bcc": bcc_version(),
        "tool.python": platform.python_version(),
        "tool.perfcheck": __version__,
    }
    governor = _read(Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"))
    env["cpu.governor"] = governor or "n/a"
    if extra:
        env.update(extra)
    return env
