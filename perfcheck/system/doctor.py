"""Check whether this machine can run perfcheck: root, bcc, kernel headers, tracefs, tools.

``perfcheck doctor`` prints these checks. Probes and workloads reuse :func:`tracefs_root`
and :func:`tracepoint_exists` to feature-detect before they load anything.

Nothing here imports bcc: whether bcc imports is tried in a child interpreter, so a
machine without bcc can still run the doctor and be told how to fix it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from perfcheck.system import kernel_config, slowdowns
from perfcheck.system.tracefs import (
    DEBUGFS_ROOT,
    TRACEFS_MOUNT_POINTS,
    readable_dir,
    tracefs_root,
    tracepoint_exists,
)

MODULES_ROOT = Path("/lib/modules")

# Block-layer latency probes need all three; without them perfcheck measures nothing.
REQUIRED_TRACEPOINTS: tuple[str, ...] = (
    "block:block_rq_issue",
    "block:block_rq_complete",
    "block:block_rq_insert",
)
# Scheduler, softirq and network probes use these when present.
OPTIONAL_TRACEPOINTS: tuple[str, ...] = (
    "sched:sched_wakeup",
    "sched:sched_switch",
    "irq:softirq_entry",
    "tcp:tcp_probe",
    "raw_syscalls:sys_enter",
)

# The bcc release perfcheck is developed and tested with (Debian 12's python3-bpfcc).
TESTED_BCC_VERSION: tuple[int, ...] = (0, 26)

SETUP_FIX = "run `sudo make setup`"
TOOL_VERSION_TIMEOUT_S = 10.0
BCC_IMPORT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Check:
    """One thing perfcheck needs or can use, and whether this machine has it.

    ``required`` checks gate ``perfcheck doctor``'s exit status; the others only say
    which optional probes or workloads will be skipped. ``fix`` is one line, empty when ok.
    """

    name: str
    ok: bool
    required: bool
    detail: str
    fix: str


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def required_checks_pass(checks: Sequence[Check]) -> bool:
    """True when every required check is ok; optional ones never fail the machine."""
    return all(check.ok for check in checks if check.required)


def check_root(euid: int | None = None) -> Check:
    """Loading BPF programs and creating loop devices need root."""
    if euid is None:
        euid = os.geteuid()
    if euid == 0:
        return Check("root", True, True, "running as root", "")
    return Check(
        "root",
        False,
        True,
        f"running as uid {euid}; loading BPF programs needs root",
        "run as root, e.g. `sudo .venv/bin/perfcheck doctor`",
    )


def _parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"\d+(?:\.\d+)+", text)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(0).split("."))


def check_bcc(python: str | None = None) -> list[Check]:
    """Two checks: bcc imports in ``python`` (default: this interpreter), and its version.

    The import runs in a child process: importing bcc loads libbcc, which perfcheck must not
    do merely to answer a question.
    """
    if python is None:
        python = sys.executable
    fix = (
        f"{SETUP_FIX}, then use `.venv/bin/perfcheck` (bcc is Debian's python3-bpfcc, "
        "which only /usr/bin/python3 and venvs made from it with --system-site-packages see)"
    )
    version_name = "bcc version"
    if python == sys.executable and importlib.util.find_spec("bcc") is None:
        return [
            Check("bcc", False, True, f"bcc is not importable by {python}", fix),
            Check(version_name, False, False, "unknown: bcc is not importable", fix),
        ]
    try:
        child = subprocess.run(
            [python, "-c", "import bcc; print(bcc.__version__)"],
            capture_output=True,
            text=True,
            timeout=BCC_IMPORT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return [
            Check("bcc", False, True, f"could not run {python}: {err}", fix),
            Check(version_name, False, False, "unknown: bcc is not importable", fix),
        ]
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {child.returncode}"
        return [
            Check("bcc", False, True, f"import bcc failed in {python}: {why}", fix),
            Check(version_name, False, False, "unknown: bcc is not importable", fix),
        ]
    version_text = child.stdout.strip()
    imported = Check("bcc", True, True, f"importable by {python}", "")
    version = _parse_version(version_text)
    tested = ".".join(str(part) for part in TESTED_BCC_VERSION)
    if version is None:
        return [
            imported,
            Check(version_name, False, False, f"unrecognised version {version_text!r}", ""),
        ]
    if version < TESTED_BCC_VERSION:
        return [
            imported,
            Check(
                version_name,
                False,
                False,
                f"{version_text}, older than {tested}, the version perfcheck is tested with",
                f"install bcc {tested} or newer (Debian 12: python3-bpfcc)",
            ),
        ]
    return [imported, Check(version_name, True, False, version_text, "")]


def check_kernel_headers(release: str, modules_root: Path = MODULES_ROOT) -> Check:
    """bcc compiles its C programs against ``<modules_root>/<release>/build/include``."""
    build = modules_root / release / "build"
    if not readable_dir(build / "include"):
        return Check(
            "kernel headers",
            False,
            True,
            f"{build}/include is missing; bcc cannot compile probes",
            f"{SETUP_FIX} (installs kernel headers and links them for {release})",
        )
    target = build.resolve()
    detail = f"{build} -> {target}"
    if release not in target.name:
        detail += " (another kernel's headers: fine for tracepoint probes)"
    return Check("kernel headers", True, True, detail, "")


def check_tracefs(mount_points: Sequence[Path] = TRACEFS_MOUNT_POINTS) -> Check:
    """Tracepoint formats and events live in tracefs, which is not mounted at boot here."""
    root = tracefs_root(mount_points)
    if root is None:
        places = ", ".join(str(point) for point in mount_points)
        return Check(
            "tracefs",
            False,
            True,
            f"no readable events directory under {places}",
            f"{SETUP_FIX} (mounts debugfs and tracefs)",
        )
    return Check("tracefs", True, True, f"{root}", "")


def check_tracepoint(name: str, required: bool, root: Path | None) -> Check:
    """Whether tracepoint ``name`` (``category:event``) exists under tracefs ``root``."""
    if root is None:
        return Check(
            name,
            False,
            required,
            "tracepoint unknown: tracefs not mounted",
            f"{SETUP_FIX} (mounts tracefs)",
        )
    category, _, event = name.partition(":")
    if tracepoint_exists(category, event, root):
        return Check(name, True, required, "tracepoint present", "")
    if required:
        fix = "use a kernel built with CONFIG_TRACEPOINTS and the block layer's tracepoints"
    else:
        fix = "none: probes that use it are skipped on this kernel"
    return Check(name, False, required, f"tracepoint absent from {root / 'events'}", fix)


def check_kprobes(tracefs: Path | None, debugfs_root: Path = DEBUGFS_ROOT) -> Check:
    """Informational: perfcheck's own probes are tracepoints, kprobe-based ones are extras."""
    if (tracefs is not None and _exists(tracefs / "kprobe_events")) or readable_dir(
        debugfs_root / "kprobes"
    ):
        return Check("kprobes", True, False, "present", "")
    if tracefs is None:
        return Check(
            "kprobes",
            False,
            False,
            "unknown: tracefs not mounted",
            f"{SETUP_FIX} (mounts tracefs)",
        )
    return Check(
        "kprobes",
        False,
        False,
        "absent: kprobe-based probes unavailable",
        "none needed: perfcheck's probes use tracepoints",
    )


def check_tool(name: str, required: bool, package: str) -> Check:
    """Whether executable ``name`` is on PATH, with the version its ``--version`` reports."""
    path = shutil.which(name)
    fix = f"{SETUP_FIX} (installs Debian's {package})"
    if path is None:
        return Check(name, False, required, "not found on PATH", fix)
    try:
        child = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=TOOL_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check(name, False, required, f"{path} does not run: {err}", fix)
    version = _parse_version(child.stdout + "\n" + child.stderr)
    if version is None:
        if child.returncode != 0:
            return Check(
                name, False, required, f"`{path} --version` exited {child.returncode}", fix
            )
        return Check(name, True, required, f"{path} (version not reported)", "")
    shown = ".".join(str(part) for part in version)
    return Check(name, True, required, f"{shown} at {path}", "")


def check_kernel_build(
    *,
    config_path: Path = kernel_config.KERNEL_CONFIG,
    sysfs_block: Path = kernel_config.SYSFS_BLOCK,
    cmdline: Path = kernel_config.PROC_CMDLINE,
    mountinfo: Path = kernel_config.MOUNTINFO,
    btf: Path = Path("/sys/kernel/btf/vmlinux"),
) -> list[Check]:
    """The kernel build's facts (schedulers, kprobes, BTF, bfq, blk-throttle, cgroups), read
    from sysfs and /proc/config.gz, and the real slow-down a gate can be proved with here.
    Informational: none of them fails the machine."""
    schedulers = kernel_config.scratch_io_schedulers(sysfs_block)
    facts = kernel_config.config_facts(
        kernel_config.read_kernel_config(config_path),
        schedulers=schedulers,
        nomodule=kernel_config.modules_disabled(cmdline),
        cgroups=kernel_config.cgroup_layout(mountinfo),
        btf_present=_exists(btf),
    )
    checks = [Check(f.name, f.ok, False, f.detail, f.fix) for f in facts]
    slowdown = slowdowns.choose_slowdown(schedulers)
    if slowdown is None:
        checks.append(
            Check(
                "real slow-down",
                False,
                False,
                "no blk-mq loop device to slow down",
                "load the loop driver (`modprobe loop`) to use the scratch device",
            )
        )
    else:
        checks.append(
            Check(
                "real slow-down",
                True,
                False,
                f"{slowdown.name}: {' '.join(slowdown.pytest_args())}"
                f" (fio iodepth={slowdown.job['iodepth']}, ioengine={slowdown.job['ioengine']})",
                "",
            )
        )
    return checks


def run_checks(
    *,
    tracefs_mount_points: Sequence[Path] = TRACEFS_MOUNT_POINTS,
    debugfs_root: Path = DEBUGFS_ROOT,
    modules_root: Path = MODULES_ROOT,
    kernel_release: str | None = None,
    python: str | None = None,
    kernel_build: Sequence[Check] | None = None,
) -> list[Check]:
    """Every check, in the order doctor prints them.

    The filesystem roots, kernel release and interpreter default to this machine's; tests
    point them elsewhere (and give ``kernel_build``, :func:`check_kernel_build`'s checks).
    """
    if kernel_release is None:
        kernel_release = os.uname().release
    tracefs = tracefs_root(tracefs_mount_points)
    checks = [check_root(), *check_bcc(python)]
    checks.append(check_kernel_headers(kernel_release, modules_root))
    checks.append(check_tracefs(tracefs_mount_points))
    checks.extend(check_tracepoint(name, True, tracefs) for name in REQUIRED_TRACEPOINTS)
    checks.extend(check_tracepoint(name, False, tracefs) for name in OPTIONAL_TRACEPOINTS)
    checks.append(check_kprobes(tracefs, debugfs_root))
    checks.extend(check_kernel_build() if kernel_build is None else kernel_build)
    checks.append(check_tool("fio", True, "fio"))
    checks.append(check_tool("sockperf", False, "sockperf"))
    checks.append(check_tool("iperf3", False, "iperf3"))
    return checks
