"""Optional function-latency probes: ``func.latency`` (a kernel function, on kprobes) and
``ufunc.latency`` (a user-space function, on uprobes), like bcc's funclatency.

Both time entry -> return per thread and fill one series named like the probe
(``func.latency``, ``ufunc.latency``); the function is a constructor argument and
shows in the provenance. They depend on kernel features beyond tracepoints, so they
are feature-detected: on a kernel without kprobes ``func.latency`` is reported
unavailable with the reason, before anything is compiled. (fentry/fexit would need the
function's name inside the compiled program, which is built once per session before
any function is named, so kprobes are this probe's only attach method.)

The function is attached when the probe is configured, because only then is the
process filter known: ``pid`` (uprobes attach to that process only; kprobes filter on
it in BPF), 0 for every process. One instance of each per session.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from perfcheck.errors import ProbeError
from perfcheck.probes.catalog import ATTACH_KPROBE, ATTACH_UPROBE, CatalogProbe, setting
from perfcheck.probes.features import (
    Unavailable,
    fentry_refusal,
    kprobes_missing,
    uprobes_missing,
)
from perfcheck.probes.maps import write_config

_FUNC_LATENCY_TEMPLATE = r"""
/*
 * {name}: entry -> return of one {where} function, per thread. Attached from Python
 * ({attach}) when configured; pc_{prefix}_config.tgid filters processes (0: all).
 */
struct pc_{prefix}_config {{
    u32 tgid;
    u32 pad;
}};

BPF_ARRAY(pc_{prefix}_config, struct pc_{prefix}_config, 1);
BPF_HASH(pc_{prefix}_start, u32, u64, 65536);
BPF_PERCPU_ARRAY(pc_{prefix}_hist, u64, PC_HIST_SLOTS);

int pc_{prefix}_entry(struct pt_regs *ctx)
{{
    u32 zero = 0;
    struct pc_{prefix}_config *cfg = pc_{prefix}_config.lookup(&zero);
    u64 id = bpf_get_current_pid_tgid();
    if (cfg && cfg->tgid && (id >> 32) != cfg->tgid)
        return 0;
    u32 tid = (u32)id;
    u64 now = bpf_ktime_get_ns();
    pc_{prefix}_start.update(&tid, &now);
    return 0;
}}

int pc_{prefix}_return(struct pt_regs *ctx)
{{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u64 *start = pc_{prefix}_start.lookup(&tid);
    if (!start)
        return 0;
    u64 delta = bpf_ktime_get_ns() - *start;
    pc_{prefix}_start.delete(&tid);
    u32 slot = perfcheck_bucket(delta);
    u64 *n = pc_{prefix}_hist.lookup(&slot);
    if (n)
        (*n)++;
    return 0;
}}
"""

FUNC_LATENCY_C = _FUNC_LATENCY_TEMPLATE.format(
    name="func.latency", where="kernel", attach="kprobe + kretprobe", prefix="kfunc"
)
UFUNC_LATENCY_C = _FUNC_LATENCY_TEMPLATE.format(
    name="ufunc.latency", where="user-space", attach="uprobe + uretprobe", prefix="ufunc"
)


def resolve_library(name: str) -> Path | None:
    """Path of a shared library named like bcc does (``c`` -> ``libc.so.6``'s path).

    A name holding a ``/`` is a path already. Others are looked up in ``ldconfig -p``.
    """
    if "/" in name:
        return Path(name)
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        listing = subprocess.run(
            [ldconfig, "-p"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    wanted = (f"lib{name}.so", f"{name}.so", name)
    for line in listing.splitlines():
        soname, _, path = line.strip().partition(" => ")
        soname = soname.split(" (")[0]
        if path and any(soname == w or soname.startswith(w + ".") for w in wanted):
            return Path(path)
    return None


def split_target(target: str) -> tuple[str, str]:
    """``"c:nanosleep"`` -> ``("c", "nanosleep")``; ``"/bin/x:main"`` likewise."""
    binary, sep, symbol = target.rpartition(":")
    if not sep or not binary or not symbol:
        raise ValueError(f"user function {target!r} must be LIBRARY:FUNCTION, e.g. c:nanosleep")
    return binary, symbol


class FuncLatencyProbe(CatalogProbe):
    """Latency of one kernel function, on kprobe + kretprobe."""

    name: ClassVar[str] = "func.latency"
    summary: ClassVar[str] = "latency of a named kernel function, entry to return (funclatency)"
    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = ()
    C_SOURCE: ClassVar[str] = FUNC_LATENCY_C
    attach: ClassVar[str] = ATTACH_KPROBE
    filters: ClassVar[tuple[str, ...]] = ("pid",)
    optional: ClassVar[bool] = True
    DEFAULT_FUNCTION: ClassVar[str] = "vfs_read"

    def __init__(self, function: str = DEFAULT_FUNCTION) -> None:
        self.function = function
        self._attached_to: Any = None  # the program the kprobes are attached to

    @classmethod
    def events(cls) -> list[str]:
        return ["kprobe:FUNCTION", "kretprobe:FUNCTION"]

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        missing = kprobes_missing()
        if missing is None:
            return None
        # Say whether fentry would have been a way out, with the kernel's own answer.
        refusal = fentry_refusal()
        fentry = (
            f"fentry is refused too (test load on vfs_read: {refusal})"
            if refusal is not None
            else "fentry loads here, but needs the function at compile time"
        )
        return Unavailable(f"{missing.reason}; {fentry}", missing.fix)

    def provenance(self) -> list[str]:
        return [f"kprobe:{self.function}", f"kretprobe:{self.function}"]

    def series_names(self) -> list[str]:
        return ["func.latency"]

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        write_config(bpf[b"pc_kfunc_config"], {"tgid": setting(settings, "pid")})
        if self._attached_to is not bpf:
            event = self.function.encode()
            try:
                bpf.attach_kprobe(event=event, fn_name=b"pc_kfunc_entry")
                bpf.attach_kretprobe(event=event, fn_name=b"pc_kfunc_return")
            except Exception as exc:  # bcc raises bare Exceptions
                raise ProbeError(
                    f"func.latency: cannot attach kprobes to {self.function} ({exc});"
                    " check the name in /proc/kallsyms and `perfcheck probes`"
                ) from exc
            self._attached_to = bpf

    def release(self, bpf: Any) -> None:
        if self._attached_to is bpf:
            event = self.function.encode()
            bpf.detach_kretprobe(event=event)
            bpf.detach_kprobe(event=event)
            self._attached_to = None

    HIST_MAP: ClassVar[bytes] = b"pc_kfunc_hist"


class UserFuncLatencyProbe(CatalogProbe):
    """Latency of one user-space function, on uprobe + uretprobe."""

    name: ClassVar[str] = "ufunc.latency"
    summary: ClassVar[str] = (
        "latency of a user-space function (LIBRARY:FUNCTION), entry to return (funclatency)"
    )
    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = ()
    C_SOURCE: ClassVar[str] = UFUNC_LATENCY_C
    attach: ClassVar[str] = ATTACH_UPROBE
    filters: ClassVar[tuple[str, ...]] = ("pid",)
    optional: ClassVar[bool] = True
    DEFAULT_TARGET: ClassVar[str] = "c:nanosleep"

    def __init__(self, target: str = DEFAULT_TARGET) -> None:
        self.binary, self.symbol = split_target(target)
        # The program and pid the uprobes are attached to.
        self._attached_to: tuple[Any, int] | None = None

    @classmethod
    def events(cls) -> list[str]:
        return ["uprobe:LIBRARY:FUNCTION", "uretprobe:LIBRARY:FUNCTION"]

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        return uprobes_missing()

    def binary_path(self) -> str:
        resolved = resolve_library(self.binary)
        return str(resolved) if resolved is not None else self.binary

    def provenance(self) -> list[str]:
        where = f"{self.binary_path()}:{self.symbol}"
        return [f"uprobe:{where}", f"uretprobe:{where}"]

    def series_names(self) -> list[str]:
        return ["ufunc.latency"]

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        pid = setting(settings, "pid")
        write_config(bpf[b"pc_ufunc_config"], {"tgid": pid})
        attach_pid = pid or -1
        previous = self._attached_to
        if previous is not None and previous[0] is bpf and previous[1] == attach_pid:
            return
        name, sym = self.binary_path().encode(), self.symbol.encode()
        if previous is not None and previous[0] is bpf:
            bpf.detach_uretprobe(name=name, sym=sym, pid=previous[1])
            bpf.detach_uprobe(name=name, sym=sym, pid=previous[1])
        try:
            bpf.attach_uprobe(name=name, sym=sym, fn_name=b"pc_ufunc_entry", pid=attach_pid)
            bpf.attach_uretprobe(name=name, sym=sym, fn_name=b"pc_ufunc_return", pid=attach_pid)
        except Exception as exc:  # bcc raises bare Exceptions
            raise ProbeError(
                f"ufunc.latency: cannot attach uprobes to {self.binary_path()}:{self.symbol}"
                f" ({exc}); give LIBRARY:FUNCTION of a function the library exports"
            ) from exc
        self._attached_to = (bpf, attach_pid)

    def release(self, bpf: Any) -> None:
        previous = self._attached_to
        if previous is not None and previous[0] is bpf:
            name, sym = self.binary_path().encode(), self.symbol.encode()
            bpf.detach_uretprobe(name=name, sym=sym, pid=previous[1])
            bpf.detach_uprobe(name=name, sym=sym, pid=previous[1])
            self._attached_to = None

    HIST_MAP: ClassVar[bytes] = b"pc_ufunc_hist"


__all__ = [
    "FUNC_LATENCY_C",
    "UFUNC_LATENCY_C",
    "FuncLatencyProbe",
    "UserFuncLatencyProbe",
    "resolve_library",
    "split_target",
]
