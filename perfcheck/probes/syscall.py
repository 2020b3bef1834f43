"""``syscall.latency``: how long each system call takes, per syscall (bcc's syscount -L,
with histograms).

Raw tracepoints ``sys_enter`` (which carries the syscall number) and ``sys_exit``; a
per-thread table holds the entry time and number in between. Series
``syscall.latency.<name>`` for each syscall seen (``nanosleep``, ``read``, ...); counters
``syscall.calls.<name>`` and ``syscall.time_ns.<name>`` (exact totals, for "top syscalls
by time"). Names come from the system's ``asm/unistd_64.h``; a number without a name
shows as ``syscall_<nr>``.

Filters ``pid`` and ``cgroup_id`` use the current task's ids, which are free in BPF;
with neither, every process is timed. ``exit`` and ``exit_group`` never return and are
not timed.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.probes.base import ProbeCounters
from perfcheck.probes.catalog import ATTACH_RAW_TRACEPOINT, CatalogProbe, setting
from perfcheck.probes.features import Unavailable, missing_raw_tracepoints, missing_tracepoints
from perfcheck.probes.maps import hash_items, percpu_array_sums, write_config

#: Syscall numbers at or above this are not timed (x86-64 has about 460).
SYSCALL_NR_MAX = 512

RAW_TRACEPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sys_enter", ("struct pt_regs *", "long int")),
    ("sys_exit", ("struct pt_regs *", "long int")),
)

SYSCALL_LATENCY_C = r"""
/*
 * syscall.latency: sys_enter -> sys_exit per thread, histogram per syscall number.
 * pc_sys_hist is sparse: (nr, slot) -> count. pc_sys_totals[nr * 2] counts calls and
 * [nr * 2 + 1] their nanoseconds.
 */
#define PC_SYS_NR_MAX PC_SYS_NR_MAX_VALUE

struct pc_sys_config {
    u64 cgroup_id;      /* 0: any cgroup */
    u32 tgid;           /* 0: any process */
    u32 ready;
    u32 nr_exit;        /* never return: not timed */
    u32 nr_exit_group;
};

struct pc_sys_running_call {
    u64 start_ns;
    u32 nr;
    u32 pad;
};

struct pc_sys_slot {
    u32 nr;
    u32 slot;
};

BPF_ARRAY(pc_sys_config, struct pc_sys_config, 1);
/* tid -> the call in progress (start_ns 0: none). Updated in place, never deleted: far
 * cheaper per syscall; LRU drops the entries of exited threads. */
BPF_TABLE("lru_hash", u32, struct pc_sys_running_call, pc_sys_running, 65536);
BPF_F_TABLE("hash", struct pc_sys_slot, u64, pc_sys_hist, 65536, BPF_F_NO_PREALLOC);
BPF_PERCPU_ARRAY(pc_sys_totals, u64, 2 * PC_SYS_NR_MAX);

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u32 zero = 0;
    struct pc_sys_config *cfg = pc_sys_config.lookup(&zero);
    if (!cfg || !cfg->ready)
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    if (cfg->tgid && (id >> 32) != cfg->tgid)
        return 0;
    if (cfg->cgroup_id && bpf_get_current_cgroup_id() != cfg->cgroup_id)
        return 0;
    u64 nr = ctx->args[1];
    if (nr >= PC_SYS_NR_MAX || nr == cfg->nr_exit || nr == cfg->nr_exit_group)
        return 0;
    u32 tid = (u32)id;
    u64 now = bpf_ktime_get_ns();
    struct pc_sys_running_call *running = pc_sys_running.lookup(&tid);
    if (running) {
        running->start_ns = now;
        running->nr = (u32)nr;
        return 0;
    }
    struct pc_sys_running_call call = {};
    call.start_ns = now;
    call.nr = (u32)nr;
    pc_sys_running.update(&tid, &call);
    return 0;
}

RAW_TRACEPOINT_PROBE(sys_exit)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pc_sys_running_call *call = pc_sys_running.lookup(&tid);
    if (!call || !call->start_ns)
        return 0;
    u64 delta = bpf_ktime_get_ns() - call->start_ns;
    u32 nr = call->nr;
    call->start_ns = 0;
    if (nr >= PC_SYS_NR_MAX)
        return 0;
    struct pc_sys_slot key = {};
    key.nr = nr;
    key.slot = perfcheck_bucket(delta);
    pc_sys_hist.increment(key);
    u32 index = nr * 2;
    u64 *n = pc_sys_totals.lookup(&index);
    if (n)
        (*n)++;
    index++;
    n = pc_sys_totals.lookup(&index);
    if (n)
        *n += delta;
    return 0;
}
""".replace("PC_SYS_NR_MAX_VALUE", str(SYSCALL_NR_MAX))

_UNISTD_DEFINE = re.compile(r"^#define\s+__NR_(\w+)\s+(\d+)\s*$", re.MULTILINE)


def unistd_candidates() -> list[Path]:
    """Where this system keeps its syscall number header, most specific first."""
    machine = platform.machine()
    multiarch = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(machine, "")
    header = "unistd_64.h" if machine == "x86_64" else "unistd.h"
    build = Path("/lib/modules") / os.uname().release / "build"
    return [
        Path("/usr/include") / multiarch / "asm" / header,
        Path("/usr/include/asm") / header,
        build / "arch/x86/include/generated/uapi/asm/unistd_64.h",
        Path("/usr/include/asm-generic/unistd.h"),
    ]


def parse_unistd(text: str) -> dict[int, str]:
    """``{number: name}`` from the ``#define __NR_<name> <number>`` lines of a header."""
    return {int(number): name for name, number in _UNISTD_DEFINE.findall(text)}


@functools.lru_cache(maxsize=1)
def syscall_names() -> dict[int, str]:
    """This machine's syscall numbers and names (empty if no header is found)."""
    for path in unistd_candidates():
        try:
            names = parse_unistd(path.read_text())
        except OSError:
            continue
        if names:
            return names
    return {}


def syscall_name(nr: int, names: Mapping[int, str] | None = None) -> str:
    table = syscall_names() if names is None else names
    return table.get(nr, f"syscall_{nr}")


def syscall_number(name: str, names: Mapping[int, str] | None = None) -> int | None:
    table = syscall_names() if names is None else names
    return next((nr for nr, known in table.items() if known == name), None)


def top_syscalls(counters: Mapping[str, int], limit: int = 10) -> list[tuple[str, int, int]]:
    """``(name, calls, total ns)`` of the syscalls that took the most time, most first."""
    rows = [
        (
            key.removeprefix("syscall.time_ns."),
            counters.get("syscall.calls." + key.removeprefix("syscall.time_ns."), 0),
            value,
        )
        for key, value in counters.items()
        if key.startswith("syscall.time_ns.") and value > 0
    ]
    rows.sort(key=lambda row: (-row[2], row[0]))
    return rows[:limit]


def histograms_by_syscall(
    items: Any, names: Mapping[int, str] | None = None
) -> dict[str, LogLinearHistogram]:
    """Group ``((nr, slot), count)`` items of the sparse map into one histogram per syscall."""
    per_nr: dict[int, list[tuple[int, int]]] = {}
    for key, count in items:
        value = getattr(count, "value", count)  # batch reads give ints, key walks ctypes
        per_nr.setdefault(int(key.nr), []).append((int(key.slot), int(value)))
    return {
        f"syscall.latency.{syscall_name(nr, names)}": LogLinearHistogram.from_bpf_items(slots)
        for nr, slots in per_nr.items()
    }


class SyscallLatencyProbe(CatalogProbe):
    name: ClassVar[str] = "syscall.latency"
    summary: ClassVar[str] = "system call latency per syscall, top syscalls by time (syscount -L)"
    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = (
        ("raw_syscalls", "sys_enter"),
        ("raw_syscalls", "sys_exit"),
    )
    C_SOURCE: ClassVar[str] = SYSCALL_LATENCY_C
    attach: ClassVar[str] = ATTACH_RAW_TRACEPOINT
    filters: ClassVar[tuple[str, ...]] = ("pid", "cgroup_id")

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        return missing_tracepoints(cls.tracepoints) or missing_raw_tracepoints(RAW_TRACEPOINTS)

    def series_names(self) -> list[str]:
        return [f"syscall.latency.{name}" for _, name in sorted(syscall_names().items())]

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        # Unknown numbers map to one past the table: never a real syscall.
        never = SYSCALL_NR_MAX
        bpf[b"pc_sys_running"].clear()
        write_config(
            bpf[b"pc_sys_config"],
            {
                "tgid": setting(settings, "pid"),
                "cgroup_id": setting(settings, "cgroup_id"),
                "nr_exit": syscall_number("exit") or never,
                "nr_exit_group": syscall_number("exit_group") or never,
                "ready": 1,
            },
        )

    def read(self, bpf: Any) -> ProbeCounters:
        names = syscall_names()
        out = ProbeCounters(
            histograms=histograms_by_syscall(hash_items(bpf[b"pc_sys_hist"]), names)
        )
        totals = percpu_array_sums(bpf[b"pc_sys_totals"], 2 * SYSCALL_NR_MAX)
        for nr in range(SYSCALL_NR_MAX):
            if totals[2 * nr]:
                name = syscall_name(nr, names)
                out.counters[f"syscall.calls.{name}"] = totals[2 * nr]
                out.counters[f"syscall.time_ns.{name}"] = totals[2 * nr + 1]
        return out


__all__ = [
    "SYSCALL_LATENCY_C",
    "SyscallLatencyProbe",
    "histograms_by_syscall",
    "parse_unistd",
    "syscall_name",
    "syscall_names",
    "syscall_number",
    "top_syscalls",
]
