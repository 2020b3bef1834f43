"""What the running kernel build offers perfcheck, read from sysfs and ``/proc/config.gz``.

Machines of one kind do not all run the same kernel build: one has bfq, another was
built without it (and boots with ``nomodule``, so ``modprobe`` cannot add it); one has
kprobes, another not. Everything here is read from the running kernel, never assumed:

- :func:`io_schedulers` lists the I/O schedulers a disk's queue offers (sysfs);
- :func:`read_kernel_config` parses the build configuration when the kernel exposes it
  (``CONFIG_IKCONFIG_PROC``); :func:`config_facts` turns it into one line per feature
  that decides what perfcheck can do, with a fix where there is one.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SYSFS_BLOCK = Path("/sys/block")
KERNEL_CONFIG = Path("/proc/config.gz")
PROC_CMDLINE = Path("/proc/cmdline")
MOUNTINFO = Path("/proc/self/mountinfo")


def io_schedulers(disk: str, sysfs: Path = SYSFS_BLOCK) -> list[str]:
    """The schedulers ``disk``'s queue offers (``none [mq-deadline] kyber`` -> three names);
    empty when the disk has no scheduler file (bio-based devices such as zram)."""
    try:
        text = (sysfs / disk / "queue" / "scheduler").read_text()
    except OSError:
        return []
    return text.replace("[", "").replace("]", "").split()


def loop_disk(sysfs: Path = SYSFS_BLOCK) -> str | None:
    """A loop disk whose queue shows what the scratch device will offer (every loop device
    has the same schedulers, attached or not), or None when the loop driver is absent."""
    try:
        names = sorted(p.name for p in sysfs.iterdir() if re.fullmatch(r"loop\d+", p.name))
    except OSError:
        return None
    return names[0] if names else None


def scratch_io_schedulers(sysfs: Path = SYSFS_BLOCK) -> list[str]:
    """The schedulers perfcheck's scratch loop device will offer on this kernel."""
    disk = loop_disk(sysfs)
    return io_schedulers(disk, sysfs) if disk is not None else []


def read_kernel_config(path: Path = KERNEL_CONFIG) -> dict[str, str] | None:
    """``CONFIG_*`` options of the running kernel: ``{"CONFIG_KPROBES": "y", ...}``, with
    options that are "not set" mapped to ``"n"``. None when the kernel does not expose its
    configuration (no ``CONFIG_IKCONFIG_PROC``) or it cannot be read."""
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    return parse_kernel_config(text)


def parse_kernel_config(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for line in text.splitlines():
        if match := re.fullmatch(r"(CONFIG_\w+)=(.*)", line.strip()):
            options[match.group(1)] = match.group(2).strip('"')
        elif match := re.fullmatch(r"# (CONFIG_\w+) is not set", line.strip()):
            options[match.group(1)] = "n"
    return options


def modules_disabled(cmdline: Path = PROC_CMDLINE) -> bool:
    """The kernel was booted with ``nomodule``: no module can be loaded."""
    try:
        return "nomodule" in cmdline.read_text().split()
    except OSError:
        return False


def cgroup_layout(mountinfo: Path = MOUNTINFO) -> str:
    """``unified`` (cgroup v2 only), ``hybrid`` (v1 controllers plus a v2 tree), ``legacy``
    (v1 only) or ``none``, from the mounted filesystems."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return "none"
    kinds = {line.partition(" - ")[2].split(" ", 1)[0] for line in lines if " - " in line}
    v1, v2 = "cgroup" in kinds, "cgroup2" in kinds
    if v1 and v2:
        return "hybrid"
    if v2:
        return "unified"
    return "legacy" if v1 else "none"


@dataclass(frozen=True)
class KernelFact:
    """One thing about the kernel build, whether perfcheck can use it, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str


def _state(config: Mapping[str, str], option: str) -> str:
    value = config.get(option)
    if value == "y":
        return "built in"
    if value == "m":
        return "a module"
    return "not set" if value in (None, "n") else value


def config_facts(
    config: Mapping[str, str] | None,
    *,
    schedulers: list[str],
    nomodule: bool,
    cgroups: str,
    btf_present: bool,
) -> list[KernelFact]:
    """The kernel facts that decide what perfcheck can do, one each.

    ``config`` is :func:`read_kernel_config`'s result (None: the kernel does not expose
    it, and only what sysfs and procfs show is reported); ``schedulers`` what the scratch
    device offers.
    """
    facts: list[KernelFact] = []
    offered = ", ".join(schedulers) if schedulers else "unknown (no loop device)"
    facts.append(
        KernelFact("I/O schedulers", bool(schedulers), f"loop devices offer {offered}", "")
    )

    def from_config(option: str) -> str | None:
        return None if config is None else _state(config, option)

    unknown = "unknown: /proc/config.gz absent (kernel built without CONFIG_IKCONFIG_PROC)"

    # bfq: present when the queue offers it; else say whether it could be loaded.
    bfq = from_config("CONFIG_IOSCHED_BFQ")
    if "bfq" in schedulers:
        facts.append(KernelFact("bfq", True, "offered by loop devices", ""))
    elif bfq == "a module" and not nomodule:
        facts.append(KernelFact("bfq", False, "built as a module, not loaded", "modprobe bfq"))
    else:
        why = {None: "not offered", "a module": "a module, but the kernel boots with nomodule"}
        detail = why.get(bfq, f"CONFIG_IOSCHED_BFQ {bfq}")
        facts.append(
            KernelFact(
                "bfq",
                False,
                detail,
                "none on this kernel; prove a gate with the real slow-down doctor lists",
            )
        )

    kprobes = from_config("CONFIG_KPROBES")
    facts.append(
        KernelFact(
            "CONFIG_KPROBES",
            kprobes in ("built in", "a module"),
            kprobes or unknown,
            "" if kprobes == "built in" else "none needed: perfcheck's probes use tracepoints",
        )
    )
    btf = from_config("CONFIG_DEBUG_INFO_BTF")
    facts.append(
        KernelFact(
            "CONFIG_DEBUG_INFO_BTF",
            btf_present,
            f"{btf or 'config unknown'}; /sys/kernel/btf/vmlinux"
            f" {'present' if btf_present else 'absent'}",
            ""
            if btf_present
            else "probes that read kernel structs need BTF: use a kernel"
            " built with CONFIG_DEBUG_INFO_BTF",
        )
    )
    throttle = from_config("CONFIG_BLK_DEV_THROTTLING")
    facts.append(
        KernelFact(
            "CONFIG_BLK_DEV_THROTTLING",
            throttle == "built in",
            f"blk-throttle {throttle}" if throttle else unknown,
            "" if throttle == "built in" else "none: blk-throttle (cgroup I/O limits) is absent",
        )
    )
    facts.append(
        KernelFact(
            "cgroup layout",
            cgroups in ("unified", "hybrid"),
            {
                "unified": "cgroup v2 only",
                "hybrid": "cgroup v1 controllers plus a cgroup v2 tree",
                "legacy": "cgroup v1 only",
                "none": "no cgroup filesystem mounted",
            }[cgroups],
            ""
            if cgroups in ("unified", "hybrid")
            else "mount cgroup2 (e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`) so probes"
            " can filter on the workload's cgroup",
        )
    )
    return facts
