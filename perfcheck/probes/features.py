"""What this kernel offers to probes, found out before anything is compiled.

Each check returns ``None`` when the feature is there, or an :class:`Unavailable` that
says exactly what is missing and what would fix it. Probes combine these checks in
their ``unavailable()`` class method; :func:`partition_available` splits a list of
probes into the ones that can load here and the ones to skip, with reasons.

Nothing here loads a BPF program through bcc. The one active test, :func:`fentry_refusal`,
asks the kernel to load a two-instruction fentry program with a raw ``bpf()`` call, so
the reason a kernel refuses fentry (EPERM under lockdown, for one) can be reported as
the kernel's own errno.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import os
import platform
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from perfcheck.probes.btf import VMLINUX_BTF, BTFError, KernelBTF, kernel_btf
from perfcheck.system.doctor import SETUP_FIX
from perfcheck.system.tracefs import DEBUGFS_ROOT, tracefs_root, tracepoint_exists


@dataclass(frozen=True)
class Unavailable:
    """Why a probe cannot load on this machine, and what would make it load. One line each."""

    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.reason}; fix: {self.fix}"


# -- machine-wide prerequisites of every BPF probe ------------------------------------------


def bpf_prerequisites_missing() -> Unavailable | None:
    """Root, bcc, kernel headers and tracefs: needed by every probe, checked without bcc."""
    if os.geteuid() != 0:
        return Unavailable(
            "loading BPF programs needs root (CAP_BPF and CAP_PERFMON)", "run as root"
        )
    if importlib.util.find_spec("bcc") is None:
        return Unavailable(
            "bcc is not importable (it is Debian's python3-bpfcc, not a PyPI package)",
            f"{SETUP_FIX} and use .venv/bin/perfcheck",
        )
    build = Path("/lib/modules") / platform.release() / "build" / "include"
    if not build.is_dir():
        return Unavailable(f"kernel headers missing at {build}; bcc cannot compile", SETUP_FIX)
    if tracefs_root() is None:
        return Unavailable("tracefs is not mounted", f"{SETUP_FIX} (mounts tracefs)")
    return None


# -- tracepoints -------------------------------------------------------------------------------


def missing_tracepoints(events: Iterable[tuple[str, str]]) -> Unavailable | None:
    root = tracefs_root()
    if root is None:
        return Unavailable("tracefs is not mounted", f"{SETUP_FIX} (mounts tracefs)")
    missing = [f"{cat}:{event}" for cat, event in events if not tracepoint_exists(cat, event, root)]
    if missing:
        return Unavailable(
            f"tracepoint {', '.join(missing)} absent from {root / 'events'}",
            "use a kernel that has these tracepoints",
        )
    return None


def btf_or_reason(path: Path = VMLINUX_BTF) -> KernelBTF | Unavailable:
    """The kernel's BTF, or why it cannot be read."""
    try:
        return kernel_btf(path)
    except BTFError as exc:
        return Unavailable(str(exc), "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y")


def missing_raw_tracepoints(
    expected: Iterable[tuple[str, Sequence[str]]], path: Path = VMLINUX_BTF
) -> Unavailable | None:
    """Raw tracepoints must exist with the argument types the program reads.

    ``expected`` pairs a tracepoint name with the C types of its leading arguments, e.g.
    ``("block_rq_complete", ("struct request *", "blk_status_t", "unsigned int"))``. The
    kernel's BTF declares every raw tracepoint's prototype, so a changed argument list is
    caught here instead of becoming wrong numbers.
    """
    btf = btf_or_reason(path)
    if isinstance(btf, Unavailable):
        return btf
    for tracepoint, want in expected:
        try:
            have = btf.raw_tracepoint_args(tracepoint)
        except BTFError:
            return Unavailable(
                f"raw tracepoint {tracepoint} is not declared in {btf.source}",
                "use a kernel that has this tracepoint",
            )
        if have[: len(want)] != list(want):
            return Unavailable(
                f"raw tracepoint {tracepoint} takes ({', '.join(have)}), perfcheck reads"
                f" ({', '.join(want)})",
                "use a kernel whose tracepoint has these arguments (or update the probe)",
            )
    return None


def missing_btf_members(
    members: Iterable[tuple[str, str]], path: Path = VMLINUX_BTF
) -> Unavailable | None:
    """Every ``(struct, member)`` the program reads must be in the kernel's BTF."""
    btf = btf_or_reason(path)
    if isinstance(btf, Unavailable):
        return btf
    for struct_name, member in members:
        try:
            btf.member(struct_name, member)
        except BTFError as exc:
            return Unavailable(str(exc), "use a kernel with this field (or update the probe)")
    return None


def missing_events_or_types(
    tracepoints: Iterable[tuple[str, str]],
    raw_tracepoints: Iterable[tuple[str, Sequence[str]]],
    btf_members: Iterable[tuple[str, str]],
) -> Unavailable | None:
    """The first thing a raw-tracepoint program with BTF-located reads lacks, or None."""
    return (
        missing_tracepoints(tracepoints)
        or missing_raw_tracepoints(raw_tracepoints)
        or missing_btf_members(btf_members)
    )


# -- kprobes, uprobes, fentry ------------------------------------------------------------------

_EVENT_SOURCES: Final[Path] = Path("/sys/bus/event_source/devices")


def kprobes_missing(debugfs_root: Path = DEBUGFS_ROOT) -> Unavailable | None:
    """bcc attaches kprobes through the kprobe PMU or ``kprobe_events``, and reads debugfs's
    ``kprobes/blacklist``; a kernel without CONFIG_KPROBES has none of them."""
    root = tracefs_root()
    pmu = (_EVENT_SOURCES / "kprobe" / "type").exists()
    events = root is not None and (root / "kprobe_events").exists()
    if not pmu and not events:
        where = root / "kprobe_events" if root is not None else "tracefs kprobe_events"
        return Unavailable(
            f"kprobes are absent on this kernel (no {_EVENT_SOURCES / 'kprobe'} PMU, no {where}:"
            " CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off)",
            "boot a kernel built with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y",
        )
    if not (debugfs_root / "kprobes" / "blacklist").exists():
        return Unavailable(
            f"{debugfs_root / 'kprobes' / 'blacklist'} is missing; bcc reads it before"
            " attaching a kprobe",
            "mount debugfs at /sys/kernel/debug (`make setup`)",
        )
    return None


def uprobes_missing() -> Unavailable | None:
    root = tracefs_root()
    pmu = (_EVENT_SOURCES / "uprobe" / "type").exists()
    events = root is not None and (root / "uprobe_events").exists()
    if not pmu and not events:
        return Unavailable(
            "uprobes are absent on this kernel (no uprobe PMU, no uprobe_events:"
            " CONFIG_UPROBES/CONFIG_UPROBE_EVENTS off)",
            "boot a kernel built with CONFIG_UPROBES=y and CONFIG_UPROBE_EVENTS=y",
        )
    return None


# bpf(2) constants from include/uapi/linux/bpf.h.
_BPF_PROG_LOAD: Final[int] = 5
_BPF_PROG_TYPE_TRACING: Final[int] = 26
_BPF_TRACE_FENTRY: Final[int] = 24
_BPF_SYSCALL_NR: Final[dict[str, int]] = {"x86_64": 321, "aarch64": 280}
# r0 = 0; exit
_RETURN_ZERO: Final[bytes] = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])


def fentry_refusal(function: str = "vfs_read", path: Path = VMLINUX_BTF) -> str | None:
    """Load an empty fentry program on ``function``; None if the kernel accepts it, else why.

    The reason is the kernel's errno (``EPERM (Operation not permitted)``), or why the test
    could not be made (no BTF, unknown architecture).
    """
    nr = _BPF_SYSCALL_NR.get(os.uname().machine)
    if nr is None:
        return f"not tested on {os.uname().machine}"
    btf = btf_or_reason(path)
    if isinstance(btf, Unavailable):
        return btf.reason
    try:
        func_id = btf.func_id(function)
    except BTFError as exc:
        return str(exc)
    insns = ctypes.create_string_buffer(_RETURN_ZERO, len(_RETURN_ZERO))
    license_text = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<II", attr, 0, _BPF_PROG_TYPE_TRACING, len(_RETURN_ZERO) // 8)
    struct.pack_into("<QQ", attr, 8, ctypes.addressof(insns), ctypes.addressof(license_text))
    struct.pack_into("<I", attr, 68, _BPF_TRACE_FENTRY)  # expected_attach_type
    struct.pack_into("<I", attr, 108, func_id)  # attach_btf_id (in vmlinux)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(nr, _BPF_PROG_LOAD, attr, ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


# -- splitting a probe list --------------------------------------------------------------------


def partition_available(
    probes: Sequence[object],
) -> tuple[list[object], dict[str, Unavailable]]:
    """``(loadable, skipped)``: probes that can load here, and why each other one cannot.

    Each probe is checked with its class's ``unavailable()`` when it has one, otherwise
    for its tracepoints. Machine-wide prerequisites (root, bcc, headers) are not checked
    here: :func:`bpf_prerequisites_missing` reports those once for all probes.
    """
    loadable: list[object] = []
    skipped: dict[str, Unavailable] = {}
    for probe in probes:
        check = getattr(probe, "unavailable", None)
        reason = (
            check() if callable(check) else missing_tracepoints(getattr(probe, "tracepoints", ()))
        )
        if reason is None:
            loadable.append(probe)
        else:
            skipped[str(getattr(probe, "name", type(probe).__name__))] = reason
    return loadable, skipped


__all__ = [
    "Unavailable",
    "bpf_prerequisites_missing",
    "btf_or_reason",
    "fentry_refusal",
    "kprobes_missing",
    "missing_btf_members",
    "missing_raw_tracepoints",
    "missing_tracepoints",
    "partition_available",
    "uprobes_missing",
]
